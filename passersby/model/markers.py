"""Reading a face into "markers": the sketch the painter (model/painter.py) paints a face from.

The feedback loop (stream/feedback.py) is two readings fed into each other: a fixed reader
turns the current picture into markers, the learned painter turns markers back into a picture.
What the painter invents between the lines (and gets wrong) is what keeps the faces changing.

Markers, (N, 4, H, W) in [-1, 1]:
- channel 0: lines, an XDoG-style sketch of the luma (difference of two Gaussian blurs, squashed
  by tanh): eyes, brows, nose, mouth, the outline of the face and hair;
- channels 1-3: the colour layout, the picture averaged over a `grid` x `grid` raster and
  smoothly upsampled (where the face, the hair, the background are; no detail).

`perturb` is the training-time noise on markers (erased lines, shifted colours): it teaches the
painter to make a face from the imperfect markers the loop produces.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # Rec. 601


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflect-padded; radius 3 sigma."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def read_markers(images: torch.Tensor, sigma: float = 1.2, k: float = 1.6, gain: float = 12.0,
                 grid: int = 16) -> torch.Tensor:
    """Markers of (N, 3, H, W) pictures in [-1, 1] -> (N, 4, H, W) in [-1, 1].

    Args:
        images: RGB in [-1, 1].
        sigma: the finer blur of the difference of Gaussians, in pixels at this size.
        k: ratio of the coarser blur to the finer.
        gain: steepness of the tanh that turns the difference into lines.
        grid: cells per side of the colour layout.

    Example:
        >>> read_markers(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 4, 64, 64])
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    x = images.float()
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    y = (x * w).sum(1, keepdim=True)  # (N, 1, H, W) in [-1, 1]
    dog = gaussian_blur(y, sigma) - gaussian_blur(y, sigma * k)
    lines = torch.tanh(gain * dog)  # dark lines negative, light ridges positive
    h, wd = x.shape[-2:]
    layout = F.adaptive_avg_pool2d(x, grid)  # (N, 3, grid, grid)
    layout = F.interpolate(layout, size=(h, wd), mode="bilinear", align_corners=False)
    return torch.cat([lines, layout], 1).clamp(-1, 1)


def smooth_field(n: int, size: int, strength: float, gen: torch.Generator, cells: int = 4) -> torch.Tensor:
    """A smooth random displacement field (N, H, W, 2) in normalised coordinates: `cells` x
    `cells` random offsets (std `strength`, as a fraction of the picture) bicubically upsampled."""
    coarse = torch.randn(n, 2, cells, cells, generator=gen) * strength * 2  # x2: grid spans [-1, 1]
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)


def warp(x: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Pictures (N, C, H, W) moved by a displacement field (N, H, W, 2), border pixels repeated."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device),
                            torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device), indexing="ij")
    base = torch.stack([xs, ys], -1).expand(n, h, w, 2)
    return F.grid_sample(x, base + field.to(x), mode="bilinear", padding_mode="border", align_corners=True)


def perturb(markers: torch.Tensor, gen: torch.Generator, drop: float = 0.15, colour_std: float = 0.1) -> torch.Tensor:
    """Training-time noise on markers (N, 4, H, W): a random share of the lines erased in blobs,
    and the colour layout shifted per picture; all draws from `gen`. (The loop's moves are
    taught by warping the real picture itself before reading it: painter.train_step.)"""
    n, _, h, w = markers.shape
    m = markers
    blobs = F.interpolate(torch.rand(n, 1, 8, 8, generator=gen), size=(h, w), mode="bilinear", align_corners=False)
    keep = (blobs > drop).to(m.dtype)  # erase lines where the blob field is low
    shift = torch.randn(n, 3, 1, 1, generator=gen) * colour_std
    return torch.cat([m[:, :1] * keep, (m[:, 1:] + shift.to(m)).clamp(-1, 1)], 1)
