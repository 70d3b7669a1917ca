"""Steering the stream's anchors by taste, with one live knob: exactingness.

A steered proposer draws M candidates from the screen's own proposer and keeps the one the
taste model likes most (best-of-M, "rejection by ranking"):

    M = 1 + round(e * (max_candidates - 1))        e = exactingness in [0, 1]

e = 0 draws once and returns that draw untouched (the stream as if there were no taste);
e = 1 keeps the best of `max_candidates`, i.e. roughly the top 1/64 of the proposer's faces by
P(like). Because the other candidates are thrown away rather than the kept one being *moved*
towards the liked region, every anchor is still a genuine draw of the proposer: the walk
keeps the proposer's spread in every direction the taste does not care about (for a taste
linear in z, all but one of 128), so diversity survives (`diversity`; benchmarks/taste.py).

All randomness comes from the rng the stream passes in (the ledger restores it), and the knob
and the model are read on every call, so a curator's changes act on the next anchor.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from passersby.taste.model import TasteModel

CRITIC_DRAWS = 4  # with a critic, draw at most this many times max_candidates before giving up


class Exactingness:
    """A thread-safe knob in [0, 1]: 0 ignores taste, 1 keeps only the most liked faces.

    Example:
        >>> k = Exactingness(0.5)
        >>> k.value = 1.0
        >>> k.value
        1.0
    """

    def __init__(self, value: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._value = _checked(value)

    @property
    def value(self) -> float:
        with self._lock:
            return self._value

    @value.setter
    def value(self, value: float) -> None:
        checked = _checked(value)
        with self._lock:
            self._value = checked

    def __repr__(self) -> str:
        return f"Exactingness({self.value})"


def _checked(value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"exactingness must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise ValueError(f"exactingness must be in [0, 1], got {value!r}")
    return v


def n_candidates(exactingness: float, max_candidates: int) -> int:
    """M = 1 + round(e (max_candidates - 1)): candidates drawn per anchor at exactingness e.

    Example:
        >>> [n_candidates(e, 64) for e in (0.0, 0.5, 1.0)]
        [1, 33, 64]
    """
    return 1 + int(round(_checked(exactingness) * (max_candidates - 1)))


def steer(propose: Callable[[np.random.Generator], np.ndarray],
          model: TasteModel | Callable[[], TasteModel],
          exactingness: Exactingness | float, max_candidates: int = 64,
          critic: Callable[[np.ndarray], float] | None = None,
          min_critic: float | None = None, look: Callable[[np.ndarray], np.ndarray] | None = None,
          rerank: int = 0) -> Callable[[np.random.Generator], np.ndarray]:
    """A proposer that prefers liked faces.

    Args:
        propose: the screen's proposer, rng -> (d,) latent; all its randomness from rng.
        model: the taste model (TasteModel or picture.PictureTaste), or a zero-argument callable returning the current one (read
            on every call, so a model refitted while the stream runs takes effect at once).
        exactingness: an Exactingness knob (read on every call) or a fixed float in [0, 1].
        max_candidates: candidates drawn at exactingness 1.
        critic, min_critic: optional quality gate, given together: only candidates with
            critic(z) >= min_critic are kept. Candidates are tried from the most liked down, so
            the critic runs only until one passes; if none of a round of M passes, another
            round is drawn, up to CRITIC_DRAWS * max_candidates draws, and then the candidate
            with the best critic score is returned.
        look, rerank: optional, given together: look renders candidates (k, d) as they will be
            shown and gives their true picture features (k, F); the `rerank` candidates the
            model likes most by its guess are looked at and re-ranked by what they show
            (`prob_seen`, picture.PictureTaste). Only for a model fitted on true features; its
            cost (rerank renders + embeddings per anchor) is why the engine claims anchors
            ahead in a worker thread when it is on (stream/claims.LedgerAnchors `ahead`).
    Returns:
        rng -> (d,) anchor. At exactingness 0 without a critic, exactly `propose(rng)`.
    Example:
        >>> base = lambda rng: rng.standard_normal(4)
        >>> m = TasteModel(np.array([1.0, 0, 0, 0]), 0.0, np.eye(5) * 1e-6, 10, 1.0)
        >>> z = steer(base, m, 1.0)(np.random.default_rng(0))
        >>> bool(z[0] > 1.5)  # the best of 64 along the liked direction
        True
    """
    if int(max_candidates) != max_candidates or max_candidates < 1:
        raise ValueError(f"max_candidates must be a positive integer, got {max_candidates}")
    if (critic is None) != (min_critic is None):
        raise ValueError("critic and min_critic must be given together")
    if int(rerank) != rerank or rerank < 0 or (rerank > 1 and look is None):
        raise ValueError(f"rerank must be a whole number >= 0, given with look when above 1; got {rerank}")
    if not isinstance(exactingness, Exactingness):
        exactingness = Exactingness(exactingness)  # validates now, not at the first anchor
    # A model (TasteModel, picture.PictureTaste: anything with prob) or a callable returning one.
    current = model if callable(model) and not hasattr(model, "prob") else (lambda: model)
    knob = exactingness

    def steered(rng: np.random.Generator) -> np.ndarray:
        m = n_candidates(knob.value, max_candidates)
        if critic is None:
            if m == 1:
                return propose(rng)  # bit-identical to the unsteered stream
            pool = np.stack([np.asarray(propose(rng)) for _ in range(m)])
            return pool[int(ranked(current(), pool, look, rerank)[0])]
        return _gated(propose, current(), rng, m, CRITIC_DRAWS * max_candidates, critic, float(min_critic),
                      look, rerank)

    return steered


def ranked(model: TasteModel, pool: np.ndarray, look: Callable[[np.ndarray], np.ndarray] | None = None,
           rerank: int = 0) -> np.ndarray:
    """Indices of the (m, d) candidates, most liked first: by the model's guess, the first
    `rerank` of them re-ordered by what they show once rendered (look, prob_seen).

    A stable sort keeps draw order among equal probabilities (e.g. an empty model).

    Example:
        >>> m = TasteModel(np.array([1.0, 0.0]), 0.0, np.eye(3) * 1e-6, 10, 1.0)
        >>> ranked(m, np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]])).tolist()
        [1, 2, 0]
    """
    if len(pool) == 1:
        return np.zeros(1, int)
    order = np.argsort(-model.prob(pool), kind="stable")
    if rerank > 1 and look is not None and getattr(model, "true_features", False) and model.n > 0:
        top = order[:rerank]  # (k,) the best guesses: rendered and embedded, k renders per anchor
        seen = model.prob_seen(pool[top], look(pool[top]))
        order = np.concatenate([top[np.argsort(-seen, kind="stable")], order[rerank:]])
    return order


def _gated(propose: Callable, model: TasteModel, rng: np.random.Generator, m: int, limit: int,
           critic: Callable[[np.ndarray], float], min_critic: float,
           look: Callable | None = None, rerank: int = 0) -> np.ndarray:
    """The most liked candidate that passes the critic; rounds of m draws, at most max(m, limit)."""
    best, best_score, drawn = None, -math.inf, 0
    limit = max(m, limit)
    while drawn < limit:
        pool = [propose(rng) for _ in range(min(m, limit - drawn))]
        drawn += len(pool)
        order = ranked(model, np.stack(pool), look, rerank)
        for i in order:
            score = float(critic(pool[i]))
            if score >= min_critic:
                return pool[i]
            score = -math.inf if math.isnan(score) else score  # NaN passes nothing, beats nothing
            if best is None or score > best_score:
                best, best_score = pool[i], score
    return best


def diversity(anchors: np.ndarray) -> float:
    """Mean pairwise Euclidean distance of (n, d) anchors (NaN for fewer than two).

    For z ~ N(0, I_d) it is about sqrt(2 d) (16 for d = 128).

    Example:
        >>> diversity(np.array([[0.0, 0.0], [3.0, 4.0]]))
        5.0
    """
    a = np.asarray(anchors, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"anchors must be (n, d), got shape {a.shape}")
    if len(a) < 2:
        return float("nan")
    sq = (a * a).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * a @ a.T, 0.0)
    iu = np.triu_indices(len(a), k=1)
    return float(np.sqrt(d2[iu]).mean())
