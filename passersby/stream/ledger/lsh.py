"""Cross-polytope LSH with multi-probe: the ledger's near-duplicate index (pure functions).

See the package docstring (stream/ledger/__init__.py) for why this family, these parameters, and the
measured recall and cost. Nothing here touches SQLite: keys in, keys out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBE_DEPTH = 8  # alternatives per hash from which the multi-probe sequence is built


@dataclass(frozen=True)
class LshParams:
    """Shape of the near-duplicate index (fixed when a ledger is created).

    Args:
        tables: independent hash tables, one indexed key column each.
        hashes: cross-polytope hashes concatenated into one table's key.
        proj_dim: rows of the random rotation each hash looks at (2 * proj_dim buckets).
        probes: buckets probed per table and query (multi-probe), the query's own included.

    Example:
        >>> LshParams().buckets_per_table
        254803968
    """

    tables: int = 8
    hashes: int = 5
    proj_dim: int = 24
    probes: int = 256

    def __post_init__(self) -> None:
        for name in ("tables", "hashes", "proj_dim", "probes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LshParams.{name} must be a positive integer, got {v!r}")
        if self.buckets_per_table >= 2**62:  # keys are SQLite INTEGERs (signed 64-bit)
            raise ValueError(f"LshParams: (2 * proj_dim) ** hashes must be < 2**62, got {self.buckets_per_table}")

    @property
    def buckets_per_table(self) -> int:
        return (2 * self.proj_dim) ** self.hashes


def _haar_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random rotation: Gram-Schmidt of a Gaussian matrix (QR with positive diagonal), Haar.

    einsum rather than LAPACK/BLAS here and in `projections`: multithreaded OpenBLAS on such
    small matrices stalls for seconds when the cores are busy (measured: 4.6 s for 8 QRs).
    """
    a = rng.standard_normal((dim, dim))
    for i in range(dim):
        v = a[i]
        for _ in range(2):  # orthogonalising twice is orthogonal to rounding error
            v = v - np.einsum("ij,i->j", a[:i], np.einsum("ij,j->i", a[:i], v))
        a[i] = v / math.sqrt(np.einsum("i,i->", v, v))
    return a


def make_rotations(params: LshParams, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Random projections, float32 (tables, hashes, min(proj_dim, dim), dim).

    A table's hashes take consecutive blocks of rows of one random rotation (a fresh one when
    it runs out), so for N(0, I) anchors they are independent and every bucket is equally
    likely; independent rotations per hash would correlate them and crowd some buckets
    (measured: 4.5x the candidates). Stored in the ledger as bytes, not re-derived from a seed:
    RNG streams may differ across numpy versions, and a recorded anchor's bucket keys must
    never change.
    """
    p = min(params.proj_dim, dim)
    out = np.empty((params.tables, params.hashes, p, dim), np.float32)
    for t in range(params.tables):
        rows = np.empty((0, dim))
        for h in range(params.hashes):
            if len(rows) < p:
                rows = _haar_rotation(rng, dim)
            out[t, h], rows = rows[:p], rows[p:]
    return out


def projections(rot: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(n, dim) -> signed coordinates (n, tables, hashes, 2p): bucket j < p is +e_j, else -e_(j-p)."""
    tables, hashes, p, dim = rot.shape
    z = np.asarray(z, np.float64).reshape(-1, dim)
    y = np.einsum("nd,kd->nk", z, rot.reshape(-1, dim).astype(np.float64, copy=False))
    y = y.reshape(-1, tables, hashes, p)
    return np.concatenate([y, -y], axis=-1)


def combine(buckets: np.ndarray, base: int) -> np.ndarray:
    """Per-hash buckets (..., hashes) -> one integer key per table (...)."""
    weights = base ** np.arange(buckets.shape[-1], dtype=np.int64)
    return (buckets.astype(np.int64) * weights).sum(-1)


def bucket_keys(rot: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Bucket key of each anchor in each table: (n, dim) -> int64 (n, tables).

    Example:
        >>> rot = make_rotations(LshParams(tables=2, hashes=2, proj_dim=4), 8, np.random.default_rng(0))
        >>> bucket_keys(rot, np.ones((3, 8))).shape
        (3, 2)
    """
    v = projections(rot, z)
    return combine(np.argmax(v, axis=-1), v.shape[-1])


def probe_keys(rot: np.ndarray, z: np.ndarray, probes: int) -> np.ndarray:
    """Keys to look up for one query z: int64 (tables, <= probes + 1), its own bucket first
    (and again among the `probes` best).

    Multi-probe: a nearby point most likely differs from z in hashes whose runner-up
    coordinates came close to the winner, so each bucket combination is scored by the sum of
    squared gaps (winner - chosen coordinate) over the table's hashes, and the `probes` lowest
    scores are looked up. Built hash by hash keeping the best `probes` partial combinations,
    which is exact: a combination whose prefix is not among the best `probes` prefixes has at
    least `probes` cheaper completions.
    """
    v = projections(rot, z)[0]  # (tables, hashes, 2p)
    tables, hashes, width = v.shape
    depth = min(PROBE_DEPTH, width)
    order = np.argsort(-v, axis=-1, kind="stable")[..., :depth]  # (tables, hashes, depth)
    top = np.take_along_axis(v, order, axis=-1)
    gap = (top[..., :1] - top) ** 2
    cost, keys = gap[:, 0], order[:, 0].astype(np.int64)
    for h in range(1, hashes):
        cost = (cost[:, :, None] + gap[:, h, None, :]).reshape(tables, -1)
        keys = (keys[:, :, None] + order[:, h, None, :].astype(np.int64) * width**h).reshape(tables, -1)
        if cost.shape[1] > probes:
            best = np.argpartition(cost, probes - 1, axis=1)[:, :probes]
            cost, keys = np.take_along_axis(cost, best, 1), np.take_along_axis(keys, best, 1)
    if hashes == 1 and cost.shape[1] > probes:
        keys = np.take_along_axis(keys, np.argpartition(cost, probes - 1, axis=1)[:, :probes], 1)
    own = combine(np.argmax(v, axis=-1), width)[:, None]  # exact bucket, whatever the ties
    return np.concatenate([own, keys], axis=1)
