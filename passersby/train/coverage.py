"""Coverage term (after IMLE, Li & Malik 2018): every real face pulls its nearest generated face.

Why: the adversarial loss rewards typical faces; nothing punishes a generator for leaving part
of the paintings uncovered, and the shipped model's recall was 0.05 (a real face is rarely near
any generated one). Implicit maximum likelihood estimation turns that around: for each real
face find the latent whose picture is closest, and pull that picture towards the real one.
Since the pull goes to the *nearest* sample, no latent is asked to be two faces, and faces that
no sample comes near get a latent of their own.

How, on a CPU: the search is costly, so it runs every `every` steps on a pool of latents
(`pool` pictures of the current generator, no gradients), in a cheap space (EfficientNet-Lite0
taps 10 and 15 at 128 px, mean-pooled, each unit-normalised: (N, 432)); each real face keeps
its matched latent until the next search (IMLE's "stale" matches). Each step then renders the
matched latents of `batch` real faces with gradients and adds a perceptual distance
(unit-normalised EfficientNet taps 2, 4, 10 at 128 px, LPIPS-like, plus L1 of 32 px pictures).

State: the matched latents (N_real, z_dim) and the step of the last search live in
`ts.extra` ("cov_z", "cov_step"), so a resumed run continues with the same matches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from passersby.metrics.features import load_model, trunk_maps

SIDE = 128  # both spaces see faces at 128 px: ~0.45 of the cost at 192
SEARCH_TAPS = (10, 15)
LOSS_TAPS = (2, 4, 10)


def _resize(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def search_features(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1] -> (N, 432): pooled taps 10 and 15, each unit length."""
    maps = trunk_maps(load_model(x.device), _resize(x.float()).contiguous(memory_format=torch.channels_last),
                      SEARCH_TAPS)
    return torch.cat([F.normalize(m.float().mean(dim=(2, 3)), dim=1) for m in maps], dim=1)


def perceptual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair distance (N,) of two picture batches (N, 3, R, R): unit-normalised channels of
    EfficientNet taps 2, 4, 10 at 128 px (squared, mean over space, summed over taps) + L1 at 32 px."""
    net = load_model(a.device)
    both = _resize(torch.cat([a, b])).contiguous(memory_format=torch.channels_last)
    n = a.shape[0]
    d = torch.zeros(n, device=a.device)
    for m in trunk_maps(net, both, LOSS_TAPS):
        u = F.normalize(m.float(), dim=1)
        d = d + (u[:n] - u[n:]).pow(2).sum(dim=1).mean(dim=(1, 2))
    small = F.interpolate(torch.cat([a, b]).float(), size=(32, 32), mode="area")
    return d + (small[:n] - small[n:]).abs().mean(dim=(1, 2, 3))


@torch.no_grad()
def match(G: torch.nn.Module, real_feats: torch.Tensor, pool: int, z_dim: int, gen: torch.Generator,
          device: torch.device, batch: int = 32) -> torch.Tensor:
    """For each real face, the latent of `pool` fresh ones whose picture is nearest: (N_real, z_dim).

    Args:
        G: the generator being trained (its current weights; switched to eval for the search, so
            BatchNorm uses its running statistics and the batch does not shape the pictures).
        real_feats: search_features of the real faces, (N_real, D).
        pool: how many latents to draw and render.
        gen: the run's latent stream (the draws are part of the resumable state).
    """
    z = torch.randn(pool, z_dim, generator=gen)
    was_training = G.training
    G.eval()
    try:
        feats = torch.cat([search_features(G(z[i:i + batch].to(device)).float())
                           for i in range(0, pool, batch)])
    finally:
        G.train(was_training)
    nearest = torch.cdist(real_feats.float(), feats.float()).argmin(dim=1)  # (N_real,)
    return z[nearest.cpu()].clone()


def real_features(images: torch.Tensor, device: torch.device, batch: int = 64) -> torch.Tensor:
    """search_features of a uint8 training set (N, 3, R, R), in batches: (N, 432) on `device`."""
    out = [search_features(images[i:i + batch].to(device).float().div(127.5).sub(1.0))
           for i in range(0, len(images), batch)]
    return torch.cat(out)


def coverage_loss(ts, data, cfg, device: torch.device, real_feats: torch.Tensor) -> torch.Tensor:
    """The step's coverage term (scalar), refreshing the matches when they are `cfg.cov_every` old.

    Args:
        ts: the TrainState (G, the latent and data streams, `extra` with the matches).
        data: the TrainingSet (uint8 images the matches index).
        cfg: TrainConfig (cov_pool, cov_every, cov_batch).
        real_feats: real_features(data.images) for this run.
    """
    last = int(ts.extra["cov_step"].item()) if "cov_step" in ts.extra else -1
    if last < 0 or ts.step - last >= cfg.cov_every:
        ts.extra["cov_z"] = match(ts.G, real_feats, cfg.cov_pool, cfg.model.z_dim, ts.rngs.z, device)
        ts.extra["cov_step"] = torch.tensor(ts.step)
    idx = torch.randint(0, len(data.images), (cfg.cov_batch,), generator=ts.rngs.data)
    real = data.images[idx.to(data.images.device)].to(device).float().div(127.5).sub(1.0)
    fake = ts.G(ts.extra["cov_z"][idx].to(device))
    return perceptual(fake.float(), real).mean()
