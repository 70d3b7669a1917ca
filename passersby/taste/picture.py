"""A curator's taste learnt from what the faces look like, not only from where they sit in z.

`TasteModel` (model.py) is linear in z: it learns tastes that are a direction of the latent
space ("darker backgrounds") and misses the ones that are a *place* in picture space ("faces
like these portraits": several separate bumps, not a half-space of z). `PictureTaste` keeps
the same Bayesian logistic regression (Laplace posterior, evidence-chosen prior strength,
moderated P(like), so active choice and exactingness work unchanged) on a richer feature map
of the picture's EfficientNet-Lite0 PCA scores t (head.py's space, k = 32):

    phi = [ a z L_r               (r,)  z through the salience prior's factor (a = Z_SCALE)
            g * t                 (k,)  "more of this": the picture's scores, prior shape g²
            RBF(g * t, g * t_i)   (c,) ] "near these": similarity to the c most recent rated faces

Each block has its own prior scale (`scales`: Z_SCALE, 1, 1 by default, all over one strength
l2 chosen by the evidence on model.L2_GRID; BLOCK_EVIDENCE can choose one per block, evidence.py).
The fit runs in the dual (n x n) while there are fewer ratings than features: ~3x faster at 50.

Rated faces were rendered to be shown, so their t is TRUE (features.py: embedded once, cached);
a candidate's is only predicted by the feature head, t ~ N(h(z), diag(1 - R²)) (head.py: no
render, ~1 ms for 64), so a candidate's phi is the EXPECTED one under that uncertainty: h(z)
for the linear block and the RBF's closed-form Gaussian average (bandwidth² + residual
variance per component) for the kernel block. Without true features (`features=None`) the
rated faces are scored like candidates.

g² (FEATURE_PRIOR_POWER = 1) is the prior's shape over the components: g_j² = lambda_j (the
component's variance, normalised to mean 1), i.e. an isotropic prior on the weights of the
L2-normalised 1280 features themselves, whose PCA coordinates these are (head.py standardises
them, which would give the 32nd component as much say as the first). Offline, 50 random ratings
of 4,000 renders (portraits taste, AUC on 500 more): standardised 0.78, g² = lambda 0.81.

Example:
    >>> head = cached_head(home, info.hash, make_renderer(g), 128)  # doctest: +SKIP
    >>> taste = PictureTaste.fit(z, ratings, head, prior=prior, features=f)  # f: features.true_features  # doctest: +SKIP
    >>> taste.prob(candidates).shape  # doctest: +SKIP
    (64,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from passersby.taste.evidence import _dual_newton, block_precisions, dual_block_precisions
from passersby.taste.head import FeatureHead
from passersby.taste.model import (
    BIAS_STD,
    _log_evidence,
    L2_GRID,
    TasteModel,
    _newton,
    _precisions,
    _design,
    _fit_l2,
    _labels,
    _as_latents,
    _prior_factor,
    _rated_latents,
    roc_auc,
)

FORMAT = "passersby-picture-taste/3"
OLD_FORMATS = ("passersby-picture-taste/2",)  # load with the fixed block scales of their time (Z_SCALE, 1, 1)
# Prior std of the z block relative to the picture blocks. Offline simulation of 50 active swipes
# over 4,000 renders with true features (10 seeds; best-of-64 liked, portraits / masculine):
# 0.125: 75 / 83 %, 0.25: 84 / 87 %, 0.5: 68 / 87 %. (The model before true features: 0.5.)
Z_SCALE = 0.25
SALIENT_DIRECTIONS = 128  # r: all of z (benchmark seed 7, masculine screen at 50 swipes: 80 % with r = 32, 82 % with 128; z model 88 %)
FEATURE_PRIOR_POWER = 1.0  # prior variance of component j ~ lambda_j^power (see the module docstring)
MAX_CENTRES = 96  # c: kernel centres, the most recent rated faces (bounds the refit at ~256 features)
MIN_RESIDUAL = 0.05  # floor of a component's unexplained variance (1 - R²): no head is perfect
# Below this mean held-out R² the head's guesses are all a candidate has, and a model fitted on
# true features explains the ratings by what candidates cannot show (a synthetic check with an
# undertrained head, R² 0.05: AUC 0.5 fitted on true features, 0.72 on the head's guesses; the
# shipped head: R² 0.50). Such a head's own predictions stand in for the true features.
MIN_HEAD_R2 = 0.25
# How the blocks' prior strengths are chosen. "off": one strength for all (model.L2_GRID by the
# evidence; the z block at Z_SCALE of the others). "true": then one per block by the evidence
# (evidence.py) on the rated faces' true features; "head": the same on the head's guesses (what
# candidates show), weights still fitted on the true features. Measured offline (6 curators x
# 5 tastes, docs/taste/levers.md): per-block strengths never beat one strength at 50 ratings
# (type-II ML on so few ratings shrinks whole blocks to the bound), so "off" ships.
BLOCK_EVIDENCE = "off"
# Kernel bandwidths tried, as factors of the median distance between the centres; with more than
# one, each fit keeps the one with the best evidence (_choose_bandwidth).
BANDWIDTH_FACTORS: tuple[float, ...] = (1.0,)
MIN_RATINGS_FOR_BLOCKS = 10


def salient_basis(prior: np.ndarray | None, z_dim: int, r: int = SALIENT_DIRECTIONS) -> np.ndarray:
    """(z_dim, r) columns L_r of the prior's factor (L L^T = prior), largest first; identity's first r without one.

    With w ~ N(0, prior), w · z = v · (z L) for v ~ N(0, I): the z block of phi keeps the r
    directions that carry most of the prior.
    """
    if prior is None:
        return np.eye(z_dim)[:, :r]
    factor = _prior_factor(prior, z_dim)  # (z_dim, z_dim), columns by ascending eigenvalue
    return factor[:, ::-1][:, :r].copy()


def feature_weights(head: FeatureHead, power: float = FEATURE_PRIOR_POWER) -> np.ndarray:
    """(k,) g: the picture block's prior std per component, g_j² ~ lambda_j^power, mean g² = 1.

    Example:
        >>> feature_weights(head).shape  # doctest: +SKIP
        (32,)
    """
    g2 = (head.pca_scale.astype(np.float64) ** 2) ** power  # pca_scale: the component's std
    return np.sqrt(g2 / g2.mean())


def expected_rbf(x: np.ndarray, centres: np.ndarray, bandwidth: float, var: np.ndarray | None = None) -> np.ndarray:
    """(m, k), (c, k) -> (m, c): E exp(-|t - c|² / (2 bw²)) for t ~ N(x, diag(var)); var None: t = x.

    The Gaussian average of an RBF is an RBF with bandwidth² + var per component, scaled by
    prod_j (bw² / (bw² + var_j))^(1/2): an uncertain picture is a little near everything.

    Example:
        >>> round(float(expected_rbf(np.zeros((1, 2)), np.zeros((1, 2)), 1.0, np.ones(2))[0, 0]), 6)
        0.5
    """
    b2 = np.full(x.shape[1], float(bandwidth) ** 2)
    scale = 1.0
    if var is not None:
        scale = float(np.prod(np.sqrt(b2 / (b2 + var))))
        b2 = b2 + var
    xs, cs = x / np.sqrt(b2), centres / np.sqrt(b2)
    d2 = (xs * xs).sum(1)[:, None] + (cs * cs).sum(1)[None, :] - 2.0 * xs @ cs.T  # (m, c)
    return scale * np.exp(-0.5 * np.maximum(d2, 0.0))


def _bandwidth(centres: np.ndarray, g: np.ndarray) -> float:
    """Median distance between the centres; with fewer than 3, that of two random pictures, sqrt(2 sum g²)."""
    if len(centres) < 2:
        return 1.0
    sq = (centres * centres).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * centres @ centres.T, 0.0))
    return float(max(np.median(d[np.triu_indices(len(centres), 1)]), 1e-3))


def _strengths(x: list[np.ndarray], y: np.ndarray, s: np.ndarray, l2: float | None, blocks: bool,
               dual: bool | None = None) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(3,) prior precisions of the blocks x (unscaled, rated rows only) by the evidence, the
    dual weights a (n,) of the fit under them (None in weight space): the MAP's weights on block
    b are X_b^T a / alpha_b, a start from which the final fit needs one Newton step; and the
    log evidence of the one-strength fit.

    One strength for all first (model.L2_GRID, or l2 when given; the z block at Z_SCALE), then
    with `blocks` one per block (evidence.py), from there. In the dual (n x n Gram matrices)
    while there are fewer ratings than features (dual None), else in weight space; the same
    evidence either way (tests/taste/test_evidence.py).
    """
    sizes = [b.shape[1] for b in x]
    fixed = np.array([Z_SCALE, 1.0, 1.0])
    if not (len(y) < sum(sizes) if dual is None else dual):
        design = _design(np.hstack([v * b for v, b in zip(fixed, x)]), "z")
        shared, theta, hess = _fit_l2(design, y, s, l2)
        ev = _log_evidence(design, y, s, _precisions(sum(sizes), shared), theta, hess)
        alpha = shared / fixed**2
        if blocks:
            unscale = np.append(np.repeat(fixed, sizes), 1.0)
            alpha = block_precisions(design / unscale, y, s, np.repeat(np.arange(3), sizes), alpha,
                                     theta=theta * unscale)[0]
        return alpha, None, ev
    grams = [b @ b.T for b in x]  # (n, n) each
    if l2 is not None:
        alpha = float(l2) / fixed**2
        _, a, _, ev = _dual_newton(sum(g / v for g, v in zip(grams, alpha)) + BIAS_STD**2, y, s, np.zeros(len(y)))
    else:
        best, worse, a = None, 0, np.zeros(len(y))
        for v in L2_GRID:  # strong to weak, as model._fit_l2 (same evidence, in n dimensions)
            _, a, _, ev = _dual_newton(sum(g * (fz**2 / v) for g, fz in zip(grams, fixed)) + BIAS_STD**2, y, s, a)
            if best is None or ev > best[0]:
                best, worse = (ev, v, a), 0
            else:
                worse += 1
                if worse == 2:
                    break
        ev, alpha, a = best[0], best[1] / fixed**2, best[2]
    if blocks:
        alpha, a, _ = dual_block_precisions(grams, y, s, alpha)
    return alpha, a, ev


