"""MIDI in: a controller's knobs and pads, mapped to the same controls as OSC (app/controls.py).

A mapping file (TOML; `passersby midi learn` writes it) binds a control change (CC) or a note
to a control address ("masculine/drift", "next", "feminine/direction/smile"):

    [cc.21]
    control = "masculine/drift"      # the knob's travel 0..127 -> the control's slider range
    [cc.22]
    control = "feminine/tempo"
    min = 2.0                        # or a range of its own
    max = 12.0
    [note.36]
    control = "masculine/next"       # a pad: note on (or a CC crossing 64 upwards) fires a trigger

`channel = 1..16` narrows a binding to one MIDI channel (default: any). Messages are duck-typed
(`.type`, `.control`, `.value`, `.note`, `.velocity`, `.channel`, as mido's), so the mapping and
learning work on any port, including a test's list of messages; `open_input` opens a real port
with mido and its python-rtmidi backend (the optional `[midi]` extra).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from passersby.app.controls import ControlDesk, ControlError, control, parse_address
from passersby.atomic import atomic_open

log = logging.getLogger("passersby")

KINDS = ("cc", "note")


@dataclass(frozen=True)
class Binding:
    """One knob or pad: `kind` "cc" or "note", its `number` 0..127, on `channel` 1..16 (None:
    any), driving control address `control`; a knob moves it from `lo` to `hi` (None: the
    control's slider range)."""

    kind: str
    number: int
    control: str
    channel: int | None = None
    lo: float | None = None
    hi: float | None = None

    def matches(self, msg: Any) -> bool:
        kind = "cc" if msg.type == "control_change" else "note" if msg.type in ("note_on", "note_off") else None
        number = msg.control if kind == "cc" else getattr(msg, "note", None)
        return (kind == self.kind and number == self.number
                and (self.channel is None or getattr(msg, "channel", 0) + 1 == self.channel))


class Mapping:
    """The bindings of a mapping file, and what a MIDI message asks of the desk.

    Args:
        bindings: the knobs and pads.
        screens: the installation's screens (to check the addresses).

    Example:
        >>> m = Mapping([Binding("cc", 21, "masculine/drift")], ["masculine", "feminine"])
        >>> m.request(type("Msg", (), {"type": "control_change", "control": 21, "value": 127, "channel": 0})())
        ('drift', 4.0, 'masculine')
    """

    def __init__(self, bindings: list[Binding], screens: list[str]) -> None:
        self.bindings, self.screens = list(bindings), list(screens)
        for b in self.bindings:
            parse_address(b.control, self.screens)  # ControlError for an unknown one
        self._down: dict[tuple[str, int], bool] = {}  # a CC bound to a trigger: above 64 or not

    @classmethod
    def read(cls, path: Path, screens: list[str]) -> "Mapping":
        """The mapping in `path`; ValueError naming the file and the entry for anything wrong."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: no such MIDI mapping; write one with `passersby midi learn`") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid TOML ({e})") from None
        bindings = []
        unknown = sorted(set(data) - set(KINDS))
        if unknown:
            raise ValueError(f"{path}: unknown table(s) {unknown}; a mapping has [cc.N] and [note.N]")
        for kind in KINDS:
            for number, entry in (data.get(kind) or {}).items():
                bindings.append(_binding(path, kind, number, entry))
        try:
            return cls(bindings, screens)
        except ControlError as e:
            raise ValueError(f"{path}: {e}") from None

    def write(self, path: Path) -> None:
        """The mapping as TOML, written atomically."""
        lines = ["# passersby MIDI mapping (`passersby midi learn`): CC or note -> control (docs/osc.md)", ""]
        for b in self.bindings:
            lines.append(f"[{b.kind}.{b.number}]")
            lines.append(f'control = "{b.control}"')
            for name, v in (("channel", b.channel), ("min", b.lo), ("max", b.hi)):
                if v is not None:
                    lines.append(f"{name} = {v!r}")
            lines.append("")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(Path(path), "w") as f:
            f.write("\n".join(lines))

    def request(self, msg: Any) -> tuple[str, float | None, str | None] | None:
        """(control, value, screen) that `msg` asks for, or None (unbound, a release, a knob at rest)."""
        for b in self.bindings:
            if not b.matches(msg):
                continue
            name, screen = parse_address(b.control, self.screens)
            c = control(name)
            if c.trigger:
                return (name, None, screen) if self._fires(b, msg) else None
            lo, hi = (c.ui[0], c.ui[1]) if c.ui else (c.lo, c.hi)
            lo, hi = b.lo if b.lo is not None else lo, b.hi if b.hi is not None else hi
            level = msg.value if msg.type == "control_change" else getattr(msg, "velocity", 0)
            return name, lo + (hi - lo) * min(max(level, 0), 127) / 127.0, screen
        return None

    def _fires(self, b: Binding, msg: Any) -> bool:
        """A pad fires on note on; a CC fires when it crosses 64 upwards (a button's press)."""
        if msg.type == "note_on":
            return getattr(msg, "velocity", 0) > 0
        if msg.type != "control_change":
            return False
        down, was = msg.value >= 64, self._down.get((b.kind, b.number), False)
        self._down[(b.kind, b.number)] = down
        return down and not was

    def apply(self, msg: Any, desk: ControlDesk) -> dict[str, Any] | None:
        """Apply what `msg` asks through `desk` (via "midi"); a refusal is a warning line."""
        req = self.request(msg)
        if req is None:
            return None
        try:
            return desk.apply(*req, via="midi")
        except ControlError as e:
            log.warning("midi: %s refused: %s", req[0], e)
            return None


def _binding(path: Path, kind: str, number: Any, entry: Any) -> Binding:
    where = f"{path}: [{kind}.{number}]"
    if not str(number).isdigit() or not 0 <= int(number) <= 127:
        raise ValueError(f"{where}: the number must be 0..127")
    if not isinstance(entry, dict) or not isinstance(entry.get("control"), str):
        raise ValueError(f'{where}: needs control = "<screen>/<control>" (e.g. "masculine/drift")')
    extra = sorted(set(entry) - {"control", "channel", "min", "max"})
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; known: control, channel, min, max")
    channel = entry.get("channel")
    if channel is not None and (not isinstance(channel, int) or not 1 <= channel <= 16):
        raise ValueError(f"{where}: channel must be 1..16")
    lo, hi = entry.get("min"), entry.get("max")
    for name, v in (("min", lo), ("max", hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"{where}: {name} must be a number")
    return Binding(kind, int(number), entry["control"], channel, None if lo is None else float(lo),
                   None if hi is None else float(hi))


def learn(messages: Iterable[Any], controls: list[str], screens: list[str],
          say: Callable[[str], None] = print, timeout: float = 60.0,
          clock: Callable[[], float] = time.monotonic) -> Mapping:
    """Bind each control address in `controls` to the next knob or pad that moves.

    Args:
        messages: the port's messages (a mido input port iterates them; None means "nothing
            yet", so a port polled with a timeout can be passed as an iterator too).
        controls: addresses, e.g. ["masculine/drift", "feminine/drift", "next"].
        screens: the installation's screens.
        say: where the prompts go.
        timeout: seconds to wait for each control.

    Raises:
        ValueError: an unknown address, or nothing moved within `timeout`.

    Example:
        >>> msgs = [type("M", (), {"type": "control_change", "control": 7, "value": 3, "channel": 0})()]
        >>> learn(iter(msgs), ["drift"], ["a"], say=lambda s: None).bindings[0].number
        7
    """
    for address in controls:
        try:
            parse_address(address, screens)
        except ControlError as e:
            raise ValueError(f"{address}: {e}") from None
    stream: Iterator[Any] = iter(messages)
    bound: list[Binding] = []
    taken: set[tuple[str, int]] = set()
    for address in controls:
        say(f"move the knob or press the pad for {address} ...")
        deadline = clock() + timeout
        while True:
            if clock() > deadline:
                raise ValueError(f"nothing moved within {timeout:.0f} s for {address}")
            msg = next(stream, StopIteration)
            if msg is StopIteration:
                raise ValueError(f"the MIDI port closed before {address} was bound")
            kind = "cc" if getattr(msg, "type", None) == "control_change" else (
                "note" if getattr(msg, "type", None) == "note_on" and getattr(msg, "velocity", 0) > 0 else None)
            if kind is None:
                continue
            number = msg.control if kind == "cc" else msg.note
            if (kind, number) in taken:
                continue  # still the last knob turning
            taken.add((kind, number))
            bound.append(Binding(kind, number, address))
            say(f"  {address} <- {kind} {number}")
            break
    return Mapping(bound, screens)


def open_input(port: str, callback: Callable[[Any], None] | None = None):
    """A mido input port whose name contains `port` (python-rtmidi backend); ValueError with
    one line when MIDI is not installed or not there (e.g. no ALSA sequencer in a container)."""
    try:
        import mido
    except ImportError:
        raise ValueError("MIDI needs the [midi] extra: pip install 'passersby[midi]'") from None
    names = input_names()
    chosen = next((n for n in names if port in n), None)
    if chosen is None:
        raise ValueError(f"no MIDI input port named like {port!r}; ports: {names or 'none'} (`passersby midi list`)")
    return mido.open_input(chosen, callback=callback)


@contextlib.contextmanager
def _quiet_stderr():
    """ALSA's C library prints its own lines on file descriptor 2 when it finds no sequencer;
    the one `error:` line says it instead."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def input_names() -> list[str]:
    """The MIDI input ports here; ValueError (one line) when the MIDI system is missing."""
    try:
        import mido

        with _quiet_stderr():
            mido.set_backend("mido.backends.rtmidi", load=True)
            return list(mido.get_input_names())
    except ImportError:
        raise ValueError("MIDI needs the [midi] extra: pip install 'passersby[midi]'") from None
    except Exception as e:  # noqa: BLE001 - rtmidi's SystemError: no ALSA sequencer, no CoreMIDI ...
        raise ValueError(f"no MIDI system here ({e})") from None


class MidiIn:
    """The [midi] port applied through the desk while the installation runs (mido's callback thread).

    Example:
        >>> midi = MidiIn(Mapping.read(home / "midi.toml", screens), desk).open("nanoKONTROL")  # a MIDI port  # doctest: +SKIP
    """

    def __init__(self, mapping: Mapping, desk: ControlDesk) -> None:
        self.mapping, self.desk = mapping, desk
        self.port = None
        self.received = 0

    def handle(self, msg: Any) -> None:
        self.received += 1
        try:
            self.mapping.apply(msg, self.desk)
        except Exception as e:  # noqa: BLE001 - a strange message must not end MIDI input
            log.warning("midi: %s could not be handled (%s)", msg, e)

    def open(self, port: str) -> "MidiIn":
        self.port = open_input(port, callback=self.handle)
        return self

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
