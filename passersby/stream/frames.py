"""What the engine hands to sinks (window, web kiosk, video): frames, status and controls.

Sinks know nothing about models. They read `Frame`s (an RGB image and the key that identifies
it) from a `FrameHub`, read a status dict, and ask for control actions through `Controls`.
The hub keeps only the latest frame of each screen: a slow sink (a browser on a bad network)
skips frames instead of holding up the display.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

# "press": a peepshow viewer's button (stream/peep.py); "exactingness" takes a value in [0, 1].
# The live knobs of the sources take a number (their ranges: the sources and app/controls.py):
# "drift" (feedback), "tempo" (walk and feedback), "walk/speed"; and "direction/<name>" offsets
# a screen's latent along a named direction (sources.Steerable).
LIVE = ("drift", "tempo", "walk/speed")
ACTIONS = ("pause", "resume", "next", "quit", "press", "exactingness", *LIVE)
SCREEN_ACTIONS = ("press", "next", *LIVE)  # may name one screen (each peephole its own button); else all
DIRECTION = "direction/"  # + a direction's name: letters, digits, '-', '_'


def is_action(action: object) -> bool:
    """Whether `action` names a control action (one of ACTIONS, or "direction/<name>").

    Example:
        >>> is_action("drift"), is_action("direction/smile"), is_action("direction/"), is_action("jump")
        (True, True, False, False)
    """
    if not isinstance(action, str):
        return False
    if action.startswith(DIRECTION):
        name = action[len(DIRECTION):]
        return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_" for c in name)
    return action in ACTIONS


def takes_value(action: str) -> bool:
    """Whether `action` needs a number (exactingness, the live knobs, directions)."""
    return action == "exactingness" or action in LIVE or action.startswith(DIRECTION)


@dataclass(frozen=True)
class Frame:
    """One displayed frame of one screen.

    Args:
        screen: the screen's name (also its ledger channel), e.g. "feminine".
        index: frame number in this screen's walk since the engine started (0, 1, 2, ...).
        image: (H, W, 3) uint8 RGB, C-contiguous.
        key: JSON-able identity of the frame: {"model": hash, "frame", "anchor_ids", "t",
            "walk"} - enough to re-render it bit for bit (see stream/walker.py).
        shown_at: time.monotonic() when it was published.
    """

    screen: str
    index: int
    image: np.ndarray
    key: dict[str, Any] = field(default_factory=dict)
    shown_at: float = 0.0

    def __post_init__(self) -> None:
        im = self.image
        if not (isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3):
            raise ValueError(f"frame image must be (H, W, 3) uint8, got {getattr(im, 'shape', None)} "
                             f"{getattr(im, 'dtype', type(im))}")


class Controls(Protocol):
    """What a sink may ask the installation to do; `action` is one of ACTIONS, `value` the
    setting for actions that take one ("exactingness": 0..1), `screen` the one screen a
    SCREEN_ACTIONS action is for (passed only when named)."""

    def control(self, action: str, value: float | None = None, screen: str | None = None) -> None: ...


class FrameHub:
    """Latest frame per screen, status, and subscribers; thread-safe.

    The engine's pacer calls `publish`; sinks either poll `latest`, block in `wait_newer`, or
    `subscribe` a callback (called in the publisher's thread: keep it short, e.g. hand over to
    an asyncio loop with loop.call_soon_threadsafe).

    Args:
        screens: the screen names, in display order.
        status: returns the installation's status as a JSON-able dict (model, fps, faces
            shown, ledger size, ...); called by sinks that show it.
        controls: where control actions go; None refuses them.
        health: returns {"status": "ok" | "degraded" | "failing", ...} (no secrets), or None.
        metrics: returns the Prometheus text exposition (bytes), or None.

    Example:
        >>> hub = FrameHub(["a"])
        >>> hub.publish(Frame("a", 0, np.zeros((4, 4, 3), np.uint8)))
        >>> hub.latest("a").index
        0
    """

    def __init__(self, screens: list[str], status: Callable[[], dict[str, Any]] | None = None,
                 controls: Controls | None = None, health: Callable[[], dict[str, Any]] | None = None,
                 metrics: Callable[[], bytes] | None = None) -> None:
        if not screens or len(set(screens)) != len(screens):
            raise ValueError(f"screens must be distinct names, at least one, got {screens!r}")
        self.screens = list(screens)
        self._status = status or (lambda: {})
        self._controls = controls
        self.health, self.metrics = health, metrics
        self._latest: dict[str, Frame] = {}
        self._cond = threading.Condition()
        self._subscribers: list[Callable[[Frame], None]] = []
        self.closed = False

    def publish(self, frame: Frame) -> None:
        if frame.screen not in self.screens:
            raise ValueError(f"unknown screen {frame.screen!r}; screens are {self.screens}")
        if not frame.shown_at:
            frame = dataclasses.replace(frame, shown_at=time.monotonic())
        with self._cond:
            self._latest[frame.screen] = frame
            subs = list(self._subscribers)
            self._cond.notify_all()
        for cb in subs:
            cb(frame)

    def latest(self, screen: str) -> Frame | None:
        with self._cond:
            return self._latest.get(screen)

    def wait_newer(self, screen: str, index: int, timeout: float) -> Frame | None:
        """The latest frame of `screen` if its index is > `index`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                f = self._latest.get(screen)
                if (f is not None and f.index > index) or self.closed:
                    return f if f is not None and f.index > index else None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def subscribe(self, callback: Callable[[Frame], None]) -> Callable[[], None]:
        """Call `callback(frame)` on every publish; returns a function that unsubscribes."""
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def status(self) -> dict[str, Any]:
        return dict(self._status())

    def control(self, action: str, value: float | None = None, screen: str | None = None) -> None:
        """Forward a control action; ValueError for unknown actions, bad values or screens,
        PermissionError if this installation takes none (or not this one).

        Args:
            action: one of ACTIONS.
            value: "exactingness" (in [0, 1]), the live knobs and directions: a number.
            screen: press, next, the live knobs and directions: that screen alone (a peephole's
                own button); None: all.
        """
        if not is_action(action):
            raise ValueError(f"unknown action {action!r}; one of {ACTIONS} or {DIRECTION}<name>")
        per_screen = action in SCREEN_ACTIONS or action.startswith(DIRECTION)
        if screen is not None and (not per_screen or screen not in self.screens):
            raise ValueError(f"action {action!r} takes no screen" if not per_screen
                             else f"unknown screen {screen!r}; screens are {self.screens}")
        if action == "exactingness":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"exactingness needs a value in [0, 1], got {value!r}")
        elif takes_value(action):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{action} needs a number, got {value!r}")
        elif value is not None:
            raise ValueError(f"action {action!r} takes no value")
        if self._controls is None:
            raise PermissionError("this installation takes no control actions")
        args = () if value is None else (float(value),)
        kw = {} if screen is None else {"screen": screen}  # Controls that never name a screen need not take one
        self._controls.control(action, *args, **kw)

    def set_controls(self, controls: Controls | None) -> None:
        """Send control actions to `controls` from now on (the application's control desk,
        which checks ranges and records every change, in front of the engine)."""
        self._controls = controls

    def close(self) -> None:
        """Wake every waiter; sinks should stop."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
