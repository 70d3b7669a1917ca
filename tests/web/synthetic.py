"""A synthetic show for the web kiosk tests: a hub, a publisher thread and a KioskServer.

No model: a publisher thread puts flat-coloured frames on two screens at 30 fps, the colour
a function of the screen and the frame index, so a test can check what a client received.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from passersby.stream.frames import Frame, FrameHub
from passersby.web import KioskServer

SCREENS = ["left", "right"]
HEIGHT, WIDTH = 96, 128


def colour(screen: str, index: int) -> tuple[int, int, int]:
    """The flat RGB colour of frame `index` of `screen`: red steps with the index."""
    return (index * 7) % 256, 60 + 120 * SCREENS.index(screen), 200


class RecordingControls:
    """Controls that remember every action, thread-safe."""

    def __init__(self) -> None:
        self.actions: list[str] = []
        self._lock = threading.Lock()

    def control(self, action: str, value: float | None = None, screen: str | None = None) -> None:
        with self._lock:
            self.actions.append(action + (f"={value}" if value is not None else "") + (f"@{screen}" if screen else ""))

    def wait_for(self, action: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if action in self.actions:
                    return True
            time.sleep(0.02)
        return False


class Publisher:
    """Publishes a flat frame on every screen `fps` times a second until stopped."""

    def __init__(self, hub: FrameHub, fps: float = 30.0) -> None:
        self.hub, self.period = hub, 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-publisher")

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            for screen in self.hub.screens:
                image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
                image[:] = colour(screen, index)
                self.hub.publish(Frame(screen, index, image, {"frame": index, "walk": screen}))
            index += 1
            self._stop.wait(self.period)

    def start(self) -> "Publisher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Show:
    """A hub fed by a Publisher, its controls, and a KioskServer on a free port."""

    def __init__(self) -> None:
        self.controls = RecordingControls()
        self.started = time.monotonic()
        self.hub = FrameHub(SCREENS, status=self.status, controls=self.controls)
        self.publisher = Publisher(self.hub).start()
        self.captured: list[tuple[str, int]] = []  # (screen, index of the frame it showed)
        self.server = KioskServer(self.hub, port=0, token="test-token-123", capture=self.capture).start()

    def capture(self, screen: str) -> dict:
        """Stands in for the installation's capture: records which frame was on the screen."""
        frame = self.hub.latest(screen)
        if frame is None:
            raise ValueError(f"screen {screen!r} has shown nothing yet")
        self.captured.append((screen, frame.index))
        return {"id": f"cap-{screen}-{frame.index}", "quality": "as shown", "matches_shown": True}

    def status(self) -> dict:
        return {"model": "synthetic", "fps": {s: 30.0 for s in SCREENS}, "faces_shown": 3,
                "ledger_size": 1234, "uptime": time.monotonic() - self.started, "paused": False}

    def close(self) -> None:
        self.server.stop()
        self.publisher.stop()
