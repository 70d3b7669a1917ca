"""The taste prior is computed once per model and cached in the home directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from passersby.taste.prior import cached_prior, prior_path

D = 16


def render(z: np.ndarray) -> np.ndarray:
    """A stand-in generator: the picture's colours move with the first 3 latent directions."""
    img = np.empty((len(z), 16, 16, 3), np.uint8)
    img[:] = (np.tanh(z[:, None, None, :3]) * 100 + 128).astype(np.uint8)
    return img


def test_computed_once_then_read_and_recomputed_when_damaged(tmp_path: Path) -> None:
    calls = []
    p1 = cached_prior(tmp_path, "abc", render, D, on_compute=lambda: calls.append(1))
    assert p1.shape == (D, D) and np.allclose(p1, p1.T) and len(calls) == 1
    assert np.argmax(np.diag(p1)) < 3  # the directions that change the picture get the prior
    p2 = cached_prior(tmp_path, "abc", render, D, on_compute=lambda: calls.append(1))
    assert len(calls) == 1 and np.array_equal(p1, p2)
    prior_path(tmp_path, "abc").write_bytes(b"garbage")
    p3 = cached_prior(tmp_path, "abc", render, D, on_compute=lambda: calls.append(1))
    assert len(calls) == 2 and np.allclose(p3, p1)
    assert not list(prior_path(tmp_path, "abc").parent.glob("*.tmp*"))
