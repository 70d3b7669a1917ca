"""The training set in memory: a prepared dataset folder -> uint8 tensors + class labels.

~1,000 images of 256² are 190 MB as uint8, so the whole set lives in memory (on the GPU when
there is one) and a batch is an index draw: no loader workers, and the draw order comes from
one explicit generator, which makes resuming exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from passersby.data.manifest import DatasetError, load_manifest

MIN_IMAGES = 8
__all__ = ["DatasetError", "TrainingSet", "load_training_set", "MIN_IMAGES"]


@dataclass
class TrainingSet:
    """images: (N, 3, R, R) uint8; labels: (N,) int64 class index, -1 where unknown."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    data_hash: str
    root: Path

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def batch(self, n: int, gen: torch.Generator, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw n images with replacement, randomly mirrored; float in [-1, 1] on `device`.

        Returns:
            (images (n,3,R,R), real labels (n,) with -1 where unknown, labels for the fakes (n,):
            the real label where known, else a class drawn from `gen`, so generated classes
            follow the labelled data's proportions).
        """
        idx = torch.randint(0, len(self.images), (n,), generator=gen)
        flip = torch.rand(n, generator=gen) < 0.5
        rand_cls = torch.randint(0, max(1, len(self.class_names)), (n,), generator=gen)
        x = self.images[idx.to(self.images.device)].to(device, non_blocking=True)
        x = x.float().div_(127.5).sub_(1.0)
        flip = flip.to(device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        lab = self.labels[idx]
        fake_lab = torch.where(lab < 0, rand_cls, lab)
        return x, lab.to(device), fake_lab.to(device)


def load_training_set(root: Path, resolution: int | None = None, device: str | torch.device = "cpu") -> TrainingSet:
    """Load a folder written by `passersby prepare` (manifest.json + images/).

    Args:
        root: dataset folder.
        resolution: expected image side; images of another size are an error (re-run prepare
            with --size), so a run never silently trains on resized data.
        device: where the uint8 image tensor lives.

    Raises:
        DatasetError: missing/invalid manifest, too few images, unreadable or wrong-size image.

    Example:
        >>> ts = load_training_set(Path("data/portraits"), 256)  # a prepared dataset on disk  # doctest: +SKIP
    """
    from PIL import Image

    manifest = load_manifest(Path(root))
    if len(manifest.items) < MIN_IMAGES:
        raise DatasetError(f"{root}: {len(manifest.items)} images; at least {MIN_IMAGES} are needed to train (a few hundred to learn well)")
    if resolution is not None and manifest.size != resolution:
        raise DatasetError(f"{root}: images are {manifest.size}px, the model wants {resolution}px — "
                           f"re-run `passersby prepare SRC DST --size {resolution}` or pass --resolution {manifest.size}")
    arrays, labels = [], []
    for it in manifest.items:
        p = manifest.root / it.file
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{p}: unreadable image ({e}) — re-run `passersby prepare`") from e
        if a.shape[:2] != (manifest.size, manifest.size):
            raise DatasetError(f"{p}: image is {a.shape[1]}x{a.shape[0]}, the manifest says {manifest.size} — re-run `passersby prepare`")
        arrays.append(a)
        labels.append(manifest.class_names.index(it.label) if it.label in manifest.class_names else -1)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().to(device)
    return TrainingSet(images, torch.tensor(labels, dtype=torch.int64), manifest.class_names,
                       manifest.data_hash, manifest.root)
