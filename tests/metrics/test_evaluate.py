"""evaluate_generator end to end, and the training-feature cache."""

import math

import pytest
import torch

from passersby.metrics.evaluate import TrainFeatureCache, evaluate_generator
from passersby.metrics.features import FeatureExtractor


def _images(seed, n, size=64):
    """Smooth random images in [-1, 1], shape (n, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


class CountingExtractor(FeatureExtractor):
    """A FeatureExtractor that counts the images it embeds."""

    def __init__(self):
        super().__init__()
        self.n_embedded = 0

    def extract(self, images):
        self.n_embedded += images.shape[0]
        return super().extract(images)


def test_evaluate_generator_scores_and_flags_a_copying_generator():
    train, cache = _images(0, 16), TrainFeatureCache()
    copier = lambda k: train[:k].clone()  # noqa: E731 - a generator that memorised its data
    g = torch.Generator().manual_seed(1)
    fresh = lambda k: _images(int(torch.randint(10**6, (1,), generator=g)), k)  # noqa: E731
    copy_scores = evaluate_generator(
        copier, train, n=8, rng_seed=0, data_key="train", cache=cache, sample_batch=5
    )
    fresh_scores = evaluate_generator(fresh, train, n=8, rng_seed=0, data_key="train", cache=cache)
    for scores in (copy_scores, fresh_scores):
        assert {"kid_effnetlite0", "kid_effnetlite0_std", "fd_effnetlite0", "memorisation"} <= set(
            scores
        )
        assert scores["n_generated"] == 8 and scores["n_train"] == 16
        assert all(math.isfinite(scores[k]) for k in ("kid_effnetlite0", "fd_effnetlite0"))
    assert copy_scores["memorisation"]["suspected_copy_fraction"] == 1.0
    assert copy_scores["memorisation"]["ratio"] < 0.01
    assert fresh_scores["memorisation"]["ratio"] > 0.1


def test_training_features_are_cached_by_key():
    train, cache, extractor = _images(2, 6), TrainFeatureCache(max_entries=1), CountingExtractor()
    sample = lambda k: _images(3, k)  # noqa: E731
    first = evaluate_generator(sample, train, 4, 0, data_key="a", cache=cache, extractor=extractor)
    second = evaluate_generator(sample, train, 4, 0, data_key="a", cache=cache, extractor=extractor)
    assert extractor.n_embedded == 6 + 4 + 4  # the training set once, the samples twice
    assert first == second  # same samples, same seed: same numbers
    evaluate_generator(sample, train, 4, 0, data_key="b", cache=cache, extractor=extractor)
    evaluate_generator(sample, train, 4, 0, data_key="a", cache=cache, extractor=extractor)
    assert extractor.n_embedded == 14 + 10 + 10  # max_entries=1: "a" was evicted by "b"


def test_evaluate_generator_validates():
    with pytest.raises(ValueError):
        evaluate_generator(lambda k: _images(0, k), _images(1, 4), n=1, rng_seed=0)
    with pytest.raises(ValueError):
        evaluate_generator(lambda k: _images(0, k + 1), _images(1, 4), n=3, rng_seed=0)
