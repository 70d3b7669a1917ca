"""Pictures as arrays and files: float images to uint8, mosaics, atomic PNG writes.

Used by sampling, the runtimes' reference path and training's sample grids alike (so no caller
on the show path needs the training code for them).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from passersby.checkpoint import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def grid_image(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*H, cols*W, 3) uint8 mosaic on a dark background."""
    n, h, w, _ = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 24, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return out


def save_png(path: Path, array: np.ndarray) -> None:
    """Atomically write an (H, W, 3) uint8 array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
