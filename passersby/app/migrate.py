"""`passersby ledger migrate`: copy a whole ledger between SQLite and PostgreSQL, without loss.

Everything moves: every anchor with its id, channel, exact stored bytes, search keys, model and
time; every channel's RNG state and counters; the ledger's description (threshold, precision,
search rotations). Into PostgreSQL, a console's channels get its name ("masculine" ->
"gallery-1/masculine", what that console's screens claim on); back into SQLite, that console's
channels lose it again (others keep theirs). The target must be new or empty; afterwards both
are read back and compared anchor by anchor (ids, bytes, hashes) and the target is audited.

Example:
    >>> migrate("/srv/gallery/ledger.sqlite", "postgresql:///edition?host=/run/postgresql", "gallery-1")  # a PostgreSQL server  # doctest: +SKIP
    MigrateReport(anchors=10412, channels=2, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Iterator

from passersby.stream.ledger import LedgerCore, LedgerError, PgLedger, SqliteLedger, is_postgres


@dataclass(frozen=True)
class MigrateReport:
    anchors: int
    channels: int
    source: str
    target: str
    verified: bool


def _open(where: str, dim: int | None = None, meta: dict[str, Any] | None = None) -> LedgerCore:
    """The ledger at `where`, existing (meta None) or new with another ledger's description.

    A LedgerCore, not any `Ledger`: migrating copies the stored description (`meta`)."""
    if is_postgres(where):
        return PgLedger.open_existing(where) if meta is None else PgLedger(where, dim, meta=meta)
    if meta is None:
        return SqliteLedger.open_existing(where)
    if Path(where).exists() and Path(where).stat().st_size:
        raise LedgerError(f"{where}: exists already; migrate into a new file")
    return SqliteLedger(where, dim, meta=meta)


def _rename(channel: str, console: str, into_pg: bool) -> str:
    if into_pg:
        return f"{console}/{channel}"
    return channel[len(console) + 1:] if channel.startswith(console + "/") else channel


def migrate(source: str, target: str, console: str) -> MigrateReport:
    """Copy ledger `source` into the new or empty ledger `target` (file path or postgresql:// URL).

    Raises:
        LedgerError: unreadable source, non-empty target, or the copy does not read back equal.
    """
    if is_postgres(source) == is_postgres(target):
        raise LedgerError(f"migrate copies between SQLite and PostgreSQL; got {source} and {target}")
    into_pg = is_postgres(target)
    with _open(source) as src:
        rng = {_rename(c, console, into_pg): v for c, v in src.rng_states().items()}
        meta = dict(src.meta)
        with _open(target, src.dim, meta) as dst:
            if dst.meta.get("lsh_rotations") != meta["lsh_rotations"] or dst.threshold != src.threshold:
                raise LedgerError(f"{dst.where}: holds another ledger's description; migrate into an empty one")
            renamed = ([(r[0], _rename(r[1], console, into_pg), *r[2:]) for r in batch] for batch in src.rows_for_copy())
            n = dst.copy_in(renamed, rng)
            same = _same(src.rows_for_copy(), dst.rows_for_copy(), console, into_pg) and dst.rng_states() == rng
            audit = dst.check(deep=True)
            if not same or not audit.ok:
                raise LedgerError(f"{dst.where}: the copy does not read back equal ({'; '.join(audit.problems) or 'rows differ'})"
                                  " — do not use it; the source is untouched")
    return MigrateReport(n, len(rng), src.where, dst.where, True)


def _same(a: Iterator[list[tuple]], b: Iterator[list[tuple]], console: str, into_pg: bool) -> bool:
    """Both ledgers hold the same rows (channel renamed), compared in id order."""
    rows_a = (r for batch in a for r in batch)
    rows_b = (r for batch in b for r in batch)
    for ra, rb in zip_longest(rows_a, rows_b):
        if ra is None or rb is None:
            return False
        if (ra[0], _rename(ra[1], console, into_pg), bytes(ra[2]), *ra[3:]) != (rb[0], rb[1], bytes(rb[2]), *rb[3:]):
            return False
    return True
