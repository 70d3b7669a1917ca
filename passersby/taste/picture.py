"""A curator's taste learnt from what the faces look like, not only from where they sit in z.

`TasteModel` (model.py) is linear in z: it learns tastes that are a direction of the latent
space ("darker backgrounds") and misses the ones that are a *place* in picture space ("faces
like these portraits": several separate bumps, not a half-space of z). `PictureTaste` keeps
the same Bayesian logistic regression (Laplace posterior, evidence-chosen prior strength,
moderated P(like), so active choice and exactingness work unchanged) on a richer feature map:

    phi(z) = [ a z L_r            (r,)   z through the salience prior's factor (a = Z_SCALE)
               h(z)               (k,)   the picture's EfficientNet-Lite0 PCA scores, predicted
                                         from z by the feature head (taste/head.py)
               RBF(h(z), c_1..L)  (L,) ] similarity to L fixed landmark faces: "near these"

so "more of this" is a weight on z or h, and "near these" is a positive weight on the landmarks
around the liked faces (a kernel machine with fixed centres). The picture blocks have unit prior
variance per feature, the z block Z_SCALE² (measured, see there); the single prior strength is
chosen by evidence as in model.py.

Nothing is rendered: the head predicts the features, so scoring 64 candidates costs ~1 ms.

Example:
    >>> head = cached_head(home, info.hash, make_renderer(g), 128)  # doctest: +SKIP
    >>> taste = PictureTaste.fit(z, ratings, head, prior=prior)  # doctest: +SKIP
    >>> taste.prob(candidates).shape  # doctest: +SKIP
    (64,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from passersby.taste.head import FeatureHead
from passersby.taste.model import (
    TasteModel,
    _as_latents,
    _prior_factor,
    _rated_latents,
    roc_auc,
)

FORMAT = "passersby-picture-taste/1"
# Prior std of the z block relative to the picture blocks. An offline simulation of 50 active
# swipes of the "like these portraits" taste on 12k renders with known features (5 seeds; the
# benchmark's taste, so read it as tuned on that one): best-of-64 liked 52 % at 1.0, 69 % at 0.5
# (without the landmark block: 29 %). The benchmark's other four tastes check it did not cost them.
Z_SCALE = 0.5
SALIENT_DIRECTIONS = 128  # r: all of z (benchmark seed 7, masculine screen at 50 swipes: 80 % with r = 32, 82 % with 128; z model 88 %)


def salient_basis(prior: np.ndarray | None, z_dim: int, r: int = SALIENT_DIRECTIONS) -> np.ndarray:
    """(z_dim, r) columns L_r of the prior's factor (L L^T = prior), largest first; identity's first r without one.

    With w ~ N(0, prior), w · z = v · (z L) for v ~ N(0, I): the z block of phi keeps the r
    directions that carry most of the prior.
    """
    if prior is None:
        return np.eye(z_dim)[:, :r]
    factor = _prior_factor(prior, z_dim)  # (z_dim, z_dim), columns by ascending eigenvalue
    return factor[:, ::-1][:, :r].copy()


@dataclass(frozen=True, eq=False)
class PictureTaste:
    """P(like | z) through the predicted picture, with its posterior uncertainty.

    Same interface as TasteModel where the stream and the app use it: moments, prob, logit,
    uncertainty, n, l2, z_dim.

    Args:
        head: the generator's feature head.
        basis: (z_dim, r) the z block's directions (salient_basis).
        inner: the Bayesian logistic regression over phi(z) (a TasteModel with features "z").
    Example:
        >>> taste = PictureTaste.fit(z, ratings, head)  # doctest: +SKIP
    """

    head: FeatureHead
    basis: np.ndarray
    inner: TasteModel

    def __post_init__(self) -> None:
        if self.basis.ndim != 2 or self.basis.shape[0] != self.head.z_dim:
            raise ValueError(f"basis {self.basis.shape} does not match the head's {self.head.z_dim}-d latents")
        if self.inner.z_dim != phi_dim(self.head, self.basis.shape[1]):
            raise ValueError(f"inner model scores {self.inner.z_dim} features, phi has "
                             f"{phi_dim(self.head, self.basis.shape[1])}")

    @property
    def z_dim(self) -> int:
        return self.head.z_dim

    @property
    def n(self) -> int:
        return self.inner.n

    @property
    def l2(self) -> float:
        return self.inner.l2

    @classmethod
    def empty(cls, head: FeatureHead, prior: np.ndarray | None = None) -> PictureTaste:
        """A model that knows nothing (P(like) = 0.5, prior uncertainty)."""
        basis = salient_basis(prior, head.z_dim)
        return cls(head, basis, TasteModel.empty(phi_dim(head, basis.shape[1])))

    @classmethod
    def fit(cls, z: np.ndarray, ratings: Sequence[str], head: FeatureHead, prior: np.ndarray | None = None,
            l2: float | None = None) -> PictureTaste:
        """Fit to rated latents.

        Args:
            z: (n, z_dim) latents of the rated faces.
            ratings: n ratings (model.RATINGS).
            head: the generator's feature head (taste/head.py).
            prior: the salience prior (taste/prior.py) for the z block; None: z's first axes.
            l2: prior precision; None chooses it by evidence.
        Example:
            >>> PictureTaste.fit(z, ["like", "dislike"], head).n  # doctest: +SKIP
            2
        """
        z = _rated_latents(z)
        if z.shape[1] != head.z_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions; the feature head takes {head.z_dim}")
        basis = salient_basis(prior, head.z_dim)
        return cls(head, basis, TasteModel.fit(phi(head, basis, z), ratings, l2=l2))

    def moments(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the logit at each latent: (m,), (m,)."""
        z = _as_latents(z)
        if z.shape[1] != self.z_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions; this taste model scores {self.z_dim}-d latents")
        return self.inner.moments(phi(self.head, self.basis, z))

    def logit(self, z: np.ndarray) -> np.ndarray:
        return self.moments(z)[0]

    def prob(self, z: np.ndarray) -> np.ndarray:
        """(m,) P(like), averaged over the posterior."""
        mean, var = self.moments(z)
        return 1.0 / (1.0 + np.exp(-np.clip(mean / np.sqrt(1.0 + np.pi * var / 8.0), -40, 40)))

    def uncertainty(self, z: np.ndarray) -> np.ndarray:
        return np.sqrt(self.moments(z)[1])

    def to_dict(self) -> dict:
        """JSON-able description of the fit; the head is referenced by its model hash, not copied."""
        return {"format": FORMAT, "model_hash": self.head.model_hash, "basis": self.basis.tolist(),
                "inner": self.inner.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, head: FeatureHead) -> PictureTaste:
        """Inverse of to_dict, given the same model's head; ValueError otherwise."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a saved picture taste (expected format {FORMAT!r})")
        if d.get("model_hash") != head.model_hash:
            raise ValueError(f"saved picture taste is for model {d.get('model_hash')}, the head for {head.model_hash}")
        return cls(head, np.asarray(d["basis"], np.float64), TasteModel.from_dict(d["inner"]))


def phi_dim(head: FeatureHead, r: int) -> int:
    """Length of phi(z): r salient directions + k head components + L landmarks."""
    return r + head.dim + len(head.landmarks)


def phi(head: FeatureHead, basis: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(m, z_dim) latents -> (m, r + k + L) features [z L_r, h(z), kernel(h(z))]."""
    p = head(z)  # (m, k)
    return np.hstack([Z_SCALE * (z @ basis), p, head.kernel(p)])


