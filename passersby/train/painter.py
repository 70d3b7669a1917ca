"""`passersby train --kind painter`: the feedback loop's painter, learned from the portraits.

Each step moves real faces by a small random warp (as the loop's drift does), reads them into
markers (model/markers.py) - for a share `self_feed` of the batch, the markers of the painter's
own painting of the face, so it learns to correct its own errors as the loop needs - perturbs
the markers (erased lines, shifted colours), and trains the painter to paint the moved face back: L1 to the real picture (weight `l1_weight`) plus the hinge loss of the projected
discriminator (frozen EfficientNet-Lite0 features + trained heads, model/projected.py), so that
what it invents between the lines is painted texture, not blur. Same run machinery as the GAN
(train/run.py): progress bar, sample grids, curves, metric, atomic checkpoints, exact resume.

The metric is what the loop needs: KID x1000 (EfficientNet-Lite0) of pictures after LOOP_STEPS
readings and paintings in a row, starting from real faces, against the real faces. A painter
that smears, or drifts to a blank or to noise, scores badly; one that keeps painting faces, well.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from passersby.config import TrainConfig
from passersby.model.augment import diff_augment, parse_policy
from passersby.model.markers import perturb, read_markers, smooth_field, warp
from passersby.model.painter import Painter
from passersby.data.training_set import TrainingSet
from passersby.pictures import grid_image, save_png, to_uint8
from passersby.train.state import TrainState

if TYPE_CHECKING:
    from passersby.train.loop import StepStats

WARP_STD = 0.02  # training-time warp of the real pictures (std of the moves, fraction of the side)
LOOP_STEPS = 8  # readings + paintings in a row, for the metric and the sample grid's loop rows
GRID_FACES = 8


def build_state(cfg: TrainConfig, device: torch.device, rank: int = 0) -> TrainState:
    """Fresh painter, its EMA copy, the projected discriminator, Adam optimisers, RNG streams."""
    from passersby.model.projected import ProjectedDiscriminator
    from passersby.train.loop import state_for

    torch.manual_seed(cfg.seed)
    return state_for(Painter(cfg.model).to(device), ProjectedDiscriminator(cfg.model).to(device), cfg, rank)


def train_step(ts: TrainState, data: TrainingSet, cfg: TrainConfig, device: torch.device, info) -> "StepStats":
    """One discriminator and one painter update on a fresh batch (loss_recon = the L1 term)."""
    from passersby.train import dist
    from passersby.train.loop import StepStats, _autocast, update_ema

    policy = parse_policy(cfg.augment)
    real, _, _ = data.batch(cfg.batch_size, ts.rngs.data, device)  # (N, 3, R, R) in [-1, 1]
    own = round(cfg.model.self_feed * len(real))
    with torch.no_grad():
        # The loop's moves: the picture is warped (the target too), then read; the markers
        # lose lines and shift colours. All draws from the run's "z" stream.
        real = warp(real, smooth_field(len(real), real.shape[-1], WARP_STD, ts.rngs.z).to(device))
        slots = None
        if cfg.model.pool and own:  # the first `own` read states of the pool (many paintings deep)
            slots, states, targets = pool_draw(ts, real, own, cfg.model.pool, cfg.model.pool_depth)
            markers = torch.cat([read_markers(states), read_markers(real[own:])])
            real = torch.cat([targets, real[own:]])
        elif own:  # the first `own` read the painter's own painting of the face, as the loop will
            markers = read_markers(real)  # (N, 4, R, R)
            with _autocast(device, cfg.amp):
                painted = ts.G(perturb(markers[:own], ts.rngs.z)).float()
            markers = torch.cat([read_markers(painted), markers[own:]])
        else:
            markers = read_markers(real)
        markers = perturb(markers, ts.rngs.z).to(device)
    with _autocast(device, cfg.amp):
        fake = ts.G(markers)
        logits_real = ts.D(diff_augment(real, policy, ts.rngs.aug))
        logits_fake = ts.D(diff_augment(fake.detach(), policy, ts.rngs.aug))
        loss_d = F.relu(1 - logits_real.float()).mean() + F.relu(1 + logits_fake.float()).mean()
    ts.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    dist.average_gradients(ts.D, info)
    ts.opt_d.step()
    with _autocast(device, cfg.amp):
        loss_adv = -ts.D(diff_augment(fake, policy, ts.rngs.aug)).float().mean()
    loss_l1 = F.l1_loss(fake.float(), real)
    if slots is not None:  # what the painter just painted is the next state of those faces
        pool_store(ts, slots, fake[:own].detach())
    ts.opt_g.zero_grad(set_to_none=True)
    (loss_adv + cfg.model.l1_weight * loss_l1).backward()
    dist.average_gradients(ts.G, info)
    ts.opt_g.step()
    update_ema(ts.G_ema, ts.G, cfg.ema_decay)
    ts.step += 1
    return StepStats(loss_d.item(), loss_adv.item(), loss_l1.item())


def pool_draw(ts: TrainState, real: torch.Tensor, own: int, size: int, depth: int):
    """Draw `own` states from the pool of loop states: (slots (own,), states, targets), both
    (own, 3, R, R) in [-1, 1]. A state is the painter's latest painting of the previous reading
    of its target face; states `depth` paintings old (and the empty pool, at the first step)
    start again from the fresh faces `real[:own]` (state = target = the face)."""
    if "pool_state" not in ts.extra:  # the first step: the pool holds the first faces, unpainted
        first = real[:1].expand(size, -1, -1, -1).to(torch.float16)
        ts.extra.update(pool_state=first.clone(), pool_target=first.clone(),
                        pool_age=torch.full((size,), depth, dtype=torch.int64, device=real.device))
    slots = torch.randperm(size, generator=ts.rngs.z)[:own].to(real.device)
    old = ts.extra["pool_age"][slots] >= depth
    if old.any():  # retire them: a fresh face, state = target (fp16 like every stored state)
        fresh = real[:own][old].to(torch.float16)
        ts.extra["pool_state"][slots[old]] = fresh
        ts.extra["pool_target"][slots[old]] = fresh
        ts.extra["pool_age"][slots[old]] = 0
    return slots, ts.extra["pool_state"][slots].float(), ts.extra["pool_target"][slots].float()


def pool_store(ts: TrainState, slots: torch.Tensor, painted: torch.Tensor) -> None:
    """The painter's paintings (own, 3, R, R) become the next states of their pool slots."""
    ts.extra["pool_state"][slots] = painted.to(torch.float16)
    ts.extra["pool_age"][slots] += 1


