"""A screen's anchors: each call claims the channel's next never-used face in the ledger.

    source --anchors()--> LedgerAnchors --claim(channel, propose)--> Ledger (records, then returns)

The claim runs the screen's proposer, which may be expensive: a critic renders candidates and
judges them, the picture taste renders its best few candidates and looks at them (taste/steer.py,
~0.1-0.5 s of one core). In the producer thread that would stall the screen's frames once per
anchor, so such a screen claims **ahead** (`ahead=True`): one worker thread per screen makes every
claim (it owns the ledger connection: SQLite's stays in its thread) and keeps the next anchor
ready while the current one is shown; a call takes the ready one and starts the next.

Never repeating holds as before: an anchor is recorded in the ledger before it is returned, and
the one claimed ahead is recorded before any pixel of it exists. Stopping (or a crash) leaves the
anchor claimed ahead unused: it stays in the ledger, never shown (one face per stop, as a
console's unused lease, stream/ledger/leased.py). The anchors come in the same order from the same
RNG either way; only a proposer that reads live state (the taste refitted, a slider) reads it up to
one anchor earlier.

Example:
    >>> anchors = LedgerAnchors(home / "ledger.sqlite", 128, "masculine", propose, "9f2c", seed=0)  # doctest: +SKIP
    >>> z = anchors()  # (128,) float32, recorded  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from passersby.stream.ledger import Ledger, LedgerError, LedgerSpec, as_spec

log = logging.getLogger("passersby")

HOLD_FIRST_S, HOLD_MAX_S = 1.0, 30.0  # retries of a ledger that cannot record: 1, 2, 4 ... 30 s apart
SLOW_CLAIM_S = 2.0  # a claim running longer waits for the ledger (an edition's spent lease waits up to 10 s)
# After the ledger records again, the screen still shows its old frame until the source has claimed what it
# needs (a walk: several anchors, each a claim that may wait for a fresh lease) and rendered: for this long it
# is "resuming", not hung (health would otherwise call an old frame failing; seen in an edition's outage test).
RESUME_GRACE_S = 10.0


CLAIM_NICENESS = 10  # the claim thread's nice increment (Linux): frames first, the next face with what is left


def background_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: threads are tasks with their own nice value).

    A claim made ahead renders and reads candidates (a look, a screen's choice: up to ~1 s of a
    core) while the screen shows frames due every 33 ms; at equal priority it takes the cores
    from the frame producers exactly when a frame is due. At nice +10 the scheduler gives it
    about a tenth of a contended core, and all of an idle one; the claim has a whole anchor's
    time (seconds) to finish. Elsewhere (no per-thread nice) nothing changes.
    """
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + CLAIM_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted: the claim runs at normal priority
        pass


