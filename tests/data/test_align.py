"""FFHQ-style alignment: eyes and mouth land at fixed places whatever the face's pose and scale."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from passersby.data.align import align_face, face_quad, key_points, landmarks, quad_side
from passersby.data.faces import find_faces

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))

SIZE = 128


def _face(rgb: np.ndarray) -> np.ndarray:
    boxes, _ = find_faces(rgb, "hog")
    assert boxes, "the fixture must show a face dlib finds"
    return landmarks(rgb, boxes[0])


def _transformed(rgb: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """The picture rotated by `angle` degrees and scaled, in the middle of a larger canvas
    painted with a flat colour (a whole painting around a face)."""
    h, w = rgb.shape[:2]
    canvas = int(max(h, w) * scale * 2)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (canvas / 2 - w / 2, canvas / 2 - h / 2)
    return cv2.warpAffine(
        rgb, m, (canvas, canvas), flags=cv2.INTER_CUBIC, borderValue=(90, 70, 50)
    )


def _template_error(aligned: np.ndarray) -> tuple[float, np.ndarray]:
    """Tilt of the eye line (degrees) and the key points (eyes, mouth) found on an aligned face."""
    pts = _face(aligned)
    eye_l, eye_r, mouth = key_points(pts)
    tilt = math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    return tilt, np.stack([eye_l, eye_r, mouth]) / aligned.shape[0]


@pytest.fixture(scope="module")
def lady() -> np.ndarray:
    # 128 px fixture, enlarged so the landmark model sees the face at a usual size
    rgb = load_rgb(PORTRAITS / "jeanne-samary-1877.jpg")
    return cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_CUBIC)


def test_rotated_and_scaled_copies_align_to_the_same_face(lady: np.ndarray) -> None:
    ref = align_face(lady, face_quad(_face(lady)), SIZE)
    _, ref_pts = _template_error(ref.image)
    for angle, scale in ((20, 1.5), (-15, 0.8), (0, 2.5)):
        moved = _transformed(lady, angle, scale)
        out = align_face(moved, face_quad(_face(moved)), SIZE)
        tilt, pts = _template_error(out.image)
        assert abs(tilt) < 3, (angle, scale, tilt)  # rotation undone
        assert np.abs(pts - ref_pts).max() < 0.04, (angle, scale)  # same place, same scale
        diff = np.abs(out.image.astype(int) - ref.image.astype(int))[16:-16, 16:-16]
        assert diff.mean() < 14, (angle, scale, diff.mean())  # the same picture


def test_eyes_and_mouth_at_the_ffhq_places(lady: np.ndarray) -> None:
    out = align_face(lady, face_quad(_face(lady)), SIZE)
    _, (eye_l, eye_r, mouth) = _template_error(out.image)
    # FFHQ framing: eye line at ~0.47 of the height, mouth at ~0.75, face centred
    assert 0.40 < eye_l[1] < 0.54 and 0.40 < eye_r[1] < 0.54
    assert 0.68 < mouth[1] < 0.82
    assert abs((eye_l[0] + eye_r[0]) / 2 - 0.5) < 0.06
    assert 0.18 < eye_r[0] - eye_l[0] < 0.32


def test_quad_geometry_on_synthetic_points() -> None:
    # eyes 30 px apart, level; nose 20 px below: mouth estimated 30 px below the eyes
    pts = np.array([[70, 40], [60, 40], [30, 40], [40, 40], [50, 60]], float)
    quad = face_quad(pts)
    assert quad_side(quad) == pytest.approx(120)  # 2 x max(2.0 x 30, 1.8 x 30)
    assert quad[0, 1] == pytest.approx(quad[3, 1])  # top edge level
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # the same face turned 90 degrees
    turned = face_quad(pts @ rot.T)
    assert np.allclose(turned, quad @ rot.T)
    assert quad_side(face_quad(pts, zoom=2.0)) == pytest.approx(60)


def test_fill_outside_the_picture_is_recorded_and_blurred() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    inside = np.array([[10, 10], [10, 90], [90, 90], [90, 10]], float)
    assert align_face(rgb, inside, 40).filled == 0.0
    half_out = np.array([[50, 0], [50, 100], [150, 100], [150, 0]], float)
    out = align_face(rgb, half_out, 40)
    assert out.filled == pytest.approx(0.5, abs=0.03)
    left, right = out.image[:, :16].astype(float), out.image[:, 24:].astype(float)
    assert right.std() < left.std() / 2  # far from the picture: blurred, not a sharp mirror


def test_shrinking_is_antialiased() -> None:
    # one-pixel stripes shrunk 8x must average to grey, not alias into coarse bands
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    quad = np.array([[0, 0], [0, 800], [800, 800], [800, 0]], float)
    out = align_face(stripes, quad, 100).image.astype(float)
    assert abs(out.mean() - 127.5) < 3 and out[5:-5, 5:-5].std() < 6
