"""`Ledger`: what every never-repeat ledger offers, whatever its database.

The engine, the gallery, captures, re-rendering and the `ledger` commands hold a `Ledger`
(from `LedgerSpec.open` / `open_existing`, spec.py) and use nothing else. Three classes satisfy it
in full: `SqliteLedger` (sqlite.py), `PgLedger` (postgres.py) and `LeasedLedger` (leased.py);
tests/stream/ledger/test_contract.py runs one suite of tests against all three, and
tests/stream/ledger/test_protocol.py checks that each has every member, with the same parameters.

Backend-specific members stay off the protocol: `open_existing` (a class method taking a path or
a URL), the SQLite and PostgreSQL connection (`con`), a ledger's stored description (`meta`,
`half`, `lsh`), and an edition's leases (`leases`, `fill`, `give_back`, `sync`).

Example:
    >>> import tempfile, pathlib
    >>> from passersby.stream.ledger import LedgerSpec
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with LedgerSpec(pathlib.Path(d) / "ledger.sqlite").open(dim=8) as led:
    ...         isinstance(led, Ledger)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, runtime_checkable

import numpy as np

from passersby.stream.ledger.common import MAX_TRIES, LedgerCheck, LedgerStats


@runtime_checkable
class Ledger(Protocol):
    """A persistent do-not-use list of anchors, with each channel's anchor RNG.

    Attributes:
        where: the file or address, for messages (never a password).
        dim: anchor size (the model's z_dim).
        channel: the default channel of `claim(None, ...)` and `recent(None)`.

    Every method raises LedgerError (one line: which ledger, what happened, what to do) when
    the database cannot answer; a shared ledger's outage is its subclass LedgerUnreachable.
    """

    where: str
    dim: int
    channel: str

    def claim(self, channel: str | None, propose: Callable[[np.random.Generator], np.ndarray], model_hash: str,
              max_tries: int = MAX_TRIES) -> tuple[int, np.ndarray]:
        """Record and return the channel's next anchor (id, z float32); show it only after this returns."""
        ...

    def contains_near(self, z: np.ndarray) -> bool:
        """Whether a recorded anchor is identical to z or closer than the ledger's threshold."""
        ...

    def anchor(self, anchor_id: int) -> np.ndarray:
        """The latent of anchor `anchor_id` as float32 (to re-render a frame from its key)."""
        ...

    def recent(self, channel: str | None = None, n: int = 1) -> list[tuple[int, np.ndarray]]:
        """The channel's last n anchors shown, oldest first: [(anchor_id, z float32)]."""
        ...

    def latest(self, n: int = 48) -> list[dict[str, Any]]:
        """The last n anchors of every channel, newest first: [{"id", "channel", "model_hash", "shown_at"}]."""
        ...

    def stats(self) -> LedgerStats:
        """Counts and times per channel."""
        ...

    def rng_states(self) -> dict[str, tuple[str, int, int, float, float]]:
        """Every channel's RNG row: {channel: (state JSON, counter, rejected, first_at, last_at)}."""
        ...

    def rows_for_copy(self) -> Iterator[list[tuple]]:
        """Every anchor as (id, channel, z, zhash, k0.., model_hash, shown_at), in id order, in batches."""
        ...

    def copy_in(self, rows: Iterable[list[tuple]], rng: dict[str, tuple]) -> int:
        """Append another ledger's `rows_for_copy` and RNG rows in one transaction (the ledger must be empty)."""
        ...

    def integrity_check(self) -> str:
        """The database's own structural check: "ok", its findings one per line, or "unchecked: <why>"."""
        ...

    def check(self, deep: bool = False) -> LedgerCheck:
        """Audit every row (and, deep, every search key)."""
        ...

    def export(self, path: str | Path) -> int:
        """Write every anchor to a JSON Lines file, atomically; returns the number written."""
        ...

    def close(self) -> None:
        """Close the ledger (idempotent)."""
        ...

    def __enter__(self) -> Any:
        ...

    def __exit__(self, *exc: object) -> None:
        ...

    def __len__(self) -> int:
        """How many anchors the ledger holds."""
        ...