def _choose_bandwidth(xz: np.ndarray, xf: np.ndarray, centres: np.ndarray, median: float,
                      ratings: Sequence[str], l2: float | None) -> float:
    """The kernel's bandwidth: median * the factor of BANDWIDTH_FACTORS with the best evidence.

    Each factor is a different "near these" block; the one-strength fit's evidence (the l2 grid
    maximised, as _strengths) compares them. With one factor, l2 given, or fewer than
    MIN_RATINGS_FOR_BLOCKS ratings: median * the first.
    """
    keep = np.array([r != "skip" for r in ratings], bool)
    if len(BANDWIDTH_FACTORS) == 1 or l2 is not None or keep.sum() < MIN_RATINGS_FOR_BLOCKS or not len(centres):
        return median * BANDWIDTH_FACTORS[0]
    _, y, s = _labels(ratings, len(xz))
    best = None
    for factor in BANDWIDTH_FACTORS:
        rows = [xz[keep], xf[keep], expected_rbf(xf[keep], centres, median * factor)]
        ev = _strengths(rows, y, s, None, False)[2]
        if best is None or ev > best[0]:
            best = (ev, factor)
    return median * best[1]


def _fit_blocks(x: list[np.ndarray], ratings: Sequence[str], l2: float | None,
                select: list[np.ndarray] | None = None) -> tuple[TasteModel, tuple[float, float, float]]:
    """The inner model over the blocks x = [z block (n, r), picture (n, k), near (n, c)], and the blocks' scales.

    The blocks' prior strengths are chosen on `select` (default x: see BLOCK_EVIDENCE), the
    weights fitted on x at those strengths. The scales go into phi, so the inner model's prior
    is N(0, I) (its l2 is 1).
    """
    sizes = [b.shape[1] for b in x]
    keep, y, s = _labels(ratings, len(x[0]))
    if not keep.any():
        return TasteModel.empty(sum(sizes)), (Z_SCALE, 1.0, 1.0)
    rows = [b[keep] for b in (x if select is None else select)]
    alpha, a, _ = _strengths(rows, y, s, l2, BLOCK_EVIDENCE != "off" and l2 is None
                             and keep.sum() >= MIN_RATINGS_FOR_BLOCKS)
    scales = 1.0 / np.sqrt(alpha)
    column = np.append(np.repeat(scales, sizes), 1.0)
    design = _design(np.hstack(x), "z")[keep] * column  # phi's columns: the prior is N(0, I) on them
    # From the dual's MAP (weights design^T a, bias BIAS_STD² sum a): one step polishes it.
    start = np.zeros(sum(sizes) + 1) if a is None else np.append(design[:, :-1].T @ a, BIAS_STD**2 * a.sum())
    theta, hess = _newton(design, y, s, _precisions(sum(sizes), 1.0), start)
    cov = np.linalg.inv(hess)
    inner = TasteModel(theta[:-1].copy(), float(theta[-1]), 0.5 * (cov + cov.T), int(keep.sum()), 1.0)
    return inner, (float(scales[0]), float(scales[1]), float(scales[2]))


