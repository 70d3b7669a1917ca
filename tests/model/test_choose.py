"""Labelled screens that choose their faces (model/choose.py): the probe keeps the clearest of k
candidates drawn at a small offset; everything comes from the rng passed in."""

from __future__ import annotations

import numpy as np
import pytest

from passersby.model.choose import ScreenChoice, choosing_proposer
from passersby.model.direction import FeatureProbe


def _choice(scale: float = 2.0, fem: float = 3.0) -> ScreenChoice:
    probe = FeatureProbe(np.zeros(3), np.ones(3), np.array([1.0, -0.5, 0.0]), 0.25)
    return ScreenChoice(probe, "descriptor", scale, fem)


def test_the_clearest_candidate_is_kept_all_at_the_small_offset() -> None:
    d = np.eye(6)[0]
    seen = []

    def score(z: np.ndarray) -> np.ndarray:
        seen.append(z.copy())
        return z[:, 1]  # "clearest" = the largest second coordinate

    pick = choosing_proposer(6, d, _choice(), "feminine", 5, score)
    z = pick(np.random.default_rng(3))
    (cands,) = seen
    assert cands.shape == (5, 6) and np.allclose(cands @ d, -3.0)  # feminine: its own small offset
    assert np.array_equal(z, cands[np.argmax(cands[:, 1])])
    # The same rng, the same anchor; the candidates are the push's own draws, k of them.
    from passersby.model.direction import steered_proposer

    push, rng = steered_proposer(6, d, 3.0, "feminine"), np.random.default_rng(3)
    assert np.allclose(np.stack([push(rng) for _ in range(5)]), cands)
    assert np.array_equal(choosing_proposer(6, d, _choice(), "feminine", 5, lambda c: c[:, 1])(np.random.default_rng(3)), z)


def test_a_face_not_found_is_never_kept_while_another_is() -> None:
    from passersby.model.direction import steered_proposer

    # Candidates 0 and 2 have no face (the reader says -1): the one with a face is kept.
    z = choosing_proposer(4, np.eye(4)[0], _choice(), "masculine", 3,
                          lambda c: np.array([-1.0, 0.2, -1.0]))(np.random.default_rng(0))
    push, rng = steered_proposer(4, np.eye(4)[0], 2.0, "masculine"), np.random.default_rng(0)
    assert np.array_equal(z, [push(rng) for _ in range(3)][1]) and z[0] == 2.0


def test_one_candidate_is_the_push_without_a_render() -> None:
    def score(z):
        raise AssertionError("nothing to choose between: no render")

    z = choosing_proposer(4, np.eye(4)[1], _choice(), "masculine", 1, score)(np.random.default_rng(1))
    assert z[1] == 2.0
    with pytest.raises(ValueError, match="k must be >= 1"):
        choosing_proposer(4, np.eye(4)[1], _choice(), "masculine", 0, score)


def test_the_choice_round_trips_and_a_malformed_one_is_refused_in_one_line() -> None:
    c = _choice()
    back = ScreenChoice.from_dict(c.to_dict())
    assert (back.kind, back.scale, back.feminine_scale) == ("descriptor", 2.0, 3.0)
    f = np.array([[1.0, 0.0, 5.0], [-2.0, 1.0, 0.0]])
    assert np.allclose(back.label_prob(f, "masculine"), c.label_prob(f, "masculine"))
    assert np.allclose(c.label_prob(f, "feminine"), 1 - c.label_prob(f, "masculine"))
    bad = c.to_dict()
    bad["probe"]["w"] = [1.0]
    with pytest.raises(ValueError, match="malformed") as e:
        ScreenChoice.from_dict(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="malformed"):
        ScreenChoice.from_dict({**c.to_dict(), "kind": "vibes"})
    with pytest.raises(ValueError, match="malformed"):
        ScreenChoice.from_dict({"kind": "effnet"})
    with pytest.raises(ValueError, match="label must be one of"):
        c.scale_for("both")
