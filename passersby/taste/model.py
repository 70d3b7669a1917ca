"""A curator's taste as a Bayesian logistic regression over the generator's latent z.

The swipe app records (z, rating) pairs; `TasteModel.fit` turns them into P(like | z):

    logit(z) = w · phi(z) + b,    w ~ N(0, P / l2),  b ~ N(0, BIAS_STD²)

fitted by Newton's method to the MAP, with the Laplace approximation around it as the
posterior (`cov`). The prior strength l2 is chosen by maximising the Laplace evidence over a
grid, so a handful of ratings gives a cautious model and thousands a sharp one, without a
validation split (which a few dozen ratings cannot afford). `prob` integrates over the
posterior (the "moderated" output, MacKay 1992), so an uncertain model says ~0.5 instead of
extrapolating a confident guess, and `uncertainty` is the posterior std of the logit: what
active learning (active.py) asks about.

phi is a fixed, cheap feature map named by `features` (FEATURE_MAPS): "z" (linear in the
latent; the default) or "z+sq" (z and its centred squares, for tastes that like or dislike
the extremes of a latent direction). It works in z space only (the `taste.model = "z"` setting);
the default model, taste/picture.PictureTaste, adds features of the picture predicted from z by a
small network (taste/head.py), since rendering the stream's 64 candidates per anchor would take
the cores the screens need.

The prior shape P matters more than anything else here. With P = I (the default), 50 ratings
cannot pin down a direction among 128: the benchmark's tastes reach an AUC of ~0.6. Tastes are
about the picture, and a few directions of z change the picture far more than the rest, so
`salience_prior` (P from the generator's own renders, computed once per model) puts the
prior's weight there, and the same 50 ratings reach ~0.8 (benchmarks/taste.py).

Ratings: like/superlike = 1, dislike = 0, a superlike counts twice, skip is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RATINGS = ("like", "dislike", "superlike", "skip")
_LABEL = {"like": 1.0, "dislike": 0.0, "superlike": 1.0}
_WEIGHT = {"like": 1.0, "dislike": 1.0, "superlike": 2.0}
BIAS_STD = 5.0  # prior std of the bias logit: weak, but it keeps one-class data finite
L2_GRID = tuple(10.0 ** k for k in np.arange(3.0, -2.01, -0.5))  # prior precisions, strong -> weak
DEFAULT_L2 = 1.0  # used when there is nothing to choose l2 from (no ratings)
_FORMAT = "passersby-taste/1"


def _z_only(z: np.ndarray) -> np.ndarray:
    return z


def _z_and_squares(z: np.ndarray) -> np.ndarray:
    # (z² - 1) / √2 has mean 0 and variance 1 under z ~ N(0, 1): one prior fits both halves.
    return np.concatenate([z, (z * z - 1.0) / math.sqrt(2.0)], axis=1)


FEATURE_MAPS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "z": (_z_only, 1),  # name -> (map (m, d) -> (m, k d), k)
    "z+sq": (_z_and_squares, 2),
}


def feature_dim(z_dim: int, features: str) -> int:
    """Length of phi(z) for latents of `z_dim` under feature map `features`."""
    if features not in FEATURE_MAPS:
        raise ValueError(f"unknown features {features!r}; one of {tuple(FEATURE_MAPS)}")
    return z_dim * FEATURE_MAPS[features][1]


def _as_latents(z: np.ndarray, name: str = "z") -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2:
        raise ValueError(f"{name} must be (n, d) latents or one (d,) latent, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return z


def _rated_latents(z: np.ndarray) -> np.ndarray:
    """Rated latents must come as a batch (n, d), even n = 0 or 1."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be (n, d) latents of the rated faces, got shape {z.shape}")
    return _as_latents(z)


def _design(z: np.ndarray, features: str) -> np.ndarray:
    """[phi(z), 1]: (m, k d + 1), the bias as the last column."""
    phi = FEATURE_MAPS[features][0](z)
    return np.hstack([phi, np.ones((len(z), 1))])


