"""The never-repeat ledger in one SQLite file: an installation's own ledger (the default).

The promise, the threshold and the near search are in the package docstring
(stream/ledger/__init__.py); the claim protocol is LedgerCore's (core.py). What is SQLite's:

File: one SQLite database (stdlib sqlite3, opened by passersby/sqlite_open.py), WAL mode,
synchronous=FULL: a crash (even `kill -9`, or power loss) before a claim's commit loses the
anchor and the RNG step together, after it keeps both. Tables: `meta` (format, version, dim,
threshold, LSH rotations...), `anchors` (id, channel, z BLOB, zhash, one bucket key per LSH
table, model_hash, shown_at = when it was claimed, just before it was shown) and `rng`
(channel -> PCG64 state as JSON, anchors claimed, proposals rejected, first/last time).
Several processes may share one ledger (e.g. one per screen): claims serialize on SQLite's
write lock (BEGIN IMMEDIATE), readers never block.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with SqliteLedger(pathlib.Path(d) / "anchors.ledger", dim=8, seed=7) as ledger:
    ...         anchor_id, z = ledger.claim("screen-1", lambda rng: rng.standard_normal(8), "model-hash")
    ...         found = ledger.contains_near(z), len(ledger)
    >>> anchor_id, z.dtype, found
    (1, dtype('float32'), (True, 1))
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from passersby.atomic import fsync_dir
from passersby.sqlite_open import (CannotOpen, NoSpace, NoWal, check_room, integrity_problems, open_read_only,
                                   open_sqlite, remove_store)
from passersby.stream.ledger.common import LedgerError, check_args, new_meta
from passersby.stream.ledger.core import LedgerCore
from passersby.stream.ledger.lsh import LshParams

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


class SqliteLedger(LedgerCore):
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
        read_only: open an existing ledger read-only (`ledger stats`, `check`, `export`): never
            written, and readable on a full disk; claims then fail.

    Raises:
        LedgerError: not a ledger, another dim or threshold, newer version, corrupt, unreadable.

    Example:
        >>> with SqliteLedger("anchors.ledger", dim=128, seed=7) as ledger:  # doctest: +SKIP
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
        read_only: bool = False,
    ) -> None:
        check_args(dim, threshold, channel)
        self.path = Path(path)
        self.where = str(self.path)
        self.dim = dim
        self.channel = channel
        self._seed = seed
        self._new_meta = meta  # a new ledger's description, copied from another ledger (migrate)
        self._con: sqlite3.Connection | None = None
        self.read_only = read_only
        if create and not read_only and not self.path.exists() and self.path.parent.is_dir():
            self._create_whole(threshold, half, lsh)
        self._con = self._connect(create and not read_only)
        try:
            meta = self._open_or_create(threshold, half, lsh)
            self._adopt(meta, threshold, half, lsh)
            if not read_only:  # The WAL file exists now; make its directory entry durable as the commits will be.
                fsync_dir(self.path.parent)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ opening

    @classmethod
    def open_existing(cls, path: str | os.PathLike, read_only: bool = False) -> "SqliteLedger":
        """Open a ledger that must already exist, reading its dimension from the file itself.

        Args:
            path: the ledger file.
            read_only: for the commands that only read (stats, check, export): no write, no
                new -wal file, so they work on a full disk.

        Raises:
            LedgerError: no such file, or not a passersby ledger.
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here — no face has been shown with this home yet (check --home / PASSERSBY_HOME)")
        con = None
        try:
            con = open_read_only(path)
            dim = dict(con.execute("SELECT key, value FROM meta")).get("dim")
        except sqlite3.Error as e:
            raise LedgerError(f"{path}: not a readable passersby ledger ({e})") from e
        finally:
            if con is not None:
                con.close()
        if not isinstance(dim, int):
            raise LedgerError(f"{path}: ledger metadata has no dimension; the file is damaged — restore it from a backup")
        return cls(path, dim, create=False, read_only=read_only)

    def _create_whole(self, threshold: float | None, half: bool | None, lsh: LshParams | None) -> None:
        """Create the ledger complete under a temporary name, then link it into place.

        A ledger is never seen half-made: with the disk filling up during creation SQLite left a
        4 KB file without its tables, which the next start (and `ledger check`) called unreadable.
        Built beside the target (same file system), closed (its WAL checkpointed into the file),
        fsynced, then hard-linked to `path`: the link fails if another process created the
        ledger meanwhile, and then theirs is the ledger (ours is dropped).

        Raises:
            LedgerError: too little free space (naming the folder, what is free and needed), or
                SQLite failed; no file is left behind either way.
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        remove_store(tmp)  # a leftover of a run killed while creating, with this pid
        try:
            check_room(self.path)
            con = open_sqlite(tmp, busy_timeout_s=_TIMEOUT_S)
            self._con = con
            try:
                self._create(self._new_meta or new_meta(self.dim, self._seed, threshold, half, lsh))
            finally:
                self._con = None
                con.close()  # the last connection: the WAL goes into the file, -wal and -shm go
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: theirs is the ledger
            except OSError:  # a file system without hard links: rename, unless one appeared meanwhile
                if not self.path.exists():
                    os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except NoSpace as e:
            raise self._err(f"cannot create the ledger: {e}") from e
        except (sqlite3.Error, OSError) as e:
            raise self._err(f"cannot create the ledger in {self.path.parent} ({e}); check disk space and "
                            "permissions — nothing was left behind") from e
        finally:
            remove_store(tmp)

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise self._err("is a directory; pass the ledger file")
        if not self.path.exists() and not create:
            raise self._err("no such ledger; check the path (or create it)")
        if not self.path.parent.is_dir():
            raise self._err("its directory does not exist; create it first")
        if self.read_only:
            try:
                return open_read_only(self.path)
            except sqlite3.Error as e:
                raise self._err(f"cannot open read-only ({e}); check the path and its permissions") from e
        try:
            # WAL + synchronous=FULL: the WAL is fsynced at every commit, so a returned anchor
            # survives power loss; the busy timeout is how long a claim waits for another
            # process's transaction.
            return open_sqlite(self.path, busy_timeout_s=_TIMEOUT_S)
        except NoSpace as e:
            raise self._err(f"cannot create the ledger: {e}") from e
        except CannotOpen as e:
            raise self._err(f"cannot open ({e}); check the path and its permissions") from e
        except NoWal as e:
            raise self._err(f"cannot use write-ahead logging (journal mode {e.mode!r}); "
                            "put the ledger on a local disk") from e
        except sqlite3.Error as e:  # e.g. "file is not a database", from the first pragma
            raise self._failure(e, "opening") from e

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
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not names and self.read_only:
                raise self._err("is empty, not a ledger yet; nothing to read")
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
            # SQLite ends the transaction itself on some errors (a full disk): a ROLLBACK then
            # failed with "cannot rollback - no transaction is active" and hid the real error.
            if con.in_transaction:
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
            return "\n".join(integrity_problems(self.con)) or "ok"
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
