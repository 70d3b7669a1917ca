"""Nearest-neighbour copy detection on synthetic features."""

import numpy as np
import pytest
import torch

from passersby.metrics import memorisation
from passersby.metrics.memorisation import memorisation_report, nearest_neighbours


def _feats(rng, n, dim=64):
    """ReLU-like features, shape (n, dim)."""
    return np.maximum(rng.normal(size=(n, dim)), 0.0)


def _brute_force(query, ref):
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    dist = 1.0 - q @ r.T  # (N, M)
    return dist.argmin(axis=1), dist.min(axis=1)


def test_nearest_neighbours_matches_brute_force_across_chunks(monkeypatch):
    monkeypatch.setattr(memorisation, "_CHUNK", 7)  # several similarity blocks
    rng = np.random.default_rng(0)
    gen, train = _feats(rng, 30), _feats(rng, 50)
    idx, dist = nearest_neighbours(gen, torch.from_numpy(train))
    want_idx, want_dist = _brute_force(gen, train)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, atol=1e-12)


def test_leave_one_out_never_matches_self(monkeypatch):
    monkeypatch.setattr(memorisation, "_CHUNK", 7)
    train = _feats(np.random.default_rng(1), 40)
    idx, dist = nearest_neighbours(train, train, exclude_self=True)
    assert not np.any(idx == np.arange(40))
    assert np.all(dist > 0)
    with pytest.raises(ValueError):
        nearest_neighbours(train[:5], train, exclude_self=True)


def test_report_flags_exact_copies_but_not_fresh_samples():
    rng = np.random.default_rng(2)
    train = _feats(rng, 300)
    copied = [3, 17, 42]
    gen = np.concatenate([train[copied], _feats(rng, 20)])  # 3 copies, then 20 fresh samples
    report = memorisation_report(gen, train)
    assert report["suspected_copies"] == [[0, 3], [1, 17], [2, 42]]
    assert report["suspected_copy_fraction"] == pytest.approx(3 / 23)
    assert report["n_generated"] == 23 and report["n_train"] == 300
    assert 0 < report["copy_threshold"] < report["median_train_to_train"]


def test_ratio_separates_memorising_from_generalising_generators():
    rng = np.random.default_rng(3)
    train = _feats(rng, 300)
    fresh = memorisation_report(_feats(rng, 200), train)
    near_copies = memorisation_report(train[:200] + 0.01 * rng.normal(size=(200, 64)), train)
    assert 0.8 < fresh["ratio"] < 1.25
    assert fresh["suspected_copy_fraction"] < 0.05
    assert near_copies["ratio"] < 0.1
    assert near_copies["suspected_copy_fraction"] > 0.9


def test_closest_pairs_are_the_nearest_generated_samples_in_order():
    rng = np.random.default_rng(4)
    train = _feats(rng, 100)
    gen = np.concatenate([_feats(rng, 20), train[[7]] + 1e-3, train[[50]]])  # a near copy, an exact copy
    pairs = memorisation.closest_pairs(gen, train, n=3)
    assert [(p["generated"], p["train"]) for p in pairs[:2]] == [(21, 50), (20, 7)]
    assert pairs[0]["distance"] == pytest.approx(0.0, abs=1e-9)
    assert pairs[0]["distance"] <= pairs[1]["distance"] <= pairs[2]["distance"]
    assert len(memorisation.closest_pairs(gen[:2], train, n=5)) == 2
    with pytest.raises(ValueError):
        memorisation.closest_pairs(gen, train, n=0)
