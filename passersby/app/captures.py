"""Captures: faces kept out of the flow, each a picture plus the record that re-renders it.

    <home>/captures/<id>.png    the face, re-rendered from its frame key (best quality)
    <home>/captures/<id>.json   {"id", "screen", "captured_at", "shown_at", "key", "models",
                                 "anchor_id", "anchors", "size", "quality", ...}

"anchors" is where the frame lies (`segment_of`): {"from": ledger id, "to": ledger id or None,
"t": 0..1}; a frame between two anchor faces names both ("anchor_id" is "from").

A capture is a record of what was shown: it never claims or un-claims a face in the ledger.
Both files are written atomically, the JSON last, so a capture without its JSON is a crash's
leftover (ignored by `list_captures`, removed by `clean_leftovers`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from passersby.atomic import atomic_open

CAPTURES = "captures"
_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-")  # how every capture's name starts


@dataclass(frozen=True)
class Capture:
    """One capture: its picture file and its record."""

    path: Path  # the .png
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return self.record["id"]

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        with Image.open(self.path) as im:
            return np.asarray(im.convert("RGB"))


def capture_dir(home: Path) -> Path:
    return Path(home) / CAPTURES


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "screen"


def capture_id(screen: str, frame: int, when: datetime) -> str:
    """A sortable id: UTC time, screen, frame index.

    Example:
        >>> capture_id("feminine", 42, datetime(2026, 12, 1, 7, 5, tzinfo=timezone.utc))
        '20261201-070500-feminine-42'
    """
    return f"{when.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{_safe(screen)}-{int(frame)}"


def anchor_of(key: dict[str, Any]) -> int | None:
    """The ledger id of the anchor a frame's segment starts from (segment_of's "from"), or None."""
    seg = segment_of(key)
    return None if seg is None else seg["from"]


def _walk_position(key: dict[str, Any]) -> tuple[float, dict[int, int]] | None:
    """(position in the walk in anchors, walk position -> ledger id) of a walk key, or None.

    A walk key lists the anchors its frame depends on ("anchor_ids", walk positions; a spline
    looks one back and one ahead) and "t", seconds since the first of them.
    """
    try:
        positions, ledger = key["anchor_ids"], key["ledger_ids"]
        pos = positions[0] + float(key["t"]) / float(key["walk"]["tempo"])
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return None
    return pos, {int(p): int(i) for p, i in zip(positions, ledger)}


def segment_of(key: dict[str, Any]) -> dict[str, Any] | None:
    """Where a frame lies: {"from": ledger id, "to": ledger id or None, "t": 0..1 from -> to}.

    A frame between two anchor faces shows neither: a capture or print named only the first
    listed anchor (for a spline, even the one before the segment). This names both and how far
    along (a frame on an anchor: "to" None, t 0). Between keyframes, the blend of two walk
    positions; on a feedback screen, the crossfade from the previous segment's anchor
    (t = the new one's weight); a peep's face: its anchor.

    Args:
        key: a frame key (a capture's "key").

    Returns:
        the segment, or None for a key that names no anchor.

    Example:
        >>> walk = {"tempo": 6.0}
        >>> segment_of({"anchor_ids": [3, 4, 5, 6], "ledger_ids": [40, 41, 42, 43], "t": 7.5, "walk": walk})
        {'from': 41, 'to': 42, 't': 0.25}
        >>> segment_of({"anchor_ids": [0, 1, 2], "ledger_ids": [7, 8, 9], "t": 6.0, "walk": walk})
        {'from': 8, 'to': None, 't': 0.0}
    """
    walk = _walk_position(key)
    between = key.get("between")
    if walk is not None and isinstance(between, dict) and isinstance(between.get("next"), dict):
        nxt = _walk_position(between["next"])
        if nxt is not None:  # a blend of two keyframes: the mixed position, either key's anchors
            w = float(between.get("mix", 0.0))
            walk = ((1 - w) * walk[0] + w * nxt[0], {**nxt[1], **walk[1]})
    if walk is not None:
        pos, ids = walk
        i = math.floor(pos + 1e-9)  # a position a hair below an anchor is that anchor
        t = max(0.0, pos - i)
        if t < 1e-9 or i + 1 not in ids:
            return {"from": ids[i], "to": None, "t": 0.0} if i in ids else None
        return {"from": ids[i], "to": ids[i + 1], "t": round(t, 4)}
    seg, prev = key.get("segment"), key.get("previous")
    if isinstance(seg, dict) and seg.get("ledger_id") is not None:
        if isinstance(prev, dict) and prev.get("ledger_id") is not None and float(key.get("mix", 1.0)) < 1.0:
            return {"from": int(prev["ledger_id"]), "to": int(seg["ledger_id"]), "t": round(float(key["mix"]), 4)}
        return {"from": int(seg["ledger_id"]), "to": None, "t": 0.0}
    ids = key.get("ledger_ids") or []
    return {"from": int(ids[0]), "to": None, "t": 0.0} if ids else None


def describe_segment(seg: dict[str, Any] | None) -> str:
    """A segment for people: "anchor #41", or "between anchors #41 and #42 (t 0.25)".

    Example:
        >>> describe_segment({"from": 41, "to": 42, "t": 0.25}), describe_segment(None)
        ('between anchors #41 and #42 (t 0.25)', 'no anchor')
    """
    if seg is None:
        return "no anchor"
    if seg.get("to") is None:
        return f"anchor #{seg['from']}"
    return f"between anchors #{seg['from']} and #{seg['to']} (t {seg['t']:.2f})"


def save_capture(home: Path, screen: str, image: np.ndarray, key: dict[str, Any], shown_at: float | None = None,
                 **extra: Any) -> Capture:
    """Write a capture (picture, then record) under <home>/captures; returns it.

    Example:
        >>> cap = save_capture(home, "feminine", image, frame.key, quality="enhancer")  # a frame shown by a running installation  # doctest: +SKIP
    """
    now = datetime.now(timezone.utc)
    cid = capture_id(screen, key.get("frame", 0), now)
    folder = capture_dir(home)
    png, meta = folder / f"{cid}.png", folder / f"{cid}.json"
    n = 1
    while meta.exists():  # two captures of one frame within a second: keep both
        cid = f"{capture_id(screen, key.get('frame', 0), now)}.{n}"
        png, meta, n = folder / f"{cid}.png", folder / f"{cid}.json", n + 1
    record = {"id": cid, "screen": screen, "captured_at": now.isoformat(timespec="seconds"),
              "shown_at": None if shown_at is None else datetime.fromtimestamp(shown_at, timezone.utc).isoformat(),
              "key": key, "anchor_id": anchor_of(key), "anchors": segment_of(key), "size": [int(image.shape[1]), int(image.shape[0])], **extra}
    with atomic_open(png, "wb") as f:
        Image.fromarray(np.ascontiguousarray(image)).save(f, "PNG")
    with atomic_open(meta, "w") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True, default=_jsonable))
    return Capture(png, record)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


# What a capture id may be (capture_id makes them: time, screen, frame, maybe ".n"): nothing that
# leaves captures/ — `passersby print ../../etc/passwd` looked for a capture outside it.
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def is_capture_id(ref: str) -> bool:
    """Whether `ref` can be a capture id: letters, digits, '_', '-', '.', not starting with '.'
    (so no path, no "..": it names a file inside captures/ and nowhere else).

    Example:
        >>> is_capture_id("20261201-070500-feminine-42.1"), is_capture_id("../../etc/passwd"), is_capture_id("..")
        (True, False, False)
    """
    return _ID.fullmatch(ref) is not None


def load_capture(ref: str | Path, home: Path) -> Capture:
    """A capture by id (a str: inside <home>/captures only), or by the path of its .png or .json
    (a Path: an explicit file, e.g. `passersby print --file`).

    Args:
        ref: a capture id such as "20261201-070500-feminine-42", or a Path to its .png / .json.
        home: the installation home (its captures/ folder holds the ids).

    Raises:
        ValueError: not a capture id, no such capture, or its record is unreadable (the message
            names the file).

    Example:
        >>> cap = load_capture("20261201-070500-feminine-42", home)  # a capture in <home>/captures  # doctest: +SKIP
    """
    if isinstance(ref, Path):
        if ref.suffix not in (".png", ".json"):
            raise ValueError(f"{ref}: not a capture file (its .png or .json)")
        png, meta = ref.with_suffix(".png"), ref.with_suffix(".json")
    elif not is_capture_id(ref):
        raise ValueError(f"{ref!r} is not a capture id (ids look like 20261201-070500-feminine-42; list them "
                         "with `passersby gallery`); to use a capture's file, pass --file PATH")
    else:
        png, meta = capture_dir(home) / f"{ref}.png", capture_dir(home) / f"{ref}.json"
    if not meta.is_file() or not png.is_file():
        raise ValueError(f"capture {ref}: no {meta.name} and {png.name} in {meta.parent}; "
                         f"list captures with `passersby gallery` or capture one with `passersby capture SCREEN`")
    try:
        record = json.loads(meta.read_text())
        if not isinstance(record, dict) or "key" not in record:
            raise ValueError("no frame key in it")
    except (ValueError, OSError) as e:
        raise ValueError(f"{meta}: unreadable capture record ({e}); restore it or capture again") from e
    return Capture(png, record)


def list_captures(home: Path) -> list[Capture]:
    """Every complete capture, oldest first (records that fail to parse are skipped)."""
    folder = capture_dir(home)
    out = []
    for meta in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(load_capture(meta, home))
        except ValueError:
            continue
    return out


def clean_leftovers(home: Path) -> list[Path]:
    """Remove temporary files of killed writes and pictures whose record never got written."""
    folder = capture_dir(home)
    gone = []
    for p in folder.glob(".*.tmp") if folder.is_dir() else []:
        p.unlink(missing_ok=True)
        gone.append(p)
    for png in folder.glob("*.png") if folder.is_dir() else []:
        if not png.with_suffix(".json").exists() and _ID.match(png.name):
            png.unlink(missing_ok=True)
            gone.append(png)
    return gone
