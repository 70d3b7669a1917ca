"""Block-level prior strengths by the evidence (taste/evidence.py) and their use in PictureTaste."""

from __future__ import annotations

import numpy as np
import pytest

from passersby.taste.evidence import ALPHA_RANGE, _dual_newton, block_precisions, dual_block_precisions
from passersby.taste.model import BIAS_STD, _log_evidence, _newton


def _problem(seed: int = 0, n: int = 40, sizes=(20, 8, 30)):
    """Ratings that depend on the first two blocks only; the third is noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sum(sizes)))
    y = (x[:, 0] + 0.5 * x[:, sizes[0]] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    s = np.ones(n)
    s[3] = 2.0  # a superlike
    blocks = np.repeat(np.arange(len(sizes)), sizes)
    return x, y, s, blocks


def test_the_dual_fit_is_the_weight_space_fit() -> None:
    x, y, s, blocks = _problem()
    alpha = np.array([2.0, 0.5, 1.0])
    design = np.hstack([x, np.ones((len(x), 1))])
    prec = np.append(alpha[blocks], 1.0 / BIAS_STD**2)
    theta, hess = _newton(design, y, s, prec, np.zeros(design.shape[1]))
    grams = [x[:, blocks == b] @ x[:, blocks == b].T for b in range(3)]
    f, a, _, ev = _dual_newton(sum(g / v for g, v in zip(grams, alpha)) + BIAS_STD**2, y, s, np.zeros(len(y)))
    np.testing.assert_allclose(f, design @ theta, atol=1e-8)  # the same MAP logits
    assert ev == pytest.approx(_log_evidence(design, y, s, prec, theta, hess), abs=1e-8)  # the same evidence
    # The weights of block b are X_b^T a / alpha_b: the weight-space MAP.
    np.testing.assert_allclose(x[:, blocks == 0].T @ a / alpha[0], theta[:20], atol=1e-8)


def test_both_forms_find_the_same_block_strengths_and_switch_off_the_noise_block() -> None:
    x, y, s, blocks = _problem()
    design = np.hstack([x, np.ones((len(x), 1))])
    weight_space, _, _ = block_precisions(design, y, s, blocks, np.ones(3), rounds=60)
    grams = [x[:, blocks == b] @ x[:, blocks == b].T for b in range(3)]
    dual, _, _ = dual_block_precisions(grams, y, s, np.ones(3), rounds=60)
    np.testing.assert_allclose(dual, weight_space, rtol=1e-3)
    assert dual[2] == ALPHA_RANGE[1]  # the noise block is shrunk to the bound
    assert dual[0] < 100 and dual[1] < 100  # the blocks the ratings depend on stay free


def test_block_strengths_never_lower_the_evidence_from_the_start() -> None:
    x, y, s, blocks = _problem(seed=4, n=15)
    grams = [x[:, blocks == b] @ x[:, blocks == b].T for b in range(3)]
    k0 = sum(grams) + BIAS_STD**2
    start = _dual_newton(k0, y, s, np.zeros(len(y)))[3]
    alpha, _, ev = dual_block_precisions(grams, y, s, np.ones(3))
    assert ev >= start - 1e-9
    assert np.all((alpha >= ALPHA_RANGE[0]) & (alpha <= ALPHA_RANGE[1]))


# ---------------------------------------------------------------- in PictureTaste

D = 16


@pytest.fixture(scope="module")
def head():
    from passersby.taste.head import HeadConfig, fit_head

    cfg = HeadConfig(samples=800, pca=4, hidden=32, epochs=60, landmarks=16, seed=3)
    a = np.random.default_rng(42).standard_normal((D, 24)) / np.sqrt(D)

    def features(z):
        return np.maximum(np.tanh(z @ a) + 0.5 * np.tanh((z @ a) ** 2 - 1.0), 0.0) + 0.1

    z = np.random.default_rng(1).standard_normal((cfg.samples, D))
    return fit_head(z, features(z), "synthetic", cfg)


def test_a_taste_that_is_a_direction_in_z_gets_a_free_z_block(head, monkeypatch) -> None:
    import passersby.taste.picture as picture

    rng = np.random.default_rng(5)
    z = rng.standard_normal((60, D))
    direction = np.eye(D)[D - 1]  # an axis the head's picture features barely see
    ratings = ["like" if v > 0 else "dislike" for v in z @ direction]
    test = rng.standard_normal((1000, D))
    truth = (test @ direction > 0).astype(float)
    from passersby.taste.model import roc_auc

    monkeypatch.setattr(picture, "BLOCK_EVIDENCE", "true")
    chosen = picture.PictureTaste.fit(z, ratings, head)
    monkeypatch.setattr(picture, "BLOCK_EVIDENCE", "off")
    shared = picture.PictureTaste.fit(z, ratings, head)
    # The z block is let loose relative to the picture blocks (one strength keeps it at Z_SCALE of them).
    assert chosen.scales[0] / chosen.scales[1] > 2 * picture.Z_SCALE, chosen.scales
    assert shared.scales[0] / shared.scales[1] == pytest.approx(picture.Z_SCALE)
    auc_chosen, auc_shared = roc_auc(chosen.prob(test), truth), roc_auc(shared.prob(test), truth)
    assert auc_chosen > 0.9 and auc_chosen > auc_shared, (auc_chosen, auc_shared)


def test_block_scales_round_trip_and_a_format_2_fit_loads_and_scores_as_before(head) -> None:
    import passersby.taste.picture as picture

    rng = np.random.default_rng(6)
    z = rng.standard_normal((30, D))
    taste = picture.PictureTaste.fit(z, ["like" if v > 0 else "dislike" for v in z[:, 0]], head)
    back = picture.PictureTaste.from_dict(taste.to_dict(), head)
    assert back.scales == taste.scales and taste.to_dict()["format"] == "passersby-picture-taste/3"
    np.testing.assert_array_equal(back.prob(z), taste.prob(z))
    # A "/2" fit had no scales: its phi was this one's at (Z_SCALE, 1, 1).
    old = {k: v for k, v in taste.to_dict().items() if k != "scales"}
    old["format"] = "passersby-picture-taste/2"
    two = picture.PictureTaste.from_dict(old, head)
    assert two.scales == (picture.Z_SCALE, 1.0, 1.0)
    x = two.phi(z[:3])
    np.testing.assert_allclose(x[:, :D], picture.Z_SCALE * z[:3] @ two.basis)
    with pytest.raises(ValueError, match="scales must be three positive numbers"):
        picture.PictureTaste.from_dict({**taste.to_dict(), "scales": [1.0, 0.0, 1.0]}, head)


@pytest.mark.parametrize("blocks", [False, True])
def test_strengths_are_the_same_in_the_dual_and_in_weight_space(blocks) -> None:
    from passersby.taste.model import L2_GRID
    from passersby.taste.picture import _strengths

    x, y, s, b = _problem(seed=2, n=45)
    parts = [x[:, b == i] for i in range(3)]
    dual, a, ev_dual = _strengths(parts, y, s, None, blocks, dual=True)
    weights, none, ev_weights = _strengths(parts, y, s, None, blocks, dual=False)
    assert a.shape == (45,) and none is None
    assert ev_dual == pytest.approx(ev_weights, abs=1e-6)  # the one-strength fit's evidence, either form
    if not blocks:  # one strength from the grid: the same grid point, whichever form
        np.testing.assert_allclose(dual, weights)
        assert any(np.isclose(dual[1], v) for v in L2_GRID)
    else:
        np.testing.assert_allclose(dual, weights, rtol=0.05)
    np.testing.assert_allclose(_strengths(parts, y, s, 3.0, False)[0], 3.0 / np.array([0.25, 1.0, 1.0]) ** 2)


def test_the_kernel_bandwidth_is_chosen_by_the_evidence_among_the_factors(head, monkeypatch) -> None:
    import passersby.taste.picture as picture

    rng = np.random.default_rng(9)
    z = rng.standard_normal((50, D))
    ratings = ["like" if v > 0 else "dislike" for v in head(z)[:, 0] * head(z)[:, 1]]
    median = picture.PictureTaste.fit(z, ratings, head).bandwidth  # the shipped single factor: 1.0
    calls = []
    real = picture._strengths
    monkeypatch.setattr(picture, "_strengths", lambda *a, **k: calls.append(a[0][2].shape) or real(*a, **k))
    monkeypatch.setattr(picture, "BANDWIDTH_FACTORS", (0.25, 0.5, 1.0, 2.0))
    chosen = picture.PictureTaste.fit(z, ratings, head)
    assert len(calls) == 4 + 1  # one evidence per factor, then the fit at the chosen one
    assert any(np.isclose(chosen.bandwidth, median * f) for f in (0.25, 0.5, 1.0, 2.0))
    evidences = {f: real([z @ chosen.basis, picture.feature_weights(head) * head(z),
                          picture.expected_rbf(picture.feature_weights(head) * head(z), chosen.centres, median * f)],
                         np.array([r == "like" for r in ratings], float), np.ones(50), None, False)[2]
                 for f in (0.25, 0.5, 1.0, 2.0)}
    assert np.isclose(chosen.bandwidth, median * max(evidences, key=evidences.get))
    calls.clear()
    few = picture.PictureTaste.fit(z[:5], ratings[:5], head)
    assert len(calls) == 1  # too few ratings to choose: the first factor, no evidence compared
    assert few.bandwidth == pytest.approx(0.25 * picture._bandwidth(few.centres, picture.feature_weights(head)))


def test_the_dual_fit_takes_one_rating_repeated_faces_superlikes_and_skips(head) -> None:
    import passersby.taste.picture as picture

    rng = np.random.default_rng(11)
    z = rng.standard_normal((6, D))
    one = picture.PictureTaste.fit(z[:1], ["like"], head)
    assert one.n == 1 and one.prob(z[1:]).shape == (5,)
    twice = np.vstack([z[:3], z[:3]])  # the same faces rated twice: a singular Gram matrix, a regular B
    same = picture.PictureTaste.fit(twice, ["like", "dislike", "superlike", "like", "dislike", "skip"], head)
    assert same.n == 5 and np.all(np.isfinite(same.prob(z)))
    # A superlike counts twice (weight s = 2 in the dual): that face is liked more surely than after a like.
    superliked = picture.PictureTaste.fit(z[:4], ["superlike", "dislike", "dislike", "like"], head, l2=1.0)
    liked = picture.PictureTaste.fit(z[:4], ["like", "dislike", "dislike", "like"], head, l2=1.0)
    assert superliked.prob(z[:1])[0] > liked.prob(z[:1])[0] + 0.01
    skipped = picture.PictureTaste.fit(z[:2], ["skip", "skip"], head)
    np.testing.assert_allclose(skipped.prob(z), 0.5)
