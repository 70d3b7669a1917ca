"""The feature path: the feature head (z -> predicted picture features), its cache, and PictureTaste.

A synthetic "generator" stands in for the real one: its picture features are a fixed nonlinear
function of z, so the head can be trained in a second and what it must learn is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from passersby.taste.active import choose_next, information_gain
from passersby.taste.head import (
    FeatureHead,
    HeadConfig,
    HeadError,
    cached_head,
    fit_head,
    head_path,
)
from passersby.taste.model import TasteModel, roc_auc
from passersby.taste.picture import PictureTaste, evaluate_picture, salient_basis
from passersby.taste.steer import steer

D = 16
CFG = HeadConfig(samples=800, pca=4, hidden=32, epochs=60, landmarks=16, seed=3)


def picture_features(z: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, 24) 'features of the render': a fixed nonlinear function of z."""
    a = np.random.default_rng(42).standard_normal((D, 24)) / np.sqrt(D)
    return np.maximum(np.tanh(z @ a) + 0.5 * np.tanh((z @ a) ** 2 - 1.0), 0.0) + 0.1


@pytest.fixture(scope="module")
def head() -> FeatureHead:
    z = np.random.default_rng(1).standard_normal((CFG.samples, D))
    return fit_head(z, picture_features(z), "synthetic", CFG)


def test_head_predicts_the_features_it_was_trained_on(head) -> None:
    # The top components are smooth functions of z: held out, the head explains most of them.
    assert head.r2.shape == (4,)
    assert head.r2[0] > 0.8 and head.r2.mean() > 0.6
    z = np.random.default_rng(2).standard_normal((5, D))
    assert head(z).shape == (5, 4) and head.kernel(head(z)).shape == (5, 16)
    with pytest.raises(ValueError, match=r"\(m, 16\) latents"):
        head(np.zeros((2, D + 1)))


def test_head_round_trips_through_safetensors(head, tmp_path) -> None:
    path = tmp_path / "cache" / "h.safetensors"
    head.save(path)
    back = FeatureHead.load(path, "synthetic")
    z = np.random.default_rng(3).standard_normal((7, D))
    np.testing.assert_allclose(back(z), head(z), rtol=1e-4, atol=1e-4)  # stored as float32
    np.testing.assert_allclose(back.kernel(back(z)), head.kernel(head(z)), rtol=1e-3, atol=1e-3)
    assert back.config == CFG and back.model_hash == "synthetic"
    assert not list(path.parent.glob("*.tmp*"))  # atomic write leaves no temporary behind
    assert b"pickle" not in path.read_bytes()[:200]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_head_file_is_one_clear_error(head, tmp_path, damage) -> None:
    path = tmp_path / "h.safetensors"
    head.save(path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[damage])
    with pytest.raises(HeadError) as e:
        FeatureHead.load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_another_models_head_is_refused(head, tmp_path) -> None:
    path = tmp_path / "h.safetensors"
    head.save(path)
    with pytest.raises(HeadError, match="model synthetic, not abc"):
        FeatureHead.load(path, "abc")
    with pytest.raises(HeadError, match="no feature head"):
        FeatureHead.load(tmp_path / "missing.safetensors")


def test_cached_head_rebuilds_a_damaged_cache_and_then_reads_it(tmp_path, monkeypatch) -> None:
    import passersby.taste.head as head_module

    calls = []

    def fake_pairs(render, n, z_dim, seed):  # no EfficientNet in unit tests: the synthetic features
        calls.append(n)
        z = np.random.default_rng(seed).standard_normal((n, z_dim))
        return z, picture_features(z)

    monkeypatch.setattr(head_module, "sample_pairs", fake_pairs)
    path = head_path(tmp_path, "m1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a head")
    reasons = []
    h = cached_head(tmp_path, "m1", render=None, z_dim=D, config=CFG, on_compute=reasons.append)
    assert calls == [CFG.samples] and len(reasons) == 1 and "not a readable feature head" in reasons[0]
    again = cached_head(tmp_path, "m1", render=None, z_dim=D, config=CFG, on_compute=reasons.append)
    assert calls == [CFG.samples] and len(reasons) == 1  # read from the cache, not rebuilt
    z = np.random.default_rng(5).standard_normal((3, D))
    np.testing.assert_allclose(again(z), h(z), atol=1e-4)


