"""The ledger's shared vocabulary: its errors, its reports, and the description a new ledger stores.

Every backend (sqlite.py, postgres.py, leased.py) and every caller speaks in these names; nothing
here touches a database.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from passersby.stream.ledger.lsh import LshParams, make_rotations

FORMAT = "passersby-ledger"
VERSION = 1
DEFAULT_THRESHOLD = 6.0
MAX_TRIES = 100  # proposals per claim; honest draws are rejected with probability ~1e-24 each


class LedgerError(Exception):
    """A ledger could not be opened, read or written; the message says which file and what to do."""


class LedgerUnreachable(LedgerError):
    """A shared ledger's database did not answer or failed mid-call; its connection was closed and
    the next call reconnects (a console plays from its lease meanwhile: ledger/leased.py)."""


@dataclass(frozen=True)
class ChannelStats:
    """One channel (screen): anchors claimed, proposals rejected, first and last claim (Unix s).

    In an edition (PostgreSQL) a console claims ahead: `leased` of the `count` are held by its
    lease, not shown yet, and `returned` were given back unshown (never to be shown). Both are
    0 for an installation's own ledger, where a claim is made just before the face shows.
    `shown` is what the screens really showed: counting leases as shown said "41 shown" beside
    "41 shown, 40 leased" on the same console.

    Example:
        >>> ChannelStats(7, 0, None, None, leased=4).shown
        3
    """

    count: int
    rejected: int
    first_shown: float | None
    last_shown: float | None
    leased: int = 0
    returned: int = 0

    @property
    def shown(self) -> int:
        return self.count - self.leased - self.returned


@dataclass(frozen=True)
class LedgerStats:
    """What `stats()` reports; `file_bytes` counts the database (SQLite: with its WAL)."""

    count: int
    channels: Mapping[str, ChannelStats]
    first_shown: float | None
    last_shown: float | None
    file_bytes: int

    @property
    def shown(self) -> int:
        """Faces shown: every claim but the leases not shown yet and those returned."""
        return sum(c.shown for c in self.channels.values())

    @property
    def leased(self) -> int:
        return sum(c.leased for c in self.channels.values())

    @property
    def returned(self) -> int:
        return sum(c.returned for c in self.channels.values())


@dataclass(frozen=True)
class LedgerCheck:
    """What `check()` found: `ok` is True when `problems` is empty; `notes` say what could not be
    checked here and why (e.g. PostgreSQL's index check needs rights this user lacks)."""

    count: int
    problems: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def z_hash(stored: bytes) -> int:
    """64-bit identity of an anchor's stored bytes, as a signed 64-bit INTEGER.

    Example:
        >>> z_hash(b"") == z_hash(b"")
        True
    """
    return int.from_bytes(hashlib.blake2b(stored, digest_size=8).digest(), "little", signed=True)


def channel_seed(seed: int | None, channel: str) -> np.random.SeedSequence:
    """A new channel's seed: (ledger seed, channel name); no seed -> fresh OS entropy.

    Example:
        >>> rng = np.random.Generator(np.random.PCG64(channel_seed(7, "screen-1")))  # its first anchors
    """
    words = np.frombuffer(hashlib.sha256(channel.encode()).digest()[:16], np.uint32)
    return np.random.SeedSequence(seed, spawn_key=tuple(int(w) for w in words))


def new_meta(dim: int, seed: int | None, threshold: float | None, half: bool | None,
             lsh: LshParams | None) -> dict[str, Any]:
    """The description a new ledger stores: format, dim, threshold, precision, LSH rotations.

    The rotations are stored (bytes), so nothing needs to reproduce them; a seed makes tests exact.
    """
    from passersby import __version__

    params = lsh or LshParams()
    rot = make_rotations(params, dim, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))))
    return {
        "format": FORMAT, "version": VERSION, "dim": dim,
        "threshold": float(threshold if threshold is not None else DEFAULT_THRESHOLD),
        "z_dtype": "float16" if half else "float32", "created": time.time(),
        "passersby_version": __version__,
        "lsh_tables": params.tables, "lsh_hashes": params.hashes,
        "lsh_proj_dim": params.proj_dim, "lsh_probes": params.probes, "lsh_rotations": rot.tobytes(),
    }


def check_args(dim: int, threshold: float | None, channel: str) -> None:
    """Raise ValueError naming the first bad argument of a ledger's constructor.

    Example:
        >>> check_args(128, None, "main")
        >>> check_args(0, None, "main")
        Traceback (most recent call last):
        ...
        ValueError: dim must be a positive integer, got 0
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"channel must be a non-empty string, got {channel!r}")
