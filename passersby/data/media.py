"""Is a picture a colour painting? Flags for greyscale prints/drawings and woodblock prints.

Two flags, both cheap (a few milliseconds on a 256 px copy):

- **greyscale** (prints and drawings, also on tinted paper or in one ink): the picture's mean
  HSV saturation is below `GREY_SATURATION` (0.1), or it is light (mean luma > `TINT_LUMA`,
  140) and holds a single tint (chroma spread, the RMS of the red-green and yellow-blue
  opponent channels around their means, < `TINT_SPREAD`, 12). The Met set's README puts its
  greyscale works (about a fifth) below saturation ~0.1: 228 of its 1,004 pictures, and this
  module's saturation matches the CSV's within 0.01. Looking at the 150 pictures of lowest
  chroma spread among the other 776 found 64 more prints and drawings on tinted paper (sepia,
  red chalk); the single-tint rule flags 45 of them and none of the 86 paintings there (dark
  old masters have a low spread too, but are not light).
- **woodblock** (Japanese ukiyo-e prints: flat colour areas, strong black outlines, no
  modelled shading): measured on the face crop (the detected face box, squared, x1.4: the
  framing of portraits-256) at 128 px. Paintings model a face with soft shading, so many
  pixels have a gentle brightness gradient; a woodblock face is flat paper with ink lines, so
  few pixels have gentle gradients and many have steep ones. The score is ``steep - gentle``
  (shares of pixels with a gradient >= 20 and in [4, 16) grey levels per pixel);
  >= `WOODBLOCK_SCORE` (-0.135) flags a woodblock print. The crop is measured at one fixed
  size because gradients per pixel fall as a picture is enlarged: at 256 px, small Met faces
  (enlarged 2-3x) looked flat and 17 of 811 painted faces were flagged.

How the thresholds were chosen: on portraits-256 (925 face crops) the ground truth came from
looking at every crop whose gentle share was low (the rest are all modelled paintings): 121
ukiyo-e. A grid over sizes (96, 128 px), gradient bands and thresholds, scored on those 925
and on the 811 colour faces that `prepare` keeps from met-portraits (all paintings, except 6
faces from three Chinese and Japanese works), chose the rule above: it flags 105 of the 121
ukiyo-e, 4 of the 804 other crops (Van Gogh-like impasto), 3 of the Met's painted faces, and
the 6 East Asian faces: 97.8 % agreement with the visual ground truth. Against titles alone
(the words kabuki, actor, geisha, courtesan, beauty, kimono, ..., or a Japanese artist's or
actor's name: 67 titles) it agrees on 92.9 % of the crops: it flags 55 of those 67 and 54 prints
whose titles say nothing Japanese ("the actor 3" aside, "women 28", "reading a letter"); of the
12 keyword titles it leaves, 3 are not prints ("lili grenier in a kimono", a Renoir).

cv2 is imported inside functions: importing this module has no side effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GREY_SATURATION = 0.10  # mean HSV saturation below this: a greyscale print or drawing
TINT_SPREAD = 12.0  # chroma spread (RGB levels) below this, and ...
TINT_LUMA = 140.0  # ... mean luma above this: a drawing or print in one tint on light paper
WOODBLOCK_SCORE = -0.135  # steep - gentle gradient share at or above this: a woodblock print
STEEP = 20.0  # grey levels per pixel at WOODBLOCK_SIDE: ink outlines
GENTLE = (4.0, 16.0)  # grey levels per pixel at WOODBLOCK_SIDE: modelled shading of skin
WOODBLOCK_SIDE = 128  # the face crop is measured at this size (gradients depend on scale)
SIDE = 256  # saturation is measured on a copy at most this large

# Measured agreement, reported in the module docstring and the project's notes.
AGREEMENT = {
    "woodblock_vs_visual": "105 of 121 ukiyo-e flagged; 4 of 804 paintings, 3 of 811 Met faces",
    "woodblock_vs_titles": "92.9 % of 925 crops agree; 55 of 67 keyword titles flagged",
    "tint_vs_visual": "45 of 64 tinted prints/drawings flagged, 0 of 86 dark paintings",
}


@dataclass(frozen=True)
class MediaFlags:
    """What a picture (or face) looks like it is made of.

    Attributes:
        saturation: mean HSV saturation, 0..1.
        woodblock_score: steep - gentle gradient share (see the module docstring).
        spread: chroma spread in RGB levels (see `colour_stats`); None: not measured.
        luma: mean luma, 0..255.
    """

    saturation: float
    woodblock_score: float | None = None
    spread: float | None = None
    luma: float = 0.0

    @property
    def greyscale(self) -> bool:
        if self.saturation < GREY_SATURATION:
            return True
        return self.spread is not None and self.spread < TINT_SPREAD and self.luma > TINT_LUMA

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


def colour_stats(rgb: np.ndarray) -> MediaFlags:
    """Saturation, chroma spread and luma of a picture (on a copy at most `SIDE` px long).

    Chroma spread: ``sqrt(std(R - G)^2 + std((R + G) / 2 - B)^2)`` over the pixels, the
    spread of colours around the picture's mean tint (Hasler and Suesstrunk's colourfulness
    without its mean term, so a sepia tint alone does not count as colour).

    Example:
        >>> sepia = np.full((8, 8, 3), (200, 170, 130), np.uint8)
        >>> stats = colour_stats(sepia)
        >>> stats.spread, stats.greyscale
        (0.0, True)
    """
    small = _small(rgb).astype(np.float32)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    spread = float(np.hypot((r - g).std(), (0.5 * (r + g) - b).std()))
    luma = float((0.299 * r + 0.587 * g + 0.114 * b).mean())
    return MediaFlags(mean_saturation(rgb), None, round(spread, 2), round(luma, 1))


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
