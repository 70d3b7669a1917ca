"""Open an SQLite file the one way passersby's stores do: WAL, durable commits, a busy timeout.

Four stores keep their records in SQLite: the never-repeat ledger (stream/ledger/sqlite.py), a
console's lease mirror (stream/ledger/mirror.py), the curators' ratings (taste/store.py) and the
gallery's marks (app/gallery_store.py). Each opens its file with `open_sqlite`:

- autocommit (`isolation_level=None`): each store writes `BEGIN IMMEDIATE` / `COMMIT` itself, so
  no hidden transaction holds the write lock between statements;
- `journal_mode=WAL`: readers never block the writer (a gallery page never stalls a claim);
- `synchronous=FULL`: the WAL is fsynced at every commit, so what a store acknowledged (an
  anchor recorded before it is shown, a `shown` mark, a rating) survives a crash or power loss;
- a busy timeout: how long a write waits for another process's transaction before failing.

`integrity_problems` is SQLite's own structural check (the ledger's and the mirror's audits),
`open_read_only` a peek at a file that must not be created or changed (the ledger's dimension).

Errors stay `sqlite3.Error`, so each store words its own message; two subclasses say what went
wrong before any statement ran: `CannotOpen` (the file itself: path, permissions) and `NoWal`
(a file system that cannot share memory, e.g. some network mounts, refused WAL).

Example:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     con = open_sqlite(pathlib.Path(d) / "store.sqlite")
    ...     mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    ...     problems = integrity_problems(con)
    ...     con.close()
    >>> mode, problems
    ('wal', [])
"""

from __future__ import annotations

import os
import sqlite3

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class CannotOpen(sqlite3.OperationalError):
    """sqlite3.connect itself failed: the path or its permissions (the message is SQLite's)."""


class NoWal(sqlite3.OperationalError):
    """SQLite would not switch the file to write-ahead logging; `mode` is the journal mode it kept."""

    def __init__(self, mode: str) -> None:
        super().__init__(f"cannot use write-ahead logging (journal mode {mode!r})")
        self.mode = mode


def open_sqlite(path: str | os.PathLike, *, busy_timeout_s: float = 30.0, threads: bool = False,
                synchronous: str = "FULL", require_wal: bool = True) -> sqlite3.Connection:
    """An autocommit connection to `path` (created if missing) in WAL mode with durable commits.

    Args:
        path: the database file; its folder must exist.
        busy_timeout_s: how long a statement waits for another connection's write lock.
        threads: allow the connection to be used from several threads (the caller serialises
            them with its own lock; sqlite3's check_same_thread is turned off).
        synchronous: SQLite's `synchronous` pragma; FULL (the default) fsyncs every commit.
        require_wal: raise NoWal when SQLite keeps another journal mode; False accepts it.

    Returns:
        the open connection (the caller closes it).

    Raises:
        CannotOpen: sqlite3.connect failed (nothing was opened).
        NoWal: WAL refused and require_wal (the connection is closed).
        sqlite3.Error: a pragma failed, e.g. "file is not a database" (the connection is closed).
        ValueError: synchronous is not one of SYNCHRONOUS.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     con = open_sqlite(pathlib.Path(d) / "a.sqlite", busy_timeout_s=5.0, threads=True)
        ...     con.execute("PRAGMA synchronous").fetchone()[0], con.execute("PRAGMA busy_timeout").fetchone()[0]
        ...     con.close()
        (2, 5000)
    """
    if synchronous.upper() not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
    try:
        # isolation_level=None: the stores issue BEGIN IMMEDIATE / COMMIT themselves.
        con = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=not threads)
    except sqlite3.Error as e:
        raise CannotOpen(str(e)) from e
    try:
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if require_wal and mode.lower() != "wal":
            raise NoWal(mode)
        con.execute(f"PRAGMA synchronous={synchronous.upper()}")
    except BaseException:
        con.close()
        raise
    return con


def open_read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to an existing file: never creates it, never writes (not even a WAL).

    Raises:
        sqlite3.Error: no such file, or not readable.
    """
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def integrity_problems(con: sqlite3.Connection) -> list[str]:
    """SQLite's `PRAGMA integrity_check` (reads the whole file): its findings, [] when "ok".

    Raises:
        sqlite3.Error: the check itself could not run.
    """
    return [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
