"""Does the generator copy its training images? Nearest-neighbour distances in feature space.

A generator that has learnt the distribution puts its samples about as far from the training
images as the training images are from each other (leave-one-out). One that memorises puts
many samples much closer: the ratio of the two median distances drops well below 1 and some
samples fall under the closest training-pair distances ("suspected copies").

Distances are cosine distances (1 - cosine similarity) between feature vectors, e.g.
EfficientNet-Lite0 features from `passersby.metrics.features`. Deduplicate the training set
first: duplicate training images make the leave-one-out distances (and the copy threshold) 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from passersby.metrics._arrays import as_features

_CHUNK = 1024  # query rows per similarity block: bounds memory at _CHUNK x N_train floats


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (all-zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norms, 1e-12)


def nearest_neighbours(
    gen_feats: Any, train_feats: Any, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each query (generated) sample, its nearest training sample by cosine distance.

    Args:
        gen_feats: (N, D) query features, e.g. of generated images.
        train_feats: (M, D) reference features, e.g. of training images.
        exclude_self: leave-one-out mode for gen_feats = train_feats: query i may not match
            reference i (needs N == M).

    Returns:
        (indices, distances): (N,) int64 index into train_feats and (N,) float64 cosine
        distance 1 - cos(gen, train) in [0, 2].

    Example:
        >>> train = np.eye(3)
        >>> idx, dist = nearest_neighbours(np.array([[0.0, 2.0, 0.1]]), train)
        >>> int(idx[0]), bool(dist[0] < 0.01)
        (1, True)
    """
    query = _unit_rows(as_features(gen_feats, "gen_feats"))  # (N, D)
    ref = _unit_rows(as_features(train_feats, "train_feats"))  # (M, D)
    if query.shape[1] != ref.shape[1]:
        raise ValueError(f"feature dims differ: {query.shape[1]} vs {ref.shape[1]}")
    min_ref = 2 if exclude_self else 1
    if ref.shape[0] < min_ref:
        raise ValueError(f"need at least {min_ref} reference samples, got {ref.shape[0]}")
    if exclude_self and query.shape[0] != ref.shape[0]:
        raise ValueError("exclude_self needs the same number of query and reference samples")
    indices = np.empty(query.shape[0], dtype=np.int64)
    distances = np.empty(query.shape[0], dtype=np.float64)
    for start in range(0, query.shape[0], _CHUNK):
        sims = query[start : start + _CHUNK] @ ref.T  # (chunk, M)
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
        best = sims.argmax(axis=1)  # (chunk,)
        indices[start : start + len(best)] = best
        distances[start : start + len(best)] = 1.0 - sims[np.arange(len(best)), best]
    return indices, distances.clip(0.0, 2.0)


def memorisation_report(
    gen_feats: Any, train_feats: Any, *, copy_percentile: float = 1.0
) -> dict[str, Any]:
    """Summarise how close generated samples come to training samples.

    Args:
        gen_feats: (N, D) features of generated images.
        train_feats: (M, D) features of the (deduplicated) training images, M >= 2.
        copy_percentile: a generated sample counts as a suspected copy when its nearest
            training distance is at or below this percentile of the training set's own
            leave-one-out nearest distances.

    Returns:
        A dict (JSON-serialisable):
            n_generated, n_train: set sizes.
            median_gen_to_train: median nearest cosine distance, generated -> training.
            median_train_to_train: the same for training -> training, leave-one-out
                (the held-out reference).
            ratio: median_gen_to_train / median_train_to_train; about 1 is healthy,
                well below 1 means copying (inf if the reference median is 0).
            copy_threshold: the `copy_percentile` percentile of the leave-one-out distances.
            suspected_copy_fraction: fraction of generated samples at or below the threshold;
                a generator as novel as held-out real images scores about copy_percentile / 100
                (held-out portraits vs 500 training portraits: 0.007), a copier scores 1.
            suspected_copies: [[generated index, training index], ...] for those samples.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> train = rng.normal(size=(200, 32))
        >>> memorisation_report(train[:10], train)["suspected_copy_fraction"]
        1.0
    """
    gen_idx, gen_dist = nearest_neighbours(gen_feats, train_feats)  # (N,), (N,)
    if gen_dist.shape[0] == 0:
        raise ValueError("need at least 1 generated sample")
    _, loo_dist = nearest_neighbours(train_feats, train_feats, exclude_self=True)  # (M,)
    median_gen = float(np.median(gen_dist))
    median_train = float(np.median(loo_dist))
    threshold = float(np.percentile(loo_dist, copy_percentile))
    copies = np.flatnonzero(gen_dist <= threshold)  # (K,)
    return {
        "n_generated": int(gen_dist.shape[0]),
        "n_train": int(loo_dist.shape[0]),
        "median_gen_to_train": median_gen,
        "median_train_to_train": median_train,
        "ratio": median_gen / median_train if median_train > 0 else float("inf"),
        "copy_threshold": threshold,
        "suspected_copy_fraction": float(copies.size / max(gen_dist.shape[0], 1)),
        "suspected_copies": [[int(i), int(gen_idx[i])] for i in copies],
    }


def closest_pairs(gen_feats: Any, train_feats: Any, n: int = 5) -> list[dict[str, Any]]:
    """The `n` generated samples that come closest to a training sample, closest first.

    The pairs a person should look at to judge copying: if even these are merely similar
    faces (same pose, same palette) rather than the same painting, nothing is copied.

    Args:
        gen_feats: (N, D) features of generated images.
        train_feats: (M, D) features of the training images.
        n: how many pairs (fewer when N < n).

    Returns:
        [{"generated": i, "train": j, "distance": cosine distance}, ...], one per generated
        sample (each with its own nearest training sample), by increasing distance.

    Example:
        >>> train = np.eye(4)
        >>> gen = np.array([[1.0, 0.5, 0, 0], [0, 0, 1.0, 0.01]])
        >>> [p["train"] for p in closest_pairs(gen, train, n=2)]
        [2, 0]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    idx, dist = nearest_neighbours(gen_feats, train_feats)  # (N,), (N,)
    order = np.argsort(dist, kind="stable")[:n]  # (min(n, N),)
    return [{"generated": int(i), "train": int(idx[i]), "distance": float(dist[i])} for i in order]
