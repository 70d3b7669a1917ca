"""Pairs for the restorer: each real face and the generator's own reconstruction of it.

A face is inverted into the generator in two steps:
1. search: the latent among `pool` random ones whose picture is nearest (coverage.search_features);
2. Adam on that latent *and* the 16x16 feature map (the layout), `steps` times, on the
   perceptual distance (coverage.perceptual).

Freeing the 16x16 map lets the reconstruction follow the sitter's pose, face and palette closely,
while every block above 16 px still paints it: the reconstruction shows the real face as this
generator paints faces (its pastel skin, soft eyes, grid texture). That difference is what the
restorer learns to undo (model/restorer.py). Only the latent would give a different sitter.

Work is saved every `save_every` batches (atomic), so a killed run resumes where it stopped.

Example:
    >>> from passersby.config import ModelConfig
    >>> from passersby.model.generator import Generator
    >>> g = Generator(ModelConfig(resolution=64, ngf=4)).eval()
    >>> [k for k in layout(g, torch.zeros(1, 128))]
    [4, 8, 16]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from passersby.train.coverage import perceptual, real_features, search_features

LAYOUT = 16  # the feature map freed in inversion (px)


def layout(G: torch.nn.Module, z: torch.Tensor) -> dict[int, torch.Tensor]:
    """The generator's maps up to LAYOUT px: {4: (N, c4, 4, 4), 8: ..., 16: (N, c16, 16, 16)}."""
    # A conditional generator inverts between its classes (label -1): the pairs need no class.
    label = torch.full((len(z),), -1) if G.cfg.n_classes else None
    feats = {4: G.init(G.embed(z, label))}
    x = feats[4]
    for s in (8, LAYOUT):
        x = G.ups[str(s)](x)
        feats[s] = x
    return feats


def paint(G: torch.nn.Module, feats: dict[int, torch.Tensor]) -> torch.Tensor:
    """The blocks above LAYOUT px from `feats` (with the SLE inputs) -> (N, 3, R, R) in [-1, 1],
    without the generator's restorer (it is what is being trained)."""
    x = feats[LAYOUT]
    for s_str, block in G.ups.items():
        s = int(s_str)
        if s <= LAYOUT:
            continue
        x = block(x)
        for a, b in G.sle_pairs:
            if b == s:
                x = G.sles[f"{a}_{b}"](feats[a], x)
    return torch.tanh(G.to_rgb(x))


def invert(G: torch.nn.Module, real: torch.Tensor, z: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions (N, 3, R, R) in [-1, 1] and their distances (N,) of `real` faces
    (N, 3, R, R) in [-1, 1], starting from latents z (N, z_dim)."""
    z = z.clone().requires_grad_(True)
    with torch.no_grad():
        f16 = layout(G, z)[LAYOUT].clone()
    f16.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [z], "lr": 0.02}, {"params": [f16], "lr": 0.05}])
    for _ in range(steps):
        feats = {**layout(G, z), LAYOUT: f16}
        d = perceptual(paint(G, feats), real)
        reg = 1e-3 * (z.pow(2).mean(1) - 1).pow(2)  # keep |z|^2 near z_dim, the typical shell
        (d + reg).sum().backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        feats = {**layout(G, z), LAYOUT: f16}
        x = paint(G, feats)
        return x, perceptual(x, real)


def make_pairs(G: torch.nn.Module, images: torch.Tensor, out: Path, steps: int = 40, pool: int = 2048,
               batch: int = 16, save_every: int = 10, seed: int = 0,
               log: Callable[[str], None] = print) -> np.ndarray:
    """Invert every face of `images` (N, 3, R, R) uint8 into G; write out (.npz: recon, real,
    loss, done) every `save_every` batches and at the end; resume from `out` when it exists.

    Returns:
        recon (N, 3, R, R) uint8.
    """
    from passersby.checkpoint import atomic_write_bytes
    import io

    for p in G.parameters():
        p.requires_grad_(False)
    N = len(images)
    recon, loss, done = np.zeros((N, 3) + tuple(images.shape[2:]), np.uint8), np.zeros(N, np.float32), 0
    if out.exists():
        with np.load(out) as d:
            recon[:], loss[:], done = d["recon"], d["loss"], int(d["done"])
        log(f"resumed at face {done} of {N}")
    gen = torch.Generator().manual_seed(seed)
    zs = torch.randn(pool, G.cfg.z_dim, generator=gen)
    t0 = time.monotonic()
    with torch.no_grad():
        feats = torch.cat([search_features(paint(G, layout(G, zs[i:i + 64]))) for i in range(0, pool, 64)])
    near = torch.cdist(real_features(images, torch.device("cpu")), feats).argmin(1)  # (N,)
    log(f"searched {pool} latents in {time.monotonic() - t0:.0f} s")

    def save() -> None:
        buf = io.BytesIO()
        np.savez(buf, recon=recon, real=images.numpy(), loss=loss, done=np.array(done))
        atomic_write_bytes(out, buf.getvalue())

    for s in range(done, N, batch):
        real = images[s:s + batch].float().div(127.5).sub(1)
        x, d = invert(G, real, zs[near[s:s + batch]], steps)
        recon[s:s + batch] = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        loss[s:s + batch] = d.numpy()
        done = min(N, s + batch)
        log(f"{done}/{N} distance {float(d.mean()):.3f}")
        if (s // batch) % save_every == save_every - 1 or done == N:
            save()
    return recon
