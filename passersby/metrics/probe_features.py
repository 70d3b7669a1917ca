"""The features the masculine/feminine probe reads (`passersby direction` fits it; a labelled
screen that chooses its faces reads them again at run time, model/choose.py).

- "descriptor": dlib's 128-d face descriptor of the detected face beside EfficientNet-Lite0
  features of the *greyscale* image (on the paintings men are painted darker than women; a probe
  on colour learnt complexion: train/direction.py).
- "effnet": EfficientNet-Lite0 features of the colour image.
- "grey": EfficientNet-Lite0 features of the greyscale image alone: what a screen that chooses its
  faces reads at run time (model/choose.py). dlib's descriptor network holds Python's GIL for
  ~75 ms a face, which stalls the frame producers of a running installation; EfficientNet
  releases it. Held-out accuracy on the training faces 0.83 (descriptor + grey: 0.90).
"""

from __future__ import annotations

import numpy as np
import torch

BATCH = 50
PROBES = ("descriptor", "effnet", "grey")


def _effnet(images_uint8: np.ndarray, fx) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 1280) EfficientNet-Lite0 features."""
    out = []
    for i in range(0, len(images_uint8), BATCH):
        x = torch.from_numpy(images_uint8[i : i + BATCH]).permute(0, 3, 1, 2).float() / 127.5 - 1
        out.append(fx.extract(x).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def _luma(images_uint8: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) float32 Rec. 601 luma."""
    return images_uint8.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def grey(images_uint8: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> the same images in grey (luma copied to 3 channels)."""
    return np.repeat(np.rint(_luma(images_uint8))[..., None], 3, -1).astype(np.uint8)


def probe_features(images_uint8: np.ndarray, fx, probe: str) -> tuple[np.ndarray, np.ndarray]:
    """Features the sex probe sees, and which images have a detected face.

    Args:
        images_uint8: (n, H, W, 3) uint8 RGB. fx: a FeatureExtractor. probe: one of PROBES.
    Returns:
        (feats (k, D), found (n,) bool): features of the k images with a face (HOG detector
        of passersby.metrics.faces), in order; D = 128 + 1280 for "descriptor", 1280 for the others.
    """
    from passersby.metrics.face_descriptor import face_descriptors
    from passersby.metrics.faces import find_faces

    faces = find_faces(list(images_uint8))
    found = np.array([f is not None for f in faces], bool)
    if probe == "effnet":
        return _effnet(images_uint8[found], fx), found
    if probe == "grey":
        return _effnet(grey(images_uint8[found]), fx), found
    if probe != "descriptor":
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    desc, _ = face_descriptors(list(images_uint8), faces)  # (k, 128)
    return np.hstack([desc, _effnet(grey(images_uint8[found]), fx)]), found
