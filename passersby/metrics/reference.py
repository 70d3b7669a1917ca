"""The real images a model is measured against: a prepared dataset, or a plain folder of images.

A folder with a `manifest.json` is a dataset written by `passersby prepare` and is read with
the loader training uses (`passersby.data.training_set.load_training_set`), so the metrics see
exactly the images training saw. Any other folder is read as a plain collection of image
files (e.g. the reference portraits, shared/data/portraits-256): every file with an image
suffix directly in it, centre-cropped to a square. Either way the images are resized to the
size of the generated ones, so detectors and feature networks see the same pixel budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MANIFEST = "manifest.json"


class ReferenceError(ValueError):
    """The reference images cannot be read; the message says which folder and why."""


@dataclass
class ReferenceSet:
    """Real images for measurement.

    Args:
        images: (N, size, size, 3) uint8 RGB.
        kind: "prepared" (a `passersby prepare` dataset) or "folder" (plain image files).
        root: the folder they came from.
        names: file name of each image, relative to `root`.
        skipped: [file name, reason] for files that could not be read (folders only).
        data_hash: the dataset's hash (prepared datasets only).
    """

    images: np.ndarray
    kind: str
    root: Path
    names: list[str]
    skipped: list[list[str]] = field(default_factory=list)
    data_hash: str | None = None

    def describe(self) -> dict[str, Any]:
        """What was read, for reports (JSON-serialisable)."""
        return {"kind": self.kind, "root": str(self.root), "n": int(len(self.images)),
                "size": int(self.images.shape[1]) if len(self.images) else None,
                "skipped": self.skipped, "data_hash": self.data_hash}


def _square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre square of an (H, W, 3) image resized to (size, size, 3)."""
    import cv2

    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    patch = np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side])
    if side == size:
        return patch
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interp)


def _load_prepared(root: Path, size: int) -> ReferenceSet:
    from passersby.data.training_set import DatasetError, load_training_set

    try:
        data = load_training_set(root)
    except DatasetError as error:
        raise ReferenceError(str(error)) from None
    images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, R, R, 3) uint8
    if images.shape[1] != size:
        images = np.stack([_square(im, size) for im in images])  # (N, size, size, 3)
    from passersby.data.manifest import load_manifest

    names = [item.file for item in load_manifest(root, check_files=False).items]
    return ReferenceSet(images, "prepared", root, names, data_hash=data.data_hash)


def _load_folder(root: Path, size: int) -> ReferenceSet:
    from PIL import Image

    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    images, names, skipped = [], [], []
    for path in files:
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))  # (H, W, 3)
        except (OSError, ValueError) as error:
            skipped.append([path.name, f"unreadable ({error})"])
            continue
        images.append(_square(rgb, size))
        names.append(path.name)
    if not images:
        raise ReferenceError(f"{root}: no readable images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return ReferenceSet(np.stack(images), "folder", root, names, skipped)


def load_reference(root: Path, size: int) -> ReferenceSet:
    """Real images from a prepared dataset or a plain folder, as (N, size, size, 3) uint8.

    Args:
        root: a `passersby prepare` output folder (has manifest.json) or a folder of images.
        size: side of the returned images (the generated images' resolution).

    Raises:
        ReferenceError: not a folder, no readable images, or an invalid prepared dataset.

    Example:
        >>> ref = load_reference(Path("tests/fixtures/portraits"), 64)  # reads images relative to the repository root  # doctest: +SKIP
        >>> ref.images.shape, ref.kind  # reads images relative to the repository root  # doctest: +SKIP
        ((12, 64, 64, 3), 'folder')
    """
    root = Path(root)
    if size < 8:
        raise ReferenceError(f"size must be >= 8 pixels, got {size}")
    if not root.is_dir():
        raise ReferenceError(f"{root}: not a folder")
    if (root / MANIFEST).is_file():
        return _load_prepared(root, size)
    return _load_folder(root, size)
