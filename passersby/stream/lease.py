"""A console of an edition: anchors leased ahead from the shared ledger, mirrored on local disk.

Several consoles share one never-repeat ledger on PostgreSQL (stream/ledger_pg.py). A console
must keep showing new faces through a network or database outage, so it claims anchors ahead
(a *lease*) and plays from them:

1. Leasing: a claim in the shared ledger, on channel "<console>/<screen>", recorded there as
   leased to this console in the same transaction; then written to the local mirror
   (`<home>/lease.sqlite`, SQLite, WAL, synchronous=FULL) as `leased`. A crash between the two
   loses the lease: it stays on the do-not-use list, never shown by anyone.
2. Showing: the oldest `leased` row of the channel is marked `shown` in the mirror (a durable
   local commit) before the anchor is returned, i.e. before a pixel of it is rendered. So a
   console never shows a leased anchor twice, and never shows one it has not leased.
3. Reporting: `shown` marks are sent to the shared ledger when it is reachable (batched, idempotent).
4. Returning: an unused lease is first marked `returned` in the mirror (from then on it cannot
   be shown), then reported. Only leases the mirror holds as never shown can be returned: the
   proof is the durable local record written before any showing. (Returned anchors stay on the
   do-not-use list.) Leases are returned when the screen's model changes and by
   `passersby ledger return`; a restart keeps its leases (that is what lets it start during an
   outage).

While the shared ledger is unreachable, claims come from the lease; when the lease of a screen
runs out, claims fail with LedgerError and the engine holds the last frame until the ledger
answers (never repeating beats being available). Reconnecting happens in a background thread,
so a dead network never stalls the screen's frames on a connect.

Example:
    >>> led = LeasedLedger("postgresql:///passersby?host=/run/postgresql", home / "lease.sqlite", 128,  # doctest: +SKIP
    ...                    console="gallery-1", lease=600)
    >>> anchor_id, z = led.claim("masculine", propose, model_hash)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from passersby.atomic import fsync_dir
from passersby.stream.ledger_core import LedgerCheck, LedgerError, LedgerStats
from passersby.stream.ledger_pg import PgLedger, redact

log = logging.getLogger("passersby")

KEEP_DAYS = 7.0  # reported shown / returned leases kept locally this long (then PostgreSQL's record suffices)
TOP_UP_BUDGET_S = 0.05  # per claim, time spent leasing more (at least one lease when short)
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0  # reconnecting to the shared ledger: 1, 2, 4 ... 30 s apart
LEASE_FORMAT = "passersby-lease"

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
            self.con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=FULL")  # a `shown` mark survives power loss
            for stmt in _SCHEMA:
                self.con.execute(stmt)
            self.meta = dict(self.con.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: cannot open the lease mirror ({e}); check the disk and permissions") from e
        if self.meta.get("console") not in (None, console):
            raise LedgerError(f"{self.path}: holds the leases of console {self.meta['console']!r}, not {console!r}; "
                              "each console needs its own home (or set [ledger] console back)")
        fsync_dir(self.path.parent)

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn in one write transaction (BEGIN IMMEDIATE ... COMMIT, fsynced)."""
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
            self.meta = dict(self.con.execute("SELECT key, value FROM meta"))

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
        return self.con.execute("SELECT count(*) FROM lease WHERE channel = ? AND state = 'leased' AND model_hash = ?",
                                (channel, model_hash)).fetchone()[0]

    def give_back(self, channel: str | None = None, except_model: str | None = None) -> int:
        """Mark unused leases returned (all, or a channel's, or those of another model); returns how many."""
        sql, args = "UPDATE lease SET state = 'returned', at = ?, reported = 0 WHERE state = 'leased'", [time.time()]
        if channel is not None:
            sql, args = sql + " AND channel = ?", args + [channel]
        if except_model is not None:
            sql, args = sql + " AND model_hash != ?", args + [except_model]
        return self._tx(lambda c: c.execute(sql, args).rowcount)

    def unreported(self, limit: int = 1000) -> dict[str, list[tuple[int, float]]]:
        rows = self.con.execute("SELECT id, state, at FROM lease WHERE reported = 0 ORDER BY id LIMIT ?", (limit,))
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
        row = self.con.execute("SELECT z FROM lease WHERE id = ?", (int(anchor_id),)).fetchone()
        return None if row is None else row[0]

    def counts(self) -> dict[str, int]:
        out = {"leased": 0, "shown": 0, "returned": 0, "unreported": 0}
        out.update(dict(self.con.execute("SELECT state, count(*) FROM lease GROUP BY state")))
        out["unreported"] = self.con.execute("SELECT count(*) FROM lease WHERE reported = 0").fetchone()[0]
        return out

    def check(self) -> list[str]:
        problems = [f"lease mirror {self.path}: {r[0]}" for r in self.con.execute("PRAGMA integrity_check") if r[0] != "ok"]
        size = int(self.meta.get("dim", 0)) * (2 if self.meta.get("z_dtype") == "float16" else 4)
        bad = self.con.execute("SELECT count(*) FROM lease WHERE length(z) != ?", (size,)).fetchone()[0]
        if bad:
            problems.append(f"lease mirror {self.path}: {bad} leases whose z is not {size} bytes")
        return problems

    def close(self) -> None:
        self.con.close()


