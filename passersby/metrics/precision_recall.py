"""Precision and recall of a generator by k-NN manifolds (Kynkäänniemi et al. 2019).

Each set of features stands for its manifold: the union of balls around its samples, each ball
reaching the sample's k-th nearest neighbour in the same set (k = 3, the paper's choice).
Precision = share of generated samples inside the real manifold (are the fakes realistic?);
recall = share of real samples inside the generated manifold (is the real variety covered?).
A generator that collapses onto a few typical faces keeps a high precision and loses recall.

Distances are Euclidean, as in the paper, here on EfficientNet-Lite0 features
(`passersby.metrics.features`). Both figures depend on the set sizes (fewer samples, wider
balls, higher values): compare runs with similar sizes, and read them beside the reference of
two halves of the real set (`real_halves`), which shows what "as good as real" scores at
that size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from passersby.metrics._arrays import as_features

DEFAULT_K = 3
_CHUNK = 1024  # query rows per distance block: bounds memory at _CHUNK x N floats


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Na, Nb) squared Euclidean distances, clipped at 0 against rounding."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)  # (Na, Nb)
    return np.maximum(sq, 0.0)


def knn_radii(feats: Any, k: int = DEFAULT_K) -> np.ndarray:
    """Distance from each sample to its k-th nearest other sample of the same set.

    Args:
        feats: (N, D) features, N > k.
        k: which neighbour (1 = the nearest other sample).

    Returns:
        (N,) float64 radii.

    Example:
        >>> knn_radii(np.array([[0.0], [1.0], [3.0]]), k=1).tolist()
        [1.0, 1.0, 2.0]
    """
    x = as_features(feats, "feats")  # (N, D)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"need 1 <= k < number of samples, got k={k} and {x.shape[0]} samples")
    radii = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _CHUNK):
        sq = _squared_distances(x[start : start + _CHUNK], x)  # (chunk, N)
        rows = np.arange(sq.shape[0])
        sq[rows, start + rows] = np.inf  # a sample is not its own neighbour
        radii[start : start + sq.shape[0]] = np.sqrt(np.partition(sq, k - 1, axis=1)[:, k - 1])
    return radii


def coverage(query: Any, ref: Any, ref_radii: np.ndarray) -> np.ndarray:
    """Which query samples lie inside the manifold of `ref` (inside any of its balls).

    Args:
        query: (N, D) features.
        ref: (M, D) features.
        ref_radii: (M,) ball radius of each ref sample (`knn_radii(ref, k)`).

    Returns:
        (N,) bool.

    Example:
        >>> ref = np.array([[0.0], [1.0]])
        >>> coverage(np.array([[0.5], [5.0]]), ref, np.array([1.0, 1.0])).tolist()
        [True, False]
    """
    q = as_features(query, "query")  # (N, D)
    r = as_features(ref, "ref")  # (M, D)
    radii = np.asarray(ref_radii, dtype=np.float64).reshape(-1)  # (M,)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"feature dims differ: {q.shape[1]} vs {r.shape[1]}")
    if radii.shape[0] != r.shape[0]:
        raise ValueError(f"{r.shape[0]} reference samples but {radii.shape[0]} radii")
    inside = np.empty(q.shape[0], dtype=bool)
    for start in range(0, q.shape[0], _CHUNK):
        sq = _squared_distances(q[start : start + _CHUNK], r)  # (chunk, M)
        inside[start : start + sq.shape[0]] = (sq <= (radii**2)[None, :]).any(axis=1)
    return inside


def precision_recall(real_feats: Any, fake_feats: Any, k: int = DEFAULT_K) -> dict[str, Any]:
    """k-NN precision and recall of generated samples against real ones.

    Args:
        real_feats: (M, D) features of real images, M > k.
        fake_feats: (N, D) features of generated images, N > k.
        k: neighbourhood size of the manifolds (the paper: 3).

    Returns:
        {"precision", "recall", "k", "n_real", "n_fake"} (JSON-serialisable).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pr = precision_recall(rng.normal(size=(500, 8)), rng.normal(size=(500, 8)))
        >>> pr["precision"] > 0.8 and pr["recall"] > 0.8
        True
    """
    real = as_features(real_feats, "real_feats")  # (M, D)
    fake = as_features(fake_feats, "fake_feats")  # (N, D)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: {real.shape[1]} vs {fake.shape[1]}")
    precision = coverage(fake, real, knn_radii(real, k)).mean()  # fakes inside the real manifold
    recall = coverage(real, fake, knn_radii(fake, k)).mean()  # reals inside the fake manifold
    return {"precision": float(precision), "recall": float(recall), "k": k,
            "n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}


def real_halves(
    real_feats: Any, rng: np.random.Generator, k: int = DEFAULT_K, fake_feats: Any = None
) -> dict[str, Any]:
    """Precision and recall of one random half of the real set against the other half.

    What a generator as good as the real data would score at that size: the reference to read
    a generator's figures against. With `fake_feats`, also the generator's own figures at the
    same sizes (a random subset of the fakes, as large as half a, against the same half b), so
    the two can be compared like for like.

    Args:
        real_feats: (M, D) features of real images, M >= 2 (k + 1).
        rng: draws the split (and the subset of fakes).
        k: as in `precision_recall`.
        fake_feats: optional (N, D) features of generated images, N >= M // 2.

    Returns:
        {"real_vs_real": precision_recall(b, a), and with fakes
        "fake_vs_real_half": precision_recall(b, fake subset)}; half a has M // 2 samples.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> real_halves(rng.normal(size=(400, 8)), rng)["real_vs_real"]["n_real"]
        200
    """
    real = as_features(real_feats, "real_feats")  # (M, D)
    order = rng.permutation(real.shape[0])  # (M,)
    half = real.shape[0] // 2
    a, b = real[order[:half]], real[order[half:]]  # (M//2, D), (M - M//2, D)
    out = {"real_vs_real": precision_recall(b, a, k)}
    if fake_feats is not None:
        fake = as_features(fake_feats, "fake_feats")  # (N, D)
        if fake.shape[0] < half:
            raise ValueError(f"need at least {half} generated samples, got {fake.shape[0]}")
        subset = fake[rng.choice(fake.shape[0], half, replace=False)]  # (M//2, D)
        out["fake_vs_real_half"] = precision_recall(b, subset, k)
    return out