def for_inference(ts: TrainState, device: torch.device) -> Painter:
    """The EMA painter in eval mode (InstanceNorm: nothing to recalibrate)."""
    return copy.deepcopy(ts.G_ema).eval()


@torch.no_grad()
def loop(painter: Painter, start: torch.Tensor, steps: int, gen: torch.Generator, drift: float = 0.01) -> list[torch.Tensor]:
    """`steps` readings and paintings from `start` (N, 3, R, R), each reading of a picture moved
    by a small random warp (std `drift`): the pictures after each step, (N, 3, R, R) each."""
    out, x = [], start
    for _ in range(steps):
        x = painter(read_markers(warp(x, smooth_field(len(x), x.shape[-1], drift, gen))))
        out.append(x)
    return out


def _grid_faces(data: TrainingSet, device: torch.device) -> torch.Tensor:
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(2024))[:GRID_FACES]
    return data.images[idx].to(device).float().div(127.5).sub(1.0)


@torch.no_grad()
def write_samples(g: Painter, run, step: int, device: torch.device, data: TrainingSet) -> None:
    """Rows: real faces, their markers' lines, the painting of those markers, and the loop after
    2, 4 and 8 steps (the same faces and noise at every step of every run)."""
    real = _grid_faces(data, device)
    m = read_markers(real)
    lines = m[:, :1].expand(-1, 3, -1, -1)
    steps = loop(g, real, LOOP_STEPS, torch.Generator().manual_seed(7))
    rows = [real, lines, g(m), steps[1], steps[3], steps[7]]
    grid = grid_image(to_uint8(torch.cat(rows)), ncol=GRID_FACES)
    save_png(run / "samples" / f"step-{step:08d}.png", grid)
    save_png(run / "samples" / "latest.png", grid)


def evaluate(g: Painter, data: TrainingSet, cfg: TrainConfig, device: torch.device) -> dict:
    """KID/FD (EfficientNet-Lite0) of real faces after LOOP_STEPS loop steps, against the real faces."""
    from passersby.metrics.evaluate import evaluate_generator

    real = data.images.float().div(127.5).sub(1.0)
    pick = torch.Generator().manual_seed(cfg.seed + 17)
    gen = torch.Generator().manual_seed(cfg.seed + 18)

    def sample(n: int) -> torch.Tensor:
        idx = torch.randint(0, len(real), (n,), generator=pick)
        out = [loop(g, real[idx[i:i + 25]].to(device), LOOP_STEPS, gen)[-1].cpu() for i in range(0, n, 25)]
        return torch.cat(out)

    m = evaluate_generator(sample, real, n=cfg.metric_samples, rng_seed=cfg.seed, data_key=data.data_hash)
    m.pop("memorisation", None)  # pictures painted from real faces are close to them by design
    m["loop_steps"] = LOOP_STEPS
    return m
