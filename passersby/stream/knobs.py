"""A documented knob: a dataclass field that carries its own help text.

A knob is declared once, on the frozen dataclass of its group (`WalkConfig`, `PeepKnobs`,
`FeedbackKnobs` here; the other sections in passersby/settings.py), with its type, default and
doc. settings.py reads that one declaration for the settings file, `passersby config show`,
docs/settings.md (checked by tests/test_settings.py) and the command-line flags' help, so
the text cannot drift apart between them. Model-free and import-free, so the stream core
declares its knobs without importing the settings (arrows run settings -> stream).

A numeric knob also declares its allowed range (`Bounds`), checked when the settings load
(settings.py) and shown in docs/settings.md and `config show`: a value the code was never meant
to meet (`walk.fps = 1e308`, which overflowed a frame count, or 100000, which rendered forever)
is refused with one line naming it, never met at run time.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Lamp:
    ...     watts: float = knob(40.0, "Power of the lamp.", bounds=(1, 200))
    >>> doc_of(Lamp, "watts"), Lamp().watts, str(bounds_of(Lamp, "watts"))
    ('Power of the lamp.', 40.0, '1..200')
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric knob admits: lo..hi, both included unless `lo_open` (then lo < v).

    Args:
        lo: the smallest value (or the bound it must stay above, with `lo_open`).
        hi: the largest value.
        lo_open: exclude lo itself (for "positive": a drift speed of 0 never moves).

    Example:
        >>> b = Bounds(0, 1, lo_open=True)
        >>> 0.5 in b, 0 in b, str(b), str(Bounds(1, 120))
        (True, False, '(0, 1]', '1..120')
    """

    lo: float
    hi: float
    lo_open: bool = False

    def __contains__(self, v: object) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:  # v != v: NaN
            return False
        return (self.lo < v if self.lo_open else self.lo <= v) and v <= self.hi

    def __str__(self) -> str:
        lo, hi = (_num(self.lo), _num(self.hi))
        return f"({lo}, {hi}]" if self.lo_open else f"{lo}..{hi}"


def _num(x: float) -> str:
    """1.0 -> "1", 0.25 -> "0.25", 2**63 - 1 -> "9223372036854775807": how a bound reads in the docs."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def knob(default: Any, doc: str, bounds: tuple[float, float] | Bounds | None = None) -> Any:
    """A dataclass field with `default`, its help text `doc` and, for a number, its `bounds`
    (all in the field's metadata).

    Args:
        default: the value when the settings file and the flags leave it out.
        doc: one line (or a few sentences) saying what it does and its unit.
        bounds: (lo, hi) inclusive, or a `Bounds`; every numeric setting has one (the settings
            refuse a value outside it at load). None for text and switches.

    Example:
        >>> knob(1.0, "Seconds.", bounds=(0, 60)).metadata["bounds"]
        Bounds(lo=0, hi=60, lo_open=False)
    """
    if bounds is not None and not isinstance(bounds, Bounds):
        bounds = Bounds(*bounds)
    if bounds is not None and default not in bounds:  # a declaration error, found when the module loads
        raise ValueError(f"default {default!r} is outside its bounds {bounds}")
    return dataclasses.field(default=default, metadata={"doc": doc, "bounds": bounds})


def bounds_of(cls: type, name: str) -> Bounds | None:
    """The bounds of knob `name` of dataclass `cls` (None for text, switches and undeclared ones).

    Raises:
        KeyError: `cls` has no field `name`.

    Example:
        >>> from passersby.stream.walker import WalkConfig
        >>> str(bounds_of(WalkConfig, "fps"))
        '1..120'
    """
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("bounds")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def doc_of(cls: type, name: str) -> str:
    """The doc of knob `name` of dataclass `cls` ("" for a field declared without one).

    Raises:
        KeyError: `cls` has no field `name`.

    Example:
        >>> from passersby.stream.walker import WalkConfig
        >>> doc_of(WalkConfig, "tempo")
        'Seconds from one anchor face to the next.'
    """
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("doc", "")
    raise KeyError(f"{cls.__name__} has no field {name!r}")
