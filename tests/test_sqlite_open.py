"""passersby/sqlite_open.py: every store opens SQLite the same way, with its own differences kept."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from passersby.sqlite_open import CannotOpen, NoWal, integrity_problems, open_read_only, open_sqlite


def _pragma(con: sqlite3.Connection, name: str):
    return con.execute(f"PRAGMA {name}").fetchone()[0]


def test_wal_durable_commits_busy_timeout_and_autocommit(tmp_path):
    con = open_sqlite(tmp_path / "a.sqlite")
    try:
        assert _pragma(con, "journal_mode") == "wal" and _pragma(con, "synchronous") == 2  # FULL
        assert _pragma(con, "busy_timeout") == 30_000 and con.isolation_level is None
        con.execute("CREATE TABLE t (x)")
        con.execute("INSERT INTO t VALUES (1)")  # autocommit: visible to another connection at once
        other = open_read_only(tmp_path / "a.sqlite")
        assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
        other.close()
        assert integrity_problems(con) == []
    finally:
        con.close()


def test_each_store_keeps_its_own_settings(tmp_path):
    con = open_sqlite(tmp_path / "g.sqlite", busy_timeout_s=5.0, threads=True, synchronous="normal")
    try:
        assert _pragma(con, "busy_timeout") == 5000 and _pragma(con, "synchronous") == 1
        out = []
        t = threading.Thread(target=lambda: out.append(con.execute("SELECT 1").fetchone()[0]))
        t.start()
        t.join()
        assert out == [1]  # threads=True: another thread may use it (the caller holds a lock)
    finally:
        con.close()
    with pytest.raises(ValueError, match="synchronous must be one of"):
        open_sqlite(tmp_path / "x.sqlite", synchronous="sometimes")


def test_the_stores_use_it(tmp_path):
    from passersby.app.gallery_store import GalleryMarks
    from passersby.stream.ledger import LeaseMirror, SqliteLedger
    from passersby.taste.store import TasteStore

    with SqliteLedger(tmp_path / "ledger.sqlite", 8) as led:
        assert _pragma(led.con, "journal_mode") == "wal" and _pragma(led.con, "synchronous") == 2
        assert _pragma(led.con, "busy_timeout") == 30_000
    with LeaseMirror(tmp_path / "lease.sqlite", "g1") as mirror:
        assert _pragma(mirror.con, "synchronous") == 2 and _pragma(mirror.con, "busy_timeout") == 30_000
        assert mirror.integrity() == []
    with TasteStore(tmp_path / "taste.sqlite") as store:
        assert _pragma(store.con, "journal_mode") == "wal" and _pragma(store.con, "busy_timeout") == 30_000
    marks = GalleryMarks(tmp_path / "captures" / "gallery.sqlite")
    try:  # the gallery's marks keep sqlite3's default 5 s busy timeout
        assert _pragma(marks.con, "journal_mode") == "wal" and _pragma(marks.con, "synchronous") == 2
        assert _pragma(marks.con, "busy_timeout") == 5000
    finally:
        marks.close()


def test_errors_say_what_failed(tmp_path):
    with pytest.raises(CannotOpen, match="unable to open database file"):
        open_sqlite(tmp_path / "missing" / "a.sqlite")
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some text that is long enough to have a header" * 20)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        open_sqlite(text)
    with pytest.raises(sqlite3.Error):
        open_read_only(tmp_path / "nothing.sqlite")
    assert not (tmp_path / "nothing.sqlite").exists()  # read-only never creates
    assert issubclass(CannotOpen, sqlite3.Error) and issubclass(NoWal, sqlite3.Error)
    assert NoWal("delete").mode == "delete" and "write-ahead" in str(NoWal("delete"))


def test_an_in_memory_database_has_no_wal(tmp_path):
    # ":memory:" keeps journal mode "memory": the ledger's check refuses it, the gallery's accepts.
    with pytest.raises(NoWal) as e:
        open_sqlite(":memory:")
    assert e.value.mode == "memory"
    open_sqlite(":memory:", require_wal=False).close()
