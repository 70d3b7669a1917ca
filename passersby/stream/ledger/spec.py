"""Which ledger an installation uses: its SQLite file, or an edition's shared PostgreSQL ledger.

`LedgerSpec` is what the engine, peep, the gallery, captures and the `ledger` commands are given
(from the settings' [ledger] table, app layer), instead of a path: `open()` for claiming,
`open_existing()` for reading. Either returns a `Ledger` (protocol.py), one of: sqlite.py
(SQLite), postgres.py (PostgreSQL, direct), leased.py (PostgreSQL through this console's leases).
"""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from passersby.sqlite_open import open_read_only
from passersby.stream.ledger.leased import LeasedLedger
from passersby.stream.ledger.postgres import PgLedger, redact
from passersby.stream.ledger.protocol import Ledger
from passersby.stream.ledger.sqlite import SqliteLedger

LEASE_FILE = "lease.sqlite"


def as_spec(ledger: "LedgerSpec | Path | str") -> "LedgerSpec":
    """A LedgerSpec from a spec or an SQLite ledger path."""
    return ledger if isinstance(ledger, LedgerSpec) else LedgerSpec(Path(ledger))


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class LedgerSpec:
    """Where the never-repeat ledger lives.

    Args:
        path: the SQLite ledger file (with no url), e.g. <home>/ledger.sqlite; with a url, its
            folder holds this console's lease mirror (lease.sqlite).
        url: "" (SQLite at `path`) or postgresql://... (an edition's shared ledger).
        console: this console's name in the edition ("" = the host name).
        lease: anchors leased ahead per screen (0: claim directly in PostgreSQL, no outage cover).

    Example:
        >>> LedgerSpec(Path("/srv/home/ledger.sqlite")).describe()
        '/srv/home/ledger.sqlite'
    """

    path: Path
    url: str = ""
    console: str = ""
    lease: int = 900

    @property
    def shared(self) -> bool:
        return is_postgres(self.url)

    @property
    def console_name(self) -> str:
        return self.console or socket.gethostname().split(".")[0] or "console"

    @property
    def mirror(self) -> Path:
        return Path(self.path).parent / LEASE_FILE

    def describe(self) -> str:
        """For status pages and messages (no password)."""
        if not self.shared:
            return str(self.path)
        return f"{redact(self.url)} (console {self.console_name}, lease {self.lease})"

    def open(self, dim: int, channel: str = "main", seed: int | None = None) -> Ledger:
        """A ledger to claim from (created if missing).

        Raises:
            LedgerError: unreachable (and, with leases, no lease held yet), or not a ledger.
        """
        if not self.shared:
            return SqliteLedger(self.path, dim=dim, channel=channel, seed=seed)
        if self.lease > 0:
            return LeasedLedger(self.url, self.mirror, dim, self.console_name, self.lease, channel, seed=seed)
        return PgLedger(self.url, dim, channel=channel, seed=seed)

    def open_existing(self, read_only: bool = False) -> Ledger:
        """A ledger to read (anchors, latest, stats, check, export) that must already exist.

        Args:
            read_only: open an SQLite ledger read-only (the commands that only read: they must
                work on a full disk and never change what they report on).
        """
        if not self.shared:
            return SqliteLedger.open_existing(self.path, read_only=read_only)
        if self.lease > 0 and self.mirror.exists():
            con = open_read_only(self.mirror)
            try:
                dim = dict(con.execute("SELECT key, value FROM meta")).get("dim")
            except sqlite3.Error:
                dim = None
            finally:
                con.close()
            if isinstance(dim, int):
                return LeasedLedger(self.url, self.mirror, dim, self.console_name, self.lease)
        return PgLedger.open_existing(self.url)

    def exists(self) -> bool:
        """Whether there may be anything to read (SQLite: the file; PostgreSQL: assume so)."""
        return self.shared or Path(self.path).exists()