class LeasedLedger:
    """A console's ledger: claims from local leases, leased ahead from a shared PgLedger.

    Implements the ledger's claim and read interface (claim, anchor, latest, recent, stats,
    check, export, close), with channels named by screen as on a single console.

    Args:
        url: the shared ledger (postgresql://...).
        mirror: the console's lease mirror file (<home>/lease.sqlite).
        dim: anchor size.
        console: this console's name in the edition (unique per console).
        lease: anchors to keep leased ahead per screen (and model).
        channel: default channel; seed: as for Ledger; connect_timeout: seconds.
        central: an open PgLedger to use (tests, tools); None: connect to `url`.

    Raises:
        LedgerError: the mirror cannot be opened, or it is new and the shared ledger unreachable.
    """

    def __init__(self, url: str, mirror: Path, dim: int, console: str, lease: int = 600, channel: str = "main", *,
                 seed: int | None = None, connect_timeout: float = 2.0, central: PgLedger | None = None) -> None:
        if not console or "/" in console:
            raise ValueError(f"console must be a non-empty name without '/', got {console!r}")
        self.url, self.dim, self.console, self.lease = url, dim, console, max(1, int(lease))
        self.channel, self.seed, self.connect_timeout = channel, seed, connect_timeout
        self.where = f"{redact(url)} (leases in {mirror})"
        self.mirror = LeaseMirror(mirror, console)
        self._central: PgLedger | None = central
        self._lock = threading.Lock()
        self._retry_at, self._delay = 0.0, RETRY_FIRST_S
        self._connecting: threading.Thread | None = None
        self.down_why = ""
        self.last_state: dict[str, Any] | None = None
        self._prune_at = 0.0
        if self._central is None:
            self._connect_now()
        if self._central is not None:
            self._describe(self._central)
        elif not self.mirror.meta.get("format"):
            raise LedgerError(f"{self.where}: the shared ledger cannot be reached ({self.down_why}) and this "
                              "console holds no lease yet; check that PostgreSQL runs and the [ledger] url")
        self._dtype = np.dtype("<f2" if self.mirror.meta.get("z_dtype") == "float16" else "<f4")

    # ------------------------------------------------------------ the shared ledger, when it answers

    def _open_central(self) -> PgLedger:
        return PgLedger(self.url, self.dim, channel=self.channel, seed=self.seed, lease_console=self.console,
                        connect_timeout=self.connect_timeout)

    def _connect_now(self) -> None:
        try:
            self._central = self._open_central()
        except LedgerError as e:
            self._went_down(e)

    def _describe(self, central: PgLedger) -> None:
        self.mirror.describe({"format": LEASE_FORMAT, "console": self.console, "dim": central.dim,
                              "z_dtype": "float16" if central.half else "float32", "ledger": redact(self.url)})

    def _went_down(self, e: Exception) -> None:
        if self._central is not None:
            self._central.close()
        self._central = None
        if not self.down_why:
            log.warning("console %s: the shared ledger is unreachable (%s); playing from the lease", self.console, e)
        self.down_why = str(e)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(RETRY_MAX_S, self._delay * 2)

    def central(self) -> PgLedger | None:
        """The shared ledger if connected; otherwise start a background reconnect when due."""
        with self._lock:
            if self._central is not None:
                return self._central
            if time.monotonic() >= self._retry_at and (self._connecting is None or not self._connecting.is_alive()):
                self._connecting = threading.Thread(target=self._reconnect, daemon=True, name="passersby-ledger-connect")
                self._connecting.start()
        return None

    def _reconnect(self) -> None:
        try:
            led = self._open_central()
        except LedgerError as e:
            with self._lock:
                self._went_down(e)
            return
        with self._lock:
            self._central, self.down_why, self._delay = led, "", RETRY_FIRST_S
            log.warning("console %s: the shared ledger answers again", self.console)

    def _guard(self, fn: Callable[[PgLedger], Any]) -> Any:
        """fn(central) if connected, else None; a failure marks the shared ledger down (and returns None)."""
        central = self.central()
        if central is None:
            return None
        try:
            return fn(central)
        except LedgerError as e:
            if central._con is not None:  # a database failure closes the connection; this was not one
                raise
            with self._lock:
                self._went_down(e)
            return None

    # ------------------------------------------------------------ claiming

    def claim(self, channel: str | None, propose: Callable[[np.random.Generator], np.ndarray], model_hash: str,
              max_tries: int | None = None) -> tuple[int, np.ndarray]:
        """The screen's next anchor from the lease (marked shown locally first), leasing more
        while the shared ledger answers.

        Raises:
            LedgerError: the lease is used up and the shared ledger cannot be reached.
        """
        ch = f"{self.console}/{self.channel if channel is None else channel}"
        self._give_back_other_models(ch, model_hash)
        got = self.mirror.take(ch, model_hash)
        if got is None:
            if self._guard(lambda c: self._lease_one(c, ch, propose, model_hash)) is None:
                raise LedgerError(f"{self.where}: no lease left for {ch} and the shared ledger cannot be reached "
                                  f"({self.down_why or 'reconnecting'}); no new face until it answers")
            got = self.mirror.take(ch, model_hash)
        self._top_up(ch, propose, model_hash)
        self.sync()  # this showing (and any earlier ones not yet reported), while the database answers
        # read by the health page from another thread: a plain dict, replaced whole
        self.last_state = {"leases_left": self.mirror.count(ch, model_hash), "shared": self._central is not None,
                           "why": self.down_why}
        return int(got[0]), np.frombuffer(got[1], self._dtype).astype(np.float32)

    def _lease_one(self, central: PgLedger, ch: str, propose: Callable, model_hash: str) -> int:
        anchor_id, z = central.claim(ch, propose, model_hash)
        self.mirror.add(anchor_id, ch, central._stored(z).tobytes(), model_hash)
        return anchor_id

    def _top_up(self, ch: str, propose: Callable, model_hash: str) -> None:
        """Lease more for this screen while short of `lease`, for at most TOP_UP_BUDGET_S (one at least)."""
        start = time.perf_counter()
        while self.mirror.count(ch, model_hash) < self.lease:
            if self._guard(lambda c: self._lease_one(c, ch, propose, model_hash)) is None:
                return
            if time.perf_counter() - start > TOP_UP_BUDGET_S:
                return

    def fill(self, channel: str, propose: Callable, model_hash: str) -> int:
        """Lease until the screen's lease is full (tools, benchmarks); returns the leases held."""
        ch = f"{self.console}/{channel}"
        while self.mirror.count(ch, model_hash) < self.lease:
            if self._guard(lambda c: self._lease_one(c, ch, propose, model_hash)) is None:
                break
        return self.mirror.count(ch, model_hash)

    def _give_back_other_models(self, ch: str, model_hash: str) -> None:
        if self.mirror.con.execute("SELECT 1 FROM lease WHERE channel = ? AND state = 'leased' AND model_hash != ? "
                                   "LIMIT 1", (ch, model_hash)).fetchone():
            n = self.mirror.give_back(ch, except_model=model_hash)
            log.warning("console %s: %d leases of %s were for another model; returned", self.console, n, ch)

    def give_back(self, channel: str | None = None) -> int:
        """Return every unused lease (or a screen's): marked locally first, reported when reachable."""
        n = self.mirror.give_back(None if channel is None else f"{self.console}/{channel}")
        self.sync()
        return n

    def sync(self) -> bool:
        """Report shown / returned marks to the shared ledger; True when nothing is left to report."""
        todo = self.mirror.unreported()
        if not todo["shown"] and not todo["returned"]:
            return True

        def report(c: PgLedger) -> bool:
            for state in ("shown", "returned"):
                if todo[state]:
                    c.set_lease_state(todo[state], state)
            self.mirror.reported([i for state in todo.values() for i, _ in state])
            if time.monotonic() > self._prune_at:  # hourly
                self.mirror.prune()
                self._prune_at = time.monotonic() + 3600
            return True
        return bool(self._guard(report))

    # ------------------------------------------------------------ reading

    def anchor(self, anchor_id: int) -> np.ndarray:
        raw = self.mirror.z_of(anchor_id)
        if raw is not None:
            return np.frombuffer(raw, self._dtype).astype(np.float32)
        out = self._guard(lambda c: c.anchor(anchor_id))
        if out is None:
            raise LedgerError(f"{self.where}: anchor {anchor_id} is not leased here and the shared ledger cannot "
                              "be reached")
        return out

    def latest(self, n: int = 48) -> list[dict[str, Any]]:
        """The edition's latest anchors (the shared ledger), else this console's shown leases."""
        rows = self._guard(lambda c: c.latest(n))
        if rows is None:
            rows = [{"id": i, "channel": ch, "model_hash": m, "shown_at": at} for i, ch, m, at in self.mirror.con.execute(
                "SELECT id, channel, model_hash, at FROM lease WHERE state = 'shown' ORDER BY id DESC LIMIT ?", (n,))]
        return rows

    def recent(self, channel: str | None = None, n: int = 1) -> list[tuple[int, np.ndarray]]:
        ch = f"{self.console}/{self.channel if channel is None else channel}"
        rows = self.mirror.con.execute("SELECT id, z FROM lease WHERE channel = ? AND state = 'shown' "
                                       "ORDER BY id DESC LIMIT ?", (ch, int(n))).fetchall()
        return [(int(i), np.frombuffer(z, self._dtype).astype(np.float32)) for i, z in reversed(rows)]

    def stats(self) -> LedgerStats:
        st = self._guard(lambda c: c.stats())
        if st is None:
            raise LedgerError(f"{self.where}: the shared ledger cannot be reached ({self.down_why or 'reconnecting'})")
        return st

    def __len__(self) -> int:
        st = self._guard(lambda c: c.stats())
        return st.count if st is not None else self.mirror.counts()["shown"]

    def leases(self) -> dict[str, Any]:
        """This console's mirror counts and, when reachable, the edition's leases per console."""
        return {"mirror": self.mirror.counts(), "edition": self._guard(lambda c: c.leases())}

    def check(self, deep: bool = False) -> LedgerCheck:
        """The shared ledger's audit plus the mirror's: integrity, and every local lease agreeing with it."""
        central = self._guard(lambda c: c.check(deep))
        problems = list(central.problems) if central is not None else [f"shared ledger unreachable: {self.down_why}"]
        problems += self.mirror.check()
        if central is not None:
            problems += self._agrees()
        return LedgerCheck(count=central.count if central is not None else 0, problems=tuple(problems))

    def _agrees(self) -> list[str]:
        """Every lease in the mirror is this console's lease in the shared ledger, with the same z."""
        local = self.mirror.con.execute("SELECT id, z, state, reported FROM lease").fetchall()
        if not local:
            return []

        def fetch(c: PgLedger):
            return {int(r[0]): r[1:] for r in c._read(
                "SELECT a.id, a.z, l.console, l.state FROM anchors a JOIN leases l ON l.anchor_id = a.id "
                "WHERE a.id = ANY(?::bigint[])", ([int(r[0]) for r in local],))}
        central = self._guard(fetch) or {}
        bad = []
        for i, z, state, reported in local:
            row = central.get(int(i))
            if row is None or bytes(row[0]) != bytes(z) or row[1] != self.console:
                bad.append(f"lease {i}: not this console's anchor in the shared ledger")
            elif reported and row[2] != state:
                bad.append(f"lease {i}: {state} here, {row[2]} in the shared ledger")
        return bad[:20]

    def export(self, path: str | Path) -> int:
        out = self._guard(lambda c: c.export(path))
        if out is None:
            raise LedgerError(f"{self.where}: the shared ledger cannot be reached; export needs it")
        return out

    def close(self) -> None:
        """Report what can be reported, close both stores (leases are kept for the next start)."""
        try:
            self.sync()
        except LedgerError:
            pass
        if self._central is not None:
            self._central.close()
            self._central = None
        self.mirror.close()

    def __enter__(self) -> "LeasedLedger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
