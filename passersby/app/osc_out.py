"""OSC out: the installation's state to sound and light pieces, without ever slowing the stream.

Sent to every target (`[osc] targets`), from one sender thread:

    /passersby/<screen>/frame  i f i...   frame index, t (walk: seconds since its first anchor;
                                         feedback: the crossfade's mix), the frame's ledger ids
    /passersby/<screen>/face   i         a new face: its ledger id (the newest anchor the screen shows)
    /passersby/<screen>/fps    f         frames shown in the last second, once a second
    /passersby/<screen>/press            a peepshow press (and <screen>/<control> f for a live change)

The pacer's publish only appends to a bounded queue (`OscOut.on_frame`: no I/O, no lock held
long); when the sender falls behind, the oldest messages are dropped and counted. Each target
gets at most `rate` messages a second (more are dropped, counted); sends are non-blocking UDP,
and a target that does not listen, does not resolve or has no route costs only its own
counters. docs/osc.md lists the messages.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

from passersby.app.osc import osc_message
from passersby.stream.frames import Frame, FrameHub

log = logging.getLogger("passersby")

QUEUE = 512  # messages waiting for the sender; the oldest go first when it falls behind
RESOLVE_EVERY_S = 30.0  # a target that did not resolve is tried again this often


class Target:
    """One receiver: its address (resolved by the sender thread), a token bucket, counters."""

    def __init__(self, host: str, port: int, rate: float) -> None:
        self.host, self.port, self.rate = host, port, float(rate)
        self.addr: tuple | None = None
        self.family = socket.AF_INET
        self.tried = -1e18
        self.tokens, self.filled = float(rate), 0.0
        self.counts: Counter[str] = Counter()  # sent, limited (over its rate), errors, unresolved

    def take(self, now: float) -> bool:
        """One message's worth of the rate: False when over it."""
        self.tokens = min(self.rate, self.tokens + (now - self.filled) * self.rate)
        self.filled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class OscOut:
    """Sends the stream's state to OSC targets (see the module docstring).

    Args:
        hub: the engine's FrameHub (its subscribers are called in the pacer's thread).
        targets: [(host, port)].
        rate: messages a second at most per target.
        clock: monotonic seconds (rates, the fps count).

    Example:
        >>> out = OscOut(engine.hub, [("127.0.0.1", 9001)]).start()  # a running engine  # doctest: +SKIP
        >>> out.stats()["sent"]  # a running engine  # doctest: +SKIP
        {'127.0.0.1:9001': 120}
    """

    def __init__(self, hub: FrameHub, targets: list[tuple[str, int]], rate: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub, self.clock = hub, clock
        self.targets = [Target(h, p, rate) for h, p in targets]
        self.queue: deque[tuple[str, tuple]] = deque(maxlen=QUEUE)
        self.dropped = 0  # oldest messages dropped because the sender fell behind
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._faces: dict[str, int] = {}  # screen -> newest ledger id seen
        self._second: dict[str, list[float]] = {}  # screen -> [start of this second, frames in it]
        self._unsubscribe: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="passersby-osc-out", daemon=True)
        self.sock4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock4.setblocking(False)  # a send never waits: a full buffer drops the message
        self.sock6: socket.socket | None = None

    def start(self) -> "OscOut":
        self._thread.start()
        self._unsubscribe = self.hub.subscribe(self.on_frame)
        return self

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.sock4.close()
        if self.sock6 is not None:
            self.sock6.close()

    def post(self, address: str, *args: Any) -> None:
        """Queue one message for every target; never blocks (the oldest go when it is full)."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append((address, args))
        self._wake.set()

    def on_frame(self, frame: Frame) -> None:
        """The hub's subscriber (the pacer's thread): the frame key, a new face, the fps."""
        key, screen = frame.key, frame.screen
        ids = [int(i) for i in key.get("ledger_ids", []) if isinstance(i, int)]
        t = key.get("t", key.get("mix", 0.0))
        self.post(f"/passersby/{screen}/frame", int(frame.index), float(t) if isinstance(t, (int, float)) else 0.0, *ids)
        if ids and max(ids) > self._faces.get(screen, -1):
            if screen in self._faces:  # the first frame's faces are not "new" to a listener that just came
                self.post(f"/passersby/{screen}/face", max(ids))
            self._faces[screen] = max(ids)
        now = self.clock()
        second = self._second.setdefault(screen, [now, 0])
        second[1] += 1
        if now - second[0] >= 1.0:
            self.post(f"/passersby/{screen}/fps", round(second[1] / (now - second[0]), 2))
            second[0], second[1] = now, 0

    def on_control(self, event: dict[str, Any]) -> None:
        """The control desk's listener: presses, and live values, so a piece can follow them."""
        for screen in event.get("screens") or []:
            if event["value"] is None:
                if event["control"] in ("press", "next"):
                    self.post(f"/passersby/{screen}/{event['control']}")
            else:
                self.post(f"/passersby/{screen}/{event['control']}", float(event["value"]))

    def stats(self) -> dict[str, Any]:
        return {"dropped": self.dropped, **{kind: {f"{t.host}:{t.port}": t.counts[kind] for t in self.targets}
                                            for kind in ("sent", "limited", "errors", "unresolved")}}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while self.queue and not self._stop.is_set():
                try:
                    address, args = self.queue.popleft()
                except IndexError:
                    break
                self._send(osc_message(address, *args))

    def _send(self, data: bytes) -> None:
        now = self.clock()
        for t in self.targets:
            if t.addr is None and not self._resolve(t, now):
                t.counts["unresolved"] += 1
                continue
            if not t.take(now):
                t.counts["limited"] += 1
                continue
            try:
                self._socket(t.family).sendto(data, t.addr)
                t.counts["sent"] += 1
            except OSError:  # a full buffer (dropped), no route, refused: the target's problem
                t.counts["errors"] += 1

    def _resolve(self, t: Target, now: float) -> bool:
        """Resolve a target's host (in the sender thread only: a slow DNS waits here, not in the stream)."""
        if now - t.tried < RESOLVE_EVERY_S:
            return False
        t.tried = now
        try:
            family, _, _, _, addr = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_DGRAM)[0]
        except OSError as e:
            log.warning("osc out: cannot resolve %s (%s); trying again in %.0f s", t.host, e, RESOLVE_EVERY_S)
            return False
        t.addr, t.family = addr, family
        return True

    def _socket(self, family: int) -> socket.socket:
        if family != socket.AF_INET6:
            return self.sock4
        if self.sock6 is None:
            self.sock6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.sock6.setblocking(False)
        return self.sock6
