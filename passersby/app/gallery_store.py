"""A curator's marks on captures: keep / reject, a star, a note (<home>/captures/gallery.sqlite).

One row per marked capture; captures themselves stay files (app/captures.py), so deleting the
database loses the marks, never a face. SQLite in WAL mode with durable commits: a crash keeps
every mark that was acknowledged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from passersby.sqlite_open import open_sqlite

STATUSES = ("", "keep", "reject")
NOTE_MAX = 4000

_SCHEMA = """CREATE TABLE IF NOT EXISTS marks (
    capture_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT '' CHECK (status IN ('', 'keep', 'reject')),
    star INTEGER NOT NULL DEFAULT 0 CHECK (star IN (0, 1)),
    note TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
)"""


class GalleryMarks:
    """Marks per capture id.

    Example:
        >>> marks = GalleryMarks(home / "captures" / "gallery.sqlite")  # an installation's home  # doctest: +SKIP
        >>> marks.set("20261201-070500-feminine-42", status="keep", star=True)  # an installation's home  # doctest: +SKIP
        {'status': 'keep', 'star': True, 'note': ''}
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection for the server's worker threads; SQLite serialises, the lock in set() the rest.
        # Kept as they always were here: sqlite3's default 5 s busy timeout (one server writes
        # the marks), and whatever journal mode SQLite grants (no WAL check, unlike the ledger).
        self.con = open_sqlite(self.path, busy_timeout_s=5.0, threads=True, require_wal=False)
        self.con.execute(_SCHEMA)

    def close(self) -> None:
        self.con.close()

    def all(self) -> dict[str, dict[str, Any]]:
        rows = self.con.execute("SELECT capture_id, status, star, note FROM marks").fetchall()
        return {cid: {"status": st, "star": bool(star), "note": note} for cid, st, star, note in rows}

    def get(self, capture_id: str) -> dict[str, Any]:
        return self.all().get(capture_id, {"status": "", "star": False, "note": ""})

    def set(self, capture_id: str, status: str | None = None, star: bool | None = None,
            note: str | None = None) -> dict[str, Any]:
        """Change some marks of one capture; the others stay. ValueError names a bad field."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status: {status!r} must be one of {STATUSES}")
        if star is not None and not isinstance(star, bool):
            raise ValueError(f"star: must be true or false, got {star!r}")
        if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
            raise ValueError(f"note: must be text of at most {NOTE_MAX} characters")
        cur = self.get(capture_id)
        new = {"status": cur["status"] if status is None else status, "star": cur["star"] if star is None else star,
               "note": cur["note"] if note is None else note}
        self.con.execute("INSERT INTO marks (capture_id, status, star, note, updated_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT(capture_id) DO UPDATE SET status = excluded.status, star = excluded.star, "
                         "note = excluded.note, updated_at = excluded.updated_at",
                         (capture_id, new["status"], int(new["star"]), new["note"], time.time()))
        return new