def test_picture_taste_learns_near_these_where_the_z_model_cannot(head) -> None:
    # The hidden taste: the picture (here: its head features) is close to one of three
    # "portraits". A union of bumps is no half-space of z: the linear model cannot learn it.
    rng = np.random.default_rng(7)
    centres = head(rng.standard_normal((3, D)))

    def distance(z):
        return np.linalg.norm(head(z)[:, None] - centres[None], axis=2).min(1)

    cut = np.percentile(distance(rng.standard_normal((2000, D))), 30)
    z = rng.standard_normal((150, D))
    ratings = ["like" if v < cut else "dislike" for v in distance(z)]
    test = rng.standard_normal((1000, D))
    y = (distance(test) < cut).astype(float)
    auc_picture = roc_auc(PictureTaste.fit(z, ratings, head).prob(test), y)
    auc_z = roc_auc(TasteModel.fit(z, ratings).prob(test), y)
    assert auc_picture > 0.8 and auc_picture > auc_z + 0.1, (auc_picture, auc_z)


def test_picture_taste_plugs_into_steering_and_active_choice(head) -> None:
    rng = np.random.default_rng(8)
    z = rng.standard_normal((80, D))
    taste = PictureTaste.fit(z, ["like" if v > 0 else "dislike" for v in head(z)[:, 0]], head)
    assert taste.n == 80 and taste.z_dim == D
    propose = lambda r: r.standard_normal(D)
    anchors = np.stack([steer(propose, taste, 1.0)(np.random.default_rng([9, i])) for i in range(30)])
    plain = np.stack([propose(np.random.default_rng([9, i])) for i in range(30)])
    assert taste.prob(anchors).mean() > taste.prob(plain).mean() + 0.2
    assert np.all(information_gain(taste, plain) >= 0)
    assert choose_next(taste, propose, np.random.default_rng(1)).shape == (D,)
    empty = PictureTaste.empty(head)
    np.testing.assert_allclose(empty.prob(plain), 0.5)
    r = evaluate_picture(z, ["like" if v > 0 else "dislike" for v in head(z)[:, 0]], head, last=40)
    assert r["n"] == 40 and r["auc"] > 0.8


def test_picture_taste_round_trips_and_refuses_another_models_head(head) -> None:
    rng = np.random.default_rng(10)
    z = rng.standard_normal((40, D))
    prior = np.diag(np.linspace(3.0, 0.1, D))
    taste = PictureTaste.fit(z, ["like" if v > 0 else "dislike" for v in z[:, 0]], head, prior=prior)
    back = PictureTaste.from_dict(taste.to_dict(), head)
    np.testing.assert_array_equal(back.prob(z), taste.prob(z))
    # The z block keeps the prior's strongest directions first: here the first axes of z.
    basis = salient_basis(prior, D, 4)
    assert np.argmax(np.abs(basis[:, 0])) == 0 and np.argmax(np.abs(basis[:, 3])) == 3
    other = FeatureHead(**{**head.__dict__, "model_hash": "other"})
    with pytest.raises(ValueError, match="for model synthetic"):
        PictureTaste.from_dict(taste.to_dict(), other)


def test_project_maps_true_features_to_what_the_head_predicts(head) -> None:
    # project() is how real renders are checked against the head (benchmarks/taste_head.py).
    z = np.random.default_rng(11).standard_normal((400, D))
    true, pred = head.project(picture_features(z)), head(z)
    r2 = 1.0 - ((pred - true) ** 2).mean(0) / true.var(0)
    assert true.shape == pred.shape == (400, 4)
    assert r2[0] > 0.8 and abs(r2.mean() - head.r2.mean()) < 0.15
    assert abs(true.std(0) - 1.0).max() < 0.2  # standardised on random faces


def test_expected_rbf_is_the_average_over_the_heads_uncertainty() -> None:
    from passersby.taste.picture import expected_rbf

    rng = np.random.default_rng(12)
    x, c = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    var = np.array([0.1, 0.5, 1.0, 2.0])
    draws = x[:, None, :] + rng.standard_normal((3, 40000, 4)) * np.sqrt(var)  # t ~ N(x, diag(var))
    monte_carlo = np.stack([expected_rbf(d, c, 1.3) .mean(0) for d in draws])  # (3, 5)
    np.testing.assert_allclose(expected_rbf(x, c, 1.3, var), monte_carlo, atol=0.01)
    np.testing.assert_allclose(expected_rbf(x, x, 2.0).diagonal(), 1.0)  # var None: the plain RBF


