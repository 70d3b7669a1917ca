"""Perceptual hashing (pHash) in pure numpy, and a small near-duplicate index.

Exact duplicates are caught by the SHA-256 of the file bytes. Near duplicates (the same
picture re-encoded, resized, slightly brightened or with a new border) have different bytes but
the same low-frequency structure, which is what pHash keeps:

1. convert to grayscale and shrink to 32 x 32 by area averaging;
2. take the 2-D DCT-II and keep the 8 x 8 lowest frequencies *after* the first row and column
   (coefficients [1:9, 1:9], as the original pHash library does);
3. set one bit per coefficient: above the median of the 64 or not.

Why skip row and column 0: they hold the overall brightness and the coarsest left/right and
top/bottom gradients, which every face crop shares (a light face on a darker ground). With them,
the 925 reference portraits had 17 pairs of *different* paintings within 6 bits; without them, 2.

Two hashes are compared by the number of differing bits (Hamming distance, 0..64).

Distances are always even: exactly 32 of the 64 bits are set (median split), so a differing bit
on one side is matched by one on the other.

Why the default threshold is 4 (measured on the 925 reference portraits, 427k pairs):
re-encoding at JPEG quality 70 + resizing + brightening 8% moved a hash by 0 bits (87%), 2 bits
(13%) or 4 bits (0.3%). The three duplicate pairs in that set (same picture, different title)
are at 0, 0 and 4 bits. Different paintings start at 6 bits: 3 pairs at 6 (two unrelated
sitters, and two Renoir portraits of the same woman), 6 at 8, then hundreds. Face crops are all
alike in layout, so a threshold of 6 would already merge different sitters; 4 catches every
re-encode seen and no distinct painting. A shifted re-crop of the same picture (10% of the side)
lands well above 8 bits: pHash does not catch those, and no safe threshold would.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DEFAULT_THRESHOLD = 4
HASH_SIDE = 8  # 8 x 8 = 64 bits
FINE_SIDE = 16  # fine_hash: 16 x 16 = 256 bits ...
FINE_DCT_SIDE = 64  # ... of a 64 x 64 copy
FINE_THRESHOLD = 36  # fine_hash bits: largest distance that confirms a near duplicate
DCT_SIDE = 32  # the image is shrunk to 32 x 32 before the DCT (as in the reference pHash)


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an image.

    Args:
        rgb: ``(H, W, 3)`` or ``(H, W)`` uint8 (or float) array.

    Returns:
        The hash as a Python int in ``[0, 2**64)``; bit 63 is DCT coefficient (1, 1), and
        the bits run row by row.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        >>> hamming(phash(img), phash(img // 2 + 64))  # less contrast, same picture
        0
        >>> 0 <= phash(img) < 2**64
        True
    """
    gray = _to_gray(rgb)
    small = _area_resize(gray, DCT_SIDE, DCT_SIDE)
    d = _dct_matrix(DCT_SIDE)
    coeffs = d @ small @ d.T  # separable 2-D DCT-II: rows then columns
    low = coeffs[1 : HASH_SIDE + 1, 1 : HASH_SIDE + 1].ravel()  # skip the DC row and column
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def fine_hash(rgb: np.ndarray) -> int:
    """256-bit DCT hash: 16 x 16 coefficients of a 64 x 64 copy, the same recipe as `phash`.

    Why: aligned faces share their layout (eyes, nose and mouth at the same places), so the
    64-bit pHash of two different sitters can lie within the duplicate threshold. Measured on
    the aligned faces of portraits-256: the 5 pairs within 4 bits were one true duplicate (the
    same Renoir from two sources: 26 of 256 fine bits apart) and 4 different sitters (46-62
    bits apart; the 10 pairs of the final set within 6 bits of pHash: 50-94 bits); JPEG
    quality 70 + resizing + brightening 8 % moved 195 aligned faces by 2 bits (median), 8 at
    most. Hence `FINE_THRESHOLD` = 36; `prepare` confirms every pHash match with this hash.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        >>> fine_hash(img) == fine_hash(img // 2 + 64), 0 <= fine_hash(img) < 2**256
        (True, True)
    """
    gray = _area_resize(_to_gray(rgb), FINE_DCT_SIDE, FINE_DCT_SIDE)
    d = _dct_matrix(FINE_DCT_SIDE)
    low = (d @ gray @ d.T)[1 : FINE_SIDE + 1, 1 : FINE_SIDE + 1].ravel()
    return int("".join("1" if b else "0" for b in low > np.median(low)), 2)


