"""KID and Fréchet distance on synthetic features with known answers."""

import numpy as np
import pytest
import torch

from passersby.metrics import distances
from passersby.metrics.distances import frechet_distance, kid, mmd2_unbiased, polynomial_kernel

DIM = 32


def _draw(rng, n, shift=0.0):
    """Non-negative, ReLU-like features: |N(0, I)| + shift, shape (n, DIM)."""
    return np.abs(rng.normal(size=(n, DIM))) + shift


def _exact_moments(rng, mean, cov, n):
    """n samples whose sample mean and sample covariance (ddof=1) are exactly mean and cov."""
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    whiten = np.linalg.cholesky(np.linalg.inv(np.cov(z, rowvar=False)))  # cov(z @ W) = I
    return z @ whiten @ np.linalg.cholesky(cov).T + mean


def test_kid_same_distribution_is_near_zero_and_shift_is_not():
    rng = np.random.default_rng(0)
    a, b = _draw(rng, 1000), _draw(rng, 1000)
    same, same_std = kid(a, b, rng=rng, n_subsets=20, subset_size=500)
    shifted, _ = kid(a, _draw(rng, 1000, shift=0.3), rng=rng, n_subsets=20, subset_size=500)
    assert abs(same) < 0.01
    assert same_std > 0
    assert shifted > 1.0
    assert shifted > 100 * abs(same)


def test_mmd2_unbiased_has_no_small_sample_bias():
    rng = np.random.default_rng(1)
    m, reps = 8, 1000
    # Same law: the estimates average to 0 and are often negative (an unbiased estimator of 0).
    same = np.array([mmd2_unbiased(_draw(rng, m), _draw(rng, m)) for _ in range(reps)])
    assert abs(same.mean()) < 4 * same.std() / np.sqrt(reps)
    assert 0.3 < (same < 0).mean() < 0.7
    # Different laws: tiny subsets average to the large-sample value ...
    small = np.array([mmd2_unbiased(_draw(rng, m), _draw(rng, m, 0.3)) for _ in range(reps)])
    large = mmd2_unbiased(_draw(rng, 3000), _draw(rng, 3000, 0.3))
    assert abs(small.mean() - large) < 4 * small.std() / np.sqrt(reps) + 0.02
    # ... which the biased V-statistic (keeping the kernel diagonal) overshoots.
    biased = np.array([_v_statistic(_draw(rng, m), _draw(rng, m, 0.3)) for _ in range(200)])
    assert biased.mean() > large + 0.5


def _v_statistic(x, y):
    """Biased MMD^2 estimate: plain means of the kernel matrices, diagonals included."""
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()


def test_kid_is_reproducible_and_accepts_torch():
    feats = _draw(np.random.default_rng(2), 300)
    other = _draw(np.random.default_rng(3), 200, shift=0.1)
    first = kid(feats, other, rng=np.random.default_rng(7), n_subsets=5, subset_size=100)
    again = kid(torch.from_numpy(feats).float(), torch.from_numpy(other).float(),
                rng=np.random.default_rng(7), n_subsets=5, subset_size=100)
    assert first == pytest.approx(again, rel=1e-4, abs=1e-6)


def test_kid_caps_subset_size_and_validates():
    rng = np.random.default_rng(4)
    mean, std = kid(_draw(rng, 20), _draw(rng, 30), rng=rng, n_subsets=3, subset_size=1000)
    assert np.isfinite(mean) and np.isfinite(std)
    with pytest.raises(ValueError):
        kid(_draw(rng, 20), np.ones((20, DIM + 1)), rng=rng)
    with pytest.raises(ValueError):
        kid(_draw(rng, 1), _draw(rng, 20), rng=rng)


@pytest.mark.parametrize("n", [200, 20])  # more samples than dims, and singular covariances
def test_fd_of_identical_sets_is_zero(n):
    feats = _draw(np.random.default_rng(5), n)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_fd_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(6)
    mu_a, mu_b = rng.normal(size=5), rng.normal(size=5)
    var_a, var_b = rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 5)
    a = _exact_moments(rng, mu_a, np.diag(var_a), 400)
    b = _exact_moments(rng, mu_b, np.diag(var_b), 300)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_fd_matches_closed_form_for_non_commuting_2d_gaussians():
    # For 2x2 covariances tr((S_a S_b)^(1/2)) = sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b)).
    rng = np.random.default_rng(7)
    mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    cov_a = np.array([[2.0, 0.8], [0.8, 1.0]])
    cov_b = np.array([[0.5, -0.3], [-0.3, 1.5]])
    a, b = _exact_moments(rng, mu_a, cov_a, 500), _exact_moments(rng, mu_b, cov_b, 500)
    det_product = np.linalg.det(cov_a) * np.linalg.det(cov_b)
    tr_sqrt = np.sqrt(np.trace(cov_a @ cov_b) + 2 * np.sqrt(det_product))
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-8)


def test_fd_adds_squared_mean_shift():
    feats = _draw(np.random.default_rng(8), 100)
    shift = np.linspace(-1, 1, DIM)
    assert frechet_distance(feats, feats + shift) == pytest.approx(shift @ shift, rel=1e-8)


@pytest.mark.parametrize("n_a, n_b", [(10, 15), (60, 80), (15, 200)])
def test_fd_trace_term_paths_agree(n_a, n_b):
    # The covariance (D x D) and sample (Na x Nb) routes to tr((S_a S_b)^(1/2)) are both exact.
    rng = np.random.default_rng(9)
    a, b = _draw(rng, n_a), _draw(rng, n_b, 0.2)
    a_c, b_c = a - a.mean(axis=0), b - b.mean(axis=0)
    from_cov = distances._trace_sqrt_from_covariances(
        np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    )
    assert distances._trace_sqrt_from_samples(a_c, b_c) == pytest.approx(from_cov, rel=1e-7)


def test_kid_shared_and_per_subset_kernels_agree(monkeypatch):
    rng = np.random.default_rng(10)
    a, b = _draw(rng, 120), _draw(rng, 90, 0.1)
    shared = kid(a, b, rng=np.random.default_rng(0), n_subsets=4, subset_size=50)
    monkeypatch.setattr(distances, "_MAX_SHARED_KERNEL_ENTRIES", 0)
    per_subset = kid(a, b, rng=np.random.default_rng(0), n_subsets=4, subset_size=50)
    assert shared == pytest.approx(per_subset, rel=1e-9)