def evaluate_picture(z: np.ndarray, ratings: Sequence[str], head: FeatureHead, prior: np.ndarray | None = None,
                     last: int = 50, folds: int = 5) -> dict:
    """model.evaluate for PictureTaste: held-out accuracy and AUC on the last `last` rated faces.

    Example:
        >>> evaluate_picture(z, ratings, head)["auc"]  # doctest: +SKIP
        0.83
    """
    from passersby.taste.model import _labels

    z = _rated_latents(z)
    keep, y, _ = _labels(ratings, len(z))
    rated = np.flatnonzero(keep)
    test = rated[-last:]
    if len(test) == 0:
        return {"n": 0, "accuracy": float("nan"), "auc": float("nan")}
    label = dict(zip(rated, y))
    p = np.empty(len(test))
    for f in range(min(folds, len(test))):
        held = np.zeros(len(z), dtype=bool)
        held[test[f::folds]] = True
        train = np.flatnonzero(~held)
        m = PictureTaste.fit(z[train], [ratings[i] for i in train], head, prior)
        p[f::folds] = m.prob(z[test[f::folds]])
    truth = np.array([label[i] for i in test])
    return {"n": len(test), "accuracy": float(((p > 0.5) == (truth == 1)).mean()), "auc": roc_auc(p, truth)}


# ---------------------------------------------------------------- one entry point for both models
# The swipe app (deck.py) and the stream (app/installation.py) must fit the SAME model from the
# same ratings: both go through these, with head=None for the z-only model (model.py).


def fit_taste(z: np.ndarray, ratings: Sequence[str], prior: np.ndarray | None, head: FeatureHead | None,
              dim: int | None = None) -> TasteModel | PictureTaste:
    """PictureTaste.fit with a head, TasteModel.fit without; empty when there is nothing rated.

    Args:
        z: (n, d) rated latents (n may be 0).
        ratings: n ratings.
        prior: the salience prior (taste/prior.py) or None.
        head: the generator's feature head, or None for the z-only model.
        dim: latent size, needed when n = 0 and there is no head.
    Example:
        >>> fit_taste(np.zeros((0, 4)), [], None, None, dim=4).n
        0
    """
    z = np.asarray(z, np.float64)
    if head is None:
        if not len(z):
            return TasteModel.empty(int(dim if dim is not None else z.shape[1]), prior=prior)
        return TasteModel.fit(z, ratings, prior=prior)
    if not len(z):
        return PictureTaste.empty(head, prior)
    return PictureTaste.fit(z, ratings, head, prior)


def evaluate_taste(z: np.ndarray, ratings: Sequence[str], prior: np.ndarray | None, head: FeatureHead | None,
                   last: int = 50) -> dict:
    """Held-out quality (model.evaluate / evaluate_picture) of the model fit_taste makes.

    Example:
        >>> r = evaluate_taste(np.random.default_rng(0).standard_normal((60, 4)), ["like", "dislike"] * 30,
        ...                    None, None, last=10)
        >>> r["n"]
        10
    """
    from passersby.taste.model import evaluate

    if head is None:
        return evaluate(z, ratings, last=last, prior=prior)
    return evaluate_picture(z, ratings, head, prior, last=last)
