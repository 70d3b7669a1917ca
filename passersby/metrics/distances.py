"""Distances between two sets of image features: KID (polynomial-kernel MMD) and Fréchet distance.

Both are computed on whatever features they are given. In passersby they are EfficientNet-Lite0
features (`passersby.metrics.features`), so the results are "KID/FD in EfficientNet-Lite0
feature space": the same formulas as KID and FID, but NOT comparable with published
Inception-v3 FID/KID numbers. Compare them only with each other (same extractor, same
preprocessing, similar sample sizes).

Everything here is numpy float64; inputs may be numpy arrays or torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from passersby.metrics._arrays import as_features


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel k(x, y) = (x . y / d + 1) ** 3, the kernel of KID.

    Args:
        x: (M, D) features.
        y: (N, D) features.

    Returns:
        (M, N) kernel matrix.

    Example:
        >>> polynomial_kernel(np.zeros((2, 4)), np.ones((3, 4))).shape
        (2, 3)
    """
    dim = x.shape[1]
    return (x @ y.T / dim + 1.0) ** 3  # (M, N)


def _mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices (M, M), (N, N), (M, N): diagonals left out."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of the squared MMD between the laws of `x` and `y` (cubic kernel).

    The within-set sums leave out the diagonal (k(x_i, x_i)), so the estimate has expectation
    exactly MMD^2 and is often slightly negative when both sets come from one distribution.

    Args:
        x: (M, D) features, M >= 2.
        y: (N, D) features, N >= 2.

    Returns:
        The estimate, a float (may be negative).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> abs(mmd2_unbiased(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)))) < 0.05
        True
    """
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"need at least 2 samples per set, got {x.shape[0]} and {y.shape[0]}")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return _mmd2_from_kernels(k_xx, k_yy, k_xy)


# Up to this many kernel entries (200 MB of float64), kid() computes the full kernel matrices
# once and reads every subset out of them (e.g. 1000 vs 1000 samples: ~50x faster than 50
# subsets from scratch); beyond it, each subset's kernels are computed on their own.
_MAX_SHARED_KERNEL_ENTRIES = 25_000_000


def kid(
    feats_a: Any,
    feats_b: Any,
    *,
    rng: np.random.Generator,
    n_subsets: int = 50,
    subset_size: int = 1000,
) -> tuple[float, float]:
    """Kernel Inception Distance computed on the given features (here: EfficientNet-Lite0 KID).

    Averages the unbiased cubic-kernel MMD^2 over `n_subsets` random subsets (drawn without
    replacement within a subset) of `subset_size` samples from each set, as in Binkowski et al.
    2018 and torch-fidelity / clean-fid.

    Args:
        feats_a: (Na, D) features, e.g. of generated images.
        feats_b: (Nb, D) features, e.g. of training images.
        rng: source of the subset draws.
        n_subsets: number of subsets to average over.
        subset_size: samples per subset and set; capped at min(Na, Nb).

    Returns:
        (mean, std): mean and standard deviation (ddof=0) of the subset estimates. The std
        describes subset-to-subset spread, not the standard error of the mean.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 1.0
        >>> kid(a, b, rng=rng, n_subsets=10, subset_size=100)[0] > 0.1
        True
    """
    a = as_features(feats_a, "feats_a")  # (Na, D)
    b = as_features(feats_b, "feats_b")  # (Nb, D)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError(f"need at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    n_a, n_b = a.shape[0], b.shape[0]
    if n_a * n_a + n_b * n_b + n_a * n_b <= _MAX_SHARED_KERNEL_ENTRIES:
        k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)

        def subset_mmd2(ia: np.ndarray, ib: np.ndarray) -> float:
            k_xx, k_yy = k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)]  # (size, size) each
            return _mmd2_from_kernels(k_xx, k_yy, k_ab[np.ix_(ia, ib)])

    else:

        def subset_mmd2(ia: np.ndarray, ib: np.ndarray) -> float:
            return mmd2_unbiased(a[ia], b[ib])

    estimates = np.empty(n_subsets)
    for i in range(n_subsets):
        ia = rng.choice(n_a, size, replace=False)  # (size,)
        ib = rng.choice(n_b, size, replace=False)  # (size,)
        estimates[i] = subset_mmd2(ia, ib)
    return float(estimates.mean()), float(estimates.std())


def _trace_sqrt_from_covariances(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) = tr((R S_b R)^(1/2)), R = S_a^(1/2), via symmetric eigendecompositions.

    Costs O(D^3); used when both sets have more samples than dimensions.
    """
    eigvals, eigvecs = np.linalg.eigh((cov_a + cov_a.T) / 2.0)  # (D,), (D, D)
    root_a = (eigvecs * np.sqrt(eigvals.clip(min=0.0))) @ eigvecs.T  # (D, D), S_a^(1/2)
    middle = root_a @ cov_b @ root_a  # (D, D), symmetric PSD up to rounding
    return float(np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2.0).clip(min=0.0)).sum())


