"""Turn feature matrices given as torch tensors or array-likes into float64 numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_features(feats: Any, name: str = "features") -> np.ndarray:
    """Return `feats` as a C-contiguous (N, D) float64 numpy array.

    Args:
        feats: (N, D) numpy array, torch tensor (any device, any float dtype) or nested list.
        name: what to call it in error messages.

    Example:
        >>> as_features([[1, 2], [3, 4]]).dtype
        dtype('float64')
    """
    if hasattr(feats, "detach"):  # torch.Tensor, without importing torch
        feats = feats.detach().cpu().double().numpy()
    arr = np.ascontiguousarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr
