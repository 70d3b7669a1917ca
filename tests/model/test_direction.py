"""The latent-direction maths: logistic fits recover known rules, steering sets the component."""

from __future__ import annotations

import numpy as np
import torch

from passersby.model.direction import (
    LabelDirection, fit_latent_direction, fit_logistic, fit_probe, orthogonalise,
)


def test_fit_logistic_recovers_a_linear_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 5))
    w_true = np.array([2.0, -1.0, 0.0, 0.5, 0.0])
    y = (rng.random(2000) < 1 / (1 + np.exp(-(x @ w_true + 0.3)))).astype(float)
    w, b = fit_logistic(x, y, l2=1e-4)
    assert np.allclose(w, w_true, atol=0.25)
    assert abs(b - 0.3) < 0.2


def test_latent_direction_is_found_from_soft_labels() -> None:
    rng = np.random.default_rng(1)
    d_true = rng.normal(size=64)
    d_true /= np.linalg.norm(d_true)
    z = rng.normal(size=(800, 64))
    p = 1 / (1 + np.exp(-3 * z @ d_true))
    d = fit_latent_direction(z, p)
    assert d @ d_true > 0.9
    assert np.isclose(np.linalg.norm(d), 1.0)


def test_probe_reports_heldout_accuracy() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(400, 20))
    labels = (feats[:, 0] > 0).astype(int)
    probe, acc = fit_probe(feats, labels, rng)
    assert acc > 0.9
    assert ((probe.predict(feats) > 0.5) == labels).mean() > 0.9


def test_apply_sets_the_component_and_keeps_the_rest() -> None:
    v = np.zeros(8)
    v[2] = 1.0
    d = LabelDirection(v, scale=2.0)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    m, f = d.apply(z, "masculine"), d.apply(z, "feminine")
    assert torch.allclose(m[:, 2], torch.full((5,), 2.0))
    assert torch.allclose(f[:, 2], torch.full((5,), -2.0))
    keep = [i for i in range(8) if i != 2]
    assert torch.equal(m[:, keep], z[:, keep])


def test_orthogonalise_and_round_trip() -> None:
    a, b = np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    o = orthogonalise(a, b)
    assert abs(o @ b) < 1e-12 and np.isclose(np.linalg.norm(o), 1.0)
    d = LabelDirection(o, 1.5, 0.8)
    back = LabelDirection.from_dict(d.to_dict())
    assert np.allclose(back.vector, d.vector) and back.scale == 1.5


def test_unknown_label_is_refused() -> None:
    d = LabelDirection(np.eye(3)[0], 1.0)
    try:
        d.apply(torch.zeros(1, 3), "dog")
    except ValueError as e:
        assert "feminine" in str(e)
    else:
        raise AssertionError("no error")


def test_each_side_may_have_its_own_offset() -> None:
    d = LabelDirection(np.eye(3)[1], 2.0, 0.9, feminine_scale=3.5)
    z = torch.zeros(2, 3)
    assert torch.allclose(d.apply(z, "masculine")[:, 1], torch.full((2,), 2.0))
    assert torch.allclose(d.apply(z, "feminine")[:, 1], torch.full((2,), -3.5))
    back = LabelDirection.from_dict(d.to_dict())
    assert back.feminine_scale == 3.5 and back.scale_for("masculine") == 2.0
    same = LabelDirection.from_dict(LabelDirection(np.eye(3)[1], 2.0).to_dict())  # older files: one offset
    assert same.feminine_scale is None and same.scale_for("feminine") == 2.0
