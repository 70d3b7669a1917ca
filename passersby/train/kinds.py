"""What `passersby train` can train, behind one small interface: the face generator (GAN,
train/loop.py), the feedback loop's painter (train/painter.py) and the enhancer, the learned
upscaler (train/enhancer.py). train/run.py drives either
with the same progress bar, samples, metric, checkpoints and exact resume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from passersby.config import EnhancerConfig, PainterConfig, TrainConfig

KINDS = ("gan", "painter", "enhancer")


@dataclass(frozen=True)
class Kind:
    """The functions that differ between kinds (train/loop.py's GAN versions as the reference).

    build_state(cfg, device, rank) -> TrainState; train_step(ts, data, cfg, device, info) ->
    StepStats; for_inference(ts, device) -> module to save and sample; write_samples(g, run,
    step, device, data); evaluate(g, data, cfg, device) -> dict with "score" (or "kid_effnetlite0"), lower is better.
    """

    name: str
    build_state: Callable[..., Any]
    train_step: Callable[..., Any]
    for_inference: Callable[..., Any]
    write_samples: Callable[..., None]
    evaluate: Callable[..., dict]


def kind_of(cfg: TrainConfig) -> Kind:
    """The Kind that trains `cfg.model` (a PainterConfig: the painter; else the GAN).

    Example:
        >>> kind_of(TrainConfig()).name
        'gan'
    """
    if isinstance(cfg.model, EnhancerConfig):
        from passersby.train import enhancer

        return Kind("enhancer", enhancer.build_state, enhancer.train_step, enhancer.for_inference,
                    enhancer.write_samples, enhancer.evaluate)
    if isinstance(cfg.model, PainterConfig):
        from passersby.train import painter

        return Kind("painter", painter.build_state, painter.train_step, painter.for_inference,
                    painter.write_samples, painter.evaluate)
    from passersby.train import loop

    return Kind("gan", loop.build_state, loop.train_step, loop.ema_for_inference,
                lambda g, run, step, device, data: loop.write_samples(g, run, step, device), loop.evaluate)
