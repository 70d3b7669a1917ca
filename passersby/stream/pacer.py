"""The pacer: one frame per screen every 1/fps seconds from the producers' queues to the hub.

It also measures what it shows (frame intervals in a fixed-size ring, the worst interval and
when, frames per second) and beats a heartbeat about once a second for a service manager's
watchdog (app/service.py): a hung pacer stops the beats, a slow frame does not.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # an interface, not the engine module: engine -> pacer runs one way
    from passersby.stream.running import Running

log = logging.getLogger("passersby")

HEARTBEAT_S = 1.0
INTERVALS_KEPT = 200_000  # per screen: the last ~1.9 hours at 30 fps, 1.6 MB


class Ring:
    """The last `capacity` floats, in a preallocated array: memory is the same after a minute
    and after a year (a deque of Python floats grew ~2 KB/s until its bound).

    Example:
        >>> r = Ring(3); [r.append(x) for x in (1.0, 2.0, 3.0, 4.0)] and None
        >>> sorted(r.values().tolist())
        [2.0, 3.0, 4.0]
    """

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(int(capacity), np.float64)
        self.n = 0  # values appended so far

    def append(self, value: float) -> None:
        self.data[self.n % len(self.data)] = value
        self.n += 1

    def values(self) -> np.ndarray:
        return self.data[:min(self.n, len(self.data))]

    def __len__(self) -> int:
        return min(self.n, len(self.data))

    def __iter__(self):
        return iter(self.values())


class Pacer(threading.Thread):
    """Publishes one frame per screen every 1/fps seconds; measures what it shows.

    Args:
        engine: the running engine (stream/running.Running: its rate, events, hub, heartbeat
            hook and per screen the queue of frames rendered ahead).
        clock: monotonic seconds; every time the pacer reads, stamps or measures is on it.
        sleep: waits that many seconds of `clock`. Both are injected so that a test can run the
            pacer on a clock of its own (exact intervals, whatever the machine's load).

    Example:
        >>> pacer = Pacer(engine, clock=time.monotonic, sleep=time.sleep)  # a running engine  # doctest: +SKIP
        >>> pacer.start(); pacer.stats()["fps"]  # a running engine  # doctest: +SKIP
        {'masculine': 30.0, 'feminine': 30.0}
    """

    def __init__(self, engine: Running, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name="passersby-pacer", daemon=True)
        self.engine = engine
        self.clock, self.sleep = clock, sleep
        self.period = 1.0 / engine.fps
        self.stop_event = threading.Event()
        names = engine.screens
        self.shown = {n: 0 for n in names}
        self.late = {n: 0 for n in names}
        self.last_shown: dict[str, float] = {}
        self.intervals = {n: Ring(INTERVALS_KEPT) for n in names}
        self.recent: dict[str, deque[float]] = {n: deque(maxlen=int(2 * engine.fps) + 1) for n in names}
        self.started = clock()
        # The longest interval per screen and when it ended (monotonic s, frame shown): where a hitch was.
        self.worst: dict[str, tuple[float, float, int]] = {}
        self.last_beat = -HEARTBEAT_S

    def _beat(self) -> None:
        """At most once a HEARTBEAT_S, tell `engine.heartbeat` the pacer is alive (a service
        manager's watchdog: a hung pacer stops the beats, a slow frame does not)."""
        now = self.clock()
        beat = self.engine.heartbeat
        if beat is not None and now - self.last_beat >= HEARTBEAT_S:
            self.last_beat = now
            try:
                beat()
            except Exception as e:  # noqa: BLE001 - a broken hook must not stop the show
                log.warning("heartbeat failed: %s", e)

    def run(self) -> None:
        next_t = self.clock()
        while not self.stop_event.is_set() and not self.engine.quit_event.is_set():
            self._beat()
            if self.engine.paused.is_set() or self.engine.asleep.is_set():
                self.sleep(self.period)
                next_t = self.clock()
                self.last_shown.clear()  # a pause is not a slow frame
                continue
            self._tick()
            next_t += self.period
            delay = next_t - self.clock()
            if delay > 0:
                self.sleep(delay)
            elif delay < -self.period:  # fell behind by more than a frame: do not burst to catch up
                next_t = self.clock()

    def _tick(self) -> None:
        now = self.clock()
        for p in self.engine.producers:
            name = p.plan.name
            try:
                frame = p.frames.take_ready()  # (a frame dropped at a change stands in for a late one)
            except queue.Empty:
                self.late[name] += 1
                continue
            self.engine.hub.publish(dataclasses.replace(frame, shown_at=now))
            if name in self.last_shown:
                gap = now - self.last_shown[name]
                self.intervals[name].append(gap)
                if gap > self.worst.get(name, (0.0,))[0]:
                    self.worst[name] = (gap, now, frame.index)
            self.last_shown[name] = now
            self.recent[name].append(now)
            self.shown[name] += 1

    def stats(self) -> dict[str, Any]:
        fps = {}
        for n, r in self.recent.items():
            fps[n] = round((len(r) - 1) / (r[-1] - r[0]), 2) if len(r) > 1 and r[-1] > r[0] else 0.0
        return {"fps": fps, "frames_shown": dict(self.shown), "late_frames": dict(self.late)}

    def interval_percentiles(self, qs: tuple[float, ...] = (50, 99)) -> dict[str, dict[str, float]]:
        """Per screen: {"p50": s, "p99": s, "max": s} of the intervals between shown frames."""
        out = {}
        for n, iv in self.intervals.items():
            a = iv.values() if len(iv) else np.zeros(1)
            out[n] = {**{f"p{q:g}": float(np.percentile(a, q)) for q in qs}, "max": float(a.max())}
        return out
