"""`passersby train --kind enhancer`: the learned upscaler, from native-resolution faces.

Each step takes native face squares (`passersby hires`), shrinks them `scale` times
(antialiased bicubic, as the verdict does), and trains the enhancer (model/enhancer.py) to
restore them: L1 on pixels, plus L1 on their gradients (weight `edge_weight`: strokes and
edges, not the blur a plain L1 settles for), plus, when `adv_weight` > 0, a patch
discriminator's hinge loss on pixels. Nothing in training looks through EfficientNet, which the
verdict's feature distance uses. Same run machinery as the GAN (train/run.py).

The metric (lower is better): the feature distance of restored held-out faces
(metrics/upscale.py), with PSNR and Lanczos' scores beside it in the log. Held-out faces come
from DATA/../held-out when it exists (what `passersby hires` writes), else from the training set.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from passersby.config import TrainConfig
from passersby.model.enhancer import Enhancer, PatchCritic
from passersby.data.training_set import TrainingSet
from passersby.pictures import grid_image, save_png
from passersby.train.state import TrainState

if TYPE_CHECKING:
    from passersby.train.loop import StepStats

GRID_FACES = 6
METRIC_FACES = 40


def build_state(cfg: TrainConfig, device: torch.device, rank: int = 0) -> TrainState:
    """Fresh enhancer, its EMA copy, the patch discriminator, Adam optimisers, RNG streams."""
    from passersby.train.loop import state_for

    torch.manual_seed(cfg.seed)
    return state_for(Enhancer(cfg.model).to(device), PatchCritic(cfg.model).to(device), cfg, rank)


def shrink(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, H/scale, W/scale): antialiased bicubic, PIL's reduction."""
    return F.interpolate(hr, scale_factor=1.0 / scale, mode="bicubic", align_corners=False, antialias=True)


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences of (N, 3, H, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def restore_loss(out: torch.Tensor, hr: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """L1 on pixels + edge_weight x L1 on their finite differences."""
    loss = F.l1_loss(out, hr)
    if edge_weight:
        (ox, oy), (hx, hy) = gradients(out), gradients(hr)
        loss = loss + edge_weight * 0.5 * (F.l1_loss(ox, hx) + F.l1_loss(oy, hy))
    return loss


def train_step(ts: TrainState, data: TrainingSet, cfg: TrainConfig, device: torch.device, info) -> "StepStats":
    """One enhancer update (and one discriminator update when adv_weight > 0); loss_recon = the restore loss."""
    from passersby.train import dist
    from passersby.train.loop import StepStats

    m = cfg.model
    hr, _, _ = data.batch(cfg.batch_size, ts.rngs.data, device)  # (N, 3, S, S) in [-1, 1]
    lr = shrink(hr, m.scale).clamp(-1, 1)
    out = ts.G(lr)
    loss_d = loss_adv = torch.zeros(())
    if m.adv_weight > 0:
        loss_d = F.relu(1 - ts.D(hr)).mean() + F.relu(1 + ts.D(out.detach())).mean()
        ts.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        dist.average_gradients(ts.D, info)
        ts.opt_d.step()
        loss_adv = -ts.D(out).mean()
    loss_rec = restore_loss(out, hr, m.edge_weight)
    ts.opt_g.zero_grad(set_to_none=True)
    (loss_rec + m.adv_weight * loss_adv).backward()
    dist.average_gradients(ts.G, info)
    ts.opt_g.step()
    from passersby.train.loop import update_ema

    update_ema(ts.G_ema, ts.G, cfg.ema_decay)
    ts.step += 1
    return StepStats(float(loss_d.detach()), float(loss_adv.detach()), loss_rec.item())


def for_inference(ts: TrainState, device: torch.device) -> Enhancer:
    """The EMA enhancer in eval mode."""
    return copy.deepcopy(ts.G_ema).eval()


def upscaler(e: Enhancer):
    """(h, w, 3) uint8 -> (scale h, scale w, 3) uint8 with the eager enhancer (the reference)."""

    @torch.no_grad()
    def run(image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        y = e(x)[0].clamp(-1, 1)
        return ((y + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()

    return run


def held_out_faces(data: TrainingSet, n: int = METRIC_FACES) -> list[np.ndarray]:
    """Up to n native faces the enhancer never trained on (DATA/../held-out), as (S, S, 3) uint8."""
    from PIL import Image

    from passersby.data.manifest import DatasetError, load_manifest

    root = Path(data.root).parent / "held-out"
    if Path(data.root).name == "train" and (root / "manifest.json").is_file():
        try:
            m = load_manifest(root)
            faces = [np.asarray(Image.open(m.image_path(i)).convert("RGB")) for i in range(min(n, len(m)))]
            if all(f.shape == (data.resolution, data.resolution, 3) for f in faces):
                return faces
        except (DatasetError, OSError):
            pass
    return [im.permute(1, 2, 0).numpy() for im in data.images[:n].cpu()]


@torch.no_grad()
def write_samples(e: Enhancer, run, step: int, device: torch.device, data: TrainingSet) -> None:
    """Rows: Lanczos from the shrunk face, the enhancer from the same, the native face
    (held-out faces, the same at every step)."""
    from passersby.metrics.upscale import downscale, lanczos

    faces = held_out_faces(data, GRID_FACES)
    s = e.cfg.scale
    up = upscaler(e)
    small = [downscale(f, s) for f in faces]
    rows = [lanczos(x, s) for x in small] + [up(x) for x in small] + faces
    grid = grid_image(np.stack(rows), ncol=len(faces))
    save_png(run / "samples" / f"step-{step:08d}.png", grid)
    save_png(run / "samples" / "latest.png", grid)


def evaluate(e: Enhancer, data: TrainingSet, cfg: TrainConfig, device: torch.device) -> dict:
    """The verdict's scores on held-out faces (metrics/upscale.py); "score" = feature distance."""
    from passersby.metrics.upscale import restore_scores

    m = restore_scores(held_out_faces(data), upscaler(e), cfg.model.scale)
    return {**m, "score": m["feature_distance"]}
