"""pHash in numpy: stable under re-encoding, different for different portraits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from passersby.data.phash import (
    FINE_THRESHOLD,
    NearDuplicateIndex,
    _area_resize,
    _dct_matrix,
    fine_hash,
    hamming,
    phash,
    phash_hex,
)

PORTRAITS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "portraits").glob("*.jpg"))


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def reencode(rgb: np.ndarray, quality: int = 70, gain: float = 1.0) -> np.ndarray:
    buf = io.BytesIO()
    bright = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    Image.fromarray(bright).resize((100, 100), Image.LANCZOS).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_dct_matrix_is_orthonormal() -> None:
    d = _dct_matrix(32)
    assert np.allclose(d @ d.T, np.eye(32))


def test_area_resize_averages_exactly() -> None:
    g = np.random.default_rng(1).random((97, 61))
    small = _area_resize(g, 32, 32)
    assert small.shape == (32, 32) and np.isclose(small.mean(), g.mean())
    block = _area_resize(np.kron(np.eye(4), np.ones((8, 8))), 4, 4)
    assert np.allclose(block, np.eye(4))


def test_hash_format() -> None:
    h = phash(load(PORTRAITS[0]))
    assert 0 <= h < 2**64 and len(phash_hex(h)) == 16 and int(phash_hex(h), 16) == h
    assert bin(h).count("1") == 32  # median split: half the bits set


def test_reencoded_copies_are_near_and_different_portraits_far() -> None:
    hashes = [phash(load(p)) for p in PORTRAITS]
    for p, h in zip(PORTRAITS, hashes, strict=True):
        assert hamming(h, phash(reencode(load(p), quality=60, gain=1.06))) <= 4, p.name
    pairs = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(pairs) > 4


def test_near_duplicate_index() -> None:
    index = NearDuplicateIndex(threshold=4)
    assert index.find(0) is None
    for i in range(3000):  # more than the initial capacity
        index.add((i * 0x9E3779B97F4A7C15) % 2**64, f"k{i}")
    assert len(index) == 3000
    target = (7 * 0x9E3779B97F4A7C15) % 2**64
    assert index.find(target ^ 0b11) == ("k7", 2)
    assert NearDuplicateIndex(threshold=-1).find(0) is None


def test_fine_hash_keeps_re_encodes_together_and_sitters_apart() -> None:
    faces = [load(p) for p in PORTRAITS]
    for rgb in faces:
        assert hamming(fine_hash(rgb), fine_hash(reencode(rgb, 70, 1.08))) <= FINE_THRESHOLD // 3
    hashes = [fine_hash(rgb) for rgb in faces]
    apart = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(apart) > FINE_THRESHOLD


def test_find_all_lists_every_match() -> None:
    index = NearDuplicateIndex(threshold=4)
    for key, value in (("a", 0b1111), ("b", 0b0011), ("c", 0b1110)):
        index.add(value, key)
    assert index.find_all(0b1111) == [("a", 0), ("c", 1), ("b", 2)]
    assert NearDuplicateIndex(threshold=-1).find_all(0) == []
