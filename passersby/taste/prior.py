"""The taste model's weight prior, computed once per generator and kept in the home directory.

`model.salience_prior` renders ~512 faces (~20 s on a 2-core CPU) to learn which directions of
z change the picture most; with it, 50 ratings teach the model what several hundred would
without (benchmarks/taste.py). The swipe app and the stream must fit the SAME model from the
same ratings, so both take the prior from here: `<home>/cache/taste-prior-<model hash>.npy`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from passersby.atomic import atomic_open
from passersby.taste.model import salience_prior


def prior_path(home: Path, model_hash: str) -> Path:
    return Path(home) / "cache" / f"taste-prior-{model_hash}.npy"


def cached_prior(home: Path, model_hash: str, render: Callable[[np.ndarray], np.ndarray], z_dim: int,
                 on_compute: Callable[[], None] | None = None) -> np.ndarray:
    """The prior for model `model_hash`: read from the cache, else computed and cached.

    Args:
        home: installation home.
        model_hash: the generator's hash (checkpoint.file_hash).
        render: z (m, z_dim) float32 -> (m, H, W, 3) uint8, used only when computing.
        z_dim: latent size.
        on_compute: called before a (slow) computation, e.g. to say so.

    Example:
        >>> prior = cached_prior(home, info.hash, make_renderer(g), 128)  # renders 512 faces on a cache miss  # doctest: +SKIP
    """
    path = prior_path(home, model_hash)
    try:
        prior = np.load(path, allow_pickle=False)
        if prior.shape == (z_dim, z_dim) and np.all(np.isfinite(prior)):
            return prior
    except (OSError, ValueError):
        pass  # missing or damaged: recompute (it is a cache)
    if on_compute is not None:
        on_compute()
    prior = salience_prior(render, z_dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.save(f, prior, allow_pickle=False)
    return prior