def _labels(ratings: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep mask (n,), labels y, weights s) for the non-skip ratings; ValueError on bad ones."""
    if isinstance(ratings, str) or len(ratings) != n:
        got = "a string" if isinstance(ratings, str) else f"{len(ratings)} ratings"
        raise ValueError(f"ratings must be a sequence of {n} ratings (one per latent), got {got}")
    for i, r in enumerate(ratings):
        if r not in RATINGS:
            raise ValueError(f"ratings[{i}] is {r!r}; a rating is one of {RATINGS}")
    keep = np.array([r != "skip" for r in ratings], dtype=bool)
    kept = [r for r in ratings if r != "skip"]
    return keep, np.array([_LABEL[r] for r in kept]), np.array([_WEIGHT[r] for r in kept])


def _sigmoid(f: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(f, -40.0, 40.0)))


def _neg_log_post(x: np.ndarray, y: np.ndarray, s: np.ndarray, prec: np.ndarray, theta: np.ndarray) -> float:
    f = x @ theta
    # -log p(y|f) = log(1 + e^f) - y f, computed stably.
    nll = np.logaddexp(0.0, f) - y * f
    return float(s @ nll + 0.5 * prec @ (theta * theta))


def _newton(x: np.ndarray, y: np.ndarray, s: np.ndarray, prec: np.ndarray, theta: np.ndarray,
            steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """MAP of the weighted, Gaussian-prior logistic regression from `theta`; returns (theta, Hessian).

    Backtracking keeps the objective decreasing: a plain Newton step can overshoot when the
    prior is weak and the data nearly separable.
    """
    loss = _neg_log_post(x, y, s, prec, theta)
    for _ in range(steps):
        p = _sigmoid(x @ theta)
        grad = x.T @ (s * (p - y)) + prec * theta
        hess = (x * (s * p * (1 - p))[:, None]).T @ x + np.diag(prec)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4:
            new = theta - t * step
            new_loss = _neg_log_post(x, y, s, prec, new)
            if new_loss <= loss + 1e-12:
                break
            t *= 0.5
        else:
            break  # no step decreases the objective: at the optimum, up to rounding
        theta, loss = new, new_loss
        if t * np.abs(step).max() < 1e-7:
            break
    p = _sigmoid(x @ theta)
    return theta, (x * (s * p * (1 - p))[:, None]).T @ x + np.diag(prec)


def _log_evidence(x, y, s, prec, theta, hess) -> float:
    """Laplace approximation of log p(ratings | l2), up to a constant that does not depend on l2."""
    log_det_h = np.linalg.slogdet(hess)[1]
    return -_neg_log_post(x, y, s, prec, theta) + 0.5 * (np.log(prec).sum() - log_det_h)


def _prior_factor(prior: np.ndarray | None, k: int) -> np.ndarray | None:
    """L with L L^T = prior, for a (k, k) symmetric positive semi-definite prior; None: identity."""
    if prior is None:
        return None
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (k, k):
        raise ValueError(f"prior must be a ({k}, {k}) matrix for {k} features, got shape {p.shape}")
    if not np.isfinite(p).all() or not np.allclose(p, p.T, rtol=1e-6, atol=1e-9 * np.abs(p).max()):
        raise ValueError("prior must be a finite symmetric covariance matrix")
    ev, vec = np.linalg.eigh(0.5 * (p + p.T))
    if ev[0] < -1e-8 * max(ev[-1], 1e-300):
        raise ValueError(f"prior must be positive semi-definite (smallest eigenvalue {ev[0]:.3g})")
    return vec * np.sqrt(np.clip(ev, 0.0, None))


def _precisions(k: int, l2: float) -> np.ndarray:
    prec = np.full(k + 1, float(l2))
    prec[-1] = 1.0 / BIAS_STD**2
    return prec


def _fit_l2(x, y, s, l2: float | None) -> tuple[float, np.ndarray, np.ndarray]:
    """(l2, theta, Hessian): at the given l2, or at the grid's best evidence when l2 is None."""
    k = x.shape[1] - 1
    if l2 is not None:
        theta, hess = _newton(x, y, s, _precisions(k, l2), np.zeros(k + 1))
        return float(l2), theta, hess
    best, theta, worse = None, np.zeros(k + 1), 0
    for a in L2_GRID:  # strong to weak, each fit warm-started from the last
        prec = _precisions(k, a)
        # Neighbouring grid points have nearby optima: a few Newton steps get close enough to
        # compare evidences (the winner is polished below); this keeps n = 5000 well under 1 s.
        theta, hess = _newton(x, y, s, prec, theta, steps=3)
        ev = _log_evidence(x, y, s, prec, theta, hess)
        if best is None or ev > best[0]:
            best, worse = (ev, a, theta), 0
        else:
            worse += 1
            if worse == 2:  # the evidence is unimodal in l2 in practice: stop once it falls twice
                break
    theta, hess = _newton(x, y, s, _precisions(k, best[1]), best[2])
    return float(best[1]), theta, hess


