"""Every quality figure of a set of generated faces against real ones, in one call.

Two feature spaces:
- EfficientNet-Lite0 (`features`): KID, Fréchet distance, k-NN precision/recall (k = 3) with
  the two-halves-of-real reference, memorisation (nearest training image by cosine distance)
  and the closest pairs to look at.
- dlib's face descriptors (`face_descriptor`), a space no discriminator of this project sees:
  KID on the faces found, and the same nearest-neighbour memorisation summary.
And the face rate of both sets: the share of images where dlib's HOG detector, with the same
settings for real and generated images (`faces`), finds a face.

KID (x1000 in the report) is `distances.kid`, the unbiased cubic-kernel estimator averaged over
random subsets, in both spaces; the figures compare models measured with this module, not
published Inception FID/KID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from passersby.metrics.distances import frechet_distance, kid
from passersby.metrics.memorisation import closest_pairs, memorisation_report
from passersby.metrics.precision_recall import DEFAULT_K, precision_recall, real_halves

N_PAIRS = 5


@dataclass
class QualityResult:
    """What `measure_quality` found.

    Args:
        report: every figure (JSON-serialisable; see `measure_quality`).
        fake_found, real_found: (N,), (M,) bool, where the detector found a face.
        pairs: the closest generated/training pairs (`memorisation.closest_pairs`).
    """

    report: dict[str, Any]
    fake_found: np.ndarray
    real_found: np.ndarray
    pairs: list[dict[str, Any]]


def effnet_features(images_uint8: np.ndarray, batch: int = 50) -> np.ndarray:
    """EfficientNet-Lite0 features of (N, H, W, 3) uint8 images, converted batch by batch.

    Returns:
        (N, 1280) float32 numpy array.

    Example:
        >>> effnet_features(np.zeros((2, 64, 64, 3), np.uint8)).shape  # a long run: EfficientNet and dlib over many faces  # doctest: +SKIP
        (2, 1280)
    """
    import torch

    from passersby.metrics.features import FeatureExtractor

    extractor = FeatureExtractor(batch_size=batch)
    out = []
    for start in range(0, len(images_uint8), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(images_uint8[start : start + batch]))
        x = chunk.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
        out.append(extractor.extract(x).numpy())  # (B, 1280)
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def _kid_x1000(a: np.ndarray, b: np.ndarray, seed: int, subsets: int) -> dict[str, Any]:
    """KID x1000 (mean, std over subsets) or a reason why it cannot be computed."""
    if min(len(a), len(b)) < 2:
        return {"kid_x1000": None, "kid_x1000_std": None, "why_none": "fewer than 2 samples in a set"}
    mean, std = kid(a, b, rng=np.random.default_rng(seed), n_subsets=subsets)
    return {"kid_x1000": 1000.0 * mean, "kid_x1000_std": 1000.0 * std,
            "subset_size": int(min(1000, len(a), len(b))), "subsets": subsets}


def face_space(fake: np.ndarray, real: np.ndarray, seed: int, subsets: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Detection, face rates and descriptor-space figures; also the two found masks.

    Args:
        fake, real: (N, H, W, 3) and (M, H, W, 3) uint8 images. seed: KID subsets' RNG seed.
        subsets: KID subsets.
    Returns:
        (report, fake_found (N,) bool, real_found (M,) bool); report["face_descriptor"] holds
        KID x1000 and memorisation in dlib's descriptor space, report["face_rate"] the rates.

    Example:
        >>> report, _, _ = face_space(fake_uint8, real_uint8, seed=0, subsets=50)  # a long run: EfficientNet and dlib over many faces  # doctest: +SKIP
    """
    from passersby.metrics import faces as detect
    from passersby.metrics.face_descriptor import FEATURE_SPACE, face_descriptors

    fake_faces, real_faces = detect.find_faces(fake), detect.find_faces(real)
    fake_desc, fake_found = face_descriptors(fake, fake_faces)  # (Kf, 128), (N,)
    real_desc, real_found = face_descriptors(real, real_faces)  # (Kr, 128), (M,)
    space: dict[str, Any] = {"feature_space": FEATURE_SPACE, "n_fake_faces": int(len(fake_desc)),
                             "n_real_faces": int(len(real_desc))}
    space.update(_kid_x1000(fake_desc, real_desc, seed, subsets))
    if len(fake_desc) >= 1 and len(real_desc) >= 2:
        mem = memorisation_report(fake_desc, real_desc)
        mem.pop("suspected_copies")
        space["memorisation"] = mem
    report = {"detector": detect.settings(), "fake": detect.face_rate(fake_found),
              "real": detect.face_rate(real_found)}
    return {"face_rate": report, "face_descriptor": space}, fake_found, real_found


def measure_quality(
    fake: np.ndarray, real: np.ndarray, *, seed: int = 0, k: int = DEFAULT_K, kid_subsets: int = 50
) -> QualityResult:
    """Measure generated faces against real ones.

    Args:
        fake: (N, R, R, 3) uint8 generated images, N > k.
        real: (M, R, R, 3) uint8 real images (same size), M >= 2 (k + 1); deduplicate them
            first (duplicates shrink the memorisation threshold and inflate recall).
        seed: seeds the KID subsets and the split of the real set into halves.
        k: neighbourhood size for precision/recall.
        kid_subsets: KID subsets per space.

    Returns:
        A QualityResult whose report holds: "n_fake", "n_real", "face_rate" {fake, real,
        detector}, "effnet" {feature_space, kid_x1000, kid_x1000_std, fd, precision_recall,
        real_halves {real_vs_real, fake_vs_real_half}, memorisation, closest_pairs},
        "face_descriptor" {feature_space, n_fake_faces, n_real_faces, kid_x1000, ...,
        memorisation}, "seconds" per stage.

    Example:
        >>> result = measure_quality(fake_uint8, real_uint8, seed=0)  # a long run: EfficientNet and dlib over many faces  # doctest: +SKIP
        >>> result.report["effnet"]["precision_recall"]["recall"]  # a long run: EfficientNet and dlib over many faces  # doctest: +SKIP
        0.41
    """
    from passersby.metrics.features import FEATURE_SPACE

    if fake.ndim != 4 or real.ndim != 4 or fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"fake and real must be (N, R, R, 3) of one size, got {fake.shape} and {real.shape}")
    if len(fake) <= k or len(real) < 2 * (k + 1):
        raise ValueError(f"need more than k={k} generated and at least {2 * (k + 1)} real images, "
                         f"got {len(fake)} and {len(real)}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    fake_feats, real_feats = effnet_features(fake), effnet_features(real)  # (N, 1280), (M, 1280)
    seconds["effnet_features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = closest_pairs(fake_feats, real_feats, N_PAIRS)
    effnet = {"feature_space": FEATURE_SPACE, **_kid_x1000(fake_feats, real_feats, seed, kid_subsets),
              "fd": frechet_distance(fake_feats, real_feats),
              "precision_recall": precision_recall(real_feats, fake_feats, k),
              "real_halves": real_halves(real_feats, np.random.default_rng(seed), k,
                                         fake_feats if len(fake) >= len(real) // 2 else None),
              "memorisation": memorisation_report(fake_feats, real_feats), "closest_pairs": pairs}
    seconds["effnet_metrics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    face_part, fake_found, real_found = face_space(fake, real, seed, kid_subsets)
    seconds["faces_and_descriptors"] = time.perf_counter() - t0
    report = {"n_fake": int(len(fake)), "n_real": int(len(real)), **face_part, "effnet": effnet,
              "seconds": seconds}
    return QualityResult(report, fake_found, real_found, pairs)