@dataclass(frozen=True, eq=False)
class PictureTaste:
    """P(like | z) through the picture, with its posterior uncertainty.

    Same interface as TasteModel where the stream and the app use it: moments, prob, logit,
    uncertainty, n, l2, z_dim.

    Args:
        head: the generator's feature head.
        basis: (z_dim, r) the z block's directions (salient_basis).
        inner: the Bayesian logistic regression over phi (a TasteModel with features "z").
        centres: (c, k) g-scaled PCA scores of the kernel's centres (rated faces), c may be 0.
        bandwidth: the kernel's length scale.
        true_features: whether the rated faces were fitted with their true features.
        scales: prior std of each block of phi (z, picture, near) relative to the inner
            model's: chosen per fit by the evidence (BLOCK_EVIDENCE, evidence.py).
    Example:
        >>> taste = PictureTaste.fit(z, ratings, head, features=f)  # doctest: +SKIP
    """

    head: FeatureHead
    basis: np.ndarray
    inner: TasteModel
    centres: np.ndarray
    bandwidth: float
    true_features: bool = False
    scales: tuple[float, float, float] = (Z_SCALE, 1.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.scales) != 3 or not all(np.isfinite(v) and v > 0 for v in self.scales):
            raise ValueError(f"scales must be three positive numbers (z, picture, near), got {self.scales}")
        if self.basis.ndim != 2 or self.basis.shape[0] != self.head.z_dim:
            raise ValueError(f"basis {self.basis.shape} does not match the head's {self.head.z_dim}-d latents")
        if self.centres.ndim != 2 or self.centres.shape[1] != self.head.dim:
            raise ValueError(f"centres {self.centres.shape} do not match the head's {self.head.dim} components")
        want = self.basis.shape[1] + self.head.dim + len(self.centres)
        if self.inner.z_dim != want:
            raise ValueError(f"inner model scores {self.inner.z_dim} features, phi has {want}")
        if not (np.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive number, got {self.bandwidth}")

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
        """A model that knows nothing (P(like) = 0.5, prior uncertainty), no kernel centres yet."""
        basis = salient_basis(prior, head.z_dim)
        g = feature_weights(head)
        return cls(head, basis, TasteModel.empty(basis.shape[1] + head.dim), np.zeros((0, head.dim)),
                   _bandwidth(np.zeros((0, head.dim)), g))

    @classmethod
    def fit(cls, z: np.ndarray, ratings: Sequence[str], head: FeatureHead, prior: np.ndarray | None = None,
            l2: float | None = None, features: np.ndarray | None = None) -> PictureTaste:
        """Fit to rated faces.

        Args:
            z: (n, z_dim) latents of the rated faces.
            ratings: n ratings (model.RATINGS).
            head: the generator's feature head (taste/head.py).
            prior: the salience prior (taste/prior.py) for the z block; None: z's first axes.
            l2: prior precision; None chooses it by evidence.
            features: (n, F) true features of the rated faces' renders (features.true_features);
                None (or a head below MIN_HEAD_R2): the head's prediction stands in for them.
        Example:
            >>> PictureTaste.fit(z, ["like", "dislike"], head).n  # doctest: +SKIP
            2
        """
        z = _rated_latents(z)
        if z.shape[1] != head.z_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions; the feature head takes {head.z_dim}")
        g = feature_weights(head)
        if features is not None and float(np.mean(head.r2)) < MIN_HEAD_R2:
            features = None  # see MIN_HEAD_R2
        if features is None:
            t = head(z)  # (n, k) predicted
        else:
            features = np.asarray(features, np.float64)
            if features.shape != (len(z), head.pca_mean.shape[0]):
                raise ValueError(f"features must be ({len(z)}, {head.pca_mean.shape[0]}), got {features.shape}")
            t = head.project(features)  # (n, k) true
        rated = np.array([r != "skip" for r in ratings], bool) if len(ratings) == len(z) else np.ones(len(z), bool)
        centres = (g * t)[rated][-MAX_CENTRES:]  # (c, k)
        basis = salient_basis(prior, head.z_dim)
        bw = _choose_bandwidth(z @ basis, g * t, centres, _bandwidth(centres, g), ratings, l2)
        x = [z @ basis, g * t, expected_rbf(g * t, centres, bw)]  # the blocks of phi, unscaled
        select = None
        if BLOCK_EVIDENCE == "head" and features is not None:  # strengths for what candidates show
            p = g * head(z)
            var = np.maximum(1.0 - head.r2, MIN_RESIDUAL) * g * g
            select = [x[0], p, expected_rbf(p, centres, bw, var)]
        inner, scales = _fit_blocks(x, ratings, l2, select)
        return cls(head, basis, inner, centres, bw, features is not None, scales)

    def phi(self, z: np.ndarray) -> np.ndarray:
        """(m, z_dim) candidate latents -> (m, r + k + c) their expected features (head prediction)."""
        g = feature_weights(self.head)
        var = np.maximum(1.0 - self.head.r2, MIN_RESIDUAL) * g * g  # (k,) what the head does not see
        return self._blocks(z, g * self.head(z), var)

    def phi_seen(self, z: np.ndarray, features: np.ndarray) -> np.ndarray:
        """(m, z_dim) latents, (m, F) true features of their renders -> (m, r + k + c) their exact phi."""
        g = feature_weights(self.head)
        return self._blocks(z, g * self.head.project(np.asarray(features, np.float64)), None)  # seen: no residual

    def _blocks(self, z: np.ndarray, t: np.ndarray, var: np.ndarray | None) -> np.ndarray:
        """phi from latents (m, z_dim) and g-scaled picture scores t (m, k), uncertain by var (k,) or exact."""
        sz, sf, sk = self.scales
        return np.hstack([sz * (z @ self.basis), sf * t, sk * expected_rbf(t, self.centres, self.bandwidth, var)])

    def moments_seen(self, z: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the logit of RENDERED faces (their true features): (m,), (m,).

        What `moments` guesses through the head, known: for re-ranking the few best candidates.
        Example:
            >>> taste.moments_seen(z[:4], true_features(render(z[:4])))[0].shape  # doctest: +SKIP
            (4,)
        """
        z = _as_latents(z)
        if z.shape[1] != self.z_dim or len(features) != len(z):
            raise ValueError(f"z {z.shape} and features {np.shape(features)} must be (m, {self.z_dim}) and (m, F)")
        return self.inner.moments(self.phi_seen(z, features))

    def prob_seen(self, z: np.ndarray, features: np.ndarray) -> np.ndarray:
        """(m,) P(like) of rendered faces, averaged over the posterior."""
        mean, var = self.moments_seen(z, features)
        return 1.0 / (1.0 + np.exp(-np.clip(mean / np.sqrt(1.0 + np.pi * var / 8.0), -40, 40)))

    def moments(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the logit at each latent: (m,), (m,)."""
        z = _as_latents(z)
        if z.shape[1] != self.z_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions; this taste model scores {self.z_dim}-d latents")
        return self.inner.moments(self.phi(z))

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
                "centres": self.centres.tolist(), "bandwidth": self.bandwidth,
                "true_features": self.true_features, "scales": list(self.scales), "inner": self.inner.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, head: FeatureHead) -> PictureTaste:
        """Inverse of to_dict, given the same model's head; ValueError otherwise (and for a
        fit of the model before true features, "/1": refit it from the ratings). A "/2" fit
        (one prior strength for all blocks) loads and scores as it did."""
        if not isinstance(d, dict) or d.get("format") not in (FORMAT, *OLD_FORMATS):
            raise ValueError(f"not a saved picture taste of this version (expected format {FORMAT!r}); "
                             "refit it from the ratings")
        # "/2" had no per-block scales: its phi is this one's at (Z_SCALE, 1, 1), so it scores the same.
        scales = tuple(float(v) for v in d.get("scales", (Z_SCALE, 1.0, 1.0)))
        if d.get("model_hash") != head.model_hash:
            raise ValueError(f"saved picture taste is for model {d.get('model_hash')}, the head for {head.model_hash}")
        try:
            return cls(head, np.asarray(d["basis"], np.float64), TasteModel.from_dict(d["inner"]),
                       np.asarray(d["centres"], np.float64).reshape(-1, head.dim), float(d["bandwidth"]),
                       bool(d["true_features"]), scales)
        except KeyError as e:
            raise ValueError(f"saved picture taste lacks the field {e.args[0]!r}") from None


def evaluate_picture(z: np.ndarray, ratings: Sequence[str], head: FeatureHead, prior: np.ndarray | None = None,
                     last: int = 50, folds: int = 5, features: np.ndarray | None = None) -> dict:
    """model.evaluate for PictureTaste: held-out accuracy and AUC on the last `last` rated faces.

    Held-out faces are scored as candidates are (the head's prediction), the rest fitted with
    `features` when given.

    Example:
        >>> evaluate_picture(z, ratings, head, features=f)["auc"]  # doctest: +SKIP
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
        m = PictureTaste.fit(z[train], [ratings[i] for i in train], head, prior,
                             features=None if features is None else np.asarray(features)[train])
        p[f::folds] = m.prob(z[test[f::folds]])
    truth = np.array([label[i] for i in test])
    return {"n": len(test), "accuracy": float(((p > 0.5) == (truth == 1)).mean()), "auc": roc_auc(p, truth)}


# ---------------------------------------------------------------- one entry point for both models
# The swipe app (deck.py) and the stream (app/installation.py) must fit the SAME model from the
# same ratings: both go through these, with head=None for the z-only model (model.py).


def fit_taste(z: np.ndarray, ratings: Sequence[str], prior: np.ndarray | None, head: FeatureHead | None,
              dim: int | None = None, features: np.ndarray | None = None) -> TasteModel | PictureTaste:
    """PictureTaste.fit with a head, TasteModel.fit without; empty when there is nothing rated.

    Args:
        z: (n, d) rated latents (n may be 0).
        ratings: n ratings.
        prior: the salience prior (taste/prior.py) or None.
        head: the generator's feature head, or None for the z-only model.
        dim: latent size, needed when n = 0 and there is no head.
        features: (n, F) true features of the rated faces (features.true_features), for the
            picture model; None: predicted by the head.
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
    return PictureTaste.fit(z, ratings, head, prior, features=features)


def evaluate_taste(z: np.ndarray, ratings: Sequence[str], prior: np.ndarray | None, head: FeatureHead | None,
                   last: int = 50, features: np.ndarray | None = None) -> dict:
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
    return evaluate_picture(z, ratings, head, prior, last=last, features=features)