@dataclass(frozen=True, eq=False)
class TasteModel:
    """P(like | z) with its posterior uncertainty.

    Args:
        w: (k,) weights on the features phi(z) (k = z_dim for features "z").
        b: bias (logit of P(like) at z = 0).
        cov: (k+1, k+1) Laplace posterior covariance of (w, b).
        n: ratings used (skips excluded; a superlike counts once here).
        l2: prior precision of each weight (w ~ N(0, I / l2)).
        features: the feature map's name (FEATURE_MAPS).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.standard_normal((200, 8))
        >>> m = TasteModel.fit(z, ["like" if v > 0 else "dislike" for v in z[:, 0]])
        >>> bool(m.prob(np.eye(8)[0] * 2)[0] > 0.9)
        True
    """

    w: np.ndarray
    b: float
    cov: np.ndarray
    n: int
    l2: float
    features: str = "z"

    def __post_init__(self) -> None:
        k = feature_dim(1, self.features)  # validates the name
        if self.w.ndim != 1 or len(self.w) % k or self.cov.shape != (len(self.w) + 1,) * 2:
            raise ValueError(f"TasteModel: w {self.w.shape} and cov {self.cov.shape} do not match "
                             f"(cov must be (len(w)+1, len(w)+1), features {self.features!r})")

    @property
    def z_dim(self) -> int:
        """Length of the latents this model scores."""
        return len(self.w) // FEATURE_MAPS[self.features][1]

    @classmethod
    def empty(cls, dim: int, features: str = "z", l2: float = DEFAULT_L2,
              prior: np.ndarray | None = None) -> "TasteModel":
        """A model that knows nothing: P(like) = 0.5 everywhere, prior uncertainty.

        Args:
            dim: latent dimension (128 for the shipped model).
            features, l2, prior: as for `fit` (they shape the uncertainty active.py starts from).
        Example:
            >>> TasteModel.empty(4).prob(np.ones(4))
            array([0.5])
        """
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        k = feature_dim(int(dim), features)
        factor = _prior_factor(prior, k)
        cov = np.diag(1.0 / _precisions(k, l2))
        if factor is not None:
            cov[:k, :k] = factor @ factor.T / l2
        return cls(np.zeros(k), 0.0, cov, 0, float(l2), features)

    @classmethod
    def fit(cls, z: np.ndarray, ratings: Sequence[str], l2: float | None = None,
            features: str = "z", prior: np.ndarray | None = None) -> "TasteModel":
        """Fit to rated latents.

        Args:
            z: (n, d) latents of the rated faces (n may be 0: then pass a (0, d) array).
            ratings: n ratings from RATINGS.
            l2: prior precision of the weights; None chooses it by Laplace evidence (L2_GRID).
            features: feature map name (FEATURE_MAPS).
            prior: (k, k) covariance shape of the weight prior, w ~ N(0, prior / l2); None is
                the identity. `salience_prior` makes one that favours the latent directions
                that change the picture most: far fewer ratings for the same accuracy.
        Example:
            >>> TasteModel.fit(np.zeros((2, 4)), ["like", "skip"]).n
            1
        """
        feature_dim(1, features)  # validates the name
        z = _rated_latents(z)
        keep, y, s = _labels(ratings, len(z))
        if l2 is not None and not (math.isfinite(l2) and l2 > 0):
            raise ValueError(f"l2 must be a positive number or None, got {l2}")
        if not keep.any():
            return cls.empty(z.shape[1], features, DEFAULT_L2 if l2 is None else l2, prior)
        x = _design(z[keep], features)
        k = x.shape[1] - 1
        factor = _prior_factor(prior, k)
        if factor is not None:  # fit v ~ N(0, I / l2) on features phi L, then w = L v
            x = np.hstack([x[:, :k] @ factor, x[:, k:]])
        l2, theta, hess = _fit_l2(x, y, s, l2)
        cov = np.linalg.inv(hess)
        if factor is not None:
            t = np.eye(k + 1)
            t[:k, :k] = factor
            theta, cov = t @ theta, t @ cov @ t.T
        return cls(theta[:-1].copy(), float(theta[-1]), 0.5 * (cov + cov.T), int(keep.sum()), l2, features)

    def moments(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the logit at each latent: (m,), (m,)."""
        z = _as_latents(z)
        if z.shape[1] != self.z_dim:
            raise ValueError(f"z has {z.shape[1]} dimensions; this taste model scores {self.z_dim}-d latents")
        x = _design(z, self.features)
        mean = x[:, :-1] @ self.w + self.b
        var = ((x @ self.cov) * x).sum(1)  # x_i^T cov x_i, through BLAS (einsum is ~10x slower)
        return mean, np.maximum(var, 0.0)

    def logit(self, z: np.ndarray) -> np.ndarray:
        """(m,) posterior mean of the logit (the MAP score; ranks like `prob` for a fixed variance)."""
        return self.moments(z)[0]

    def prob(self, z: np.ndarray) -> np.ndarray:
        """(m,) P(like), averaged over the posterior (probit approximation); a (d,) latent gives (1,)."""
        mean, var = self.moments(z)
        return _sigmoid(mean / np.sqrt(1.0 + math.pi * var / 8.0))

    def uncertainty(self, z: np.ndarray) -> np.ndarray:
        """(m,) posterior standard deviation of the logit: large where the ratings say little."""
        return np.sqrt(self.moments(z)[1])

    def to_dict(self) -> dict:
        """JSON-able; `from_dict(to_dict())` gives back the same numbers exactly."""
        return {"format": _FORMAT, "features": self.features, "n": self.n, "l2": self.l2, "b": self.b,
                "w": [float(v) for v in self.w], "cov": [[float(v) for v in row] for row in self.cov]}

    @classmethod
    def from_dict(cls, d: dict) -> "TasteModel":
        """Inverse of to_dict; ValueError when `d` is not a saved taste model."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"not a saved taste model (expected format {_FORMAT!r})")
        try:
            return cls(np.asarray(d["w"], dtype=np.float64), float(d["b"]), np.asarray(d["cov"], dtype=np.float64),
                       int(d["n"]), float(d["l2"]), str(d["features"]))
        except KeyError as e:
            raise ValueError(f"saved taste model lacks the field {e.args[0]!r}") from None


def salience_prior(render: Callable[[np.ndarray], np.ndarray], z_dim: int = 128, n: int = 512, seed: int = 0,
                   grid: int = 8, batch: int = 64, floor: float = 1e-2) -> np.ndarray:
    """A weight prior that expects tastes to be about what changes the picture most.

    A curator's taste is a function of the picture. If it is (roughly) linear in a coarse
    description of the picture, f(z) ≈ B^T z (the best linear map from z to the mean colour
    of each cell of a grid x grid layout), then its weights in z are w = B a, and for a taste
    `a` with no preferred cell or colour, w ~ N(0, B B^T): the directions of z that move the
    coarse picture most (light, colour, layout) get most of the prior. On the shipped model
    the top 4 of 128 directions carry ~3/4 of it; with this prior 25 ratings rank faces
    about as well as 200 do with the isotropic one (benchmarks/taste.py).

    The judges of the benchmark never enter here: only rendered faces and their latents.
    Computing it renders n faces (~30 s on a 2-core CPU): do it once per model and keep it.

    Args:
        render: z (m, z_dim) float32 -> (m, H, W, 3) uint8 (runtime.make_renderer).
        z_dim: latent dimension.
        n: faces to render; fewer than ~400 leave a noisy prior (noise in B adds to B B^T).
        seed: latents are default_rng(seed) normals.
        grid: cells per side of the coarse description.
        batch: faces per render call.
        floor: smallest prior variance, relative to the mean (1): every direction stays learnable.
    Returns:
        (z_dim, z_dim) symmetric positive-definite matrix with trace z_dim, for `fit(prior=...)`.
    Example:
        >>> prior = salience_prior(make_renderer(g))  # renders 512 faces; z, ratings from a store  # doctest: +SKIP
        >>> model = TasteModel.fit(z, ratings, prior=prior)  # renders 512 faces; z, ratings from a store  # doctest: +SKIP
    """
    if n <= z_dim:
        raise ValueError(f"n must exceed z_dim ({z_dim}) to regress the picture on z, got {n}")
    z = np.random.default_rng(seed).standard_normal((n, z_dim))
    desc = np.concatenate([_coarse(render(z[i : i + batch].astype(np.float32)), grid) for i in range(0, n, batch)])
    desc -= desc.mean(0)
    b = np.linalg.solve(z.T @ z + np.eye(z_dim), z.T @ desc)  # (z_dim, cells): ridge-regularised B
    ev, vec = np.linalg.eigh(b @ b.T)
    ev = np.maximum(ev / ev.mean(), floor)
    ev *= z_dim / ev.sum()
    return (vec * ev) @ vec.T


def _coarse(images: np.ndarray, grid: int) -> np.ndarray:
    """(m, H, W, 3) uint8 -> (m, grid * grid * 3) mean colour of each cell, in [0, 1]."""
    m, h, w, c = images.shape
    if h < grid or w < grid:
        raise ValueError(f"images of {h}x{w} px are smaller than the {grid}x{grid} grid")
    x = images[:, : h - h % grid, : w - w % grid].astype(np.float64) / 255.0
    return x.reshape(m, grid, h // grid, grid, w // grid, c).mean((2, 4)).reshape(m, -1)


def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of `score` for labels y in {0, 1} (Mann-Whitney, ties count half).

    NaN with one class only.

    Example:
        >>> roc_auc(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]))
        1.0
    """
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def evaluate(z: np.ndarray, ratings: Sequence[str], last: int = 50, folds: int = 5,
             features: str = "z", prior: np.ndarray | None = None) -> dict:
    """Held-out quality of the taste model on the last `last` rated (non-skip) faces.

    Each of those faces is predicted by a model fitted WITHOUT it: they are split into `folds`
    interleaved folds, and each fold is predicted by a fit on all other ratings (earlier ones
    included). Superlikes count as likes here. `features` and `prior` as for `TasteModel.fit`.

    When the faces were chosen actively (active.py), they are not a random sample: the
    "exploit" ones were the model's favourites when shown, so a wrong favourite is held out
    against a model that still likes it. Read the figures as "on the faces the curator was
    shown", which is harder than on random faces.

    Returns:
        {"n": faces evaluated, "accuracy": share with (p > 0.5) == liked, "auc": ROC AUC};
        NaN where undefined (no faces; one class for the AUC).
    Example:
        >>> z = np.random.default_rng(0).standard_normal((120, 8))
        >>> r = evaluate(z, ["like" if v > 0 else "dislike" for v in z[:, 0]])
        >>> r["n"], bool(r["accuracy"] > 0.8)
        (50, True)
    """
    z = _rated_latents(z)
    keep, y, _ = _labels(ratings, len(z))
    if last < 1 or folds < 1:
        raise ValueError(f"last and folds must be >= 1, got last={last}, folds={folds}")
    rated = np.flatnonzero(keep)
    test = rated[-last:]
    if len(test) == 0:
        return {"n": 0, "accuracy": float("nan"), "auc": float("nan")}
    label = {i: v for i, v in zip(rated, y)}
    p = np.empty(len(test))
    for f in range(min(folds, len(test))):
        held = np.zeros(len(z), dtype=bool)
        held[test[f::folds]] = True
        train = np.flatnonzero(~held)
        m = TasteModel.fit(z[train], [ratings[i] for i in train], features=features, prior=prior)
        p[f::folds] = m.prob(z[test[f::folds]])
    truth = np.array([label[i] for i in test])
    return {"n": int(len(test)), "accuracy": float(((p > 0.5) == (truth == 1)).mean()), "auc": roc_auc(p, truth)}
