"""The one control layer: every way to play the running installation goes through a `ControlDesk`.

    overview buttons and sliders, POST /api/control, window keys --(FrameHub.control)--+
    OSC (app/osc.py), MIDI (app/midi.py) ----------------------------(ControlDesk.apply)-+--> engine

`CONTROLS` is the table of named controls: what each does, whether it takes a value and its
range, and whether it may name one screen. The desk checks a request against it once (unknown
name, wrong type, out of range: a `ControlError` saying which and what is allowed), applies it
to the engine (stream/engine.Engine: pause, next, press, the sources' live knobs, latent
directions), and records it: the live values, how many changes and refusals, the last change
and where it came from are in the status under "controls" (the overview, `GET /api/status`,
`passersby config show`). Live values live in memory only: a restart starts from the settings
file, never from the last knob.

Addresses (OSC, MIDI mappings): "<control>" acts on every screen that has it, "<screen>/<control>"
on that screen alone, e.g. "drift", "masculine/drift", "feminine/direction/smile", "next".
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from passersby.stream.frames import DIRECTION

log = logging.getLogger("passersby")


class ControlError(ValueError):
    """A control request that cannot be applied: unknown control or screen, wrong value type or
    range, or nothing here has that control. The message says which and what is allowed."""


class NotHere(ControlError):
    """A well-formed request for a control nothing here has (a drift on a walk screen, a press
    where no screen is a peepshow, exactingness without a taste): 403 on the web, not 400."""


@dataclass(frozen=True)
class Control:
    """One named control.

    Args:
        name: "next", "drift", "walk/speed", "direction/*" (any direction's name), ...
        doc: what it does (docs/osc.md lists them from here).
        lo, hi: the range of its value; None for a trigger (no value).
        ui: (lo, hi, step) of its slider and of a MIDI knob's travel (a part of a wide range).
        screens: may name one screen ("<screen>/<name>"); else it acts on the whole installation.
        remote: may come from OSC and MIDI (quit may not: only the token-guarded web).
    """

    name: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    ui: tuple[float, float, float] | None = None
    screens: bool = True
    remote: bool = True

    @property
    def trigger(self) -> bool:
        return self.lo is None

    def check(self, value: Any) -> float | None:
        """The value as a float, or ControlError (a trigger takes none; a knob one number in range).

        Example:
            >>> control("drift").check(0.9), control("next").check(None)
            (0.9, None)
        """
        if self.trigger:
            if value is not None:
                raise ControlError(f"{self.name} takes no value, got {value!r}")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ControlError(f"{self.name} needs a number in {_num(self.lo)}..{_num(self.hi)}, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise ControlError(f"{self.name} must be in {_num(self.lo)}..{_num(self.hi)}, got {_num(value)}")
        return float(value)


def _num(x: float) -> str:
    return f"{x:g}"


CONTROLS: tuple[Control, ...] = (
    Control("next", "A new face now: the screen cuts to its next anchor face."),
    Control("pause", "Hold every screen on its frame.", screens=False),
    Control("resume", "Go on after a pause.", screens=False),
    Control("press", "The peepshow's button: a face for one viewer (peep screens only)."),
    Control("capture", "Keep the face a screen shows now, re-rendered at full quality, in <home>/captures "
                       "(names a screen)."),
    Control("quit", "End the installation (only from the overview or /api/control, with the token).",
            screens=False, remote=False),
    Control("drift", "feedback screens: how fast faces dissolve and melt (0 = the painter alone).",
            0.0, 4.0, (0.0, 4.0, 0.05)),
    Control("tempo", "Seconds from one anchor face to the next (walk and feedback screens; feedback: more "
                     "than its crossfade).", 0.05, 3600.0, (1.0, 30.0, 0.5)),
    Control("walk/speed", "walk screens: how fast the walk moves along its path (1 = as the tempo says, "
                          "0 = holds the face, 2 = twice as fast).", 0.0, 8.0, (0.0, 4.0, 0.05)),
    Control("exactingness", "How strictly new faces follow the curator's taste (0 ignores it, 1 only the "
                            "faces it likes most); needs [taste] curator.", 0.0, 1.0, (0.0, 1.0, 0.05),
            screens=False),
    Control(DIRECTION + "*", "Offset the screen's latent along latent direction <name> (std units; "
                             "`passersby directions`); walk screens with a directions file.",
            -3.0, 3.0, (-3.0, 3.0, 0.05)),
)
_BY_NAME = {c.name: c for c in CONTROLS}
KNOB_CONTROLS = {"speed": "walk/speed"}  # a source's knob -> its control, where the names differ


def control(name: str) -> Control:
    """The control called `name` ("direction/<name>" is the directions' one), or ControlError.

    Example:
        >>> control("direction/smile").name, control("walk/speed").hi
        ('direction/*', 8.0)
    """
    if isinstance(name, str) and name.startswith(DIRECTION):
        direction = name[len(DIRECTION):]
        if direction and len(direction) <= 64 and all(c.isalnum() or c in "-_" for c in direction):
            return _BY_NAME[DIRECTION + "*"]
        raise ControlError(f"{name!r}: a direction's name is letters, digits, '-' and '_'")
    if name not in _BY_NAME:
        raise ControlError(f"unknown control {name!r}; controls: "
                           f"{', '.join(c.name.replace('*', '<name>') for c in CONTROLS)}")
    return _BY_NAME[name]


def parse_address(address: str, screens: list[str]) -> tuple[str, str | None]:
    """An address "<control>" or "<screen>/<control>" (OSC's, after /passersby/, and MIDI
    mappings') -> (control name, screen or None); ControlError for an unknown one.

    Example:
        >>> parse_address("masculine/direction/smile", ["masculine", "feminine"])
        ('direction/smile', 'masculine')
        >>> parse_address("walk/speed", ["masculine"])
        ('walk/speed', None)
    """
    head, _, rest = address.strip("/").partition("/")
    screen = head if head in screens and rest else None
    name = rest if screen else address.strip("/")
    c = control(name)
    if screen is not None and not c.screens:
        raise ControlError(f"{name} acts on the whole installation: send it without a screen")
    return name, screen


class ControlDesk:
    """Checks, applies and records every control request (see the module docstring).

    It is the hub's Controls (FrameHub.set_controls), so the overview and /api/control come
    through it too, and reports under "controls" in the engine's status.

    Args:
        engine: the running stream/engine.Engine.
        capture: screen -> a capture's summary (app/capture.capture_summary); None: no captures.
        clock: wall-clock seconds for the record ("at").

    Example:
        >>> desk = ControlDesk(inst.engine, capture=lambda s: capture_summary(inst, s))  # a built installation  # doctest: +SKIP
        >>> desk.apply("drift", 0.9, "masculine", via="osc")["screens"]  # a built installation  # doctest: +SKIP
        ['masculine']
    """

    def __init__(self, engine: Any, capture: Callable[[str], dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.capture, self.clock = engine, capture, clock
        self.screens: list[str] = list(engine.screens)
        self._lock = threading.Lock()
        self.changes = 0
        self.refused = 0
        self.via: Counter[str] = Counter()
        self.last: dict[str, Any] | None = None
        self.last_refusal: str = ""
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # OSC out: presses and changes
        self._capturing = threading.Lock()  # one capture at a time (each re-renders at full quality)
        engine.reporters["controls"] = self.report
        engine.hub.set_controls(self)

    def control(self, action: str, value: float | None = None, screen: str | None = None) -> None:
        """The hub's Controls (the overview, /api/control, the window's keys): `apply` from the web."""
        try:
            self.apply(action, value, screen, via="web")
        except NotHere as e:
            raise PermissionError(str(e)) from None
        except ControlError as e:
            raise ValueError(str(e)) from None

    def apply(self, name: str, value: Any = None, screen: str | None = None, via: str = "api") -> dict[str, Any]:
        """Check `name` (with `value`, for `screen` or all) against the table, apply it, record it.

        Returns:
            the change as recorded: {"control", "value", "screen", "screens", "via", "at"}.

        Raises:
            ControlError: refused (the message says why); counted in the status.
        """
        try:
            c = control(name)
            v = c.check(value)
            if screen is not None and screen not in self.screens:
                raise ControlError(f"unknown screen {screen!r}; screens are {self.screens}")
            if screen is not None and not c.screens:
                raise ControlError(f"{name} acts on the whole installation: send it without a screen")
            if not c.remote and via in ("osc", "midi"):
                raise ControlError(f"{name} is not taken from {via.upper()} (only from the overview, with the token)")
            changed = self._dispatch(name, v, screen)
        except (ControlError, ValueError, PermissionError) as e:
            with self._lock:
                self.refused += 1
                self.last_refusal = f"{via}: {e}"
            raise (NotHere if isinstance(e, (PermissionError, NotHere)) else ControlError)(str(e)) from None
        event = {"control": name, "value": v, "screen": screen, "screens": changed, "via": via,
                 "at": round(self.clock(), 3)}
        with self._lock:
            self.changes += 1
            self.via[via] += 1
            self.last = event
            listeners = list(self.listeners)
        for listen in listeners:
            try:
                listen(event)
            except Exception as e:  # noqa: BLE001 - an output's problem must not refuse a control
                log.warning("controls: a listener failed: %s", e)
        return event

    def _dispatch(self, name: str, value: float | None, screen: str | None) -> list[str]:
        """Apply to the engine; returns the screens it reached."""
        e = self.engine
        every = [screen] if screen else list(self.screens)
        if name == "capture":
            return self._capture(screen)
        if name.startswith(DIRECTION):
            return e.steer(name[len(DIRECTION):], value, screen)
        if name in ("drift", "tempo", "walk/speed"):
            return e.tune(name.rpartition("/")[2], value, screen)
        if name == "exactingness":
            e.control("exactingness", value)
            return every
        e.control(name, None, screen) if screen else e.control(name)
        return every

    def _capture(self, screen: str | None) -> list[str]:
        if screen is None:
            raise ControlError(f"capture names a screen: <screen>/capture, screens are {self.screens}")
        if self.capture is None:
            raise NotHere("this installation offers no captures")
        if not self._capturing.acquire(blocking=False):
            raise ControlError("a capture is running; try again when it is kept")

        def run() -> None:
            try:
                summary = self.capture(screen)
                log.info("controls: captured %s (%s)", summary.get("id"), screen)
            except Exception as e:  # noqa: BLE001 - said in the log; the show goes on
                log.warning("controls: capture of %s failed: %s", screen, e)
            finally:
                self._capturing.release()

        threading.Thread(target=run, name="passersby-capture", daemon=True).start()  # seconds: never in OSC's thread
        return [screen]

    def values(self) -> dict[str, dict[str, float]]:
        """Per screen, its live knobs and direction offsets now; plus "*" for the whole installation."""
        # The sources name their knobs plainly ("speed"); the table's name says whose ("walk/speed").
        out = {screen: {KNOB_CONTROLS.get(k, k): v for k, v in values.items()}
               for screen, values in self.engine.live().items()}
        whole: dict[str, Any] = {"paused": self.engine.paused.is_set()}
        if self.engine.exactingness is not None:
            whole["exactingness"] = self.engine.exactingness.value
        return {**out, "*": whole}

    def report(self) -> dict[str, Any]:
        """The status's "controls": live values, ranges of the sliders, changes and refusals."""
        with self._lock:
            rec = {"changes": self.changes, "refused": self.refused, "via": dict(self.via), "last": self.last,
                   "last_refusal": self.last_refusal}
        ranges = {c.name: list(c.ui) for c in CONTROLS if c.ui is not None}
        return {"values": self.values(), "ranges": ranges, **rec}
