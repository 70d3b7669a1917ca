"""Finding faces for the metrics: one fixed dlib HOG setting for real and generated images alike.

Face rate ("does a detector see a face here?") and the face-descriptor space both start from
this detection, so a real and a generated image are always judged by the same detector with
the same settings. The detector is dlib's HOG frontal face detector (it ships inside dlib-bin);
the settings are those of `passersby.metrics.gender`: the image is resized to `DETECT_SIZE` on
its longer side and padded with grey by `PAD_FRACTION` of that size, because the HOG detector
misses faces that fill the whole frame (tight crops), then scanned without pyramid upsampling
(faces in a 256 px crop are far above its ~80 px minimum). On 200 of the reference portraits
(shared/data/portraits-256) this finds a face in 73 % at ~19 ms per image on a 2-core CPU;
upsampling once found 74 % at four times the cost, no padding 70 %.

These settings belong to the metrics and are deliberately separate from `passersby.data.faces`
(the data preparation's detector), so that changing how data are prepared never silently
changes what a metric measures.

dlib is imported on first use; the detector is built once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DETECTOR = "dlib-hog-frontal"
DETECT_SIZE = 256
PAD_FRACTION = 0.25
UPSAMPLE = 0
_PAD_VALUE = 128

_detector: Any = None
# dlib's detector keeps per-call scratch state: one call at a time per process.
_lock = threading.Lock()


@dataclass(frozen=True)
class Face:
    """The most prominent face of an image, in the coordinates of the image the detector saw.

    Args:
        image: (h, w, 3) uint8, the resized and padded image that was scanned
            (`detection_image`); landmarks and descriptors are computed on it.
        box: (x0, y0, x1, y1) of the face in `image`, x1/y1 exclusive.
        score: the detector's score (HOG + linear SVM margin; > 0 is a detection).
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    score: float


def settings() -> dict[str, Any]:
    """The detector and its settings, for reports (JSON-serialisable).

    Example:
        >>> settings()["detector"]
        'dlib-hog-frontal'
    """
    return {"detector": DETECTOR, "detect_size": DETECT_SIZE, "pad_fraction": PAD_FRACTION,
            "upsample": UPSAMPLE, "threshold": 0.0}


def _get_detector() -> Any:
    """dlib's HOG frontal face detector, built on first use (call with `_lock` held)."""
    global _detector
    if _detector is None:
        import dlib

        _detector = dlib.get_frontal_face_detector()
    return _detector


def detection_image(rgb: np.ndarray) -> np.ndarray:
    """The image the detector scans: `DETECT_SIZE` on its longer side, padded with grey.

    Args:
        rgb: (H, W, 3) uint8 RGB image.

    Returns:
        (h + 2p, w + 2p, 3) uint8, C-contiguous, with max(h, w) = DETECT_SIZE and
        p = PAD_FRACTION * DETECT_SIZE.

    Example:
        >>> detection_image(np.zeros((128, 128, 3), np.uint8)).shape
        (384, 384, 3)
    """
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    scale = DETECT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interp)  # (h, w, 3)
    pad = round(DETECT_SIZE * PAD_FRACTION)
    padded = np.pad(resized, ((pad, pad), (pad, pad), (0, 0)), constant_values=_PAD_VALUE)
    return np.ascontiguousarray(padded)


def find_face(rgb: np.ndarray) -> Face | None:
    """The largest face the detector finds in `rgb`, or None.

    Args:
        rgb: (H, W, 3) uint8 RGB image, e.g. a 256 px face crop.

    Example:
        >>> find_face(np.full((256, 256, 3), 200, np.uint8)) is None
        True
    """
    image = detection_image(rgb)
    with _lock:
        rects, scores, _kinds = _get_detector().run(image, UPSAMPLE, 0.0)
    hits = [(r, s) for r, s in zip(rects, scores) if s > 0.0]
    if not hits:
        return None
    rect, score = max(hits, key=lambda h: (h[0].width() * h[0].height(), h[1]))
    box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
    return Face(image=image, box=box, score=float(score))


def find_faces(images: Sequence[np.ndarray]) -> list[Face | None]:
    """`find_face` of each image.

    Example:
        >>> find_faces([np.zeros((64, 64, 3), np.uint8)])
        [None]
    """
    return [find_face(im) for im in images]


def face_rate(found: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Share of images where a face was found.

    Args:
        found: (N,) booleans, e.g. `[f is not None for f in find_faces(images)]`.

    Returns:
        {"n": N, "n_found": k, "rate": k / N (NaN when N = 0)}.

    Example:
        >>> face_rate([True, False, True, True])["rate"]
        0.75
    """
    flags = np.asarray(found, dtype=bool).reshape(-1)  # (N,)
    n, k = int(flags.size), int(flags.sum())
    return {"n": n, "n_found": k, "rate": k / n if n else float("nan")}
