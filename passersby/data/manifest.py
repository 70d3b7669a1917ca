"""The manifest of a prepared dataset: its format, its identity hash, and a validating reader.

`prepare` writes DST/manifest.json; the training code reads it with `load_manifest`::

    {"format": "passersby-dataset", "version": 1, "size": 256,
     "class_names": ["feminine", "masculine"],       # sorted; only labels present; [] if none
     "items": [{"file": "images/000000.png", "source": "<path relative to SRC>",
                "sha256": "<hex of source file bytes>", "phash": "<16 hex>",
                "crop": [x0, y0, x1, y1], "face": true,
                "label": "feminine" | "masculine" | null,
                "label_source": "csv" | "title" | "filename" | "classifier" | "box" | null,
                # written by prepare since alignment; optional for readers:
                "face_index": 0,                      # among the picture's faces, largest first
                "box": [x0, y0, x1, y1],              # the detector's face box
                "quad": [[x, y] x 4],                 # aligned crop corners TL, BL, BR, TR
                "filled": 0.12,                       # share of the image outside the picture
                "detector": "hog" | "cnn" | "none",
                "media": {"saturation", "chroma_spread", "luma", "greyscale",
                          "woodblock_score", "woodblock"}}, ...],
     "data_hash": "<see data_hash>"}

Coordinates are in pixels of the upright source image (after its EXIF rotation); `crop` is the
integer bounding box of `quad` and may reach outside the picture (`filled` says how much). A
picture with several faces gives several items with the same `source` and `sha256`.
A centre-cropped picture (no face, `--centre-crop-fallback`) has "face": false and
"face_index": -1.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passersby.data.labels import CLASS_NAMES

FORMAT = "passersby-dataset"
VERSION = 1
LABEL_SOURCES = ("csv", "title", "filename", "classifier", "box")


@dataclass(frozen=True)
class ManifestItem:
    """One image of a prepared dataset, as listed in manifest.json."""

    file: str
    source: str
    sha256: str
    phash: str
    crop: tuple[int, int, int, int]
    face: bool
    label: str | None
    label_source: str | None


@dataclass(frozen=True)
class Manifest:
    """A validated DST/manifest.json; `root` is DST."""

    root: Path
    size: int
    class_names: tuple[str, ...]
    items: tuple[ManifestItem, ...]
    data_hash: str
    version: int = VERSION

    def __len__(self) -> int:
        return len(self.items)

    def image_path(self, index: int) -> Path:
        return self.root / self.items[index].file


class DatasetError(Exception):
    """A prepared dataset that cannot be used; the message names the file and the fix."""


def data_hash(sha256s: list[str], size: int) -> str:
    """Identity of a dataset's content: sha256 over its sorted source hashes and the size.

    Concretely ``sha256("".join(s + "\\n" for s in sorted(sha256s)) + f"size={size}")``:
    independent of file names and order, changed by adding, removing or replacing any image.

    Example:
        >>> data_hash([], 256)[:12]
        '02e400581396'
    """
    h = hashlib.sha256()
    for s in sorted(sha256s):
        h.update(s.encode("ascii") + b"\n")
    h.update(f"size={size}".encode("ascii"))
    return h.hexdigest()


def load_manifest(dst: Path, check_files: bool = True) -> Manifest:
    """Read and validate DST/manifest.json.

    Args:
        dst: a folder written by `prepare`.
        check_files: also check that every listed image file exists.

    Raises:
        DatasetError: with one line naming the file or field and what to do.

    Example:
        >>> m = load_manifest(Path("data/portraits"))  # a prepared dataset on disk  # doctest: +SKIP
        >>> m.size, m.class_names, len(m)  # a prepared dataset on disk  # doctest: +SKIP
        (256, ('feminine', 'masculine'), 912)
    """
    dst = Path(dst)
    path = dst / "manifest.json"
    rerun = f"run `passersby prepare SRC {dst}` first"
    if not dst.is_dir():
        raise DatasetError(f"{dst}: no such dataset folder — {rerun}")
    if not path.is_file():
        raise DatasetError(f"{dst}: no manifest.json — {rerun}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(
            f"{path}: unreadable ({e}) — run `passersby prepare SRC {dst} --overwrite`"
        ) from None
    return _parse_manifest(dst, path, raw, check_files)


def _parse_manifest(dst: Path, path: Path, raw: Any, check_files: bool) -> Manifest:
    redo = f"run `passersby prepare SRC {dst} --overwrite` again"

    def fail(what: str) -> DatasetError:
        return DatasetError(f"{path}: {what} — {redo}")

    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise fail(f"not a passersby dataset (format should be {FORMAT!r})")
    version = raw.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise DatasetError(
            f"{path}: dataset version {version!r} is newer than this passersby "
            f"reads ({VERSION}) — upgrade passersby"
        )
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise fail(f"field 'size' must be a positive integer, got {size!r}")
    names = raw.get("class_names")
    if (
        not isinstance(names, list)
        or names != sorted(set(names))
        or not set(names) <= set(CLASS_NAMES)
    ):
        raise fail(
            f"field 'class_names' must be a sorted list from {list(CLASS_NAMES)}, got {names!r}"
        )
    entries = raw.get("items")
    if not isinstance(entries, list):
        raise fail("field 'items' must be a list")
    items = tuple(
        _parse_item(dst, path, i, e, names, check_files, redo) for i, e in enumerate(entries)
    )
    if not items:
        raise DatasetError(f"{dst}: the dataset has no images — see {dst / 'report.txt'} for why")
    expected = data_hash([it.sha256 for it in items], size)
    if raw.get("data_hash") != expected:
        raise fail("field 'data_hash' does not match the items (edited by hand?)")
    return Manifest(dst, size, tuple(names), items, expected, version)


def _parse_item(
    dst: Path, path: Path, i: int, e: Any, names: list[str], check_files: bool, redo: str
) -> ManifestItem:
    def fail(what: str) -> DatasetError:
        return DatasetError(f"{path}: items[{i}] {what} — {redo}")

    if not isinstance(e, dict):
        raise fail("is not an object")
    for key, kind in (
        ("file", str),
        ("source", str),
        ("sha256", str),
        ("phash", str),
        ("face", bool),
    ):
        if not isinstance(e.get(key), kind):
            raise fail(f"field {key!r} is missing or not a {kind.__name__}")
    crop = e.get("crop")
    if not (isinstance(crop, list) and len(crop) == 4 and all(isinstance(v, int) for v in crop)):
        raise fail(f"field 'crop' must be 4 integers, got {crop!r}")
    label, source = e.get("label"), e.get("label_source")
    if label is not None and label not in names:
        raise fail(f"label {label!r} is not in class_names {names}")
    if source is not None and source not in LABEL_SOURCES:
        raise fail(f"label_source {source!r} is not one of {list(LABEL_SOURCES)}")
    if check_files and not (dst / e["file"]).is_file():
        raise DatasetError(f"{dst / e['file']}: listed in manifest.json but missing — {redo}")
    return ManifestItem(
        e["file"], e["source"], e["sha256"], e["phash"], tuple(crop), e["face"], label, source
    )
