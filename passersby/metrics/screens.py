"""How masculine the masculine screen looks, how feminine the feminine one: figures per screen.

Input: for each frame sampled from a screen's stream, the independent classifier's P(male)
(`passersby.metrics.gender.male_probabilities`, flip-averaged; NaN where it finds no face).
A face counts as male when P(male) > 0.5, female when < 0.5, and half each at exactly 0.5
(it happens: the package reports whole percents). Output, per screen: the share of frames
with a face, and among those P(male | screen) and P(female | screen); across the two screens,
separation = P(male | masculine screen) - P(male | feminine screen) (1 = always right,
0 = the screens look alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def screen_summary(p_male: Sequence[float]) -> dict[str, Any]:
    """Face rate and gender shares of one screen's sampled frames.

    Args:
        p_male: one P(male) per sampled frame, NaN where no face was found.

    Returns:
        {"frames", "faces", "face_rate", "male", "female", "undecided", "p_male",
        "p_female", "mean_p_male"}: counts among faces (undecided = exactly 0.5), the shares
        P(male | screen) and P(female | screen) among faces (undecided counted half each),
        and the mean classifier probability; rates are NaN without frames or faces.

    Example:
        >>> s = screen_summary([0.9, 0.8, 0.2, float("nan")])
        >>> s["face_rate"], round(s["p_male"], 3)
        (0.75, 0.667)
    """
    p = np.asarray(p_male, dtype=np.float64).reshape(-1)  # (F,)
    faces = p[~np.isnan(p)]  # (K,)
    if ((faces < 0) | (faces > 1)).any():
        raise ValueError("p_male values must lie in [0, 1] (or be NaN for no face)")
    male, female = int((faces > 0.5).sum()), int((faces < 0.5).sum())
    undecided = int(faces.size - male - female)
    share = (male + 0.5 * undecided) / faces.size if faces.size else math.nan
    return {
        "frames": int(p.size),
        "faces": int(faces.size),
        "face_rate": faces.size / p.size if p.size else math.nan,
        "male": male,
        "female": female,
        "undecided": undecided,
        "p_male": share,
        "p_female": 1.0 - share if faces.size else math.nan,
        "mean_p_male": float(faces.mean()) if faces.size else math.nan,
    }


def separation(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The two screens' headline figures from their `screen_summary`s.

    Args:
        summaries: {"masculine": summary, "feminine": summary, ...}; other screens ignored.

    Returns:
        {"p_male_given_masculine", "p_female_given_feminine", "separation"
        (= P(male | masculine) - P(male | feminine)), "face_rate_masculine",
        "face_rate_feminine"}; NaN where a screen has no faces.

    Example:
        >>> m, f = screen_summary([0.9, 0.9]), screen_summary([0.1, 0.6])
        >>> separation({"masculine": m, "feminine": f})["separation"]
        0.5
    """
    missing = {"masculine", "feminine"} - set(summaries)
    if missing:
        raise ValueError(f"need summaries of both screens, missing {sorted(missing)}")
    masc, fem = summaries["masculine"], summaries["feminine"]
    return {
        "p_male_given_masculine": masc["p_male"],
        "p_female_given_feminine": fem["p_female"],
        "separation": masc["p_male"] - fem["p_male"],
        "face_rate_masculine": masc["face_rate"],
        "face_rate_feminine": fem["face_rate"],
    }
