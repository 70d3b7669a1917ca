"""The do-not-use ledger: every anchor ever shown, recorded before it is shown.

The installation promises never to show a face twice. An *anchor* is a latent z ~ N(0, I_d)
(d = 128 for the default model); `Ledger.claim` draws one from the channel's RNG, rejects it
if it is identical or closer than `threshold` to ANY anchor ever recorded (all channels, all
years), records it together with the advanced RNG state in ONE SQLite transaction, and only
then returns it. So:

- a crash (even `kill -9`, or power loss: WAL with synchronous=FULL) before the commit loses
  the anchor and the RNG step together: the restarted stream proposes the same anchor again,
  which is fine because it was never shown;
- a crash after the commit keeps both: the anchor stays on the do-not-use list and the RNG
  never proposes it again. Either way, what was shown is recorded and never repeated.

Proposals are made outside the transaction (optimistic concurrency, `claim`): the taste and the
critic render candidates for a proposal, and SQLite's write lock must not be held meanwhile,
or every other screen's claim would wait behind them.

File: one SQLite database (stdlib sqlite3), WAL mode, durable commits. Tables: `meta` (format,
version, dim, threshold, LSH rotations...), `anchors` (id, channel, z BLOB, zhash, one bucket
key per LSH table, model_hash, shown_at = when it was claimed, just before it was shown) and
`rng` (channel -> PCG64 state as JSON, anchors claimed, proposals rejected, first/last time).
Several processes may share one ledger (e.g. one per screen): claims serialize on SQLite's
write lock, readers never block.

Threshold: 6 (Euclidean, in z space). Two independent draws are sqrt(2) chi_128 apart:
15.97 +- 1.00. A near copy z + e with |e| = 6 is z moved 37 % of the way toward another face.
A fresh draw lands within 6 of a given recorded anchor with probability
P(chi2_128 < 6^2 / 2) = 1.3e-32, so within 6 of ANY of 100M recorded anchors with probability
1.3e-24 (all pairs of 100M anchors, ~19 years at 6 s: 6.7e-17; at threshold 8 it would be
1.4e-11 per draw, at 10 already 5e-3). The nearest of 100M random anchors is typically 10.7
away (below 9.0 once in a million draws). So a rejection practically never hits an honest
draw: it catches true repeats - a restored RNG, a replayed seed, a deliberately proposed copy
or near copy. (A drift walk whose consecutive anchors are closer than 6 - e.g.
sqrt(1 - s^2) z + s t with s < 0.51 - needs its own, smaller threshold.)

Near search that stays fast at 100M entries: an exact radius-6 search in 128 dimensions cannot
be indexed, so the ledger uses locality-sensitive hashing (LSH) and checks the exact distance
of every candidate in numpy. Identical bytes are also caught deterministically: a UNIQUE index
on a 64-bit hash of the stored z (and identical z has identical bucket keys in every table).

- Family: cross-polytope LSH (Andoni et al. 2015), which suits points on the N(0, I) shell
  (norms 11.3 +- 0.7): a hash is the signed coordinate of largest value among 24 orthonormal
  projections of z (48 buckets). A table concatenates 5 hashes taken from disjoint rows of one
  random rotation (so they are independent and all 48^5 = 2.5e8 buckets equally likely) into
  one key, an indexed INTEGER column. 8 tables.
- Why it finds near copies: rotated, z - z' is N(0, r^2/128) per coordinate, a small jitter of
  the 24 values, so one hash agrees with probability p1(r) = 0.89, 0.79, 0.62, 0.49, 0.39 at
  r = 1, 2, 4, 6, 8, against 1/48 = 0.02 for two random anchors (r ~ 16). A table (5 hashes)
  agrees with p1^5: 0.029 at r = 6 against 4e-9 for random pairs.
- Multi-probe (Lv et al. 2007): each table probes the 256 buckets a nearby point most likely
  falls in, z's own first (lowest sums of squared gaps between winner and chosen coordinate).
  That lifts one table's recall to 0.82 / 0.49 / 0.24 at r = 4 / 6 / 8 while admitting a
  random anchor with probability 256 / 2.5e8 = 1e-6; 8 tables: recall 1 - (1 - p_table)^8.
- Recall, measured (8000 random z, near copy at distance r in a random direction): r <= 4: all
  found; r = 5: 0.9995; r = 6 (the threshold): 0.992; r = 7: 0.95; r = 8: 0.86. Exact copies:
  always (all tables, and the hash index). Honest draws never come near (above), so the misses
  can only concern deliberate near copies at the edge of the threshold.
- Cost per proposal: 8 x 256 index lookups in one statement, plus reading the z of unrelated
  anchors that share a probed bucket: 8e-6 per recorded anchor = 0.8 at 100k, 8 at 1M, 800 at
  100M. Measured on 2 CPU cores (warm cache): near search 3.2 ms at 100k, 3.6 ms at 1M; a
  durable claim (search + insert + fsync) 5.0 / 5.9 ms, 200 / 170 claims/s. At 100M with a cold
  cache, ~3000 random page reads, ~0.3 s on an SSD: still far inside one anchor every 6 s.
- Storage, measured: 820 B per anchor (z 512 B, hash, 8 keys, 9 indexes, B-tree overhead):
  ~82 GB at 100M; 510 B / ~51 GB with `half=True` (z as float16, error ~0.003).

Example:
    >>> import numpy as np
    >>> with Ledger("anchors.ledger", dim=128, seed=7) as ledger:  # doctest: +SKIP
    ...     anchor_id, z = ledger.claim("screen-1", lambda rng: rng.standard_normal(128, dtype=np.float32), "9f2c...")
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from passersby.atomic import atomic_open, fsync_dir
from passersby.stream.lsh import LshParams, bucket_keys, make_rotations, probe_keys  # noqa: F401 (re-exported)

FORMAT = "passersby-ledger"
VERSION = 1
DEFAULT_THRESHOLD = 6.0
MAX_TRIES = 100  # proposals per claim; honest draws are rejected with probability ~1e-24 each
_TIMEOUT_S = 30.0  # how long a claim waits for another process's transaction
_MAX_RESTARTS = 50  # claims overtaken by another writer on the same channel before giving up
_MOVED, _TAKEN = "moved", "taken"  # outcomes of a commit that recorded nothing


class LedgerError(Exception):
    """A ledger could not be opened, read or written; the message says which file and what to do."""


@dataclass(frozen=True)
class ChannelStats:
    """One channel (screen): anchors claimed, proposals rejected, first and last claim (Unix s)."""

    count: int
    rejected: int
    first_shown: float | None
    last_shown: float | None


@dataclass(frozen=True)
class LedgerStats:
    """What `Ledger.stats` reports; `file_bytes` counts the database and its WAL."""

    count: int
    channels: Mapping[str, ChannelStats]
    first_shown: float | None
    last_shown: float | None
    file_bytes: int


@dataclass(frozen=True)
class LedgerCheck:
    """What `Ledger.check` found: `ok` is True when `problems` is empty."""

    count: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- hashing


def z_hash(stored: bytes) -> int:
    """64-bit identity of an anchor's stored bytes, as a signed SQLite INTEGER.

    Example:
        >>> z_hash(b"") == z_hash(b"")
        True
    """
    return int.from_bytes(hashlib.blake2b(stored, digest_size=8).digest(), "little", signed=True)


# ---------------------------------------------------------------- the ledger


_SCHEMA_RNG = """CREATE TABLE rng (
    channel TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    counter INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL
)"""


def _schema(tables: int) -> list[str]:
    keys = "".join(f"    k{t} INTEGER NOT NULL,\n" for t in range(tables))
    return [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
        "CREATE TABLE anchors (\n    id INTEGER PRIMARY KEY,\n    channel TEXT NOT NULL,\n"
        f"    z BLOB NOT NULL,\n    zhash INTEGER NOT NULL,\n{keys}"
        "    model_hash TEXT NOT NULL,\n    shown_at REAL NOT NULL\n)",
        "CREATE UNIQUE INDEX anchors_zhash ON anchors (zhash)",
        *(f"CREATE INDEX anchors_k{t} ON anchors (k{t})" for t in range(tables)),
        _SCHEMA_RNG,
    ]


def channel_seed(seed: int | None, channel: str) -> np.random.SeedSequence:
    """A new channel's seed: (ledger seed, channel name); no seed -> fresh OS entropy.

    Example:
        >>> rng = np.random.Generator(np.random.PCG64(channel_seed(7, "screen-1")))  # its first anchors
    """
    words = np.frombuffer(hashlib.sha256(channel.encode()).digest()[:16], np.uint32)
    return np.random.SeedSequence(seed, spawn_key=tuple(int(w) for w in words))


class Ledger:
    """A persistent do-not-use list of anchors, with each channel's anchor RNG.

    Args:
        path: the ledger file (created with its schema if missing or empty).
        dim: anchor size (the model's z_dim); must match the ledger's.
        threshold: reject proposals closer than this to any recorded anchor. None: the
            ledger's own (DEFAULT_THRESHOLD for a new one); a different value is an error, as
            the promise is made per ledger.
        channel: default channel for `claim(None, ...)`, `recent(None)`.
        seed: seeds a channel's RNG the first time it claims (with the channel name, so
            channels differ); None draws fresh OS entropy. Afterwards the RNG state lives in
            the ledger and the seed is ignored.
        half: store z as float16 (half the storage); None: the ledger's own (float32 for a
            new one).
        lsh: near-search index shape for a new ledger; None: the ledger's own / default.
        create: create the ledger if missing; False raises LedgerError instead.

    Raises:
        LedgerError: not a ledger, another dim or threshold, newer version, corrupt, unreadable.

    Example:
        >>> with Ledger("anchors.ledger", dim=128, seed=7) as ledger:  # doctest: +SKIP
        ...     anchor_id, z = ledger.claim("screen-1", lambda rng: rng.standard_normal(128), "model-hash")
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dim: int,
        threshold: float | None = None,
        channel: str = "main",
        *,
        seed: int | None = None,
        half: bool | None = None,
        lsh: LshParams | None = None,
        create: bool = True,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty string, got {channel!r}")
        self.path = Path(path)
        self.dim = dim
        self.channel = channel
        self._seed = seed
        self._con: sqlite3.Connection | None = None
        self._con = self._connect(create)
        try:
            meta = self._open_or_create(threshold, half, lsh)
            self._adopt(meta, threshold, half, lsh)
            # The WAL file exists now; make its directory entry durable as the commits will be.
            fsync_dir(self.path.parent)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ opening

    @classmethod
    def open_existing(cls, path: str | os.PathLike) -> "Ledger":
        """Open a ledger that must already exist, reading its dimension from the file itself.

        Raises:
            LedgerError: no such file, or not a passersby ledger.
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here — no face has been shown with this home yet (check --home / PASSERSBY_HOME)")
        con = None
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            dim = dict(con.execute("SELECT key, value FROM meta")).get("dim")
        except sqlite3.Error as e:
            raise LedgerError(f"{path}: not a readable passersby ledger ({e})") from e
        finally:
            if con is not None:
                con.close()
        if not isinstance(dim, int):
            raise LedgerError(f"{path}: ledger metadata has no dimension; the file is damaged — restore it from a backup")
        return cls(path, dim, create=False)

    def _err(self, what: str) -> LedgerError:
        return LedgerError(f"{self.path}: {what}")

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise self._err("is a directory; pass the ledger file")
        if not self.path.exists() and not create:
            raise self._err("no such ledger; check the path (or create it)")
        if not self.path.parent.is_dir():
            raise self._err("its directory does not exist; create it first")
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            con = sqlite3.connect(self.path, timeout=_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise self._err(f"cannot open ({e}); check the path and its permissions") from e
        return con

    def _sql_failure(self, e: sqlite3.Error, doing: str) -> LedgerError:
        msg = str(e)
        if "not a database" in msg:
            return self._err("is not a passersby ledger (not an SQLite database); pass the ledger file or a new path")
        if "malformed" in msg or "corrupt" in msg:
            return self._err(f"corrupt ledger ({msg}) while {doing}; restore it from a backup — do not start "
                             "a fresh one for the same installation, it would forget every anchor shown")
        if "locked" in msg or "busy" in msg:
            return self._err(f"locked by another process for over {_TIMEOUT_S:.0f} s while {doing}; "
                             "stop the other process or retry")
        return self._err(f"SQLite error while {doing} ({msg}); check disk space and permissions")

    def _open_or_create(self, threshold: float | None, half: bool | None, lsh: LshParams | None) -> dict[str, Any]:
        con = self._con
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise self._err(f"cannot use write-ahead logging (journal mode {mode!r}); "
                                "put the ledger on a local disk")
            # FULL: the WAL is fsynced at every commit, so a returned anchor survives power loss.
            con.execute("PRAGMA synchronous=FULL")
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names:
                self._create(threshold, half, lsh)
            elif "meta" not in names:
                raise self._err("is an SQLite database but not a passersby ledger; pass the ledger file or a new path")
            return dict(con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as e:
            raise self._sql_failure(e, "opening") from e

    def _create(self, threshold: float | None, half: bool | None, lsh: LshParams | None) -> None:
        from passersby import __version__

        params = lsh or LshParams()
        # The rotations are stored, so nothing needs to reproduce them; a seed makes tests exact.
        lsh_seed = np.random.SeedSequence(self._seed, spawn_key=(0,))
        rot = make_rotations(params, self.dim, np.random.default_rng(lsh_seed))
        meta = {
            "format": FORMAT, "version": VERSION, "dim": self.dim,
            "threshold": float(threshold if threshold is not None else DEFAULT_THRESHOLD),
            "z_dtype": "float16" if half else "float32", "created": time.time(),
            "passersby_version": __version__,
            "lsh_tables": params.tables, "lsh_hashes": params.hashes,
            "lsh_proj_dim": params.proj_dim, "lsh_probes": params.probes, "lsh_rotations": rot.tobytes(),
        }
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it since we looked: the write lock settles it.
            if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                for stmt in _schema(params.tables):
                    con.execute(stmt)
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _adopt(self, meta: dict[str, Any], threshold: float | None, half: bool | None, lsh: LshParams | None) -> None:
        """Check the stored description against what the caller asked for, and keep it."""
        if meta.get("format") != FORMAT:
            raise self._err(f"is an SQLite database of format {meta.get('format')!r}, not a passersby ledger")
        version = meta.get("version")
        if not isinstance(version, int):
            raise self._err(f"corrupt ledger description (version {version!r}); restore it from a backup")
        if version > VERSION:
            raise self._err(f"ledger version {version} is newer than this passersby reads ({VERSION}); "
                            "upgrade passersby")
        if meta.get("dim") != self.dim:
            raise self._err(f"holds anchors of dim {meta.get('dim')}, asked for {self.dim}; "
                            "use this model's own ledger or a new path")
        self.threshold = float(meta["threshold"])
        if threshold is not None and float(threshold) != self.threshold:
            raise self._err(f"was created with threshold {self.threshold}, asked for {threshold}; "
                            "pass threshold=None to use the ledger's")
        self.half = meta.get("z_dtype") == "float16"
        if half is not None and bool(half) != self.half:
            raise self._err(f"stores z as {meta.get('z_dtype')}; pass half=None to use the ledger's")
        try:
            self.lsh = LshParams(tables=meta["lsh_tables"], hashes=meta["lsh_hashes"],
                                 proj_dim=meta["lsh_proj_dim"], probes=meta["lsh_probes"])
            p = min(self.lsh.proj_dim, self.dim)
            # float32 on disk, float64 here once (exact) rather than at every query
            self._rot = np.frombuffer(meta["lsh_rotations"], np.float32).astype(np.float64).reshape(
                self.lsh.tables, self.lsh.hashes, p, self.dim)
        except (KeyError, TypeError, ValueError) as e:
            raise self._err(f"corrupt ledger description ({e}); restore it from a backup") from e
        if lsh is not None and lsh != self.lsh:
            raise self._err(f"was created with {self.lsh}; pass lsh=None to use the ledger's")
        self._dtype = np.dtype("<f2" if self.half else "<f4")

    # ------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.stats().count

    @property
    def con(self) -> sqlite3.Connection:
        """The open sqlite3 connection (autocommit mode), for audits and tools; write with care."""
        if self._con is None:
            raise self._err("ledger is closed")
        return self._con

    # ------------------------------------------------------------ near search

    def _stored(self, z: np.ndarray) -> np.ndarray:
        """z as it will be stored (and shown): the ledger's precision, shape (dim,)."""
        a = np.asarray(z)
        if a.shape != (self.dim,):
            raise ValueError(f"an anchor must have shape ({self.dim},), got {a.shape}")
        s = a.astype(self._dtype)
        if not np.all(np.isfinite(s)):
            raise ValueError(f"an anchor must be finite (in {self._dtype.name}), got non-finite values")
        return s

    def _near_sql(self, n_keys: int) -> str:
        # One statement: SQLite answers it as a union of index lookups (MULTI-INDEX OR).
        keys = ", ".join("?" * n_keys)
        ors = " OR ".join(f"k{t} IN ({keys})" for t in range(self.lsh.tables))
        return f"SELECT id, z FROM anchors WHERE zhash = ? OR {ors}"

    def _near(self, stored: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Recorded anchors closer than the threshold to `stored`: (ids, distances)."""
        keys = probe_keys(self._rot, stored.astype(np.float64), self.lsh.probes)
        args = [z_hash(stored.tobytes()), *keys.ravel().tolist()]
        rows = self.con.execute(self._near_sql(keys.shape[1]), args).fetchall()
        if not rows:
            return [], np.empty(0)
        cand = np.frombuffer(b"".join(r[1] for r in rows), self._dtype).reshape(len(rows), self.dim)
        dist = np.linalg.norm(cand.astype(np.float64) - stored.astype(np.float64), axis=1)
        hit = dist < self.threshold
        return [r[0] for r, h in zip(rows, hit) if h], dist[hit]

    def contains_near(self, z: np.ndarray) -> bool:
        """Whether a recorded anchor is identical or closer than the threshold to z.

        Identical anchors are always found; near ones with the recall in the module docstring.
        """
        try:
            return bool(self._near(self._stored(z))[0])
        except sqlite3.Error as e:
            raise self._sql_failure(e, "searching") from e

    # ------------------------------------------------------------ claiming

    def _rng_from(self, channel: str, state_json: str | None) -> np.random.Generator:
        """The channel's generator from its stored state (None: the channel's first seed)."""
        if state_json is None:
            return np.random.Generator(np.random.PCG64(channel_seed(self._seed, channel)))
        try:
            state = json.loads(state_json)
            if state.get("bit_generator") != "PCG64":
                raise ValueError(f"bit generator {state.get('bit_generator')!r}")
            bg = np.random.PCG64()
            bg.state = state
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise self._err(f"corrupt RNG state of channel {channel!r} ({e}); restore the ledger from a backup") from e
        return np.random.Generator(bg)

    def claim(
        self,
        channel: str | None,
        propose: Callable[[np.random.Generator], np.ndarray],
        model_hash: str,
        max_tries: int = MAX_TRIES,
    ) -> tuple[int, np.ndarray]:
        """Draw, record and return the channel's next anchor; show it only after this returns.

        Restore the channel's RNG and call `propose(rng)` until a proposal is not near any
        recorded anchor, with no lock held (a proposal may render and score candidates); then,
        in one transaction, check that the channel's RNG has not moved and that no near anchor
        was recorded meanwhile, record the anchor and the advanced RNG state, commit. If the RNG
        moved (another process claimed on this channel), start over from its new state; if a
        near anchor appeared, draw on. With one writer per channel the anchors are exactly
        those of a claim made entirely under the lock.

        Args:
            channel: the screen / stream name (None: the ledger's default channel).
            propose: rng -> anchor of shape (dim,); must draw all its randomness from rng, so
                that a restart continues the same sequence.
            model_hash: identity of the model that will render it (e.g. checkpoint.file_hash).
            max_tries: proposals before giving up.

        Returns:
            (anchor_id, z): z as recorded, float32 of shape (dim,).

        Raises:
            LedgerError: max_tries proposals in a row were near recorded anchors, or the
                database failed; nothing was recorded and the RNG did not advance.

        Example:
            >>> ledger.claim("screen-1", lambda rng: rng.standard_normal(128), "9f2c")  # doctest: +SKIP
            (1, array([...], dtype=float32))
        """
        channel = self.channel if channel is None else channel
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"channel must be a non-empty string, got {channel!r}")
        if not isinstance(model_hash, str):
            raise ValueError(f"model_hash must be a string, got {model_hash!r}")
        # Optimistic: propose (which may render and score candidates for a second) with no lock
        # held, then commit only if the channel's RNG has not moved meanwhile. Holding SQLite's
        # write lock while proposing would stall every other screen's claim behind this one.
        for _ in range(_MAX_RESTARTS):
            state, rng = self._read_rng(channel)
            tries = 0
            while True:
                stored, tries = self._propose_free(channel, rng, propose, tries, max_tries)
                outcome = self._commit(channel, state, rng, stored, tries, model_hash)
                if outcome == _MOVED:
                    break  # another writer claimed on this channel: start over from its state
                if outcome == _TAKEN:
                    tries += 1  # a near anchor was recorded meanwhile (another channel): draw on
                    continue
                return outcome, stored.astype(np.float32)
        raise self._err(f"channel {channel!r}: {_MAX_RESTARTS} claims in a row were overtaken by other "
                        "processes claiming on the same channel; run one process per channel")

    def _read_rng(self, channel: str) -> tuple[str | None, np.random.Generator]:
        """(stored state JSON or None, generator) of the channel, read without a write lock."""
        try:
            row = self.con.execute("SELECT state FROM rng WHERE channel = ?", (channel,)).fetchone()
        except sqlite3.Error as e:
            raise self._sql_failure(e, "claiming") from e
        return (row[0] if row else None), self._rng_from(channel, row[0] if row else None)

    def _propose_free(self, channel: str, rng: np.random.Generator, propose: Callable, tries: int,
                      max_tries: int) -> tuple[np.ndarray, int]:
        """The next proposal not near a recorded anchor, and the rejections so far (no lock held)."""
        while tries < max_tries:
            stored = self._stored(propose(rng))
            try:
                near = self._near(stored)[0]
            except sqlite3.Error as e:
                raise self._sql_failure(e, "claiming") from e
            if not near:
                return stored, tries
            tries += 1
        raise self._err(f"channel {channel!r}: {max_tries} proposals in a row were within {self.threshold} of "
                        "recorded anchors; the proposal function repeats itself (a fixed seed inside it?) — "
                        "nothing was recorded")

    def _commit(self, channel: str, state: str | None, rng: np.random.Generator, stored: np.ndarray,
                rejected: int, model_hash: str) -> int | str:
        """Record `stored` and the advanced RNG in one transaction: its anchor id, or _MOVED /
        _TAKEN (nothing recorded) when the channel's RNG moved or a near anchor appeared meanwhile."""
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")  # the write lock: no one records between our check and insert
        except sqlite3.Error as e:
            raise self._sql_failure(e, "claiming") from e
        try:
            row = con.execute("SELECT state FROM rng WHERE channel = ?", (channel,)).fetchone()
            if (row[0] if row else None) != state:
                outcome: int | str = _MOVED
            elif self._near(stored)[0]:
                outcome = _TAKEN
            else:
                outcome = self._insert(channel, rng, stored, rejected, model_hash)
            con.execute("COMMIT" if isinstance(outcome, int) else "ROLLBACK")
        except BaseException as e:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is gone; SQLite rolls back on the next open anyway
            if isinstance(e, sqlite3.Error):
                raise self._sql_failure(e, "claiming") from e
            raise
        return outcome

    def _insert(self, channel: str, rng: np.random.Generator, stored: np.ndarray, rejected: int,
                model_hash: str) -> int | str:
        """INSERT the anchor and the channel's new RNG state (inside _commit's transaction)."""
        raw = stored.tobytes()
        keys = bucket_keys(self._rot, stored.astype(np.float64))[0].tolist()
        now = time.time()
        cols = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        marks = ", ".join("?" * (self.lsh.tables + 5))
        try:
            cur = self.con.execute(
                f"INSERT INTO anchors (channel, z, zhash, {cols}, model_hash, shown_at) VALUES ({marks})",
                [channel, raw, z_hash(raw), *keys, model_hash, now])
        except sqlite3.IntegrityError:
            return _TAKEN  # a 64-bit hash collision with a different anchor: just draw the next
        self.con.execute(
            "INSERT INTO rng (channel, state, counter, rejected, first_at, last_at) VALUES (?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET state = excluded.state, counter = counter + 1, "
            "rejected = rejected + excluded.rejected, last_at = excluded.last_at",
            (channel, json.dumps(rng.bit_generator.state), rejected, now, now))
        return int(cur.lastrowid)

    # ------------------------------------------------------------ reading

    def recent(self, channel: str | None = None, n: int = 1) -> list[tuple[int, np.ndarray]]:
        """The channel's last n anchors, oldest first: [(anchor_id, z float32)], e.g. to resume a walk."""
        channel = self.channel if channel is None else channel
        try:
            rows = self.con.execute("SELECT id, z FROM anchors WHERE channel = ? ORDER BY id DESC LIMIT ?",
                                    (channel, int(n))).fetchall()
        except sqlite3.Error as e:
            raise self._sql_failure(e, "reading") from e
        return [(i, np.frombuffer(z, self._dtype).astype(np.float32)) for i, z in reversed(rows)]

    def latest(self, n: int = 48) -> list[dict[str, Any]]:
        """The last n anchors of every channel, newest first: [{"id", "channel", "model_hash",
        "shown_at"}] (the gallery's "recently shown")."""
        try:
            rows = self.con.execute("SELECT id, channel, model_hash, shown_at FROM anchors ORDER BY id DESC LIMIT ?",
                                    (int(n),)).fetchall()
        except sqlite3.Error as e:
            raise self._sql_failure(e, "reading") from e
        return [{"id": i, "channel": c, "model_hash": m, "shown_at": t} for i, c, m, t in rows]

    def anchor(self, anchor_id: int) -> np.ndarray:
        """The latent of ledger row `anchor_id` as float32 (to re-render a frame from its key).

        Raises:
            LedgerError: no such row.
        """
        try:
            row = self.con.execute("SELECT z FROM anchors WHERE id = ?", (int(anchor_id),)).fetchone()
        except sqlite3.Error as e:
            raise self._sql_failure(e, "reading") from e
        if row is None:
            raise LedgerError(f"{self.path}: no anchor {anchor_id} in this ledger (another home's frame?)")
        return np.frombuffer(row[0], self._dtype).astype(np.float32)

    def stats(self) -> LedgerStats:
        """Counts and times per channel (from the RNG table: O(channels), not O(anchors))."""
        try:
            rows = self.con.execute(
                "SELECT channel, counter, rejected, first_at, last_at FROM rng ORDER BY channel").fetchall()
        except sqlite3.Error as e:
            raise self._sql_failure(e, "reading") from e
        channels = {c: ChannelStats(n, rej, first, last) for c, n, rej, first, last in rows}
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(f"{self.path}{suffix}").st_size
            except OSError:
                pass
        return LedgerStats(
            count=sum(c.count for c in channels.values()), channels=channels,
            first_shown=min((c.first_shown for c in channels.values()), default=None),
            last_shown=max((c.last_shown for c in channels.values()), default=None), file_bytes=size)

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check`: "ok", or its findings one per line (reads the whole file)."""
        try:
            return "\n".join(r[0] for r in self.con.execute("PRAGMA integrity_check"))
        except sqlite3.Error as e:
            return f"integrity_check failed: {e}"

    def check(self, deep: bool = False) -> LedgerCheck:
        """Audit the whole ledger; it reads every row (30 s per million anchors: ~1 h at 100M).

        Checks SQLite's integrity, that per-channel counters match the rows, that every z has
        the right size, is finite and matches its hash, and that no two anchors are identical.
        deep=True also recomputes every bucket key (the near-search index).
        """
        problems: list[str] = []
        integrity = self.integrity_check()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity.splitlines()[0]}")
        count = 0
        try:
            counters = dict(self.con.execute("SELECT channel, counter FROM rng"))
            rows = dict(self.con.execute("SELECT channel, count(*) FROM anchors GROUP BY channel"))
            for ch in sorted(set(counters) | set(rows)):
                if counters.get(ch, 0) != rows.get(ch, 0):
                    problems.append(f"channel {ch!r}: counter says {counters.get(ch, 0)} anchors, "
                                    f"table holds {rows.get(ch, 0)}")
            dups = self.con.execute("SELECT count(*) FROM (SELECT zhash FROM anchors GROUP BY zhash "
                                    "HAVING count(*) > 1)").fetchone()[0]
            if dups:
                problems.append(f"{dups} anchors recorded more than once")
            count, bad = self._check_rows(deep)
            problems += bad
        except sqlite3.Error as e:
            problems.append(f"reading failed: {e}")
        if len(problems) > 20:
            problems = problems[:20] + [f"... and {len(problems) - 20} more"]
        return LedgerCheck(count=count, problems=tuple(problems))

    def _check_rows(self, deep: bool) -> tuple[int, list[str]]:
        keys = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        cur = self.con.execute(f"SELECT id, z, zhash, {keys} FROM anchors ORDER BY id")
        count, bad, size = 0, [], self.dim * self._dtype.itemsize
        while batch := cur.fetchmany(4096):
            count += len(batch)
            good = []
            for row in batch:
                i, raw, h = row[:3]
                if not isinstance(raw, bytes) or len(raw) != size:
                    bad.append(f"anchor {i}: z is not {size} bytes")
                elif z_hash(raw) != h:
                    bad.append(f"anchor {i}: z does not match its hash (bit rot?)")
                else:
                    good.append(row)
            if not good:
                continue
            z = np.frombuffer(b"".join(r[1] for r in good), self._dtype).reshape(len(good), self.dim)
            finite = np.all(np.isfinite(z), axis=1)
            bad += [f"anchor {r[0]}: z is not finite" for r, f in zip(good, finite) if not f]
            if deep:
                stored = np.array([r[3:] for r in good], np.int64)
                wrong = np.any(bucket_keys(self._rot, z) != stored, axis=1)
                bad += [f"anchor {r[0]}: bucket keys do not match z" for r, w in zip(good, wrong) if w]
        return count, bad

    # ------------------------------------------------------------ export

    def export(self, path: str | os.PathLike) -> int:
        """Write every anchor to a JSON Lines file, atomically; returns the number written.

        First line: {"format": "passersby-ledger-export", "version", "dim", "z_dtype", "threshold"}.
        Then one object per anchor in id order: {"id", "channel", "model_hash", "shown_at", "z"},
        z being base64 of the little-endian stored values (exact; decode with
        np.frombuffer(base64.b64decode(z), "<f4" or "<f2")). Reads one consistent snapshot, so
        it can run beside a live stream.

        Raises:
            LedgerError: if the file cannot be written (the previous file, if any, is intact).
        """
        out = Path(path)
        if out.resolve() in {Path(f"{self.path}{s}").resolve() for s in ("", "-wal", "-shm")}:
            raise self._err(f"refusing to export onto the ledger itself ({out}); choose another path")
        header = {"format": f"{FORMAT}-export", "version": VERSION, "dim": self.dim,
                  "z_dtype": self._dtype.name, "threshold": self.threshold}
        con = self.con
        try:
            con.execute("BEGIN")  # one read snapshot for the whole export
            try:
                cur = con.execute("SELECT id, channel, model_hash, shown_at, z FROM anchors ORDER BY id")
                lines = (json.dumps({"id": i, "channel": c, "model_hash": m, "shown_at": t,
                                     "z": base64.b64encode(z).decode("ascii")}) for i, c, m, t, z in cur)
                n = _atomic_write_lines(out, [json.dumps(header)], lines)
            finally:
                con.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._sql_failure(e, "exporting") from e
        return n


def _atomic_write_lines(path: Path, head: Iterable[str], lines: Iterable[str]) -> int:
    """Stream lines to `path` atomically (passersby.atomic); returns the number of `lines`."""
    n = 0
    try:
        with atomic_open(path, "w") as f:
            for line in head:
                f.write(line + "\n")
            for line in lines:
                f.write(line + "\n")
                n += 1
    except OSError as e:
        raise LedgerError(f"{path}: could not write the export ({e.strerror or e}); "
                          "free disk space or choose another path") from e
    return n
