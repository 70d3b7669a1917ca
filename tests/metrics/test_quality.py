"""measure_quality: every figure of generated faces against real ones, on fixture portraits."""

import numpy as np
import pytest

from conftest import PORTRAITS
from passersby.metrics.quality import measure_quality
from passersby.metrics.reference import load_reference


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return load_reference(PORTRAITS, 128).images  # (12, 128, 128, 3)


def test_copies_and_blanks(real):
    blanks = np.stack([np.full((128, 128, 3), 40 * i, np.uint8) for i in range(1, 5)])  # (4, 128, 128, 3)
    fake = np.concatenate([real[[2, 5, 7, 9]], blanks])  # 4 exact copies, 4 flat images
    result = measure_quality(fake, real, seed=0, kid_subsets=5)
    r = result.report
    assert (r["n_fake"], r["n_real"]) == (8, 12)
    # Face rate: the copies are found exactly where their originals are, the blanks never.
    assert result.fake_found[:4].tolist() == result.real_found[[2, 5, 7, 9]].tolist()
    assert not result.fake_found[4:].any()
    assert r["face_rate"]["fake"]["n_found"] == int(result.fake_found.sum())
    assert r["face_rate"]["real"]["rate"] == pytest.approx(result.real_found.mean())
    # Memorisation: the four closest pairs are the copies, at distance ~0.
    pairs = r["effnet"]["closest_pairs"]
    assert sorted((p["generated"], p["train"]) for p in pairs[:4]) == [(0, 2), (1, 5), (2, 7), (3, 9)]
    assert all(p["distance"] < 1e-4 for p in pairs[:4]) and result.pairs == pairs
    assert r["effnet"]["memorisation"]["suspected_copy_fraction"] >= 0.5
    # Precision: at least the copies lie inside the real manifold (with 12 real images the
    # balls are wide, so some blanks may too).
    pr = r["effnet"]["precision_recall"]
    assert pr["precision"] >= 0.5 and 0.0 <= pr["recall"] <= 1.0
    assert set(r["effnet"]["real_halves"]) == {"real_vs_real", "fake_vs_real_half"}
    assert r["effnet"]["kid_x1000"] > 0 and r["effnet"]["fd"] > 0
    face = r["face_descriptor"]
    assert face["n_fake_faces"] == int(result.fake_found.sum()) and face["n_real_faces"] == int(result.real_found.sum())
    assert face["kid_x1000"] is None or np.isfinite(face["kid_x1000"])
    assert set(r["seconds"]) == {"effnet_features", "effnet_metrics", "faces_and_descriptors"}


def test_bad_shapes_are_refused(real):
    with pytest.raises(ValueError, match="one size"):
        measure_quality(real[:6, :64], real)
    with pytest.raises(ValueError, match="at least"):
        measure_quality(real[:3], real)
