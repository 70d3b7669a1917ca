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
`open_read_only` a peek at a file that must not be created or changed (the ledger's dimension,
and the read-only commands `ledger stats`, `check` and `export`, which must work on a full disk).

A new store is created only with room for it (`NEW_STORE_BYTES` free, read by `disk_free`, the one
place passersby reads free space; tests replace it):
with less, SQLite fails half-way (a 4 KB file without its tables, which the next start then calls
unreadable). `NoSpace` says which folder, what is free and what is needed, and nothing is left.

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

import errno
import os
import shutil
import sqlite3
from pathlib import Path

# Free space a new store needs before it is created: its schema and first pages (a ledger's
# description holds its LSH rotations, ~1 MB) plus room for its first hours of writes.
NEW_STORE_BYTES = 16 * 2**20

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class CannotOpen(sqlite3.OperationalError):
    """sqlite3.connect itself failed: the path or its permissions (the message is SQLite's)."""


class NoSpace(CannotOpen):
    """Too little free space to create the store; the message names the folder, the free space
    and the space needed. Nothing was created."""


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
        NoSpace: the file is new and its folder has less than NEW_STORE_BYTES free (nothing
            was created).
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
    new = not os.path.exists(path)
    if new:
        check_room(path)
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
    except BaseException as e:
        con.close()
        if new and _disk_trouble(e):  # the half-made file we just created: never leave it behind
            remove_store(path)
        raise
    return con


def disk_free(path: str | os.PathLike) -> int:
    """Bytes free for this user on the file system holding `path` (or its nearest existing
    parent, for a file not yet created).

    Args:
        path: a file or folder, existing or about to be.

    Example:
        >>> import tempfile
        >>> disk_free(Path(tempfile.gettempdir()) / "not-yet.sqlite") > 0
        True
    """
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_room(path: str | os.PathLike) -> None:
    """Refuse to create the store `path` with less than NEW_STORE_BYTES free in its folder.

    Checked before the file exists: with less room SQLite fails half-way through the creation.

    Args:
        path: the store about to be created.

    Raises:
        NoSpace: "<folder>: 0.4 MB free, a new store ledger.sqlite needs 16.0 MB; free some space
            there (or point the home to a larger disk)".

    Example:
        >>> import tempfile
        >>> check_room(Path(tempfile.gettempdir()) / "new.sqlite")  # room enough here
    """
    folder = Path(path).parent
    free = disk_free(folder)
    if free < NEW_STORE_BYTES:
        raise NoSpace(f"{folder}: {free / 2**20:.1f} MB free, a new store {Path(path).name} needs "
                      f"{NEW_STORE_BYTES / 2**20:.1f} MB; free some space there (or point the home to a larger disk)")


def _disk_trouble(e: BaseException) -> bool:
    """Whether `e` says the disk is full or failing (SQLITE_FULL, SQLITE_IOERR, ENOSPC)."""
    if isinstance(e, OSError):
        return e.errno == errno.ENOSPC
    text = str(e).lower()
    return isinstance(e, sqlite3.Error) and ("full" in text or "disk i/o" in text or "no space" in text)


def remove_store(path: str | os.PathLike) -> None:
    """Remove a store this process just created and could not finish, with its -wal and -shm.

    Only for a file created a moment ago that holds nothing yet (a failed creation): never for
    a store with records.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "half.sqlite"
        >>> _ = p.write_bytes(b"")
        >>> remove_store(p); p.exists()
        False
    """
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{os.fspath(path)}{suffix}")
        except OSError:
            pass


def open_read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to an existing file: never creates it, never writes (not even a WAL).

    For the commands that only read (`ledger stats`, `check`, `export`): they work on a full disk
    and cannot change what they report on. `PRAGMA query_only` makes a stray write an error.

    Raises:
        sqlite3.Error: no such file, or not readable.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.sqlite"
        >>> open_sqlite(p).close()
        >>> con = open_read_only(p); con.execute("PRAGMA query_only").fetchone()[0]
        1
    """
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    con.execute("PRAGMA query_only=1")
    return con


def integrity_problems(con: sqlite3.Connection) -> list[str]:
    """SQLite's `PRAGMA integrity_check` (reads the whole file): its findings, [] when "ok".

    Raises:
        sqlite3.Error: the check itself could not run.
    """
    return [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
