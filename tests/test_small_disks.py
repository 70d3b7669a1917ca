"""Small and full disks (issue 22): a store is created whole or not at all, with the free space
checked first; the read-only commands only read; every disk error names its file.

There is no tiny file system to mount here (no root mounts), so the disk is simulated where it
is read: the free space through `passersby.sqlite_open.disk_free` (the one place it is read), a full
disk through SQLite's own page limit (`PRAGMA max_page_count`: SQLite then fails exactly as on a
full disk, "database or disk is full") and through writes that raise ENOSPC.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import passersby.sqlite_open
import passersby.stream.ledger.sqlite as ledger_sqlite
from passersby.atomic import NoSpace, atomic_open
from passersby.cli import app
from passersby.home import ledger_path
from passersby.sqlite_open import NEW_STORE_BYTES, open_sqlite
from passersby.sqlite_open import NoSpace as StoreNoSpace
from passersby.stream.ledger import LedgerError, SqliteLedger


def _propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(16).astype(np.float32)


def _little_room(monkeypatch, free: int = 500_000) -> None:
    monkeypatch.setattr(passersby.sqlite_open, "disk_free", lambda path: free)


def test_a_new_ledger_on_a_small_disk_is_refused_naming_folder_free_and_needed(tmp_path, monkeypatch) -> None:
    _little_room(monkeypatch)
    path = tmp_path / "ledger.sqlite"
    with pytest.raises(LedgerError) as e:
        SqliteLedger(path, dim=16, seed=1)
    msg = str(e.value)
    assert str(tmp_path) in msg and "0.5 MB free" in msg and f"{NEW_STORE_BYTES / 2**20:.1f} MB" in msg, msg
    assert list(tmp_path.iterdir()) == []  # nothing half-made for the next start to call unreadable


def test_an_existing_ledger_opens_and_claims_whatever_the_free_space(tmp_path, monkeypatch) -> None:
    """The check guards creation only: a running installation is not stopped by it (its own
    writes fail, and say so, only when the disk is really full)."""
    path = tmp_path / "ledger.sqlite"
    SqliteLedger(path, dim=16, seed=1).close()
    _little_room(monkeypatch)
    with SqliteLedger(path, dim=16, seed=1) as led:
        led.claim("a", _propose, "m")
        assert len(led) == 1


def test_a_disk_that_fills_while_the_ledger_is_created_leaves_no_half_made_ledger(tmp_path, monkeypatch) -> None:
    """Before: "SQLite error while opening (cannot rollback - no transaction is active)" and a
    4 KB ledger.sqlite without tables, which `ledger check` then called unreadable."""
    real = open_sqlite

    def filling(path, **kw):
        con = real(path, **kw)
        con.execute("PRAGMA max_page_count=2")  # SQLite's own "database or disk is full" after 2 pages
        return con

    monkeypatch.setattr(ledger_sqlite, "open_sqlite", filling)
    path = tmp_path / "ledger.sqlite"
    with pytest.raises(LedgerError) as e:
        SqliteLedger(path, dim=16, seed=1)
    assert "full" in str(e.value) and "cannot rollback" not in str(e.value), str(e.value)
    assert str(tmp_path) in str(e.value)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(ledger_sqlite, "open_sqlite", real)  # room again: the next start creates it
    with SqliteLedger(path, dim=16, seed=1) as led:
        led.claim("a", _propose, "m")
    assert SqliteLedger.open_existing(path).stats().count == 1


def test_any_new_store_is_refused_on_a_small_disk_and_left_uncreated(tmp_path, monkeypatch) -> None:
    """The lease mirror, the gallery's and the curators' stores open through open_sqlite too:
    `serve` said "disk I/O error"; now the folder, the free and the needed space."""
    _little_room(monkeypatch, free=3 * 2**20)
    with pytest.raises(StoreNoSpace, match=r"3\.0 MB free, a new store gallery\.sqlite needs 16\.0 MB"):
        open_sqlite(tmp_path / "gallery.sqlite")
    assert not (tmp_path / "gallery.sqlite").exists()


def _home_with_faces(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    with SqliteLedger(ledger_path(home), dim=16, seed=3) as led:
        for _ in range(3):
            led.claim("masculine", _propose, "m")
    return home


def test_ledger_stats_check_and_export_only_read(tmp_path, monkeypatch) -> None:
    """On a full disk even `ledger stats` failed: it opened the ledger for writing (WAL pragmas,
    a new -wal). Any opening for writing now fails as a full disk does; the commands still work."""
    home = _home_with_faces(tmp_path)
    before = hashlib.sha256(ledger_path(home).read_bytes()).hexdigest()

    def full_disk(path, **kw):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ledger_sqlite, "open_sqlite", full_disk)
    runner = CliRunner()
    stats = runner.invoke(app, ["ledger", "stats", "--home", str(home)])
    assert stats.exit_code == 0 and "faces shown: 3" in stats.output, stats.output
    check = runner.invoke(app, ["ledger", "check", "--home", str(home)])
    assert check.exit_code == 0 and "ok: 3 faces" in check.output, check.output
    out = tmp_path / "shown.jsonl"
    export = runner.invoke(app, ["ledger", "export", str(out), "--home", str(home)])
    assert export.exit_code == 0 and len(out.read_text().splitlines()) == 1 + 3, export.output
    assert hashlib.sha256(ledger_path(home).read_bytes()).hexdigest() == before
    with pytest.raises(LedgerError):  # and read-only means it: a claim is refused
        with SqliteLedger.open_existing(ledger_path(home), read_only=True) as led:
            led.claim("masculine", _propose, "m")


def test_a_capture_on_a_full_disk_names_its_file(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from passersby.app.captures import save_capture

    def no_space(self, fp, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(NoSpace) as e:
        save_capture(tmp_path, "feminine", np.zeros((8, 8, 3), np.uint8), {"frame": 7})
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and str(tmp_path / "captures") in msg and ".png" in msg, msg
    assert [p for p in (tmp_path / "captures").iterdir()] == []  # no temporary file left either


def test_a_video_on_a_full_disk_names_its_file(tmp_path, monkeypatch) -> None:
    """render's video writer said "[Errno 28] No space left on device", naming no file."""
    import passersby.outputs.video as video

    real = video.atomic_open

    class Full:  # the temporary file, on a disk with 2 KB left
        def __init__(self, f, room: int) -> None:
            self.f, self.room = f, room

        def write(self, b) -> int:
            if self.room < len(b):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

    @contextlib.contextmanager
    def filling(path, mode="wb"):
        with real(path, mode) as f:
            yield Full(f, 2000)

    monkeypatch.setattr(video, "atomic_open", filling)
    out = tmp_path / "walk.mp4"
    rng = np.random.default_rng(0)
    with pytest.raises(OSError) as e:
        with video.VideoWriter(out, 64, 32, fps=30) as w:
            for _ in range(60):
                w.write(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    assert str(out) in str(e.value) and "no space left" in str(e.value), str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_open_names_the_file_on_a_full_disk_and_keeps_other_errors(tmp_path) -> None:
    target = tmp_path / "export.jsonl"
    with pytest.raises(NoSpace, match=rf"^{target}: no space left on device \(.* free in {tmp_path}\)"):
        with atomic_open(target, "w"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):  # other errors keep their type: callers catch them by it
        with atomic_open(target, "w"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert list(tmp_path.iterdir()) == []
