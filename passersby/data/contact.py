"""A contact sheet: one JPEG grid of a prepared set (or an even sample of it), for a person.

Each thumbnail carries a thin strip along its bottom edge in the colour of its label
(feminine: red, masculine: blue, unknown: grey), so label mistakes stand out too.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAX_IMAGES = 400  # a 20 x 20 grid: enough to judge a set, small enough to open anywhere
THUMB = 96  # px per thumbnail; 20 columns -> a 1920 px wide sheet
STRIP = 4  # px, the label strip
LABEL_COLOURS = {"feminine": (200, 40, 40), "masculine": (40, 80, 200)}
UNKNOWN_COLOUR = (150, 150, 150)


def sample_indices(n: int, cap: int = MAX_IMAGES) -> list[int]:
    """Up to `cap` indices spread evenly over ``range(n)``, in order (the same every run).

    Example:
        >>> sample_indices(10, 4)
        [0, 2, 5, 7]
        >>> sample_indices(3, 4)
        [0, 1, 2]
    """
    if n <= cap:
        return list(range(n))
    return [int(i * n / cap) for i in range(cap)]


def contact_sheet(
    images: Sequence[Path], labels: Sequence[str | None], thumb: int = THUMB, ncol: int = 20
) -> bytes:
    """JPEG bytes of a grid of `images` (paths of square pictures) with their label strips.

    Args:
        images: files to show, in order.
        labels: one label per image (None: unknown).
        thumb: side of a thumbnail in pixels.
        ncol: thumbnails per row (fewer when there are fewer images).

    Example:
        >>> contact_sheet([], [])[:2]
        b'\\xff\\xd8'
    """
    from PIL import Image

    n = len(images)
    cols = max(1, min(ncol, n))
    rows = max(1, math.ceil(n / cols))
    sheet = np.full((rows * thumb, cols * thumb, 3), 255, np.uint8)
    for k, (path, label) in enumerate(zip(images, labels, strict=True)):
        r, c = divmod(k, cols)
        with Image.open(path) as im:
            tile = np.asarray(im.convert("RGB").resize((thumb, thumb), Image.Resampling.BOX))
        tile = tile.copy()
        tile[-STRIP:] = LABEL_COLOURS.get(label or "", UNKNOWN_COLOUR)
        sheet[r * thumb : (r + 1) * thumb, c * thumb : (c + 1) * thumb] = tile
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format="JPEG", quality=88)
    return buf.getvalue()
