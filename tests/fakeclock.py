"""A clock for the engine's pacer that moves only when the pacer sleeps, so that tests can check
pacing (intervals, frames per second, heartbeats) exactly, whatever the machine's load.

Timings on the real clock belong in benchmarks/ (benchmarks/stream.py measures the live pacer).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable


class SteppedClock:
    """Monotonic seconds that advance by exactly what `sleep` is asked for.

    - `ready`: a predicate (e.g. "every screen has a frame queued"); `sleep` waits in real time
      until it holds (at most `patience` s), so no tick finds a queue empty because the machine
      was slow: the test sees the pacer's arithmetic, not the scheduler's.
    - `limit`: the clock never passes it; a sleep that would, blocks until `advance_to` raises
      it (or `release`), so a test can look at the pacer at an exact moment (`wait_blocked`).

    Each sleep also sleeps a little in real time, so a paused pacer does not spin.

    Args:
        start: the clock's first reading.
        ready: see above; None: always ready.
        patience: real seconds `sleep` waits for `ready` before it goes on anyway.

    Example:
        >>> clock = SteppedClock(start=10.0)
        >>> clock.sleep(0.5); clock()
        10.5
    """

    def __init__(self, start: float = 1000.0, ready: Callable[[], bool] | None = None,
                 patience: float = 5.0) -> None:
        self.t = float(start)
        self.ready = ready
        self.patience = patience
        self.limit = math.inf
        self._cond = threading.Condition()
        self._blocked = False

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        time.sleep(0.001)
        deadline = time.monotonic() + self.patience
        while self.ready is not None and not self.ready() and time.monotonic() < deadline:
            time.sleep(0.001)
        with self._cond:
            while self.t + seconds > self.limit:
                self._blocked = True
                self._cond.notify_all()
                self._cond.wait(0.05)
            self._blocked = False
            self.t += seconds

    def advance_to(self, limit: float) -> None:
        """Let the clock run up to `limit` (it stops there until raised again)."""
        with self._cond:
            self.limit = limit
            self._blocked = False
            self._cond.notify_all()

    def release(self) -> None:
        """No limit any more (before stopping an engine whose pacer may be blocked)."""
        self.advance_to(math.inf)

    def wait_blocked(self, timeout: float = 30.0) -> None:
        """Wait (real time) until a sleeper is held at the limit; AssertionError if none is."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._blocked, timeout):
                raise AssertionError(f"the clock never reached {self.limit} (now {self.t})")
