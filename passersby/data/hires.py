"""`passersby hires`: native-resolution face squares for the enhancer (the learned upscaler).

`prepare` aligns faces and resizes them to one side (most Met faces are upscaled on the way:
their native crops are 110-300 px). An upscaler must learn from pixels that were never
resampled, so this cuts, from each face a prepared dataset found, a `size` x `size` square of
the SOURCE picture's own pixels centred on the face (axis-aligned, no rotation, no resizing),
for faces whose crop is at least `size` px natively. It writes two ordinary datasets:

    OUT/train/      manifest.json + images/ (what `passersby train --kind enhancer` reads)
    OUT/held-out/   every face of a share of the source PICTURES (never trained on), for the verdict

so held-out faces never share a painting with training ones. Atomic: built beside OUT, then
renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from passersby.data.manifest import DatasetError, data_hash, load_manifest

FORMAT, VERSION = "passersby-dataset", 1


@dataclass(frozen=True)
class HiresReport:
    """What `native_face_squares` made: faces per split and why others were left out."""

    train: int
    held_out: int
    too_small: int
    missing_source: int

    def line(self) -> str:
        return (f"{self.train} training and {self.held_out} held-out native squares; skipped {self.too_small} "
                f"faces smaller than the square, {self.missing_source} whose source picture is not under the --from folders")


def held_out_picture(sha256: str, share: float) -> bool:
    """Whether a source picture belongs to the held-out split: a pure function of its hash.

    Example:
        >>> held_out_picture("00" * 32, 0.1), held_out_picture("ff" * 32, 0.1)
        (True, False)
    """
    return int(sha256[:8], 16) / 0xFFFFFFFF < share


def square_around(crop: tuple[int, int, int, int], size: int, width: int, height: int) -> tuple[int, int] | None:
    """Top-left corner of a `size` square centred on `crop`, moved inside the picture; None
    when the crop is smaller than the square or the picture cannot hold it.

    Example:
        >>> square_around((10, 10, 210, 210), 192, 300, 300)
        (14, 14)
    """
    x0, y0, x1, y1 = crop
    if min(x1 - x0, y1 - y0) < size or width < size or height < size:
        return None
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    return min(max(cx - size // 2, 0), width - size), min(max(cy - size // 2, 0), height - size)


def _find_source(rel: str, roots: list[Path]) -> Path | None:
    """The source picture `rel` (as prepare named it: "<root name>/<path>") under one of `roots`."""
    head, _, tail = rel.partition("/")
    for r in roots:
        for cand in (r / tail if r.name == head else None, r / rel):
            if cand is not None and cand.is_file():
                return cand
    return None


def native_face_squares(prepared: Path, roots: list[Path], out: Path, size: int = 192,
                        held_out: float = 0.1) -> HiresReport:
    """Cut native squares of the faces of a prepared dataset from their source pictures.

    Args:
        prepared: a dataset folder written by `passersby prepare` (its manifest names each
            face's source picture and crop box).
        roots: the source folders given to prepare.
        out: output folder (must not exist, or be empty).
        size: side of the squares, native pixels.
        held_out: share of source pictures kept out of training.

    Raises:
        DatasetError: a bad dataset or output folder, or too few faces.

    Example:
        >>> native_face_squares(Path("data/tight"), [Path("met-portraits")], Path("data/hires"))  # source paintings on disk; a long run  # doctest: +SKIP
    """
    from PIL import Image

    m = load_manifest(Path(prepared))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: exists and is not an empty folder; choose another")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "held-out": []}
    small = missing = 0
    try:
        for name in splits:
            (tmp / name / "images").mkdir(parents=True)
        for it in m.items:
            if not it.face:
                continue
            src = _find_source(it.source, roots)
            if src is None:
                missing += 1
                continue
            with Image.open(src) as im:
                picture = np.asarray(im.convert("RGB"))
            corner = square_around(it.crop, size, picture.shape[1], picture.shape[0])
            if corner is None:
                small += 1
                continue
            x, y = corner
            square = picture[y:y + size, x:x + size]
            split = "held-out" if held_out_picture(it.sha256, held_out) else "train"
            items = splits[split]
            file = f"images/{len(items):06d}.png"
            Image.fromarray(square).save(tmp / split / file)
            items.append({"file": file, "source": it.source, "sha256": it.sha256,
                          "phash": hashlib.sha256(square.tobytes()).hexdigest()[:16], "face": True,
                          "crop": [x, y, x + size, y + size], "label": None, "native": True})
        for name, items in splits.items():
            _write_manifest(tmp / name, items, size)
        if len(splits["train"]) < 8:
            raise DatasetError(f"{prepared}: only {len(splits['train'])} faces are {size} px or larger natively; "
                               f"pass a smaller --size")
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return HiresReport(len(splits["train"]), len(splits["held-out"]), small, missing)


def _write_manifest(folder: Path, items: list[dict[str, Any]], size: int) -> None:
    manifest = {"format": FORMAT, "version": VERSION, "size": size, "class_names": [], "items": items,
                "data_hash": data_hash([i["sha256"] for i in items], size)}
    path = folder / "manifest.json"
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
