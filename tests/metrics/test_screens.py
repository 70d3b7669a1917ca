"""Per-screen face rate, P(male | screen), P(female | screen) and separation."""

import math

import pytest

from passersby.metrics.screens import screen_summary, separation

NAN = float("nan")


def test_summary_counts_faces_and_shares_among_faces():
    s = screen_summary([0.9, 0.7, 0.2, NAN, 0.5, NAN])
    assert (s["frames"], s["faces"], s["male"], s["female"], s["undecided"]) == (6, 4, 2, 1, 1)
    assert s["face_rate"] == pytest.approx(4 / 6)
    assert s["p_male"] == pytest.approx(2.5 / 4) and s["p_female"] == pytest.approx(1.5 / 4)
    assert s["mean_p_male"] == pytest.approx((0.9 + 0.7 + 0.2 + 0.5) / 4)


def test_summary_without_faces_or_frames_has_nan_rates():
    s = screen_summary([NAN, NAN])
    assert s["face_rate"] == 0.0 and math.isnan(s["p_male"]) and math.isnan(s["p_female"])
    assert math.isnan(screen_summary([])["face_rate"])
    with pytest.raises(ValueError, match="0, 1"):
        screen_summary([1.2])


def test_separation_of_two_screens():
    masc, fem = screen_summary([0.9, 0.8, 0.6, 0.3]), screen_summary([0.1, 0.2, NAN, NAN])
    h = separation({"masculine": masc, "feminine": fem, "unsteered": screen_summary([0.5])})
    assert h["p_male_given_masculine"] == pytest.approx(0.75)
    assert h["p_female_given_feminine"] == pytest.approx(1.0)
    assert h["separation"] == pytest.approx(0.75)
    assert (h["face_rate_masculine"], h["face_rate_feminine"]) == (1.0, 0.5)
    with pytest.raises(ValueError, match="feminine"):
        separation({"masculine": masc})
