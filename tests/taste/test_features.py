"""The true features of rated faces (taste/features.py): the real embedding, the cache on disk,
and `true_features`, which renders only what the cache lacks."""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pytest

from passersby.taste.features import (
    FeatureCache,
    embed,
    feature_cache_path,
    true_features,
    z_key,
)


class CountingRenderer:
    """Renders a face whose colour is a function of z, and counts the faces it rendered."""

    def __init__(self) -> None:
        self.faces = 0

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.faces += len(z)
        level = (np.tanh(z[:, :3]) * 100 + 128).astype(np.uint8)  # (m, 3)
        return np.broadcast_to(level[:, None, None, :], (len(z), 8, 8, 3)).copy()


def mean_colour(images: np.ndarray) -> np.ndarray:
    """A 3-d stand-in for EfficientNet: the mean colour."""
    return images.reshape(len(images), -1, 3).mean(1) / 255.0


def test_embed_is_efficientnet_lite0_normalised() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    f = embed(images)
    assert f.shape == (3, 1280) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    assert (f >= 0).all()  # after ReLU6, pooled
    assert not np.allclose(f[0], f[1])  # different pictures, different features
    np.testing.assert_allclose(embed(images[:1]), f[:1], atol=1e-5)  # per face, not per batch
    with pytest.raises(ValueError, match="uint8"):
        embed(images.astype(np.float32))


def test_the_cache_keeps_features_across_processes(tmp_path) -> None:
    path = feature_cache_path(tmp_path, "m1")
    z = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    f = np.random.default_rng(2).random((5, 1280)).astype(np.float32)
    with FeatureCache(path) as cache:
        cache.put(z[:3], f[:3])
        assert len(cache) == 3
    assert path.parent == tmp_path / "cache" and path.name == "taste-features-m1.sqlite"
    with FeatureCache(path) as cache:  # reopened: as the stream reads what the app wrote
        got = cache.get(z)
    np.testing.assert_array_equal(np.stack(got[:3]), f[:3])
    assert got[3] is None and got[4] is None
    # The key is the latent as the store keeps it (float32): a float64 copy finds the same entry.
    assert z_key(z[0].astype(np.float64)) == z_key(z[0])


def test_in_memory_cache_and_large_lookups() -> None:
    cache = FeatureCache(None)
    z = np.random.default_rng(3).standard_normal((1200, 4))  # more than SQLite binds at once
    cache.put(z, np.ones((1200, 2)))
    assert len(cache) == 1200 and all(f is not None for f in cache.get(z))
    with pytest.raises(ValueError, match="features must be"):
        cache.put(z[:2], np.ones(2))


def test_a_damaged_cache_is_set_aside_and_rebuilt(tmp_path, caplog) -> None:
    path = feature_cache_path(tmp_path, "m2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an sqlite file" * 100)
    with caplog.at_level(logging.WARNING), FeatureCache(path) as cache:
        cache.put(np.zeros((1, 4)), np.ones((1, 1280)))
        assert cache.get(np.zeros((1, 4)))[0] is not None
    assert "unusable taste feature cache" in caplog.text
    assert (path.parent / "taste-features-m2.sqlite.damaged").read_bytes().startswith(b"this is not")


def test_a_damaged_entry_is_computed_again(tmp_path) -> None:
    path = feature_cache_path(tmp_path, "m3")
    z = np.random.default_rng(4).standard_normal((2, 8)).astype(np.float32)
    render = CountingRenderer()
    with FeatureCache(path) as cache:
        true_features(z, cache, render, embed=mean_colour, dim=3)
    con = sqlite3.connect(path)
    con.execute("UPDATE features SET f = ? WHERE key = ?", (b"\x00\x00\xc0\x7f" * 3, z_key(z[0])))  # NaNs
    con.commit()
    con.close()
    with FeatureCache(path) as cache:
        f = true_features(z, cache, render, embed=mean_colour, dim=3)
    assert render.faces == 3 and np.isfinite(f).all()  # 2 at first, then only the damaged one


def test_true_features_render_only_what_is_missing(tmp_path) -> None:
    z = np.random.default_rng(5).standard_normal((40, 8)).astype(np.float32)
    render = CountingRenderer()
    told = []
    with FeatureCache(feature_cache_path(tmp_path, "m4")) as cache:
        cache.put(z[:10], mean_colour(render(z[:10])))  # the app embedded these as it showed them
        render.faces = 0
        f = true_features(z, cache, render, batch=16, embed=mean_colour, dim=3, on_render=told.append)
        assert render.faces == 30 and told == [30]
        np.testing.assert_allclose(f, mean_colour(CountingRenderer()(z)), atol=1e-6)
        again = true_features(z, cache, render, embed=mean_colour, dim=3, on_render=told.append)
        assert render.faces == 30 and told == [30]  # all cached now: nothing rendered, nothing said
        np.testing.assert_array_equal(again, f)
        # A cached vector of another length (another embedding) is not used: computed again.
        assert true_features(z[:2], cache, render, embed=lambda im: np.ones((len(im), 5)), dim=5).shape == (2, 5)
        assert render.faces == 32
        with pytest.raises(ValueError, match="no renderer"):
            true_features(np.ones((1, 8)), cache, None, embed=mean_colour, dim=3)
        with pytest.raises(ValueError, match="expected"):
            true_features(np.ones((1, 8)) * 7, cache, render, embed=mean_colour, dim=4)
    assert true_features(np.zeros((0, 8)), None, None, dim=3).shape == (0, 3)
