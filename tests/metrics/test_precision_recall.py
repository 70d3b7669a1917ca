"""k-NN precision and recall (Kynkäänniemi et al. 2019) on synthetic Gaussians with known answers."""

import numpy as np
import pytest
import torch

from passersby.metrics import precision_recall as pr_module
from passersby.metrics.precision_recall import coverage, knn_radii, precision_recall, real_halves


def _gauss(rng, n, dim=8, scale=1.0, shift=0.0):
    return rng.normal(size=(n, dim)) * scale + shift  # (n, dim)


def test_knn_radii_match_brute_force_across_chunks(monkeypatch):
    monkeypatch.setattr(pr_module, "_CHUNK", 7)  # several distance blocks
    x = _gauss(np.random.default_rng(0), 40)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)  # (40, 40)
    np.fill_diagonal(dist, np.inf)
    for k in (1, 3):
        np.testing.assert_allclose(knn_radii(torch.from_numpy(x), k), np.sort(dist, axis=1)[:, k - 1], atol=1e-9)


def test_coverage_is_membership_in_any_ball():
    ref = np.array([[0.0, 0.0], [10.0, 0.0]])
    query = np.array([[0.5, 0.0], [10.0, 1.9], [5.0, 0.0]])
    assert coverage(query, ref, np.array([1.0, 2.0])).tolist() == [True, True, False]


def test_same_distribution_scores_high_precision_and_recall():
    rng = np.random.default_rng(1)
    result = precision_recall(_gauss(rng, 400), _gauss(rng, 400))
    assert result["precision"] > 0.8 and result["recall"] > 0.8
    assert (result["k"], result["n_real"], result["n_fake"]) == (3, 400, 400)


def test_collapsed_fakes_keep_precision_and_lose_recall():
    rng = np.random.default_rng(2)
    result = precision_recall(_gauss(rng, 400), _gauss(rng, 400, scale=0.2))  # all near the mode
    assert result["precision"] > 0.95 and result["recall"] < 0.05


def test_too_wide_fakes_lose_precision_and_keep_recall():
    rng = np.random.default_rng(3)
    result = precision_recall(_gauss(rng, 400), _gauss(rng, 400, scale=2.0))
    assert result["precision"] < 0.3 and result["recall"] > 0.95


def test_disjoint_sets_score_zero():
    rng = np.random.default_rng(4)
    result = precision_recall(_gauss(rng, 200), _gauss(rng, 200, shift=5.0))
    assert result["precision"] == 0.0 and result["recall"] == 0.0


def test_real_halves_reference_and_like_for_like_fakes():
    rng = np.random.default_rng(5)
    real, collapsed = _gauss(rng, 401), _gauss(rng, 300, scale=0.2)
    out = real_halves(real, np.random.default_rng(0), fake_feats=collapsed)
    ref, fake = out["real_vs_real"], out["fake_vs_real_half"]
    assert (ref["n_fake"], ref["n_real"]) == (200, 201) and (fake["n_fake"], fake["n_real"]) == (200, 201)
    assert ref["precision"] > 0.75 and ref["recall"] > 0.75
    assert fake["precision"] > 0.95 and fake["recall"] < 0.05
    assert real_halves(real, np.random.default_rng(0)) == {"real_vs_real": ref}  # same split, same figures


def test_bad_input_is_refused():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="k"):
        knn_radii(_gauss(rng, 3), k=3)
    with pytest.raises(ValueError, match="dims"):
        precision_recall(_gauss(rng, 10, dim=4), _gauss(rng, 10, dim=5))
    with pytest.raises(ValueError, match="radii"):
        coverage(_gauss(rng, 2), _gauss(rng, 3), np.ones(2))
    with pytest.raises(ValueError, match="generated"):
        real_halves(_gauss(rng, 20), rng, fake_feats=_gauss(rng, 5))
