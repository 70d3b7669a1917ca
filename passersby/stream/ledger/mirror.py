"""A console's leases on its own disk: the mirror of what the shared ledger leased to it.

One SQLite file per console (`<home>/lease.sqlite`, WAL, synchronous=FULL): table `lease` (id =
the shared ledger's anchor id, channel "<console>/<screen>", z as stored, model, state leased /
shown / returned, when, reported to the shared ledger or not). The protocol is in
leased.py; this module only keeps the rows, durably, safe to use from two threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from passersby.atomic import fsync_dir
from passersby.sqlite_open import integrity_problems, open_sqlite
from passersby.stream.ledger.common import LedgerError

KEEP_DAYS = 7.0  # reported shown / returned leases kept locally this long (then PostgreSQL's record suffices)

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, z BLOB NOT NULL, "
    "model_hash TEXT NOT NULL, leased_at REAL NOT NULL, state TEXT NOT NULL "
    "CHECK (state IN ('leased', 'shown', 'returned')), at REAL, reported INTEGER NOT NULL DEFAULT 1)",
    "CREATE INDEX IF NOT EXISTS lease_channel ON lease (channel, state, id)",
    "CREATE INDEX IF NOT EXISTS lease_unreported ON lease (reported) WHERE reported = 0",
]


class LeaseMirror:
    """The console's leases in a local SQLite file; ids are the shared ledger's anchor ids.

    Args:
        path: the mirror file (created if missing).
        console: this console's name (recorded; a mirror belongs to one console).
    """

    def __init__(self, path: Path, console: str) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise LedgerError(f"{self.path}: its directory does not exist; create the home first")
        try:
            # synchronous=FULL: a `shown` mark survives power loss. threads: the screen's thread and
            # the lease worker share the connection under self.lock. require_wal=False: the
            # mirror has always accepted whatever journal mode SQLite kept (unlike the ledger).
            self.con = open_sqlite(self.path, busy_timeout_s=30.0, threads=True, require_wal=False)
            for stmt in _SCHEMA:
                self.con.execute(stmt)
            self.meta = dict(self.con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: cannot open the lease mirror ({e}); check the disk and permissions") from e
        if self.meta.get("console") not in (None, console):
            raise LedgerError(f"{self.path}: holds the leases of console {self.meta['console']!r}, not {console!r}; "
                              "each console needs its own home (or set [ledger] console back)")
        fsync_dir(self.path.parent)
        # The screen's thread takes leases, the lease worker adds and reports them: one
        # connection, one lock, so neither runs a statement inside the other's transaction.
        self.lock = threading.RLock()
        self.closed = False

    def _q(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        with self.lock:
            return self.con.execute(sql, args).fetchall()

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn in one write transaction (BEGIN IMMEDIATE ... COMMIT, fsynced)."""
        with self.lock:
            return self._tx_locked(fn)

    def _tx_locked(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self.con)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            return out
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: lease mirror write failed ({e}); check disk space") from e

    def describe(self, meta: dict[str, Any]) -> None:
        """Record what the leases are (dim, precision, console, shared ledger) the first time."""
        if not self.meta.get("format"):
            self._tx(lambda c: c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items()))
            self.meta = dict(self._q("SELECT key, value FROM meta"))

    def add(self, anchor_id: int, channel: str, raw: bytes, model_hash: str) -> None:
        self._tx(lambda c: c.execute("INSERT INTO lease (id, channel, z, model_hash, leased_at, state) "
                                     "VALUES (?, ?, ?, ?, ?, 'leased')", (anchor_id, channel, raw, model_hash, time.time())))

    def take(self, channel: str, model_hash: str) -> tuple[int, bytes] | None:
        """The channel's oldest unused lease, marked shown (durably) before it is returned."""
        def fn(c: sqlite3.Connection):
            row = c.execute("SELECT id, z FROM lease WHERE channel = ? AND state = 'leased' AND model_hash = ? "
                            "ORDER BY id LIMIT 1", (channel, model_hash)).fetchone()
            if row is not None:
                c.execute("UPDATE lease SET state = 'shown', at = ?, reported = 0 WHERE id = ?", (time.time(), row[0]))
            return row
        return self._tx(fn)

    def count(self, channel: str, model_hash: str) -> int:
        return self._q("SELECT count(*) FROM lease WHERE channel = ? AND state = 'leased' AND model_hash = ?",
                       (channel, model_hash))[0][0]

    def has_other_models(self, channel: str, model_hash: str) -> bool:
        return bool(self._q("SELECT 1 FROM lease WHERE channel = ? AND state = 'leased' AND model_hash != ? LIMIT 1",
                            (channel, model_hash)))

    def give_back(self, channel: str | None = None, except_model: str | None = None) -> int:
        """Mark unused leases returned (all, or a channel's, or those of another model); returns how many."""
        sql, args = "UPDATE lease SET state = 'returned', at = ?, reported = 0 WHERE state = 'leased'", [time.time()]
        if channel is not None:
            sql, args = sql + " AND channel = ?", args + [channel]
        if except_model is not None:
            sql, args = sql + " AND model_hash != ?", args + [except_model]
        return self._tx(lambda c: c.execute(sql, args).rowcount)

    def unreported(self, limit: int = 1000) -> dict[str, list[tuple[int, float]]]:
        rows = self._q("SELECT id, state, at FROM lease WHERE reported = 0 ORDER BY id LIMIT ?", (limit,))
        out: dict[str, list[tuple[int, float]]] = {"shown": [], "returned": []}
        for i, state, at in rows:
            out[state].append((i, at))
        return out

    def reported(self, ids: list[int]) -> None:
        self._tx(lambda c: c.executemany("UPDATE lease SET reported = 1 WHERE id = ?", [(i,) for i in ids]))

    def prune(self, keep_days: float = KEEP_DAYS) -> int:
        """Forget leases shown or returned more than keep_days ago and already reported (the
        shared ledger holds them); the mirror stays bounded. Unused and unreported ones stay."""
        cutoff = time.time() - keep_days * 86_400
        return self._tx(lambda c: c.execute("DELETE FROM lease WHERE reported = 1 AND state != 'leased' AND at < ?",
                                            (cutoff,)).rowcount)

    def z_of(self, anchor_id: int) -> bytes | None:
        rows = self._q("SELECT z FROM lease WHERE id = ?", (int(anchor_id),))
        return rows[0][0] if rows else None

    def counts(self) -> dict[str, int]:
        out = {"leased": 0, "shown": 0, "returned": 0, "unreported": 0}
        out.update(dict(self._q("SELECT state, count(*) FROM lease GROUP BY state")))
        out["unreported"] = self._q("SELECT count(*) FROM lease WHERE reported = 0")[0][0]
        return out

    def integrity(self) -> list[str]:
        """SQLite's integrity check of the mirror: its findings, [] when ok."""
        with self.lock:
            return integrity_problems(self.con)

    def check(self) -> list[str]:
        problems = [f"lease mirror {self.path}: {p}" for p in self.integrity()]
        size = int(self.meta.get("dim", 0)) * (2 if self.meta.get("z_dtype") == "float16" else 4)
        bad = self._q("SELECT count(*) FROM lease WHERE length(z) != ?", (size,))[0][0]
        if bad:
            problems.append(f"lease mirror {self.path}: {bad} leases whose z is not {size} bytes")
        return problems

    def shown(self, channel: str | None = None, n: int = 48) -> list[tuple]:
        """(id, channel, z, model_hash, at) of the latest shown leases, newest first."""
        where, args = ("AND channel = ?", (channel, n)) if channel is not None else ("", (n,))
        return self._q(f"SELECT id, channel, z, model_hash, at FROM lease WHERE state = 'shown' {where} "
                       "ORDER BY id DESC LIMIT ?", args)

    def rows(self) -> list[tuple]:
        """(id, z, state, reported) of every lease (audits)."""
        return self._q("SELECT id, z, state, reported FROM lease")

    def close(self) -> None:
        with self.lock:
            self.con.close()
            self.closed = True

    def __enter__(self) -> "LeaseMirror":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
