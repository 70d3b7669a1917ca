"""Steering anchors by taste: e = 0 is the plain stream, e = 1 mostly liked faces, diversity survives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from passersby.taste.model import TasteModel
from passersby.taste.steer import Exactingness, diversity, n_candidates, steer

D = 128
CUT = 0.5244  # P(N(0, 1) > CUT) = 0.30: the taste likes 30 % of random faces


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D)


@pytest.fixture(scope="module")
def taste() -> tuple[np.ndarray, TasteModel]:
    """A hidden direction u (like iff z·u > CUT) and a model fitted on 300 random ratings of it."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal(D)
    u /= np.linalg.norm(u)
    z = rng.standard_normal((300, D))
    return u, TasteModel.fit(z, ["like" if v > CUT else "dislike" for v in z @ u])


def stream(proposer, n: int = 200, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([proposer(rng) for _ in range(n)])


def test_zero_exactingness_is_the_base_proposer_bit_for_bit(taste) -> None:
    _, model = taste
    np.testing.assert_array_equal(stream(steer(propose, model, 0.0)), stream(propose))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    steer(propose, model, Exactingness(0.0))(a)
    propose(b)
    assert a.bit_generator.state == b.bit_generator.state  # the ledger's RNG advances alike


def test_full_exactingness_streams_mostly_liked_faces_and_keeps_diversity(taste) -> None:
    u, model = taste
    plain, exacting = stream(propose), stream(steer(propose, model, 1.0))
    assert (plain @ u > CUT).mean() < 0.4
    assert (exacting @ u > CUT).mean() > 0.8
    assert diversity(exacting) >= 0.7 * diversity(plain)


def test_half_exactingness_lies_between(taste) -> None:
    u, model = taste
    liked = [(stream(steer(propose, model, e)) @ u > CUT).mean() for e in (0.0, 0.5, 1.0)]
    assert liked[0] < liked[1] <= liked[2] + 0.05


def test_the_knob_acts_on_the_next_call(taste) -> None:
    _, model = taste
    knob = Exactingness(0.0)
    steered = steer(propose, model, knob)
    rng, ref = np.random.default_rng(4), np.random.default_rng(4)
    np.testing.assert_array_equal(steered(rng), propose(ref))
    knob.value = 1.0
    chosen = steered(rng)
    pool = np.stack([propose(ref) for _ in range(64)])
    np.testing.assert_array_equal(chosen, pool[np.argmax(model.prob(pool))])


def test_a_live_model_is_read_on_every_call(taste) -> None:
    u, model = taste
    current = {"m": TasteModel.empty(D)}
    steered = steer(propose, lambda: current["m"], 1.0)
    before = stream(steered, 50)
    current["m"] = model
    after = stream(steered, 50)
    assert (after @ u > CUT).mean() > (before @ u > CUT).mean() + 0.3


def test_the_critic_threshold_is_respected(taste) -> None:
    _, model = taste
    critic = lambda z: float(z[5])  # noqa: E731 - a stand-in quality score
    for e in (0.0, 0.5, 1.0):
        anchors = stream(steer(propose, model, e, critic=critic, min_critic=1.0), 50)
        assert (anchors[:, 5] >= 1.0).all()


def test_an_impossible_critic_returns_its_best_candidate(taste) -> None:
    _, model = taste
    calls = []
    critic = lambda z: calls.append(1) or float(z[0])  # noqa: E731
    z = steer(propose, model, 0.5, max_candidates=8, critic=critic, min_critic=99.0)(np.random.default_rng(5))
    assert len(calls) == 32  # CRITIC_DRAWS x max_candidates draws, each judged once
    rng = np.random.default_rng(5)
    drawn = np.stack([propose(rng) for _ in range(32)])
    assert z[0] == drawn[:, 0].max()


def test_the_critic_is_asked_only_until_a_candidate_passes(taste) -> None:
    _, model = taste
    calls = []
    steer(propose, model, 1.0, critic=lambda z: calls.append(1) or 1.0, min_critic=0.0)(np.random.default_rng(6))
    assert len(calls) == 1


def test_exactingness_knob_validates_and_is_thread_safe() -> None:
    knob = Exactingness()
    for bad in (-0.1, 1.1, float("nan"), "high"):
        with pytest.raises(ValueError, match="exactingness"):
            knob.value = bad
    with pytest.raises(ValueError, match="exactingness"):
        steer(propose, TasteModel.empty(D), 2.0)

    def writer(v: float) -> None:
        for _ in range(1000):
            knob.value = v

    threads = [threading.Thread(target=writer, args=(v,)) for v in (0.25, 0.75)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert knob.value in (0.25, 0.75)


def test_bad_steer_arguments_raise() -> None:
    with pytest.raises(ValueError, match="together"):
        steer(propose, TasteModel.empty(D), 0.5, critic=lambda z: 1.0)
    with pytest.raises(ValueError, match="max_candidates"):
        steer(propose, TasteModel.empty(D), 0.5, max_candidates=0)


def test_candidate_counts_and_diversity() -> None:
    assert [n_candidates(e, 64) for e in (0.0, 0.25, 1.0)] == [1, 17, 64]
    assert diversity(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])) == pytest.approx(10 / 3)
    assert np.isnan(diversity(np.zeros((1, 3))))
    assert diversity(np.random.default_rng(7).standard_normal((300, D))) == pytest.approx(np.sqrt(2 * D), rel=0.02)


class _Seeing:
    """A taste whose guess (prob) sees only z[0] and whose look (prob_seen) sees the truth z[1]."""

    true_features, n = True, 10

    def prob(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(z)[:, 0]))

    def prob_seen(self, z: np.ndarray, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-features[:, 0]))


def test_the_best_guesses_are_looked_at_and_the_best_seen_is_kept() -> None:
    looked: list[int] = []

    def look(z: np.ndarray) -> np.ndarray:  # "render and embed": here the picture is z[1]
        looked.append(len(z))
        return np.asarray(z)[:, 1:2]

    rng = np.random.default_rng(4)
    pool = rng.standard_normal((64, D))
    guess = np.argsort(-pool[:, 0])[:4]
    z = steer(lambda r: r.standard_normal(D), _Seeing(), 1.0, look=look, rerank=4)(np.random.default_rng(4))
    assert looked == [4]  # one look per anchor, at the 4 best guesses only
    np.testing.assert_array_equal(z, pool[guess[np.argmax(pool[guess, 1])]])
    plain = steer(lambda r: r.standard_normal(D), _Seeing(), 1.0)(np.random.default_rng(4))
    np.testing.assert_array_equal(plain, pool[guess[0]])  # without the look: the best guess
    # A z model (no true features) is never looked at; exactingness 0 draws once, no look.
    steer(lambda r: r.standard_normal(D), TasteModel.empty(D), 1.0, look=look, rerank=4)(rng)
    steer(lambda r: r.standard_normal(D), _Seeing(), 0.0, look=look, rerank=4)(rng)
    assert looked == [4]
    with pytest.raises(ValueError, match="rerank"):
        steer(lambda r: r.standard_normal(D), _Seeing(), 1.0, rerank=4)