def _near_three(head, seed):
    """A hidden taste on the TRUE picture: its features close to one of three portraits."""
    rng = np.random.default_rng(seed)
    centres = head.project(picture_features(rng.standard_normal((3, D))))

    def distance(z):
        return np.linalg.norm(head.project(picture_features(z))[:, None] - centres[None], axis=2).min(1)

    cut = np.percentile(distance(rng.standard_normal((2000, D))), 30)
    return rng, lambda z: distance(z) < cut


def test_picture_taste_learns_from_the_true_features_of_rated_faces(head) -> None:
    from passersby.taste.picture import MAX_CENTRES, feature_weights

    rng, liked = _near_three(head, 13)
    z = rng.standard_normal((150, D))
    f = picture_features(z)  # what the rated faces' renders really are
    ratings = ["like" if v else "dislike" for v in liked(z)]
    taste = PictureTaste.fit(z, ratings, head, features=f)
    assert taste.true_features and taste.n == 150
    # The kernel's centres are the rated faces as they really look (the last MAX_CENTRES).
    np.testing.assert_allclose(taste.centres, (feature_weights(head) * head.project(f))[-MAX_CENTRES:])
    guessed = PictureTaste.fit(z, ratings, head)
    assert not guessed.true_features and not np.allclose(guessed.centres, taste.centres[: len(guessed.centres)])
    test = rng.standard_normal((1000, D))  # candidates: only z, scored through the head
    auc = roc_auc(taste.prob(test), liked(test).astype(float))
    assert auc > 0.75 and auc > roc_auc(TasteModel.fit(z, ratings).prob(test), liked(test).astype(float)) + 0.05
    back = PictureTaste.from_dict(taste.to_dict(), head)
    np.testing.assert_array_equal(back.prob(test[:20]), taste.prob(test[:20]))
    with pytest.raises(ValueError, match="features must be"):
        PictureTaste.fit(z, ratings, head, features=f[:, :5])
    with pytest.raises(ValueError, match="refit it from the ratings"):
        PictureTaste.from_dict({**taste.to_dict(), "format": "passersby-picture-taste/1"}, head)
    r = evaluate_picture(z, ratings, head, features=f, last=50)
    assert r["n"] == 50 and r["auc"] > 0.7


def test_a_head_that_sees_little_learns_from_its_own_guesses() -> None:
    # An undertrained head (held-out R² ~0.05): what candidates can show is its guess, so the
    # rated faces are fitted by their guesses too (MIN_HEAD_R2), not by features no candidate has.
    z0 = np.random.default_rng(1).standard_normal((300, D))
    poor = fit_head(z0, picture_features(z0), "synthetic", HeadConfig(samples=300, pca=4, hidden=16, epochs=10,
                                                                         landmarks=16, seed=3))
    assert poor.r2.mean() < 0.25
    rng, liked = _near_three(poor, 7)
    z = rng.standard_normal((150, D))
    ratings = ["like" if v else "dislike" for v in liked(z)]
    taste = PictureTaste.fit(z, ratings, poor, features=picture_features(z))
    assert not taste.true_features
    test = rng.standard_normal((1000, D))
    assert roc_auc(taste.prob(test), liked(test).astype(float)) > 0.65


def test_seen_candidates_are_scored_on_their_true_features_and_rank_better(head) -> None:
    """prob_seen: a rendered candidate's P(like) from what it really looks like; on the same
    candidates it ranks the hidden taste better than the head's guess (the re-rank lever,
    benchmarks/taste_levers.py `rerank=K`)."""
    rng, liked = _near_three(head, 21)
    z = rng.standard_normal((150, D))
    ratings = ["like" if v else "dislike" for v in liked(z)]
    taste = PictureTaste.fit(z, ratings, head, features=picture_features(z))
    test = rng.standard_normal((1000, D))
    truth = liked(test).astype(float)
    seen = taste.prob_seen(test, picture_features(test))
    assert seen.shape == (1000,) and np.all((seen > 0) & (seen < 1))
    assert roc_auc(seen, truth) > roc_auc(taste.prob(test), truth) + 0.02
    # Where the head's guess is the truth, seeing changes only the kernel's uncertainty term.
    exact = taste.phi_seen(test[:5], picture_features(test[:5]))
    assert exact.shape == taste.phi(test[:5]).shape
    np.testing.assert_allclose(exact[:, : taste.basis.shape[1]], taste.phi(test[:5])[:, : taste.basis.shape[1]])
    with pytest.raises(ValueError, match="must be"):
        taste.moments_seen(test[:3], picture_features(test[:2]))
