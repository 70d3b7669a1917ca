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

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from passersby.atomic import fsync_dir
from passersby.stream.ledger_core import (  # noqa: F401 (re-exported: the ledger's public names)
    DEFAULT_THRESHOLD,
    FORMAT,
    MAX_TRIES,
    VERSION,
    ChannelStats,
    LedgerCheck,
    LedgerCore,
    LedgerError,
    LedgerStats,
    LedgerUnreachable,
    channel_seed,
    check_args,
    new_meta,
    z_hash,
)
from passersby.stream.lsh import LshParams, bucket_keys, make_rotations, probe_keys  # noqa: F401 (re-exported)

_TIMEOUT_S = 30.0  # how long a claim waits for another process's transaction

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


class Ledger(LedgerCore):
    """A persistent do-not-use list of anchors, with each channel's anchor RNG (one SQLite file).

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
        meta: a new ledger's description (another ledger's `meta`: `ledger migrate` keeps its
            threshold and search keys); None: a fresh one.

    Raises:
        LedgerError: not a ledger, another dim or threshold, newer version, corrupt, unreadable.

    Example:
        >>> with Ledger("anchors.ledger", dim=128, seed=7) as ledger:  # doctest: +SKIP
        ...     anchor_id, z = ledger.claim("screen-1", lambda rng: rng.standard_normal(128), "model-hash")
    """

    _errors = (sqlite3.Error,)

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
        meta: dict[str, Any] | None = None,
    ) -> None:
        check_args(dim, threshold, channel)
        self.path = Path(path)
        self.where = str(self.path)
        self.dim = dim
        self.channel = channel
        self._seed = seed
        self._new_meta = meta  # a new ledger's description, copied from another ledger (migrate)
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

    def _failure(self, e: BaseException, doing: str) -> LedgerError:
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
                self._create(self._new_meta or new_meta(self.dim, self._seed, threshold, half, lsh))
            elif "meta" not in names:
                raise self._err("is an SQLite database but not a passersby ledger; pass the ledger file or a new path")
            return dict(con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as e:
            raise self._failure(e, "opening") from e

    def _create(self, meta: dict[str, Any]) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it since we looked: the write lock settles it.
            if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                for stmt in _schema(meta["lsh_tables"]):
                    con.execute(stmt)
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def con(self) -> sqlite3.Connection:
        """The open sqlite3 connection (autocommit mode), for audits and tools; write with care."""
        if self._con is None:
            raise self._err("ledger is closed")
        return self._con

    # ------------------------------------------------------------ the core's primitives

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, tuple(args)).fetchall()

    def _begin_write(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")

    def _end(self, commit: bool) -> None:
        if self.con.in_transaction:
            self.con.execute("COMMIT" if commit else "ROLLBACK")

    def _near_rows(self, zhash: int, keys: np.ndarray) -> list[tuple[int, bytes]]:
        # One statement: SQLite answers it as a union of index lookups (MULTI-INDEX OR).
        marks = ", ".join("?" * keys.shape[1])
        ors = " OR ".join(f"k{t} IN ({marks})" for t in range(self.lsh.tables))
        return self._rows(f"SELECT id, z FROM anchors WHERE zhash = ? OR {ors}", [zhash, *keys.ravel().tolist()])

    def _insert_anchor(self, values: list[Any]) -> int | None:
        cols = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        marks = ", ".join("?" * len(values))
        try:
            cur = self.con.execute(f"INSERT INTO anchors (channel, z, zhash, {cols}, model_hash, shown_at) "
                                   f"VALUES ({marks})", values)
        except sqlite3.IntegrityError:
            return None
        return int(cur.lastrowid)

    def _size_bytes(self) -> int:
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(f"{self.path}{suffix}").st_size
            except OSError:
                pass
        return size

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check`: "ok", or its findings one per line (reads the whole file)."""
        try:
            return "\n".join(r[0] for r in self.con.execute("PRAGMA integrity_check"))
        except sqlite3.Error as e:
            return f"integrity_check failed: {e}"

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        self.con.execute("BEGIN")  # one read snapshot for the whole export
        try:
            yield
        finally:
            self.con.execute("COMMIT")

    def _batches(self, sql: str) -> Iterator[list[tuple]]:
        cur = self.con.execute(sql)
        while batch := cur.fetchmany(4096):
            yield batch

    def _refuse_own_file(self, out: Path) -> None:
        if out.resolve() in {Path(f"{self.path}{s}").resolve() for s in ("", "-wal", "-shm")}:
            raise self._err(f"refusing to export onto the ledger itself ({out}); choose another path")

    def _insert_copied(self, rows: Iterable[list[tuple]]) -> int:
        cols = ", ".join(f"k{t}" for t in range(self.lsh.tables))
        marks = ", ".join("?" * (self.lsh.tables + 6))
        n = 0
        for batch in rows:
            self.con.executemany(f"INSERT INTO anchors (id, channel, z, zhash, {cols}, model_hash, shown_at) "
                                 f"VALUES ({marks})", [(r[0], r[1], bytes(r[2]), *r[3:]) for r in batch])
            n += len(batch)
        return n

    def _insert_rng(self, rows: list[tuple]) -> None:
        self.con.executemany("INSERT INTO rng (channel, state, counter, rejected, first_at, last_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
