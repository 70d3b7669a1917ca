"""A labelled direction in latent space: how an unconditional model serves labelled screens.

Class conditioning collapsed on the portraits (more than a third of the titles name no sex,
and a projection discriminator that sees labels on only some real images let the generator
collapse to one face per class: docs/previous-model/conditional-collapse.jpg). So the default
model is unconditional and its masculine/feminine screens come from a direction:

1. A *feature probe*: logistic regression on EfficientNet-Lite0 features of the training
   images whose titles name a woman or a man (labels from words, never from the gender
   classifier, so that classifier stays an independent judge).
2. The probe labels n generated faces; a second logistic regression on their latents z gives
   the direction d (unit vector in z space) along which "masculine" grows.
3. A screen for label L draws z ~ N(0, I) and sets its component along d to +s_m (masculine)
   or -s_f (feminine): z' = z - (z·d) d ± s d. The rest of z stays random, so faces still vary.
   The two offsets may differ (`feminine_scale`), each chosen by the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

LABELS = ("feminine", "masculine")  # index 1 is the positive direction


def steered_proposer(z_dim: int, vector: np.ndarray | None, scale: float, label: str) -> Callable:
    """rng -> anchor: z ~ N(0, I), with its component along `vector` set to +scale (masculine)
    or -scale (feminine) when a label and a direction are given (a LabelDirection's vector and
    `scale_for(label)`); plain N(0, I) otherwise. All randomness comes from the rng passed in,
    as the never-repeat ledger needs (stream/ledger/).

    Example:
        >>> propose = steered_proposer(4, np.array([1.0, 0, 0, 0]), 3.0, "feminine")
        >>> float(propose(np.random.default_rng(0))[0])
        -3.0
    """
    if not label or vector is None:
        return lambda rng: rng.standard_normal(z_dim)
    d = np.asarray(vector, np.float64)
    d = d / np.linalg.norm(d)
    target = scale if label == "masculine" else -scale

    def propose(rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(z_dim)
        return z - (z @ d) * d + target * d

    return propose


@dataclass(frozen=True)
class LabelDirection:
    """Unit vector `vector` (z_dim,) pointing from feminine to masculine, and the offset `scale`
    (in standard deviations of z) a screen applies along it; `feminine_scale`, when set, is the
    feminine side's own offset (a generator's two ends of the direction need not be equally far
    from its typical face).

    Example:
        >>> d = LabelDirection(np.eye(4)[0], 1.5)
        >>> d.apply(torch.zeros(1, 4), "masculine")[0, 0].item()
        1.5
        >>> LabelDirection(np.eye(4)[0], 1.5, feminine_scale=2.5).scale_for("feminine")
        2.5
    """

    vector: np.ndarray
    scale: float
    probe_accuracy: float = float("nan")
    feminine_scale: float | None = None

    def scale_for(self, label: str) -> float:
        """The offset (>= 0) a screen of `label` applies along the direction."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        if label == "feminine" and self.feminine_scale is not None:
            return self.feminine_scale
        return self.scale

    def apply(self, z: torch.Tensor, label: str) -> torch.Tensor:
        """Latents (n, z_dim) -> the same latents moved to `label`'s side of the direction."""
        d = torch.as_tensor(self.vector, dtype=z.dtype, device=z.device)
        s = self.scale_for(label)
        target = s if label == "masculine" else -s
        return z - (z @ d)[:, None] * d[None, :] + target * d[None, :]

    def to_dict(self) -> dict[str, Any]:
        out = {"vector": [float(v) for v in self.vector], "scale": self.scale,
               "probe_accuracy": self.probe_accuracy, "labels": list(LABELS)}
        if self.feminine_scale is not None:
            out["feminine_scale"] = self.feminine_scale
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelDirection":
        v = np.asarray(d["vector"], dtype=np.float64)
        fem = d.get("feminine_scale")
        return cls(v / np.linalg.norm(v), float(d["scale"]), float(d.get("probe_accuracy", "nan")),
                   None if fem is None else float(fem))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 200) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (x standardised by the caller).

    Args:
        x: (n, d) float features; y: (n,) in {0, 1}.
    Returns:
        (w (d,), b) with P(y=1|x) = sigmoid(x·w + b).
    """
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])  # (n, d+1): bias as last column
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0  # the bias is not regularised
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xa @ w, -30, 30)))
        grad = xa.T @ (p - y) + reg * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg)
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.abs(delta).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


@dataclass(frozen=True)
class FeatureProbe:
    """Logistic regression on standardised features; predicts P(masculine)."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray
    b: float

    def predict(self, feats: np.ndarray) -> np.ndarray:
        x = (feats - self.mean) / self.std
        return 1 / (1 + np.exp(-np.clip(x @ self.w + self.b, -30, 30)))


L2_GRID = (1.0, 0.1, 0.01, 0.001)


def _accuracy(probe: "FeatureProbe", feats: np.ndarray, labels: np.ndarray) -> float:
    return float(((probe.predict(feats) > 0.5) == labels).mean())


def _fit_standardised(feats: np.ndarray, labels: np.ndarray, l2: float) -> FeatureProbe:
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    w, b = fit_logistic((feats - mean) / std, labels.astype(float), l2=l2)
    return FeatureProbe(mean, std, w, b)


def fit_probe(feats: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
              holdout: float = 0.2) -> tuple[FeatureProbe, float]:
    """Fit the probe on labelled real features; returns it and its held-out accuracy.

    The L2 strength is chosen from L2_GRID on a validation split of the training part (1280-d
    features and a few hundred images need strong regularisation; easy problems need little);
    the test part is touched once, for the reported accuracy.
    """
    order = rng.permutation(len(feats))
    n_test = max(1, int(len(feats) * holdout))
    test, train = order[:n_test], order[n_test:]
    n_val = max(1, len(train) // 4)
    val, fit = train[:n_val], train[n_val:]
    scores = [_accuracy(_fit_standardised(feats[fit], labels[fit], l2), feats[val], labels[val]) for l2 in L2_GRID]
    l2 = L2_GRID[int(np.argmax(scores))]
    acc = _accuracy(_fit_standardised(feats[train], labels[train], l2), feats[test], labels[test])
    # Refit on everything for use; the accuracy above is the honest estimate.
    return _fit_standardised(feats, labels, l2), acc


def fit_latent_direction(z: np.ndarray, p_masc: np.ndarray) -> np.ndarray:
    """Direction in z space along which the probe's P(masculine) grows: a unit (z_dim,) vector."""
    y = (p_masc > 0.5).astype(float)
    w, _ = fit_logistic(z, y, l2=1e-1)
    return w / np.linalg.norm(w)


def fit_linear_direction(z: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Unit (z_dim,) direction along which a continuous quantity y (n,) grows (ridge regression).

    Example:
        >>> z = np.random.default_rng(0).normal(size=(500, 3))
        >>> bool(fit_linear_direction(z, 2 * z[:, 1])[1] > 0.99)
        True
    """
    yc = y - y.mean()
    w = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ yc)
    return w / np.linalg.norm(w)


def orthogonalise(d: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Unit vector: d with its components in the span of the vectors `others` removed.

    Example:
        >>> orthogonalise(np.array([1.0, 1.0, 1.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])).tolist()
        [0.0, 0.0, 1.0]
    """
    if others:
        basis, _ = np.linalg.qr(np.stack(others, axis=1))  # (z_dim, k) orthonormal columns
        d = d - basis @ (basis.T @ d)
    return d / np.linalg.norm(d)
