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
ROUNDS = 30  # fixed-point rounds at most (each is cheap in the dual form)
TOLERANCE = 0.02  # stop once no alpha moves by more than 2 % in a round


def _covariance_diagonal(hess: np.ndarray) -> np.ndarray:
    """diag(H^-1) through a Cholesky factor: (d,) for a (d, d) positive-definite Hessian."""
    chol = np.linalg.cholesky(hess)
    inv = np.linalg.solve(chol, np.eye(len(hess)))  # L^-1: H^-1 = L^-T L^-1
    return (inv * inv).sum(0)


def _sigmoid(f: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(f, -40.0, 40.0)))


def _dual_newton(k: np.ndarray, y: np.ndarray, s: np.ndarray, a: np.ndarray, steps: int = 100
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Laplace mode of the latent logits f ~ N(0, K) (Rasmussen & Williams 2006, Algorithm 3.1).

    The same MAP as the weight-space fit when K = X A^-1 X^T, but in n dimensions: with fewer
    ratings n than features d, each step costs n³ instead of d³. Starts from the dual weights
    `a` (f = K a; a = s (y - p) at the mode, so the last fit's is a good start under a new K).
    Returns (f (n,), a = K^-1 f (n,), Cholesky L of B = I + W^½ K W^½, log evidence).
    """

    def psi(a: np.ndarray, f: np.ndarray) -> float:
        return float(-0.5 * a @ f + s @ (y * f - np.logaddexp(0.0, f)))

    f = k @ a
    best = psi(a, f)
    for _ in range(steps):
        p = _sigmoid(f)
        sw = np.sqrt(s * p * (1.0 - p))  # (n,) W^½
        chol = np.linalg.cholesky(np.eye(len(f)) + sw[:, None] * k * sw[None, :])
        b = sw * sw * f + s * (y - p)
        c = np.linalg.solve(chol, sw * (k @ b))
        step = b - sw * np.linalg.solve(chol.T, c) - a  # full Newton step in a
        t = 1.0
        while t > 1e-4:  # backtracking: a full step can overshoot when K is large
            new_a = a + t * step
            new_f = k @ new_a
            value = psi(new_a, new_f)
            if value >= best - 1e-12:
                break
            t *= 0.5
        else:
            break
        moved = np.abs(new_f - f).max()
        a, f, best = new_a, new_f, value
        if moved < 1e-8:
            break
    p = _sigmoid(f)
    sw = np.sqrt(s * p * (1.0 - p))
    chol = np.linalg.cholesky(np.eye(len(f)) + sw[:, None] * k * sw[None, :])
    return f, a, chol, best - float(np.log(np.diag(chol)).sum())


def dual_block_precisions(grams: list[np.ndarray], y: np.ndarray, s: np.ndarray, start: np.ndarray,
                          rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray, float]:
    """block_precisions in the dual: grams[b] = X_b X_b^T (n, n), the bias's N(0, BIAS_STD²) added.

    With K = sum_b G_b / alpha_b + BIAS_STD² 1 1^T, at the mode a = s (y - p), and
    M = W^½ B^-1 W^½:   |w_b|² = a^T G_b a / alpha_b²,   gamma_b = tr(M G_b) / alpha_b.

    Args:
        grams: B Gram matrices (n, n) of the blocks' unscaled features.
        y: (n,) labels in {0, 1}; s: (n,) their weights.
        start: (B,) starting precisions.
        rounds: fixed-point rounds at most.
    Returns:
        (alpha (B,), a (n,) the dual weights at the mode, log evidence). The weights of block
        b are X_b^T a / alpha_b, the bias BIAS_STD² sum(a). As block_precisions, the start is
        returned if the rounds end at a lower evidence.
    Example:
        >>> rng = np.random.default_rng(1)
        >>> x1, x2 = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
        >>> alpha, a, ev = dual_block_precisions([x1 @ x1.T, x2 @ x2.T], (x1[:, 0] > 0) * 1.0, np.ones(30), np.ones(2))
        >>> bool(alpha[1] > 10 * alpha[0])
        True
    """
    alpha = np.clip(np.asarray(start, np.float64), *ALPHA_RANGE)
    ones = np.full((len(y), len(y)), BIAS_STD**2)

    def kernel(al: np.ndarray) -> np.ndarray:
        return sum(g / v for g, v in zip(grams, al)) + ones

    f, a, chol, ev = _dual_newton(kernel(alpha), y, s, np.zeros(len(y)))
    first = (alpha, a, ev)
    for _ in range(rounds):
        p = _sigmoid(f)
        c = np.linalg.solve(chol, np.diag(np.sqrt(s * p * (1.0 - p))))  # L^-1 W^½
        m = c.T @ c  # (n, n) M
        fit = np.array([(m * g).sum() for g in grams])  # tr(M G_b) = alpha_b gamma_b
        size = np.array([(a @ g @ a) for g in grams])  # a^T G_b a = alpha_b² |w_b|²
        new = np.clip(alpha * fit / np.maximum(size, 1e-300), *ALPHA_RANGE)
        moved = np.abs(np.log(new / alpha)).max()
        alpha = new
        f, a, chol, ev = _dual_newton(kernel(alpha), y, s, a)
        if moved < TOLERANCE:
            break
    return (alpha, a, ev) if ev >= first[2] else first


def block_precisions(x: np.ndarray, y: np.ndarray, s: np.ndarray, blocks: np.ndarray, start: np.ndarray,
                     rounds: int = ROUNDS, theta: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
