"""What the rated faces really look like: their EfficientNet-Lite0 features, kept in a cache.

The picture taste (picture.py) scores *candidates* through the feature head's prediction
(head.py: z -> features, no render, R² ~0.5), but every *rated* face was rendered anyway, to be
shown to the curator: its true features cost one EfficientNet pass (~50 ms on one core) and teach
the model what the curator actually saw, not the head's blurred guess of it. The swipe app embeds
each face when it renders it; the stream reads the same cache and renders (once) what is missing,
e.g. the ratings of a profile from before this cache, or of an imported one.

    <home>/cache/taste-features-<model hash>.sqlite      key: blake2b of the rated z (float32)
                                                         value: (1280,) float32, L2-normalised

It is a cache: derived data, recomputed when missing; a damaged file is set aside (renamed
`.damaged`) and started afresh, never trusted and never a crash. For a conditional model the
stream renders missing faces with its first class (as the prior and the head do), the app with
the class of the screen being rated.

Example:
    >>> with FeatureCache(feature_cache_path(home, info.hash)) as cache:  # doctest: +SKIP
    ...     f = true_features(z, cache, renderer)  # (n, 1280); renders only what is not cached
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from passersby.sqlite_open import open_sqlite

if TYPE_CHECKING:
    from passersby.metrics.features import FeatureExtractor

log = logging.getLogger(__name__)

FORMAT = "passersby-taste-features/1"
FEATURE_DIM = 1280  # metrics/features.py: EfficientNet-Lite0's pooled channels
EMBED_BATCH = 16


def feature_cache_path(home: Path, model_hash: str) -> Path:
    """Where the true features of model `model_hash`'s rated faces are cached."""
    return Path(home) / "cache" / f"taste-features-{model_hash}.sqlite"


def embed(images: np.ndarray, extractor: "FeatureExtractor | None" = None) -> np.ndarray:
    """(m, H, W, 3) uint8 renders -> (m, 1280) float32 EfficientNet-Lite0 features, L2-normalised.

    extractor: a metrics.features.FeatureExtractor to reuse (None: a new one; loading it is most
    of the cost of embedding one face).

    Example:
        >>> embed(np.zeros((2, 64, 64, 3), np.uint8)).shape
        (2, 1280)
    """
    import torch

    from passersby.metrics.features import FeatureExtractor

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"embed takes (m, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (m, 3, H, W)
    fx = extractor if extractor is not None else FeatureExtractor(batch_size=EMBED_BATCH)
    f = fx.extract(x).numpy().astype(np.float64)  # (m, 1280)
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def z_key(z: np.ndarray) -> bytes:
    """The cache key of one latent: blake2b-16 of it as the store keeps it (little-endian float32)."""
    return hashlib.blake2b(np.asarray(z, "<f4").tobytes(), digest_size=16).digest()


