"""What the ledger tests share: 128-d Gaussian proposals, a channel's RNG stream, distances."""

from __future__ import annotations

import numpy as np

from passersby.stream.ledger import channel_seed

D = 128


def gaussian(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D, dtype=np.float32)


def stream(seed: int, channel: str, n: int) -> np.ndarray:
    """The first n anchors a channel proposes: its RNG stream, straight from the seed."""
    rng = np.random.Generator(np.random.PCG64(channel_seed(seed, channel)))
    return np.stack([gaussian(rng) for _ in range(n)]) if n else np.empty((0, D), np.float32)


def min_pairwise_distance(z: np.ndarray) -> float:
    z = z.astype(np.float64)
    sq = (z * z).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * z @ z.T
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(max(d2.min(), 0.0)))


def at_distance(z: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(D)
    return (z + e * (r / np.linalg.norm(e))).astype(np.float32)
