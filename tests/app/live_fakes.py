"""A small real engine for the live-control tests: two screens (a latent walk and a feedback
loop) on model-free renderers (tests/feedback_fakes.py), a real SQLite ledger, and a fake
Steerable walk standing in for the latent directions (issue 23's agreed interface)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feedback_fakes import render_anchor, step
from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.feedback import FeedbackConfig, FeedbackLoop
from passersby.stream.sources import LatentWalk
from passersby.stream.walker import WalkConfig

D = 16
WALK = WalkConfig(tempo=1.0, fps=30.0)
LOOP = FeedbackConfig(tempo=2.0, fps=30.0, drift=0.8, crossfade=0.2, step_every=1, max_faceless=0.0)


def walk_renderer(z: np.ndarray) -> np.ndarray:
    """(1, D) -> (1, 8, 8, 3): a pure function of the latent."""
    return (np.tanh(np.resize(z, (1, 192))).reshape(1, 8, 8, 3) * 127 + 128).astype(np.uint8)


class SteeredWalk(LatentWalk):
    """A walk with named direction offsets (sources.Steerable): the latent plus amount x a fixed
    unit vector per name, recorded in the key. Stands in for branch i23-directions' walk."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._offsets: dict[str, float] = {}

    def set_offset(self, name: str, amount: float) -> None:
        self._offsets[name] = float(min(3.0, max(-3.0, amount)))

    def offsets(self) -> dict[str, float]:
        return dict(self._offsets)

    def render(self, index):
        image, key = super().render(index)
        if self._offsets:
            shift = sum(v * np.random.default_rng(len(k)).standard_normal(D) for k, v in self._offsets.items())
            image = walk_renderer((self.walker.latent(index, self._position(index)) + shift)[None])[0]
            key["offsets"] = dict(self._offsets)
        return image, key


def plans(walk_cls=LatentWalk) -> list[ScreenPlan]:
    return [
        ScreenPlan("masculine", lambda rng: rng.standard_normal(D),
                   lambda anchors: walk_cls(WALK, anchors, walk_renderer, "m0")),
        ScreenPlan("feminine", lambda rng: rng.standard_normal(D),
                   lambda anchors: FeedbackLoop(LOOP, anchors, render_anchor, step, None, {"generator": "m0"})),
    ]


def live_engine(tmp_path: Path, queue_size: int = 6, walk_cls=LatentWalk, **kw) -> Engine:
    return Engine(plans(walk_cls), WALK.fps, tmp_path / "ledger.sqlite", D, "m0", queue_size=queue_size, seed=5, **kw)


def wait_full(engine: Engine, timeout: float = 30.0) -> None:
    """Until every screen has its queue full (the frames rendered ahead that a change must beat)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine.check()
        if all(p.frames.qsize() == p.frames.maxsize for p in engine.producers):
            return
        time.sleep(0.01)
    raise TimeoutError("queues did not fill")
