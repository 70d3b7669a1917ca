"""A documented knob: a dataclass field that carries its own help text.

A knob is declared once, on the frozen dataclass of its group (`WalkConfig`, `PeepKnobs`,
`FeedbackKnobs` here; the other sections in passersby/settings.py), with its type, default and
doc. settings.py reads that one declaration for the settings file, `passersby config show`,
docs/settings.md (checked by tests/test_settings.py) and the command-line flags' help, so
the text cannot drift apart between them. Model-free and import-free, so the stream core
declares its knobs without importing the settings (arrows run settings -> stream).

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Lamp:
    ...     watts: float = knob(40.0, "Power of the lamp.")
    >>> doc_of(Lamp, "watts"), Lamp().watts
    ('Power of the lamp.', 40.0)
"""

from __future__ import annotations

import dataclasses
from typing import Any


def knob(default: Any, doc: str) -> Any:
    """A dataclass field with `default` and its help text `doc` (in the field's metadata).

    Args:
        default: the value when the settings file and the flags leave it out.
        doc: one line (or a few sentences) saying what it does, its unit and its range.

    Example:
        >>> knob(1.0, "Seconds.").metadata["doc"]
        'Seconds.'
    """
    return dataclasses.field(default=default, metadata={"doc": doc})


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
