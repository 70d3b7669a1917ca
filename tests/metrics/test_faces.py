"""The metrics' face detector: fixed dlib HOG settings, same for real and generated images."""

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passersby.metrics import faces
from passersby.metrics.faces import detection_image, face_rate, find_face, find_faces

PORTRAITS = Path(__file__).parent.parent / "fixtures" / "portraits"


def _portraits():
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(PORTRAITS.glob("*.jpg"))]  # (128, 128, 3)


def test_importing_loads_no_dlib():
    code = "import sys, passersby.metrics.faces, passersby.metrics.face_descriptor; print('dlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_detection_image_is_resized_and_padded():
    image = detection_image(np.zeros((100, 50, 3), np.uint8))
    pad = round(faces.DETECT_SIZE * faces.PAD_FRACTION)
    assert image.shape == (faces.DETECT_SIZE + 2 * pad, faces.DETECT_SIZE // 2 + 2 * pad, 3)
    assert image[0, 0].tolist() == [128, 128, 128] and image.flags.c_contiguous
    with pytest.raises(ValueError, match="uint8"):
        detection_image(np.zeros((10, 10, 3), np.float32))


def test_faces_found_in_portraits_not_in_blank_images():
    found = find_faces(_portraits())
    # The fixtures' README: dlib finds a face in 8 of the 12 at 128 px with the data settings;
    # the metrics' padded detection finds a similar number.
    assert 6 <= sum(f is not None for f in found) <= 11
    for face in (f for f in found if f is not None):
        x0, y0, x1, y1 = face.box
        assert face.score > 0 and 0 <= x0 < x1 <= face.image.shape[1] and 0 <= y0 < y1 <= face.image.shape[0]
    assert find_face(np.full((256, 256, 3), 200, np.uint8)) is None


def test_same_answer_from_several_threads():
    images = _portraits()
    serial = [f is not None for f in find_faces(images)]
    results: dict[int, list[bool]] = {}

    def work(i: int) -> None:
        results[i] = [f is not None for f in find_faces(images)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == serial for r in results.values())


def test_face_rate_arithmetic():
    assert face_rate([True, False, True, True]) == {"n": 4, "n_found": 3, "rate": 0.75}
    assert np.isnan(face_rate([])["rate"])
    assert faces.settings()["detector"] == "dlib-hog-frontal"