def _trace_sqrt_from_samples(centred_a: np.ndarray, centred_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) from centred samples, without forming D x D matrices.

    With S_a = A'A / (Na - 1) and S_b = B'B / (Nb - 1), the non-zero eigenvalues of S_a S_b
    are those of the symmetric PSD product C C' / ((Na - 1)(Nb - 1)) with C = A B' (Na x Nb)
    (or of C'C, whichever is smaller). Costs O(Na Nb D + min(Na, Nb)^3); used when a set has
    fewer samples than dimensions.
    """
    cross = centred_a @ centred_b.T  # (Na, Nb)
    gram = cross @ cross.T if cross.shape[0] <= cross.shape[1] else cross.T @ cross  # (n, n)
    eigvals = np.linalg.eigvalsh((gram + gram.T) / 2.0).clip(min=0.0)  # (n,)
    scale = (centred_a.shape[0] - 1) * (centred_b.shape[0] - 1)
    return float(np.sqrt(eigvals).sum() / np.sqrt(scale))


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (here: EfficientNet-Lite0 FD).

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)), with sample covariances
    (ddof=1). Instead of scipy's general sqrtm of the non-symmetric S_a S_b, the trace term
    comes from the eigenvalues of a symmetric PSD matrix with the same spectrum (negative
    rounding clipped to 0): R S_b R with R = S_a^(1/2) when both sets have more samples than
    dimensions, otherwise the much smaller Gram matrix of the (Na x Nb) cross-product of the
    centred samples. Both are exact, and stable for the singular covariances one gets when
    N < D. Takes about a second for D = 1280 on a 2-core CPU.

    Args:
        feats_a: (Na, D) features, Na >= 2.
        feats_b: (Nb, D) features, Nb >= 2.

    Returns:
        The distance, a float >= 0 (tiny negative rounding is clipped to 0).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(100, 4))
        >>> round(frechet_distance(x, x + 2.0), 6)  # shifting every dimension by 2: 4 * 2**2
        16.0
    """
    a = as_features(feats_a, "feats_a")  # (Na, D)
    b = as_features(feats_b, "feats_b")  # (Nb, D)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"need at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)  # (D,), (D,)
    centred_a, centred_b = a - mean_a, b - mean_b  # (Na, D), (Nb, D)
    trace_a = np.sum(centred_a**2) / (a.shape[0] - 1)  # tr(S_a)
    trace_b = np.sum(centred_b**2) / (b.shape[0] - 1)  # tr(S_b)
    if min(a.shape[0], b.shape[0]) > a.shape[1]:
        cov_a = centred_a.T @ centred_a / (a.shape[0] - 1)  # (D, D)
        cov_b = centred_b.T @ centred_b / (b.shape[0] - 1)  # (D, D)
        trace_sqrt = _trace_sqrt_from_covariances(cov_a, cov_b)
    else:
        trace_sqrt = _trace_sqrt_from_samples(centred_a, centred_b)
    diff = mean_a - mean_b  # (D,)
    fd = diff @ diff + trace_a + trace_b - 2.0 * trace_sqrt
    return float(max(fd, 0.0))
