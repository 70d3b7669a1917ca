"""One call that scores a generator against its training set: KID, FD and memorisation.

All three are measured in EfficientNet-Lite0 feature space (`passersby.metrics.features`), so
the numbers compare checkpoints and runs of this project with each other, not with published
Inception FID/KID. Training-set features are cached under a caller-supplied key (e.g. the
data set's hash), so evaluating every few thousand steps embeds the training images once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from passersby.metrics.distances import frechet_distance, kid
from passersby.metrics.memorisation import memorisation_report

if TYPE_CHECKING:
    import torch

    from passersby.metrics.features import FeatureExtractor


class TrainFeatureCache:
    """Least-recently-used store of training-set features, keyed by a data key string.

    Args:
        max_entries: how many feature sets to keep (each is N x 1280 float32, ~5 MB per 1000).

    Example:
        >>> import torch
        >>> from passersby.metrics.features import FeatureExtractor
        >>> cache, fx = TrainFeatureCache(), FeatureExtractor()
        >>> images = torch.zeros(2, 3, 64, 64)
        >>> cache.get("sha256:abc", images, fx) is cache.get("sha256:abc", images, fx)
        True
    """

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], "torch.Tensor"] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: str, images: "torch.Tensor", extractor: "FeatureExtractor"
    ) -> "torch.Tensor":
        """Features of `images` (N, 1280) on the CPU, computed only if `key` is not cached.

        Args:
            key: identifies the image set, e.g. a hash of the data files; the same key must
                mean the same images. Entries are also keyed by the extractor's feature space,
                and recomputed if the cached count differs from len(images).
            images: (N, 3, H, W) float in [-1, 1].
            extractor: the feature extractor to use on a miss.
        """
        entry_key = (key, extractor.name)
        with self._lock:
            feats = self._entries.get(entry_key)
            if feats is not None and feats.shape[0] == images.shape[0]:
                self._entries.move_to_end(entry_key)
                return feats
        feats = extractor.extract(images).cpu()  # (N, 1280)
        with self._lock:
            self._entries[entry_key] = feats
            self._entries.move_to_end(entry_key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return feats

    def clear(self) -> None:
        """Drop every cached feature set."""
        with self._lock:
            self._entries.clear()


default_cache = TrainFeatureCache()


def sample_features(
    sample_fn: Callable[[int], "torch.Tensor"],
    n: int,
    extractor: "FeatureExtractor",
    sample_batch: int = 100,
) -> "torch.Tensor":
    """Draw `n` images from `sample_fn` in batches and embed them, keeping only the features.

    Args:
        sample_fn: sample_fn(k) -> (k, 3, H, W) float in [-1, 1]; called under torch.no_grad().
        n: number of images.
        extractor: feature extractor.
        sample_batch: largest k passed to sample_fn, to bound memory.

    Returns:
        (n, 1280) float32 features on the CPU.

    Example:
        >>> import torch
        >>> from passersby.metrics.features import FeatureExtractor
        >>> fn = lambda k: torch.zeros(k, 3, 32, 32)
        >>> sample_features(fn, 3, FeatureExtractor(), sample_batch=2).shape
        torch.Size([3, 1280])
    """
    import torch

    chunks = []
    with torch.no_grad():
        for start in range(0, n, sample_batch):
            k = min(sample_batch, n - start)
            images = sample_fn(k)  # (k, 3, H, W)
            if images.ndim != 4 or images.shape[0] != k or images.shape[1] != 3:
                raise ValueError(f"sample_fn({k}) returned shape {tuple(images.shape)}")
            chunks.append(extractor.extract(images).cpu())  # (k, 1280)
    return torch.cat(chunks)  # (n, 1280)


def evaluate_generator(
    sample_fn: Callable[[int], "torch.Tensor"],
    train_images: "torch.Tensor",
    n: int,
    rng_seed: int,
    *,
    data_key: str | None = None,
    cache: TrainFeatureCache | None = None,
    extractor: "FeatureExtractor | None" = None,
    sample_batch: int = 100,
    kid_subsets: int = 50,
    kid_subset_size: int = 1000,
) -> dict[str, Any]:
    """Score `n` samples of a generator against the training images.

    Args:
        sample_fn: sample_fn(k) -> (k, 3, H, W) float in [-1, 1]. It owns its randomness:
            seed it (e.g. a torch.Generator) for a fixed evaluation set.
        train_images: (M, 3, H', W') float in [-1, 1], ideally deduplicated.
        n: number of generated images, >= 2 (1000+ for stable KID/FD; FD is biased upward
            at small n, KID is not).
        rng_seed: seeds the KID subset draws.
        data_key: identifies `train_images` (e.g. a data hash) so their features are cached
            in `cache`; None computes them every call.
        cache: feature cache; default: a process-wide `default_cache`.
        extractor: default FeatureExtractor() (runs where the tensors live).
        sample_batch: images per sample_fn call.
        kid_subsets, kid_subset_size: KID subset count and size (size capped at min(n, M)).

    Returns:
        {"feature_space", "n_generated", "n_train", "kid_effnetlite0", "kid_effnetlite0_std",
        "fd_effnetlite0", "memorisation": memorisation_report(...)}.

    Example:
        >>> import torch
        >>> train = torch.rand(8, 3, 64, 64) * 2 - 1
        >>> g = torch.Generator().manual_seed(0)
        >>> fn = lambda k: torch.rand(k, 3, 64, 64, generator=g) * 2 - 1
        >>> sorted(evaluate_generator(fn, train, n=8, rng_seed=0))[:3]
        ['fd_effnetlite0', 'feature_space', 'kid_effnetlite0']
    """
    from passersby.metrics.features import FEATURE_SPACE, FeatureExtractor

    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    extractor = extractor or FeatureExtractor()
    if data_key is None:
        train_feats = extractor.extract(train_images).cpu()  # (M, 1280)
    else:
        train_feats = (cache or default_cache).get(data_key, train_images, extractor)
    gen_feats = sample_features(sample_fn, n, extractor, sample_batch)  # (n, 1280)
    rng = np.random.default_rng(rng_seed)
    kid_mean, kid_std = kid(
        gen_feats, train_feats, rng=rng, n_subsets=kid_subsets, subset_size=kid_subset_size
    )
    return {
        "feature_space": FEATURE_SPACE,
        "n_generated": n,
        "n_train": int(train_feats.shape[0]),
        "kid_effnetlite0": kid_mean,
        "kid_effnetlite0_std": kid_std,
        "fd_effnetlite0": frechet_distance(gen_feats, train_feats),
        "memorisation": memorisation_report(gen_feats, train_feats),
    }