class FeatureCache:
    """True features of rated faces, by latent; thread-safe (one connection under a lock).

    Any feature length is kept (a vector per latent, float32); `true_features` checks it.

    Args:
        path: the cache file (feature_cache_path); its folder is created. None: in memory only
            (the swipe app without a home cache, tests).
    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, FeatureCache(Path(d) / "f.sqlite") as cache:
        ...     cache.put(np.zeros((1, 4)), np.ones((1, 1280)))
        ...     [f is None for f in cache.get(np.zeros((2, 4)) + [[0], [1]])]
        [False, True]
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[bytes, bytes] | None = None
        if path is None:
            self.path, self._memory = None, {}
            return
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = self._open()
        except sqlite3.Error as e:  # damaged or foreign: a cache is set aside and rebuilt, never trusted
            log.warning("%s: unusable taste feature cache (%s); starting a new one", self.path, e)
            try:
                if self.path.is_file():
                    os.replace(self.path, self.path.with_name(self.path.name + ".damaged"))
                for side in ("-wal", "-shm"):
                    Path(str(self.path) + side).unlink(missing_ok=True)
                self._con = self._open()
            except (OSError, sqlite3.Error) as again:  # e.g. a full disk: remember in memory only
                log.warning("%s: cannot keep a taste feature cache (%s); keeping features in memory", self.path,
                            again)
                self._memory = {}
        except OSError as e:
            log.warning("%s: cannot keep a taste feature cache (%s); keeping features in memory", self.path, e)
            self._memory = {}

    def _open(self) -> sqlite3.Connection:
        # synchronous NORMAL: a cache entry lost in a power cut is only computed again.
        con = open_sqlite(self.path, threads=True, synchronous="NORMAL")
        try:
            con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)")
            con.execute("CREATE TABLE IF NOT EXISTS features (key BLOB PRIMARY KEY, f BLOB NOT NULL)")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
            fmt = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
            if fmt != FORMAT:
                raise sqlite3.DatabaseError(f"format {fmt!r}, not {FORMAT!r}")
        except BaseException:
            con.close()
            raise
        return con

    def get(self, z: np.ndarray) -> list[np.ndarray | None]:
        """(n, d) latents -> n cached (1280,) float32 features, None where not cached (or damaged)."""
        keys = [z_key(v) for v in np.asarray(z)]
        with self._lock:
            if self._memory is not None:
                rows = {k: self._memory[k] for k in keys if k in self._memory}
            else:
                rows = {}
                for s in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                    part = keys[s : s + 500]
                    rows.update(self._con.execute(
                        f"SELECT key, f FROM features WHERE key IN ({','.join('?' * len(part))})", part))
        out: list[np.ndarray | None] = []
        for k in keys:
            blob = rows.get(k)
            f = None if blob is None or not blob or len(blob) % 4 else np.frombuffer(blob, "<f4").copy()
            out.append(f if f is not None and np.isfinite(f).all() else None)  # a damaged entry: computed again
        return out

    def put(self, z: np.ndarray, features: np.ndarray) -> None:
        """Cache (n, F) features of (n, d) latents (replacing what was there)."""
        z, features = np.asarray(z), np.asarray(features, "<f4")
        if features.ndim != 2 or len(features) != len(z):
            raise ValueError(f"features must be ({len(z)}, F), got {features.shape}")
        rows = [(z_key(v), f.tobytes()) for v, f in zip(z, features)]
        with self._lock:
            if self._memory is not None:
                self._memory.update(rows)
                return
            try:
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    self._con.executemany("INSERT OR REPLACE INTO features VALUES (?, ?)", rows)
                    self._con.execute("COMMIT")
                except BaseException:
                    if self._con.in_transaction:
                        self._con.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:  # a full disk, a locked file: a cache never stops a face
                log.warning("%s: cannot write the taste feature cache (%s); keeping features in memory",
                            self.path, e)
                self._con.close()
                self._memory = dict(rows)

    def __len__(self) -> int:
        with self._lock:
            if self._memory is not None:
                return len(self._memory)
            return int(self._con.execute("SELECT count(*) FROM features").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._memory is None:
                self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def true_features(z: np.ndarray, cache: FeatureCache | None,
                  render: Callable[[np.ndarray], np.ndarray] | None, batch: int = 16,
                  on_render: Callable[[int], None] | None = None,
                  embed: Callable[[np.ndarray], np.ndarray] = embed, dim: int = FEATURE_DIM) -> np.ndarray:
    """(n, d) rated latents -> (n, 1280) their renders' true features: cached, else rendered, embedded, cached.

    Args:
        z: latents of the rated faces.
        cache: where features are kept (None: compute all, keep nothing).
        render: z (m, d) float32 -> (m, H, W, 3) uint8; None: only what is cached (ValueError otherwise).
        batch: faces per render call.
        on_render: told how many faces must be rendered, before it happens (to log it).
        embed: images -> (m, dim) features (default: EfficientNet-Lite0, `embed`).
        dim: the feature length; a cached vector of another length is computed again.
    Example:
        >>> true_features(z, cache, renderer).shape  # doctest: +SKIP
        (50, 1280)
    """
    z = np.asarray(z, np.float32)
    found = cache.get(z) if cache is not None else [None] * len(z)
    missing = [i for i, f in enumerate(found) if f is None or f.shape != (dim,)]
    if missing:
        if render is None:
            raise ValueError(f"{len(missing)} rated faces have no cached features and there is no renderer")
        if on_render is not None:
            on_render(len(missing))
        for s in range(0, len(missing), batch):
            idx = missing[s : s + batch]
            f = np.asarray(embed(render(z[idx])), np.float32)  # (m, dim)
            if f.shape != (len(idx), dim):
                raise ValueError(f"embed gave features of shape {f.shape}, expected ({len(idx)}, {dim})")
            if cache is not None:
                cache.put(z[idx], f)
            for i, row in zip(idx, f):
                found[i] = row
    return np.stack(found) if len(found) else np.zeros((0, dim), np.float32)
