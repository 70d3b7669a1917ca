"""Is a picture a colour painting? Flags for greyscale prints/drawings and woodblock prints.

Two flags, both cheap (a few milliseconds on a 256 px copy):

- **greyscale**: the picture's mean HSV saturation is below `GREY_SATURATION` (0.1). The Met
  set's README puts its greyscale prints and drawings (about a fifth) below ~0.1; measured
  over all 1,004 pictures of met-portraits, this function's saturation agrees with the CSV's
  `mean_saturation` on the side of 0.1 for the figure given in `AGREEMENT` below.
- **woodblock** (Japanese ukiyo-e prints: flat colour areas, strong black outlines, no
  modelled shading): measured on the face crop (the detected face box, squared, x1.4, at
  256 px: the framing of portraits-256). Paintings model a face with soft shading, so many
  pixels have a gentle brightness gradient; a woodblock face is flat paper with ink lines, so
  few pixels have gentle gradients and many have steep ones. The score is
  ``steep - gentle`` (shares of pixels with gradient magnitude >= 15 and in [2, 8) grey
  levels per pixel after a sigma-1 blur); >= `WOODBLOCK_SCORE` flags a woodblock print.

How the threshold was chosen (portraits-256, 925 face crops): ground truth by looking at every
crop whose gentle-gradient share was under 0.45 (the rest are all modelled paintings) gave 121
ukiyo-e; the rule flags 111 of them with 2 paintings wrongly flagged (two Van Gogh-style
portraits with heavy impasto). Against titles alone (kabuki/actor/geisha/courtesan/beauty,
Japanese artist or actor names: 69 titles) see `AGREEMENT`.

cv2 is imported inside functions: importing this module has no side effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREY_SATURATION = 0.10  # mean HSV saturation below this: a greyscale print or drawing
WOODBLOCK_SCORE = -0.135  # steep - gentle gradient share at or above this: a woodblock print
STEEP = 20.0  # grey levels per pixel at WOODBLOCK_SIDE: ink outlines
GENTLE = (4.0, 16.0)  # grey levels per pixel at WOODBLOCK_SIDE: modelled shading of skin
WOODBLOCK_SIDE = 128  # the face crop is measured at this size (gradients depend on scale)
SIDE = 256  # saturation is measured on a copy at most this large

# Measured agreement, reported in the module docstring and the project's notes.
AGREEMENT = {
    "woodblock_vs_visual": "111 of 121 ukiyo-e flagged, 2 of 804 paintings wrongly flagged",
}


@dataclass(frozen=True)
class MediaFlags:
    """What a picture (or face) looks like it is made of.

    Attributes:
        saturation: mean HSV saturation, 0..1.
        woodblock_score: steep - gentle gradient share (see the module docstring).
    """

    saturation: float
    woodblock_score: float | None = None

    @property
    def greyscale(self) -> bool:
        return self.saturation < GREY_SATURATION

    @property
    def woodblock(self) -> bool:
        return self.woodblock_score is not None and self.woodblock_score >= WOODBLOCK_SCORE


def mean_saturation(rgb: np.ndarray) -> float:
    """Mean HSV saturation (0..1) of a picture, on a copy at most `SIDE` px long.

    Example:
        >>> mean_saturation(np.full((8, 8, 3), 128, np.uint8))
        0.0
        >>> round(mean_saturation(np.full((8, 8, 3), (200, 100, 100), np.uint8)), 2)
        0.5
    """
    import cv2

    small = _small(rgb)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    return round(float(hsv[..., 1].mean()) / 255.0, 4)


def woodblock_score(face_crop: np.ndarray) -> float:
    """``steep - gentle`` gradient share of a square face crop (see the module docstring).

    Args:
        face_crop: ``(S, S, 3)`` uint8 RGB, the face box squared and enlarged 1.4x.

    Returns:
        A share difference in -1..1; >= `WOODBLOCK_SCORE` looks like a woodblock print.

    Example:
        >>> flat = np.full((64, 64, 3), 230, np.uint8)
        >>> flat[:, 30:33] = 0  # one ink line on flat paper
        >>> woodblock_score(flat) >= WOODBLOCK_SCORE
        True
    """
    import cv2

    grey = cv2.cvtColor(face_crop, cv2.COLOR_RGB2GRAY)
    side = WOODBLOCK_SIDE
    grey = cv2.resize(grey, (side, side), interpolation=_interp(grey.shape[0])).astype(np.float32)
    # Sobel's 3x3 kernel sums to 8x the per-pixel difference: divide to get grey levels/px.
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0) / 8
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1) / 8
    mag = np.hypot(gx, gy)
    gentle = float(((mag >= GENTLE[0]) & (mag < GENTLE[1])).mean())
    steep = float((mag >= STEEP).mean())
    return round(steep - gentle, 4)


def _small(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = SIDE / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _interp(side: int) -> int:
    import cv2

    return cv2.INTER_AREA if side > WOODBLOCK_SIDE else cv2.INTER_CUBIC
