"""Which face to show the curator next: the one whose rating would teach the taste model most.

Random faces teach slowly: in 128 dimensions most of them are ones the model is already sure
about. `choose_next` draws a pool of candidates from the screen's proposer and, most of the
time, asks about the one with the largest expected information gain about the model's weights
(BALD, Houlsby et al. 2011, "Bayesian Active Learning for Classification and Preference
Learning"): high where P(like) is near 0.5 *because the posterior is unsure there*, low where
it is near 0.5 only because the face sits on a boundary the model already knows. Otherwise it
shows the face it likes most, so the curator sees (and corrects) what it has learnt and the
ratings are not all near the boundary.

Everything is computed in latent space: no candidate is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from passersby.taste.model import TasteModel

_KAPPA2 = math.pi / 8.0  # sigmoid(f) ≈ Phi(sqrt(pi/8) f): logistic moments -> probit ones
_C2 = math.pi * math.log(2.0) / 2.0  # Houlsby's constant: h(Phi(x)) ≈ exp(-x² / (pi ln 2)) in bits


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def information_gain(model: TasteModel, z: np.ndarray) -> np.ndarray:
    """(m,) expected information (bits) a rating of each latent gives about the model's weights.

    H[p(like)] - E_w H[p(like | w)]: the first term is the entropy of the posterior-averaged
    P(like); the second, the average entropy under one plausible model, is small where the
    model is unsure (some plausible models say like, others dislike, each of them confidently).

    Example:
        >>> m = TasteModel.empty(4)
        >>> g = information_gain(m, np.stack([np.zeros(4), np.ones(4)]))
        >>> bool(g[1] > g[0])  # same p = 0.5, but more prior uncertainty at |z| > 0
        True
    """
    mean, var = model.moments(z)
    moderated = np.clip(mean / np.sqrt(1.0 + _KAPPA2 * var), -40, 40)
    marginal = _entropy_bits(1.0 / (1.0 + np.exp(-moderated)))  # the entropy of model.prob(z)
    mean, var = mean * math.sqrt(_KAPPA2), var * _KAPPA2  # probit scale
    expected = math.sqrt(_C2) / np.sqrt(var + _C2) * np.exp(-mean**2 / (2 * (var + _C2)))
    return np.maximum(marginal - expected, 0.0)


def choose_next(model: TasteModel, propose: Callable[[np.random.Generator], np.ndarray],
                rng: np.random.Generator, n_candidates: int = 64, explore: float = 0.7) -> np.ndarray:
    """The next face to ask the curator about, as a latent.

    Args:
        model: the current taste model.
        propose: rng -> (d,) latent (e.g. a screen's proposer); called n_candidates times.
        rng: the only source of randomness: the same rng state gives the same choice.
        n_candidates: pool size.
        explore: probability of asking about the most informative candidate; otherwise the
            most liked one is shown.
    Returns:
        (d,) float64 latent, one of the candidates.
    Example:
        >>> m = TasteModel.empty(8)
        >>> z = choose_next(m, lambda r: r.standard_normal(8), np.random.default_rng(0))
        >>> z.shape
        (8,)
    """
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be in [0, 1], got {explore}")
    # The coin is tossed first and always, so the rng advances the same way whatever `explore` is.
    exploring = rng.random() < explore
    pool = np.stack([np.asarray(propose(rng), dtype=np.float64) for _ in range(n_candidates)])
    score = information_gain(model, pool) if exploring else model.prob(pool)
    return pool[int(np.argmax(score))]
