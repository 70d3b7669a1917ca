"""Is the feedback loop still alive? Cheap per-frame signs of collapse, on a 64 x 64 thumbnail.

A loop that reads its own output can settle or blow up. `Vitals.update(frame)` returns why the
current segment has collapsed, or None:

- "frozen": the picture has (almost) stopped changing for `freeze_seconds` (a fixed point);
- "blank": almost no contrast left (std of the thumbnail's luma < BLANK_STD);
- "noise": the picture is mostly pixel-level noise (high-frequency energy dominates);
- "colours": degenerate colours (most pixels clipped to black/white or a saturated primary);
- "no face": the face check (injected, e.g. dlib's detector) found none for `max_faceless` s.

The thresholds are set on synthetic collapses and on real loops (tests/stream/test_feedback.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

THUMB = 64
FROZEN_CHANGE = 0.0015  # mean |frame - previous| / 255 below this counts as no change
BLANK_STD = 0.03  # luma std / 255
NOISE_RATIO = 0.55  # mean |Laplacian| / (4 * luma std): ~0.05-0.25 for paintings, ~1 for white noise
CLIPPED_SHARE = 0.6  # share of pixels with a channel at 0-3 or 252-255


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (64, 64, 3) float32 in [0, 1], by block averaging (H, W multiples of 64)
    or nearest sampling otherwise."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    if h % THUMB == 0 and w % THUMB == 0:
        return x.reshape(THUMB, h // THUMB, THUMB, w // THUMB, 3).mean((1, 3))
    ys, xs = (np.arange(THUMB) * h) // THUMB, (np.arange(THUMB) * w) // THUMB
    return x[ys][:, xs]


def signs(thumb: np.ndarray) -> dict[str, float]:
    """Contrast, noisiness and clipping of a (64, 64, 3) thumbnail in [0, 1]."""
    y = thumb @ np.array([0.299, 0.587, 0.114], np.float32)
    std = float(y.std())
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    clipped = ((thumb <= 3 / 255) | (thumb >= 252 / 255)).any(-1).mean()
    return {"std": std, "noise": float(np.abs(lap).mean()) / (4 * std + 1e-6), "clipped": float(clipped)}


class Vitals:
    """Watches one segment's frames; `reset()` at each new segment.

    Args:
        fps: frames per second (turns seconds into frames).
        face_found: image -> bool, or None to skip the face check.
        face_every, max_faceless, freeze_seconds: seconds (see stream/feedback.FeedbackConfig).

    Example:
        >>> v = Vitals(30.0, None, 1.0, 3.0, 2.0)
        >>> v.update(np.zeros((64, 64, 3), np.uint8))
        'blank'
    """

    def __init__(self, fps: float, face_found: Callable[[np.ndarray], bool] | None, face_every: float,
                 max_faceless: float, freeze_seconds: float) -> None:
        self.face_found = face_found
        self.face_period = max(1, round(face_every * fps))
        self.max_faceless_frames = max(1, round(max_faceless * fps))
        self.freeze_frames = max(1, round(freeze_seconds * fps))
        self.reset()

    def reset(self) -> None:
        self.frames, self.still, self.faceless = 0, 0, 0
        self.previous: np.ndarray | None = None

    def update(self, image: np.ndarray) -> str | None:
        """Record a frame of the current segment; the collapse it shows, or None."""
        t = thumbnail(image)
        s = signs(t)
        change = 1.0 if self.previous is None else float(np.abs(t - self.previous).mean())
        self.previous, self.frames = t, self.frames + 1
        self.still = self.still + 1 if change < FROZEN_CHANGE else 0
        if self.face_found is not None and self.frames % self.face_period == 0:
            self.faceless = 0 if self.face_found(image) else self.faceless + self.face_period
        if s["std"] < BLANK_STD:
            return "blank"
        if s["noise"] > NOISE_RATIO:
            return "noise"
        if s["clipped"] > CLIPPED_SHARE:
            return "colours"
        if self.still >= self.freeze_frames:
            return "frozen"
        if self.faceless >= self.max_faceless_frames:
            return "no face"
        return None
