"""Sampling faces from a generator: latents from a seed, images, grids.

Which face you get is a pure function of (model file, seed, index), so any face can be
re-rendered later from those three values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from passersby.checkpoint import ModelInfo
from passersby.model.load import DEFAULT_MODEL, default_model_path, load_generator  # noqa: F401 (callers import the first two from here)
from passersby.pictures import grid_image, save_png, to_uint8

def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """(n, z_dim) standard-normal latents; the same seed always gives the same latents.

    Latent i depends on (seed, i) only, not on n: torch's CPU normal sampler transforms blocks
    of 16 values and redraws a ragged last block, so rows are drawn 16-aligned, then cut.
    """
    padded = -(-z_dim // 16) * 16  # = z_dim for the usual sizes (128, 256): same draws as before
    z = torch.randn(n, padded, generator=torch.Generator().manual_seed(seed))
    return z[:, :z_dim].contiguous()


@torch.no_grad()
def render(g: torch.nn.Module, z: torch.Tensor, label: torch.Tensor | None = None, batch: int = 16) -> np.ndarray:
    """Generate images for latents z (n, z_dim): (n, R, R, 3) uint8.

    `sample` renders one latent at a time (batch=1): on CPUs with AVX-512, oneDNN picks other
    kernels for other batch sizes, and the rounding then moved a pixel level here and there,
    so face i of a grid of 5 differed from face i of a grid of 3. Fitting code passes a batch.
    """
    dev = next(g.parameters()).device
    out = []
    for i in range(0, len(z), batch):
        lab = None if label is None else label[i : i + batch].to(dev)
        out.append(to_uint8(g(z[i : i + batch].to(dev), lab)))
    return np.concatenate(out)


def sample(model: Path | None, n: int, seed: int, class_name: str | None = None) -> tuple[np.ndarray, ModelInfo]:
    """n faces from `model` (default: the shipped model) as (n, R, R, 3) uint8.

    Args:
        model: a model .safetensors; None for the shipped default.
        n: number of faces.
        seed: latent seed.
        class_name: for conditional models, the class to draw (default: alternate classes);
            for unconditional models with a stored latent direction ("feminine"/"masculine"),
            the side of that direction to draw from.

    Example:
        >>> faces, info = sample(None, 4, seed=1)  # the shipped model
        >>> faces.shape, faces.dtype
        ((4, 256, 256, 3), dtype('uint8'))
    """
    g, info = load_generator(model)
    z = latents(n, info.config.z_dim, seed)
    label = None
    if class_name is not None and not info.config.n_classes:
        from passersby.model.load import load_direction

        direction = load_direction(info.meta)
        if direction is None:
            raise ValueError(f"{info.path}: unconditional and has no latent direction; drop --label or run `passersby direction`")
        return render(g, direction.apply(z, class_name), batch=1), info
    if info.config.n_classes:
        if class_name is None:
            label = torch.arange(n) % info.config.n_classes
        elif class_name in info.config.class_names:
            label = torch.full((n,), info.config.class_names.index(class_name))
        else:
            raise ValueError(f"class {class_name!r} not in this model's classes {info.config.class_names}")
    return render(g, z, label, batch=1), info


def write_grid(images: np.ndarray, out: Path, ncol: int | None = None) -> None:
    save_png(out, grid_image(images, ncol=ncol))


def write_singles(images: np.ndarray, folder: Path, seed: int) -> list[Path]:
    """One PNG per face, named by seed and index so each can be re-rendered."""
    paths = []
    for i, im in enumerate(images):
        p = Path(folder) / f"seed{seed}-{i:04d}.png"
        save_png(p, im)
        paths.append(p)
    return paths
