"""Face detection and the square crop around the face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passersby.data.faces import crop_and_resize, detect_faces, square_crop_box

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


def load(name: str) -> np.ndarray:
    with Image.open(PORTRAITS / name) as im:
        return np.asarray(im.convert("RGB"))


def test_detects_the_face_in_a_portrait_and_not_in_a_blank() -> None:
    boxes = detect_faces(load("portrait-of-a-man-1462.jpg"))
    assert len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128 and (x1 - x0) > 50
    assert detect_faces(np.full((200, 300, 3), 128, np.uint8)) == []


def test_detection_on_a_downscaled_copy_maps_back_to_full_size() -> None:
    small = load("portrait-of-a-man-1462.jpg")
    big = np.asarray(Image.fromarray(small).resize((1024, 1024), Image.BICUBIC))
    big_box, small_box = detect_faces(big)[0], detect_faces(small)[0]
    assert all(abs(b / 8 - s) < 12 for b, s in zip(big_box, small_box, strict=True))


@pytest.mark.parametrize(
    "h, w, face",
    [
        (400, 300, None),
        (300, 400, None),
        (1000, 800, (100, 100, 200, 200)),
        (1000, 800, (700, 900, 790, 990)),
        (500, 500, (0, 0, 500, 500)),
        (64, 900, (10, 10, 50, 50)),
    ],
)
def test_crop_is_square_inside_the_image_and_holds_the_face(
    h: int, w: int, face: tuple | None
) -> None:
    x0, y0, x1, y1 = square_crop_box(h, w, face)
    assert x1 - x0 == y1 - y0 > 0
    assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
    if face is not None:
        cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        assert x0 <= cx <= x1 and y0 <= cy <= y1


def test_centre_crop_without_a_face() -> None:
    assert square_crop_box(400, 300, None) == (0, 50, 300, 350)
    assert square_crop_box(300, 400, None) == (50, 0, 350, 300)


def test_margin_scales_the_crop_and_the_face_sits_above_centre() -> None:
    face = (450, 450, 550, 550)
    x0, y0, x1, y1 = square_crop_box(2000, 2000, face, margin=2.0)
    assert x1 - x0 == 200 and (x0 + x1) / 2 == 500
    assert (y0 + y1) / 2 < 500  # room for the forehead and hair above the dlib box
    assert (
        square_crop_box(2000, 2000, face, margin=1.4)[2]
        - square_crop_box(2000, 2000, face, margin=1.4)[0]
        == 140
    )


def test_crop_and_resize_shrinks_and_enlarges() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    assert crop_and_resize(rgb, (0, 50, 200, 250), 64).shape == (64, 64, 3)
    assert crop_and_resize(rgb, (0, 0, 40, 40), 64).shape == (64, 64, 3)
    assert np.array_equal(crop_and_resize(rgb, (0, 0, 64, 64), 64), rgb[:64, :64])
