"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment").

The same random transforms are applied to real and generated images before the discriminator
sees them, and gradients flow through them to the generator, so the discriminator cannot
memorise the ~1,000 training images without the generator learning to produce augmented
faces. Every random draw comes from an explicit `torch.Generator`, whose state is saved in
training checkpoints: a resumed run augments exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _rand(gen: torch.Generator, *shape: int, device: torch.device) -> torch.Tensor:
    # Draw on the CPU generator, then move: the draw sequence is device-independent.
    return torch.rand(*shape, generator=gen).to(device)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness, saturation and contrast per image. x: (N, 3, H, W) in [-1, 1]."""
    n, dev = x.shape[0], x.device
    x = x + (_rand(gen, n, 1, 1, 1, device=dev) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(gen, n, 1, 1, 1, device=dev) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (_rand(gen, n, 1, 1, 1, device=dev) + 0.5) + mean
    return x


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio*size pixels, zero-filling. x: (N, C, H, W)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Integer shifts -> an affine grid: exact pixel moves, differentiable w.r.t. x.
    tx = torch.randint(-sw, sw + 1, (n,), generator=gen).to(x.device, x.dtype)
    ty = torch.randint(-sh, sh + 1, (n,), generator=gen).to(x.device, x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * tx / w
    theta[:, 1, 2] = -2 * ty / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of side ratio*size per image. x: (N, C, H, W)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy + ch // 2).clamp(0, h) < ch) & ((ys - cy + ch // 2) >= 0)
    inside = inside & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_FNS = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); raises on unknown names."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in _FNS]
    if bad:
        raise ValueError(f"unknown augmentation {bad}: choose from {POLICIES}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Apply the policy's transforms in order.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> diff_augment(torch.zeros(2, 3, 32, 32), ("translation",), g).shape
        torch.Size([2, 3, 32, 32])
    """
    for name in policy:
        x = _FNS[name](x, gen)
    return x.contiguous()
