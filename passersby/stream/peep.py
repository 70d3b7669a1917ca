"""The peepshow as a frame source: press, and a face nobody else will ever see appears.

    blank ... press -> claim a never-used anchor (ledger, before any pixel) -> face for `seconds`
          -> blank (black at once, or a fade to black over `fade` seconds) -> blank ...

Robbie Barrat's peepshow: one viewer at a time presses a button and sees a brand-new face for
about five seconds; its vector goes on the do-not-use list, so that face is theirs alone. Here
the face's anchor is claimed in the ledger (the screen's own channel) in the producer thread
before it is rendered, so a crash or power cut at any instant never shows it again.

A press arrives from any thread (`press()`); it is ignored while a face shows (or queued, with
`during="queue"`), and presses closer together than `debounce` seconds count once (a bouncing
switch, a double click). The engine drops the frames it rendered ahead when a press is
accepted, so the face appears within a frame or two of the press. Nothing here knows a model:
`render_face` (the generator, and the enhancer where the chain has it) is passed in.

Keys: {"source": "peep", "state": "blank"} while blank; a face's frames carry its anchor's
ledger id, the model, its showing number, the stages and "fade" (the share of black mixed in).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from passersby.stream.knobs import knob
from passersby.stream.sources import Anchors, mix

BLANKS = ("black", "fade")
DURING = ("ignore", "queue")


@dataclass(frozen=True)
class PeepKnobs:
    """The peepshow's knobs as a person sets them: the [peep] section of the settings
    (passersby/settings.py reads these fields, their defaults and docs; checked where they become
    a PeepConfig, with the frame rate).

    Example:
        >>> PeepKnobs().seconds
        5.0
    """

    seconds: float = knob(5.0, "peep: seconds a face shows after a press.", bounds=(0, 3600))
    blank: str = knob("fade", "peep: after the face, black (at once) or fade (to black over peep.fade seconds).")
    fade: float = knob(1.5, "peep: seconds of the fade to black.", bounds=(0, 60))
    during: str = knob("ignore", "peep: presses while a face shows: ignore, or queue (each shows a face next).")
    debounce: float = knob(0.3, "peep: presses closer together than this (seconds) count once.",
                           bounds=(0, 60))


@dataclass(frozen=True)
class PeepConfig(PeepKnobs):
    """The peepshow's knobs (PeepKnobs) and the frame rate they run at.

    Args:
        seconds: how long a face shows.
        blank: "black" (the face vanishes) or "fade" (it fades to black over `fade` seconds).
        fade: seconds of the fade.
        during: presses while a face shows: "ignore" them or "queue" them (each shows a face next).
        debounce: presses closer together than this (seconds) count once.
        fps: frames per second (walk.fps: every screen's rate, not a [peep] setting).

    Example:
        >>> PeepConfig(seconds=5.0, fps=30.0).face_frames
        150
    """

    fps: float = 30.0

    def __post_init__(self) -> None:
        for name in ("seconds", "fade", "debounce", "fps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"peep {name} must be a finite number >= 0, got {v!r}")
        if self.seconds <= 0 or self.fps <= 0:
            raise ValueError(f"peep seconds and fps must be > 0, got {self.seconds} and {self.fps}")
        if self.blank not in BLANKS:
            raise ValueError(f"peep blank must be one of {BLANKS}, got {self.blank!r}")
        if self.during not in DURING:
            raise ValueError(f"peep during must be one of {DURING}, got {self.during!r}")

    @property
    def face_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def fade_frames(self) -> int:
        return round(self.fade * self.fps) if self.blank == "fade" else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PeepSource:
    """A FrameSource (stream/sources.py) that is blank until pressed.

    Args:
        cfg: the knobs.
        anchors: the screen's ledger claims; one per face shown.
        render_face: (1, z_dim) float32 -> (image (S, S, 3) uint8, stages: list of the stage
            records it went through, e.g. [{"enhancer": hash}]).
        side: the side of the blank frames (= the faces' side).
        model_hash: the generator's hash, in every face's key.
        clock: time.monotonic-like (tests inject one).

    Example:
        >>> src = PeepSource(PeepConfig(), anchors, render_face, 512, "7712")  # anchors and a renderer built elsewhere  # doctest: +SKIP
        >>> src.press()  # anchors and a renderer built elsewhere  # doctest: +SKIP
        True
    """

    def __init__(self, cfg: PeepConfig, anchors: Anchors, render_face: Callable[[np.ndarray], tuple[np.ndarray, list]],
                 side: int, model_hash: str, clock: Callable[[], float] | None = None) -> None:
        self.cfg, self.anchors, self.render_face, self.model_hash = cfg, anchors, render_face, model_hash
        self.black = np.zeros((side, side, 3), np.uint8)
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._pending = 0  # presses accepted, not yet shown
        self._last_press: float | None = None
        # Until when the viewer sees a face (clock time): frames are rendered ahead of display,
        # so "a face shows" is judged by the clock, from the accepted press, not by render index.
        self._busy_until = -math.inf
        self.showing: dict[str, Any] | None = None  # {"start", "image", "key"} of the face on screen
        self.shown = 0
        self.presses = {"accepted": 0, "ignored": 0, "queued": 0, "debounced": 0}
        self.pressed_at: float | None = None  # clock time of the press the next face answers
        self.press_times: dict[int, float] = {}  # showing number -> its press's clock time (answered at once)

    def press(self) -> bool:
        """A viewer pressed. True when a face should start now (the engine then drops the
        frames rendered ahead); False when it was debounced, ignored or queued."""
        now = self.clock()
        with self._lock:
            if self._last_press is not None and now - self._last_press < self.cfg.debounce:
                self.presses["debounced"] += 1
                return False
            self._last_press = now
            duration = (self.cfg.face_frames + self.cfg.fade_frames) / self.cfg.fps
            if now < self._busy_until:
                if self.cfg.during == "queue":
                    self._pending += 1
                    self.presses["queued"] += 1
                    self._busy_until += duration
                else:
                    self.presses["ignored"] += 1
                return False
            self._pending = 1
            self.presses["accepted"] += 1
            self.pressed_at = now
            self._busy_until = now + duration
            return True

    def _start(self, index: int) -> None:
        """Claim a never-used face and render it (the claim is recorded before any pixel)."""
        z = np.asarray(self.anchors(), np.float32)
        image, stages = self.render_face(z[None])
        self.shown += 1
        with self._lock:
            if self.pressed_at is not None:
                self.press_times[self.shown] = self.pressed_at
                self.pressed_at = None
            for old in [n for n in self.press_times if n < self.shown - 100]:
                del self.press_times[old]
        ledger_id = self.anchors.ledger_ids([self.anchors.claimed - 1])[0]
        key = {"source": "peep", "model": self.model_hash, "ledger_ids": [ledger_id], "showing": self.shown,
               "start": int(index), "peep": self.cfg.to_dict(), "stages": stages}
        self.showing = {"start": index, "image": image, "key": key}

    def render(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        with self._lock:
            show = self.showing
            if show is not None and index - show["start"] >= self.cfg.face_frames + self.cfg.fade_frames:
                self.showing = show = None
            start = show is None and self._pending > 0
            if start:
                self._pending -= 1
        if start:
            self._start(index)
            show = self.showing
        if show is None:
            return self.black, {"source": "peep", "state": "blank", "frame": int(index)}
        t = index - show["start"]
        fade = 0.0 if t < self.cfg.face_frames else (t - self.cfg.face_frames + 1) / (self.cfg.fade_frames + 1)
        image = show["image"] if fade == 0.0 else mix(show["image"], self.black, fade)
        return image, {**show["key"], "state": "face" if fade == 0.0 else "fade", "fade": fade, "frame": int(index)}

    def cut(self, index: int) -> int:
        """After an accepted press: the face starts at the very next frame rendered."""
        return index

    def state(self) -> dict[str, Any]:
        """For the status page: whether a face shows (by the clock), faces shown, presses by outcome."""
        with self._lock:
            state = "face" if self.clock() < self._busy_until else "blank"
            return {"state": state, "faces_shown": self.shown, "presses": dict(self.presses), "queued": self._pending}

    def close(self) -> None:
        pass
