"""Pictures that go with the measurements, for a person to look at: a contact sheet of faces
(optionally marked where the face detector found a face) and the closest generated/training
pairs of the memorisation check, side by side. Written as JPEG, atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_BACKGROUND = 24
_FOUND, _MISSED = (40, 200, 60), (220, 50, 40)


def _tiles(images: np.ndarray, tile: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, tile, tile, 3) uint8 (area-averaged when shrinking)."""
    import cv2

    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    out = np.empty((images.shape[0], tile, tile, 3), np.uint8)
    for i, im in enumerate(images):
        interp = cv2.INTER_AREA if im.shape[0] > tile else cv2.INTER_LINEAR
        out[i] = cv2.resize(np.ascontiguousarray(im), (tile, tile), interpolation=interp)
    return out


def contact_sheet(
    images: np.ndarray, ncol: int = 8, tile: int = 128, found: Sequence[bool] | None = None, pad: int = 2
) -> np.ndarray:
    """A grid of faces; with `found`, a dot in each tile's corner: green = face found, red = not.

    Args:
        images: (N, H, W, 3) uint8.
        ncol: tiles per row.
        tile: side of each tile in pixels.
        found: optional (N,) detector results to mark.
        pad: pixels between tiles.

    Returns:
        (rows * (tile + pad) + pad, ncol * (tile + pad) + pad, 3) uint8.

    Example:
        >>> contact_sheet(np.zeros((3, 64, 64, 3), np.uint8), ncol=2, tile=32).shape
        (70, 70, 3)
    """
    tiles = _tiles(np.asarray(images), tile)  # (N, tile, tile, 3)
    if found is not None and len(found) != len(tiles):
        raise ValueError(f"{len(tiles)} images but {len(found)} detector results")
    nrow = max(1, math.ceil(len(tiles) / ncol))
    step = tile + pad
    sheet = np.full((nrow * step + pad, ncol * step + pad, 3), _BACKGROUND, np.uint8)
    dot = max(4, tile // 16)
    for i, im in enumerate(tiles):
        r, c = divmod(i, ncol)
        y, x = pad + r * step, pad + c * step
        sheet[y : y + tile, x : x + tile] = im
        if found is not None:
            sheet[y + 2 : y + 2 + dot, x + 2 : x + 2 + dot] = _FOUND if found[i] else _MISSED
    return sheet


def pairs_image(
    generated: np.ndarray, training: np.ndarray, pairs: Sequence[dict[str, Any]], tile: int = 160,
    title: str = "top: generated; below: its nearest training image (cosine distance)",
) -> np.ndarray:
    """Closest pairs side by side: generated faces on top, their nearest training image below.

    Args:
        generated: (N, H, W, 3) uint8 generated images.
        training: (M, H', W', 3) uint8 training images.
        pairs: [{"generated": i, "train": j, "distance": d}, ...] (`memorisation.closest_pairs`).
        tile: side of each face in pixels.
        title: a line written above the pairs.

    Returns:
        (2 * tile + title and caption rows, len(pairs) * tile + gaps, 3) uint8, each column
        captioned with the two indices and their distance.

    Example:
        >>> g, t = np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, 32, 32, 3), np.uint8)
        >>> pairs_image(g, t, [{"generated": 1, "train": 2, "distance": 0.1}], tile=32).shape[1]
        40
    """
    from PIL import Image, ImageDraw

    if not pairs:
        raise ValueError("no pairs to show")
    top = _tiles(np.stack([generated[p["generated"]] for p in pairs]), tile)  # (P, tile, tile, 3)
    bottom = _tiles(np.stack([training[p["train"]] for p in pairs]), tile)  # (P, tile, tile, 3)
    pad, line = 4, 16
    width = len(pairs) * (tile + pad) + pad
    height = line + 2 * tile + 3 * pad + line
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    y_top, y_bottom = line + pad, line + 2 * pad + tile
    for k in range(len(pairs)):
        x = pad + k * (tile + pad)
        canvas[y_top : y_top + tile, x : x + tile] = top[k]
        canvas[y_bottom : y_bottom + tile, x : x + tile] = bottom[k]
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    draw.text((pad + 2, 3), title[: width // 6], fill=(230, 230, 230))
    for k, p in enumerate(pairs):
        x = pad + k * (tile + pad)
        text = f"gen {p['generated']} / train {p['train']}: {p['distance']:.3f}"
        draw.text((x + 2, y_bottom + tile + 2), text[: tile // 6], fill=(230, 230, 230))
    return np.asarray(picture)


def save_jpeg(path: Path, image: np.ndarray, quality: int = 85) -> int:
    """Write an (H, W, 3) uint8 image as JPEG, atomically; returns the file size in bytes.

    Example:
        >>> import tempfile
        >>> save_jpeg(Path(tempfile.mkdtemp()) / "sheet.jpg", np.zeros((8, 8, 3), np.uint8)) > 0
        True
    """
    from PIL import Image

    from passersby.atomic import atomic_open

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="JPEG", quality=quality, optimize=True)
    data = buf.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(Path(path), "wb") as f:
        f.write(data)
    return len(data)


def labelled_rows(rows: Sequence[np.ndarray], labels: Sequence[str], header: Sequence[str] = (),
                  label_width: int = 180) -> np.ndarray:
    """Strips of pictures one under the other, each labelled on its left; `header` texts are
    written above the columns (one per equal-width column of the first strip).

    Args:
        rows: (h, W, 3) uint8 strips of one width.
        labels: one text per row.
        header: column titles (e.g. "-3" ... "+3"), or none.
        label_width: pixels left of the strips for the labels.

    Example:
        >>> labelled_rows([np.zeros((8, 70, 3), np.uint8)] * 2, ["a", "b"], ["-1", "0", "+1"], 40).shape
        (38, 114, 3)
    """
    from PIL import Image, ImageDraw

    if len(rows) != len(labels) or not rows:
        raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
    pad, line = 2, 16 if header else 0
    width = label_width + rows[0].shape[1] + 2 * pad
    height = line + sum(r.shape[0] + pad for r in rows) + pad
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    y = line + pad
    tops = []
    for r in rows:
        canvas[y : y + r.shape[0], label_width + pad : label_width + pad + r.shape[1]] = r
        tops.append(y)
        y += r.shape[0] + pad
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    col = rows[0].shape[1] / max(1, len(header))
    for j, text in enumerate(header):
        draw.text((label_width + pad + (j + 0.5) * col - 3 * len(text), 2), text, fill=(230, 230, 230))
    for top, r, text in zip(tops, rows, labels):
        for k, part in enumerate(str(text).split("\n")):
            draw.text((4, top + r.shape[0] // 2 - 8 + 12 * k), part[: label_width // 6], fill=(230, 230, 230))
    return np.asarray(picture)