def phash_hex(value: int) -> str:
    """Format a hash as the 16 hex digits stored in the manifest.

    Example:
        >>> phash_hex(255)
        '00000000000000ff'
    """
    return f"{value:016x}"


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes.

    Example:
        >>> hamming(0b1011, 0b0001)
        2
    """
    return (a ^ b).bit_count()


class NearDuplicateIndex:
    """Hashes seen so far, answering "is this within `threshold` bits of one of them?".

    A linear scan with numpy: 100k hashes take about a millisecond per query, enough for any
    folder this project prepares, and exact (no approximate index that could miss a pair).

    Args:
        threshold: largest Hamming distance that still counts as a duplicate.

    Example:
        >>> index = NearDuplicateIndex(threshold=4)
        >>> index.add(0xFFFF, "a.jpg")
        >>> index.find(0xFFFE)
        ('a.jpg', 1)
        >>> index.find(0) is None
        True
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, value: int, key: str) -> None:
        n = len(self._keys)
        if n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        self._hashes[n] = np.uint64(value)
        self._keys.append(key)

    def find_all(self, value: int) -> list[tuple[str, int]]:
        """Every stored key within the threshold and its distance, closest (then earliest) first.

        Example:
            >>> index = NearDuplicateIndex(threshold=2)
            >>> index.add(0b111, "a"); index.add(0b110, "b"); index.add(0, "c")
            >>> index.find_all(0b111)
            [('a', 0), ('b', 1)]
        """
        n = len(self._keys)
        if n == 0 or self.threshold < 0:
            return []
        dists = np.bitwise_count(self._hashes[:n] ^ np.uint64(value))
        hits = np.flatnonzero(dists <= self.threshold)
        order = sorted(hits, key=lambda i: (int(dists[i]), int(i)))
        return [(self._keys[i], int(dists[i])) for i in order]

    def find(self, value: int) -> tuple[str, int] | None:
        """The closest stored key within the threshold and its distance, or None.

        Ties go to the earliest added, so results do not depend on anything but input order.
        """
        n = len(self._keys)
        if n == 0 or self.threshold < 0:
            return None
        dists = np.bitwise_count(self._hashes[:n] ^ np.uint64(value))
        i = int(np.argmin(dists))
        d = int(dists[i])
        return (self._keys[i], d) if d <= self.threshold else None


def _to_gray(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3:
        # ITU-R BT.601 luma, as Pillow's convert("L"): the usual pHash input.
        # Written out rather than as a matrix product: BLAS threads cost more than they save here.
        a = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {np.shape(img)}")
    return a


def _area_resize(gray: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize by exact area averaging, as two matrix products (works up and down).

    When the sides divide evenly (a 256 px crop -> 32) it is a plain block mean, which gives
    the same numbers without the matrix products: those go through a multi-threaded BLAS that,
    on a busy machine, took 15 ms instead of 0.5 ms for one 256 x 256 image.
    """
    h, w = gray.shape
    if h % out_h == 0 and w % out_w == 0:
        return gray.reshape(out_h, h // out_h, out_w, w // out_w).mean(axis=(1, 3))
    return _area_matrix(gray.shape[0], out_h) @ gray @ _area_matrix(gray.shape[1], out_w).T


@lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix whose row i averages the input span [i, i+1) * n_in / n_out."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    starts, ends = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(ends, cells + 1) - np.maximum(starts, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``(D @ x)[k] = s_k * sum_j x[j] cos(pi (2j+1) k / 2n)``."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * j + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d
