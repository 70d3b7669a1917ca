"""Brings a FrameHub's frames into the kiosk server's asyncio loop, and encodes each once.

The engine publishes from its own thread and must never wait on the web: the hub's callback
only schedules `_accept` on the loop (`call_soon_threadsafe`) and returns. On the loop side
the bridge keeps the newest frame of each screen with a sequence number, wakes the WebSocket
handlers waiting for it, and encodes it to a frame message (protocol.py) at most once, in a
worker thread, shared by all clients - and only if some client asks for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from passersby.stream.frames import Frame, FrameHub
from passersby.web.protocol import encode_frame_message

log = logging.getLogger(__name__)


class FrameBridge:
    """Newest frame per screen, as seen from one asyncio loop.

    Sequence numbers (not frame indices) order the frames, so a walk that restarts its
    indices still reads as new frames.

    Args:
        hub: where the frames come from.
        loop: the loop every method except the hub callback runs in.
        jpeg_quality: JPEG quality for the frame messages, 1..100.

    Example (inside the loop):
        >>> bridge = FrameBridge(hub, asyncio.get_running_loop())  # inside a running server's event loop  # doctest: +SKIP
        >>> bridge.start()  # inside a running server's event loop  # doctest: +SKIP
        >>> seq, frame = await bridge.next_frame("a", 0)  # inside a running server's event loop  # doctest: +SKIP
        >>> data = await bridge.message("a", seq, frame)  # inside a running server's event loop  # doctest: +SKIP
    """

    def __init__(self, hub: FrameHub, loop: asyncio.AbstractEventLoop, jpeg_quality: int = 90) -> None:
        self.hub = hub
        self._loop = loop
        self._quality = jpeg_quality
        self._seq = 0
        self._latest: dict[str, tuple[int, Frame]] = {}
        self._changed = {s: asyncio.Event() for s in hub.screens}
        self._encoded: dict[str, tuple[int, asyncio.Future[bytes]]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self.closed = False

    def start(self) -> None:
        """Subscribe to the hub and take the frames it already shows (call in the loop)."""
        self._unsubscribe = self.hub.subscribe(self._on_publish)
        # After subscribing, so no frame falls between; _accept drops the duplicate.
        for screen in self.hub.screens:
            frame = self.hub.latest(screen)
            if frame is not None:
                self._accept(frame)

    def _on_publish(self, frame: Frame) -> None:
        """Hub callback, in the publisher's thread: hand over and return at once."""
        try:
            self._loop.call_soon_threadsafe(self._accept, frame)
        except RuntimeError:  # the loop is closed: the server has stopped, nothing to show
            pass

    def _accept(self, frame: Frame) -> None:
        if self.closed:
            return
        current = self._latest.get(frame.screen)
        if current is not None and current[1] is frame:
            return
        self._seq += 1
        self._latest[frame.screen] = (self._seq, frame)
        # Replace the event before setting the old one: waiters wake, then wait on the new one.
        event, self._changed[frame.screen] = self._changed[frame.screen], asyncio.Event()
        event.set()

    def latest(self, screen: str) -> tuple[int, Frame] | None:
        """(sequence number, frame) of the newest frame of `screen`, or None."""
        return self._latest.get(screen)

    async def next_frame(self, screen: str, after: int) -> tuple[int, Frame] | None:
        """Wait for a frame of `screen` with sequence number > `after`; None once closed."""
        while not self.closed:
            current = self._latest.get(screen)
            if current is not None and current[0] > after:
                return current
            await self._changed[screen].wait()
        return None

    async def message(self, screen: str, seq: int, frame: Frame) -> bytes:
        """The frame message of `frame` (sequence number `seq`), encoded once for all clients."""
        cached = self._encoded.get(screen)
        if cached is not None and cached[0] == seq:
            future = cached[1]
        else:
            future = self._loop.run_in_executor(None, encode_frame_message, frame, self._quality)
            future.add_done_callback(_retrieve)
            if cached is None or seq > cached[0]:  # keep only the newest: clients want nothing older
                self._encoded[screen] = (seq, future)
        # shield: one client hanging up mid-encode must not cancel the others' shared future.
        return await asyncio.shield(future)

    def close(self) -> None:
        """Unsubscribe and wake every waiter (they get None)."""
        self.closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for event in self._changed.values():
            event.set()
        self._encoded.clear()


def _retrieve(future: asyncio.Future[bytes]) -> None:
    """Log a failed encode once, even if every client that wanted it has hung up."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("cannot encode a frame: %s", future.exception())
