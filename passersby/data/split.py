"""A fixed held-out split of pictures, by painting: the same pictures are held out on every machine.

Why by file name and not at random: a split must not depend on a seed, the order of a folder or
the other pictures beside it, so that a set prepared today and one prepared next year hold out
the same paintings (the blind test's real faces are never in any training set). A picture is
held out when the SHA-256 of its file name (the base name, lower case: the same painting under
another folder stays on its side) falls in the lowest `share` of the hash range. Every face of a
held-out painting is held out with it.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath

HELD_OUT_SHARE = 0.1  # 10 % of the paintings: ~100 Met paintings, ~80 colour faces
SPLITS = ("all", "train", "held-out")


def held_out(name: str, share: float = HELD_OUT_SHARE) -> bool:
    """Whether the picture `name` (a path or file name) belongs to the held-out split.

    Args:
        name: the picture's file name or path; only its base name counts.
        share: the share of pictures held out, 0..1.

    Example:
        >>> held_out("image-10075.jpg") == held_out("some/folder/IMAGE-10075.jpg")
        True
    """
    base = PurePath(name.replace("\\", "/")).name.lower()
    h = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:8], "big")
    return h < share * 2**64


def in_split(name: str, split: str, share: float = HELD_OUT_SHARE) -> bool:
    """Whether `name` is part of `split` ("all", "train": not held out, "held-out").

    Example:
        >>> in_split("a.jpg", "all") and in_split("a.jpg", "train") != in_split("a.jpg", "held-out")
        True
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        return True
    return held_out(name, share) == (split == "held-out")
