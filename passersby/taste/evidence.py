"""How much each block of a taste model's features counts, chosen by the ratings themselves.

PictureTaste (picture.py) describes a face by three blocks of features: where it sits in z,
what its picture looks like ("more of this"), and how near it is to the faces already rated
("near these"). Which block matters is the curator's business: "masculine" is a direction in
z, "like these portraits" a place in picture space. One prior strength for all of them makes
the model good at one kind of taste and poor at the other, so each block b gets its own prior
precision alpha_b (weights w_b ~ N(0, I / alpha_b)), and the alphas are chosen per fit by the
Laplace evidence p(ratings | alpha): type-II maximum likelihood, "automatic relevance
determination" at the level of blocks (MacKay 1992, "The evidence framework applied to
classification networks"; Tipping 2001). A block the ratings do not need is shrunk towards
zero; one they do is let loose, without a validation split that a few dozen ratings cannot
afford.

`block_precisions` runs MacKay's fixed-point update from a starting point (the fit with one
shared strength chosen on model.L2_GRID), each round re-solving the MAP from the last:

    gamma_b = k_b - alpha_b tr(Sigma_bb)      (how many of the block's k_b weights the data pin down)
    alpha_b <- gamma_b / |w_b|²

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = np.hstack([rng.standard_normal((60, 6)), np.ones((60, 1))])  # 2 blocks of 3, + bias
    >>> y = (x[:, 0] > 0).astype(float)  # only the first block matters
    >>> alpha, theta, hess = block_precisions(x, y, np.ones(60), np.array([0, 0, 0, 1, 1, 1]), np.ones(2))
    >>> bool(alpha[1] > 10 * alpha[0])
    True
"""

from __future__ import annotations

import numpy as np

from passersby.taste.model import BIAS_STD, _log_evidence, _newton

ALPHA_RANGE = (1e-3, 1e4)  # bounds of a block's prior precision: never quite off, never unbounded
ROUNDS = 8  # fixed-point rounds at most (3-5 suffice from the shared-strength start in practice)
TOLERANCE = 0.05  # stop once no alpha moves by more than 5 % in a round


def _covariance_diagonal(hess: np.ndarray) -> np.ndarray:
    """diag(H^-1) through a Cholesky factor: (d,) for a (d, d) positive-definite Hessian."""
    chol = np.linalg.cholesky(hess)
    inv = np.linalg.solve(chol, np.eye(len(hess)))  # L^-1: H^-1 = L^-T L^-1
    return (inv * inv).sum(0)


def block_precisions(x: np.ndarray, y: np.ndarray, s: np.ndarray, blocks: np.ndarray, start: np.ndarray,
                     rounds: int = ROUNDS, theta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block prior precisions of a Bayesian logistic regression, by Laplace evidence.

    Args:
        x: (n, d + 1) design, the bias as the last column.
        y: (n,) labels in {0, 1}; s: (n,) their weights.
        blocks: (d,) the block index (0 .. B-1) of each weight; the bias keeps BIAS_STD.
        start: (B,) starting precisions.
        rounds: fixed-point rounds at most.
        theta: (d + 1,) the MAP at `start` when known (saves the first solve).
    Returns:
        (alpha (B,), theta (d + 1,) the MAP under them, Hessian (d + 1, d + 1) there). The
        evidence never ends lower than at `start`: if the rounds lower it (the fixed point is
        not an ascent method), the start is returned.
    """
    blocks = np.asarray(blocks)
    alpha = np.clip(np.asarray(start, np.float64), *ALPHA_RANGE)
    n_blocks = len(alpha)
    size = np.bincount(blocks, minlength=n_blocks).astype(np.float64)  # (B,) k_b

    def precisions(a: np.ndarray) -> np.ndarray:
        return np.append(a[blocks], 1.0 / BIAS_STD**2)

    theta = np.zeros(x.shape[1]) if theta is None else theta
    theta, hess = _newton(x, y, s, precisions(alpha), theta)
    first = (_log_evidence(x, y, s, precisions(alpha), theta, hess), alpha, theta, hess)
    for _ in range(rounds):
        sigma = _covariance_diagonal(hess)[:-1]  # (d,) posterior variances of the weights
        w2 = np.bincount(blocks, theta[:-1] ** 2, n_blocks)  # (B,) |w_b|²
        tr = np.bincount(blocks, sigma, n_blocks)  # (B,) tr(Sigma_bb)
        gamma = np.clip(size - alpha * tr, 1e-6, size)
        new = np.clip(gamma / np.maximum(w2, 1e-12), *ALPHA_RANGE)
        moved = np.abs(np.log(new / alpha)).max()
        alpha = new
        theta, hess = _newton(x, y, s, precisions(alpha), theta)
        if moved < TOLERANCE:
            break
    if _log_evidence(x, y, s, precisions(alpha), theta, hess) < first[0]:
        return first[1], first[2], first[3]
    return alpha, theta, hess
