"""A console of an edition: anchors leased ahead from the shared ledger, mirrored on local disk.

Several consoles share one never-repeat ledger on PostgreSQL (postgres.py). A console
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

The screen's thread only ever touches the local mirror: taking a lease is one local commit
(~0.3 ms). Everything that talks to PostgreSQL - leasing (which calls the screen's proposal
function), reporting, reconnecting (1, 2, 4 ... 30 s apart) - runs in the console's lease
worker thread, so neither a slow network nor a dead one stalls the screen's frames. The worker
keeps `lease` faces per screen: briskly below half, one every REFILL_PAUSE_S above it (leasing
costs a proposal, which may render candidates, on the same CPU as the screens).

While the shared ledger is unreachable, claims come from the lease; when the lease of a screen
runs out, a claim waits up to `claim_wait` seconds for the worker, then fails with LedgerError
and the engine holds the last frame until the ledger answers (never repeating beats being
available).

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
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from passersby.stream.ledger.common import MAX_TRIES, LedgerCheck, LedgerError, LedgerStats, LedgerUnreachable
from passersby.stream.ledger.mirror import LeaseMirror
from passersby.stream.ledger.postgres import PgLedger, redact

log = logging.getLogger("passersby")

RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0  # reconnecting to the shared ledger: 1, 2, 4 ... 30 s apart
REFILL_PAUSE_S = 0.5  # between leases while a screen holds more than half its lease
CLAIM_WAIT_S = 10.0  # how long a claim with an empty lease waits for the worker
LEASE_FORMAT = "passersby-lease"


class LeasedLedger:
    """A console's ledger: claims from local leases, leased ahead from a shared PgLedger.

    A `Ledger` (protocol.py), with channels named by screen as on a single console. Claims and
    the reads of this console's own showings (`anchor` of a lease, `recent`) come from the
    mirror, so they work through an outage; `latest`, `stats` and `len` are the edition's when
    the shared ledger answers (they count the anchors leased ahead, too). What only the shared
    ledger knows (`contains_near`, `rng_states`, `rows_for_copy`, `copy_in`, `export`) raises
    LedgerError while it is unreachable: an answer from this console's leases alone would be wrong.

    Args:
        url: the shared ledger (postgresql://...).
        mirror: the console's lease mirror file (<home>/lease.sqlite).
        dim: anchor size.
        console: this console's name in the edition (unique per console).
        lease: anchors to keep leased ahead per screen (and model).
        channel: default channel; seed: as for SqliteLedger; connect_timeout: seconds.
        claim_wait: seconds a claim with an empty lease waits for the worker before failing.

    Raises:
        LedgerError: the mirror cannot be opened, or it is new and the shared ledger unreachable.

    Example:
        >>> with LeasedLedger(url, home / "lease.sqlite", 128, "gallery-1", 900) as led:  # doctest: +SKIP
        ...     anchor_id, z = led.claim("masculine", propose, model_hash)
    """

    def __init__(self, url: str, mirror: Path, dim: int, console: str, lease: int = 900, channel: str = "main", *,
                 seed: int | None = None, connect_timeout: float = 2.0, claim_wait: float = CLAIM_WAIT_S) -> None:
        if not console or "/" in console:
            raise ValueError(f"console must be a non-empty name without '/', got {console!r}")
        self.url, self.dim, self.console, self.lease = url, dim, console, max(1, int(lease))
        self.channel, self.seed, self.connect_timeout, self.claim_wait = channel, seed, connect_timeout, claim_wait
        self.where = f"{redact(url)} (leases in {mirror})"
        self.mirror = LeaseMirror(mirror, console)
        self._central: PgLedger | None = None
        self._central_lock = threading.RLock()  # one PostgreSQL connection, one user at a time
        self._cv = threading.Condition()  # wakes the worker; tells waiting claims a lease arrived
        self._screens: dict[str, tuple[Callable, str]] = {}  # channel -> (propose, model hash) to lease for
        self._retry_at, self._delay, self.down_why, self.error = 0.0, RETRY_FIRST_S, "", None
        self._closed, self._prune_at = False, 0.0
        self.last_state: dict[str, Any] | None = None  # for the health page: replaced whole
        self._connect()
        if self._central is None and not self.mirror.meta.get("format"):
            self.mirror.close()
            raise LedgerError(f"{self.where}: the shared ledger cannot be reached ({self.down_why}) and this "
                              "console holds no lease yet; check that PostgreSQL runs and the [ledger] url")
        self._dtype = np.dtype("<f2" if self.mirror.meta.get("z_dtype") == "float16" else "<f4")
        self._worker = threading.Thread(target=self._work, daemon=True, name=f"passersby-lease-{console}")
        self._worker.start()

    @property
    def shared(self) -> bool:
        """Whether the shared ledger answered at the last try."""
        return self._central is not None

    # ------------------------------------------------------------ the shared ledger, when it answers

    def _connect(self) -> None:
        try:
            led = PgLedger(self.url, self.dim, channel=self.channel, seed=self.seed, lease_console=self.console,
                           connect_timeout=self.connect_timeout)
        except LedgerError as e:
            self._went_down(e)
            return
        self.mirror.describe({"format": LEASE_FORMAT, "console": self.console, "dim": led.dim,
                              "z_dtype": "float16" if led.half else "float32", "ledger": redact(self.url)})
        if self.down_why:
            log.warning("console %s: the shared ledger answers again", self.console)
        self._central, self.down_why, self._delay = led, "", RETRY_FIRST_S

    def _went_down(self, e: Exception) -> None:
        if self._central is not None:
            self._central.close()
        self._central = None
        if not self.down_why:
            log.warning("console %s: the shared ledger is unreachable (%s); playing from the lease", self.console, e)
        self.down_why = str(e)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(RETRY_MAX_S, self._delay * 2)

    def _guard(self, fn: Callable[[PgLedger], Any]) -> Any:
        """fn(central) if it answers, else None; a database failure marks it down until the next retry."""
        with self._central_lock:
            if self._central is None and not self._closed and time.monotonic() >= self._retry_at:
                self._connect()
            central = self._central
            if central is None:
                return None
            try:
                return fn(central)
            except LedgerUnreachable as e:  # any other LedgerError is not an outage: it is raised
                self._went_down(e)
                return None

    # ------------------------------------------------------------ the screen's side

    def claim(self, channel: str | None, propose: Callable[[np.random.Generator], np.ndarray], model_hash: str,
              max_tries: int = MAX_TRIES) -> tuple[int, np.ndarray]:
        """The screen's next anchor from the lease, marked shown locally before it is returned.

        `propose` and `model_hash` are what the worker leases ahead with (its claims in the shared
        ledger try MAX_TRIES proposals each); `max_tries` is accepted for the `Ledger` interface
        and not used, as this call only takes what was leased.

        Raises:
            LedgerError: the lease is used up and the worker could not lease more within claim_wait.
        """
        ch = f"{self.console}/{self.channel if channel is None else channel}"
        with self._cv:
            self._screens[ch] = (propose, model_hash)
        if self.mirror.has_other_models(ch, model_hash):
            n = self.mirror.give_back(ch, except_model=model_hash)
            log.warning("console %s: %d leases of %s were for another model; returned", self.console, n, ch)
        got = self.mirror.take(ch, model_hash)
        deadline = time.monotonic() + self.claim_wait
        with self._cv:
            self._cv.notify_all()  # report this showing, lease the next
            while got is None and time.monotonic() < deadline and not self._closed:
                self._cv.notify_all()  # again: the worker may have been busy at the first one
                self._cv.wait(0.1)
                got = self.mirror.take(ch, model_hash)
        if got is None:
            why = f"leasing failed: {self.error}" if self.error else (self.down_why or "it does not answer")
            raise LedgerError(f"{self.where}: no lease left for {ch} and the shared ledger cannot lease more "
                              f"({why}); no new face until it does")
        self.last_state = {"leases_left": self.mirror.count(ch, model_hash), "shared": self.shared, "why": self.down_why}
        return int(got[0]), np.frombuffer(got[1], self._dtype).astype(np.float32)

    # ------------------------------------------------------------ the worker's side

    def _work(self) -> None:
        """Report showings, lease ahead, reconnect: every time a claim wakes it, or each second."""
        while not self._closed:
            with self._cv:
                self._cv.wait(1.0)
                screens = list(self._screens.items())
            if self._closed:
                break
            self.sync()
            for ch, (propose, model_hash) in screens:
                self._refill(ch, propose, model_hash)

    def _refill(self, ch: str, propose: Callable, model_hash: str) -> None:
        while not self._closed:
            try:
                n = self._guard(lambda c: self._lease_if_short(c, ch, propose, model_hash, worker=True))
                if n is None or n >= self.lease:
                    return
                self.error = None
            except (LedgerError, ValueError) as e:  # the proposals, not the database: say so, retry later
                if str(e) != str(self.error):
                    log.error("console %s: cannot lease for %s: %s", self.console, ch, e)
                self.error = e
                return
            with self._cv:
                self._cv.notify_all()  # a claim may be waiting for it
            if n + 1 > self.lease // 2:  # no hurry: leave the CPU to the screens
                with self._cv:
                    self._cv.wait(REFILL_PAUSE_S)

    def _lease_if_short(self, central: PgLedger, ch: str, propose: Callable, model_hash: str,
                        worker: bool = False) -> int:
        """Lease one more for the screen if it holds fewer than `lease` (under the central lock, so
        the worker and `fill` never overshoot); returns how many it held before."""
        n = self.mirror.count(ch, model_hash)
        if n >= self.lease or (worker and self._screens.get(ch) != (propose, model_hash)):
            return self.lease  # full, or the screen moved on (another model, returned)
        anchor_id, z = central.claim(ch, propose, model_hash)
        self.mirror.add(anchor_id, ch, central._stored(z).tobytes(), model_hash)
        return n

    def fill(self, channel: str, propose: Callable, model_hash: str) -> int:
        """Lease until the screen's lease is full, in the caller's thread (tools, tests); returns the leases held."""
        ch = f"{self.console}/{channel}"
        while (n := self._guard(lambda c: self._lease_if_short(c, ch, propose, model_hash))) is not None:
            if n >= self.lease:
                break
        return self.mirror.count(ch, model_hash)

    def give_back(self, channel: str | None = None) -> int:
        """Return every unused lease (or a screen's): marked locally first, reported when reachable."""
        with self._cv:  # the worker must not lease them again at once
            self._screens = {} if channel is None else {k: v for k, v in self._screens.items()
                                                         if k != f"{self.console}/{channel}"}
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
            rows = [{"id": i, "channel": ch, "model_hash": m, "shown_at": at} for i, ch, _, m, at in self.mirror.shown(None, n)]
        return rows

    def recent(self, channel: str | None = None, n: int = 1) -> list[tuple[int, np.ndarray]]:
        ch = f"{self.console}/{self.channel if channel is None else channel}"
        return [(int(r[0]), np.frombuffer(r[2], self._dtype).astype(np.float32)) for r in reversed(self.mirror.shown(ch, n))]

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
        return LedgerCheck(count=central.count if central is not None else 0, problems=tuple(problems),
                           notes=central.notes if central is not None else ())

    def _agrees(self) -> list[str]:
        """Every lease in the mirror is this console's lease in the shared ledger, with the same z."""
        local = self.mirror.rows()
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

    # ------------------------------------------------------------ what only the shared ledger knows

    def _required(self, fn: Callable[[PgLedger], Any], what: str) -> Any:
        """fn(central), reconnecting at once if it is down; LedgerError when it cannot be reached.

        Unlike `_guard`, a failure is raised, not swallowed: these calls have no local answer.
        It does not mark the shared ledger down either: a failed call closed the PgLedger's
        connection, its next call reconnects, and the worker's `_guard` notices a real outage.
        """
        with self._central_lock:
            if self._central is None and not self._closed:
                self._connect()
            if self._central is None:
                why = "closed" if self._closed else (self.down_why or "reconnecting")
                raise LedgerError(f"{self.where}: the shared ledger cannot be reached ({why}); {what} needs it")
            return fn(self._central)

    def contains_near(self, z: np.ndarray) -> bool:
        """Whether an anchor of the edition (any console's, shown or leased ahead) is identical or
        closer than the threshold to z: the shared ledger's answer.

        Raises:
            LedgerError: the shared ledger cannot be reached; this console's leases alone cannot
                tell that no other console recorded a near anchor.
        """
        return self._required(lambda c: c.contains_near(z), "a near search")

    def rng_states(self) -> dict[str, tuple[str, int, int, float, float]]:
        """Every channel's RNG row in the shared ledger (all consoles, "<console>/<screen>")."""
        return self._required(lambda c: c.rng_states(), "reading the RNG states")

    def rows_for_copy(self) -> Iterator[list[tuple]]:
        """Every anchor of the shared ledger, as PgLedger.rows_for_copy (ledger migrate)."""
        # The lock is held while the batches stream: they come from a server-side cursor on the
        # one connection, which the worker must not use meanwhile.
        with self._central_lock:
            yield from self._required(lambda c: c.rows_for_copy(), "copying the ledger")

    def copy_in(self, rows: Iterable[list[tuple]], rng: dict[str, tuple]) -> int:
        """Copy another ledger into the shared ledger, as PgLedger.copy_in (which must be empty)."""
        return self._required(lambda c: c.copy_in(rows, rng), "migrating")

    def integrity_check(self) -> str:
        """The mirror's SQLite integrity check and the shared ledger's own: "ok", the findings one
        per line, or "unchecked: <why>" when the shared ledger cannot be reached or checked."""
        try:
            local = [f"lease mirror {self.mirror.path}: {p}" for p in self.mirror.integrity()]
        except sqlite3.Error as e:
            local = [f"lease mirror {self.mirror.path}: integrity_check failed: {e}"]
        central = self._guard(lambda c: c.integrity_check())
        if central is None:
            central = f"unchecked: the shared ledger cannot be reached ({self.down_why or 'reconnecting'})"
        if not local:
            return central
        return "\n".join(local + ([] if central == "ok" or central.startswith("unchecked:") else [central]))

    def close(self) -> None:
        """Stop the worker, report what can be reported, close both stores (leases are kept). Idempotent."""
        with self._cv:
            if self._closed and not self._worker.is_alive() and self.mirror.closed:
                return
            self._closed = True
            self._cv.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=self.connect_timeout * 3 + 5)
        try:
            self.sync()
        except LedgerError:
            pass
        with self._central_lock:
            if self._central is not None:
                self._central.close()
                self._central = None
        self.mirror.close()

    def __enter__(self) -> "LeasedLedger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