class LedgerAnchors:
    """A screen's anchors (sources.Anchors): each call claims the channel's next anchor in the ledger.

    Opened lazily in the thread that makes the first claim (an SQLite connection stays in its
    thread): the caller's, or with `ahead` the screen's claim thread.

    Args:
        ledger: the ledger (LedgerSpec or SQLite path).
        z_dim: latent size.
        channel: the screen's ledger channel.
        propose: rng -> (z_dim,) latent, the screen's proposer.
        model_hash: the rendering model (ledger rows).
        seed: seeds the channel's RNG the first time (None: OS entropy).
        hold: set while live: a claim the ledger cannot record is retried until it can.
        ahead: claim the next anchor in a worker thread while this one is shown (module docstring).
    """

    def __init__(self, ledger: LedgerSpec | Path, z_dim: int, channel: str, propose: Callable, model_hash: str,
                 seed: int | None, hold: threading.Event | None = None, ahead: bool = False) -> None:
        self.spec, self.z_dim, self.channel = as_spec(ledger), z_dim, channel
        self.propose, self.model_hash, self.seed = propose, model_hash, seed
        self.ledger: Ledger | None = None  # opened on the first claim
        self.by_position: dict[int, int] = {}  # walk anchor position -> ledger id (recent ones)
        self.claimed = 0  # anchors handed to the source (a claim made ahead counts when taken)
        # Set (by the engine, while it runs live): a claim the ledger cannot record (a full
        # disk, a locked database) is retried until it can, instead of ending the screen. No
        # new face is shown meanwhile - never repeating beats being available.
        self.hold = hold
        self.stop = threading.Event()
        self._failed = ""  # the last failed claim's error, while claims are retried
        self._claim_since: float | None = None  # monotonic start of the claim in progress
        self._taking_since: float | None = None  # ahead: since when the screen waits for the claim made ahead
        self._resumed_at: float | None = None  # when the ledger recorded again after failed claims
        self._worker = (ThreadPoolExecutor(1, thread_name_prefix=f"passersby-claims-{channel}",
                                           initializer=background_priority) if ahead else None)
        self._next: Future | None = None  # the claim made ahead
        self.claim_seconds: deque[float] = deque(maxlen=100)  # recent claims' durations (proposal + ledger)

    @property
    def ahead(self) -> bool:
        return self._worker is not None

    @property
    def resuming(self) -> bool:
        """Whether the ledger recorded again less than RESUME_GRACE_S ago, after failed claims: the
        screen's old frame may still be up while the source claims and renders (health: not hung)."""
        resumed = self._resumed_at
        return resumed is not None and time.monotonic() - resumed < RESUME_GRACE_S

    @property
    def waiting(self) -> str:
        """Why the screen waits for the ledger ("" when it does not): a failed claim being retried,
        or a claim that has not returned for SLOW_CLAIM_S (an edition console whose lease is spent
        waits inside the claim for the shared ledger). Health calls this degraded, not failing:
        the screen holds its frame by design and the process is well.

        Example:
            >>> LedgerAnchors(Path("/tmp/l.sqlite"), 4, "s", None, "h", 0).waiting
            ''
        """
        if self._failed:
            return self._failed
        # Ahead, a slow claim is only waited for when the screen asks for its face before it is ready.
        since = self._taking_since if self._worker is not None else self._claim_since
        if since is not None and time.monotonic() - since > SLOW_CLAIM_S:
            return f"the ledger has not answered a claim for {time.monotonic() - since:.0f} s"
        return ""

    def _claim(self) -> tuple[int, np.ndarray]:
        self._claim_since = since = time.monotonic()
        try:
            if self.ledger is None:
                self.ledger = self.spec.open(self.z_dim, self.channel, self.seed)
            got = self.ledger.claim(self.channel, self.propose, self.model_hash)
            self.claim_seconds.append(time.monotonic() - since)
            return got
        finally:
            self._claim_since = None

    def _claim_held(self) -> tuple[int, np.ndarray]:
        """One claim; while live (hold set), retried until the ledger records it."""
        delay = HOLD_FIRST_S
        while True:
            try:
                got = self._claim()
                break
            except LedgerError as e:
                if self.hold is None or not self.hold.is_set() or self.stop.is_set():
                    raise
                if not self._failed:
                    log.warning("screen %s: the ledger cannot record a new face (%s); no new face until it can", self.channel, e)
                self._failed = str(e)
                self._close_ledger()  # a fresh connection on the next try
                if self.stop.wait(delay):
                    raise
                delay = min(HOLD_MAX_S, delay * 2)
        if self._failed:
            log.warning("screen %s: the ledger records again; new faces resume", self.channel)
            self._resumed_at = time.monotonic()
            self._failed = ""
        return got

    def __call__(self) -> np.ndarray:
        if self._worker is None:
            anchor_id, z = self._claim_held()
        else:
            ready = self._next if self._next is not None else self._worker.submit(self._claim_held)
            self._next = None
            self._taking_since = time.monotonic()
            try:
                anchor_id, z = ready.result()  # a failed claim raises here, in the screen's thread
            finally:
                self._taking_since = None
            if not self.stop.is_set():
                self._next = self._worker.submit(self._claim_held)  # the next face, while this one shows
        # The source calls once per anchor, in order: call k is claim position k.
        self.by_position[self.claimed] = anchor_id
        self.claimed += 1
        return z

    def ledger_ids(self, positions: list[int]) -> list[int]:
        """Ledger ids of claim positions (forgetting older ones: memory stays bounded)."""
        out = [self.by_position[p] for p in positions]
        for old in [p for p in self.by_position if p < positions[0] - 8]:
            del self.by_position[old]
        return out

    def _close_ledger(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def close(self) -> None:
        """Close the ledger connection (in the thread that opened it); a claim made ahead stays unused."""
        if self._worker is None:
            self._close_ledger()
            return
        self.stop.set()  # a claim being retried gives up
        pending, self._next = self._next, None
        if pending is not None:
            try:
                pending.result()  # recorded, never shown (module docstring)
            except Exception as e:  # noqa: BLE001 - closing: the screen is ending anyway
                log.debug("screen %s: the claim made ahead failed at close: %s", self.channel, e)
        try:
            self._worker.submit(self._close_ledger).result()
        except RuntimeError:  # already shut down: closed before
            pass
        self._worker.shutdown(wait=True)
