"""The PostgreSQL ledger's own: its errors, amcheck, creation races, and choosing a backend.

Against a real PostgreSQL (tests/pgserver.py). What every backend promises is checked once for
all in test_contract.py; a console's leases are test_leased.py's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from passersby.stream.ledger import (
    LeasedLedger,
    Ledger,
    LedgerError,
    LedgerSpec,
    LedgerUnreachable,
    PgLedger,
    SqliteLedger,
    redact,
)

D = 128


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D, dtype=np.float32)


def test_same_seed_same_anchors_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "l.sqlite", D, seed=5) as a, PgLedger(pg_url, D, seed=5) as b:
        ra = [a.claim("c/x", propose, "h") for _ in range(20)]
        rb = [b.claim("c/x", propose, "h") for _ in range(20)]
        assert [i for i, _ in ra] == [i for i, _ in rb] == list(range(1, 21))
        for (_, za), (_, zb) in zip(ra, rb):
            np.testing.assert_array_equal(za, zb)
        assert a.stats().channels["c/x"].count == b.stats().channels["c/x"].count == 20
        assert b.check(deep=True).ok and len(b) == 20
        np.testing.assert_array_equal(b.anchor(7), ra[6][1])
        assert b.latest(1)[0]["id"] == 20 and [i for i, _ in b.recent("c/x", 3)] == [18, 19, 20]
        a.export(tmp_path / "a.jsonl")
        b.export(tmp_path / "b.jsonl")
    lines = lambda p: [ln for ln in p.read_text().splitlines()[1:]]  # noqa: E731
    strip = lambda ln: ln.split('"shown_at"')[0] + ln.split(', "z"')[1]  # noqa: E731 - times differ
    assert [strip(x) for x in lines(tmp_path / "a.jsonl")] == [strip(x) for x in lines(tmp_path / "b.jsonl")]


def test_a_user_without_amcheck_gets_a_note_not_a_false_ok(pg_server, pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_server.url(), autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS keepers")
        con.execute("DROP ROLE IF EXISTS keeper")
        con.execute("CREATE ROLE keeper LOGIN")
        con.execute("CREATE DATABASE keepers OWNER keeper")
    url = pg_server.url("keepers").replace("user=postgres", "user=keeper")
    with PgLedger(url, D, seed=3) as led:
        led.claim("c/x", propose, "h")
        report = led.check()
    assert report.ok and len(report.notes) == 1  # the rows were checked; the index structure was not
    assert report.notes[0].startswith("unchecked: the index structure") and "GRANT EXECUTE" in report.notes[0]
    with psycopg.connect(pg_server.url("keepers"), autocommit=True) as con:  # what the note says to do
        con.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        con.execute("GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO keeper")
    with PgLedger.open_existing(url) as led:
        report = led.check()
    assert report.ok and report.notes == ()


def test_unreachable_or_wrong_database_gives_one_clear_error(pg_server, pg_url: str, tmp_path: Path) -> None:
    bad = f"postgresql://ed:secret@/nope?host={tmp_path}"
    with pytest.raises(LedgerError, match=r"cannot reach the ledger database .* check that PostgreSQL runs") as e:
        PgLedger(bad, D, connect_timeout=1)
    assert "secret" not in str(e.value) and redact(bad) in str(e.value)
    assert isinstance(e.value, LedgerUnreachable)  # an outage: a console retries and plays from its lease
    with PgLedger(pg_url, D, seed=1):
        pass
    with pytest.raises(LedgerError, match="holds anchors of dim 128, asked for 64") as e:
        PgLedger(pg_url, 64)
    assert not isinstance(e.value, LedgerUnreachable)  # not an outage: retrying cannot help
    with pytest.raises(LedgerError, match="holds no passersby ledger") as e:
        PgLedger.open_existing(pg_server.create_database("empty_one"))
    assert not isinstance(e.value, LedgerUnreachable)
    foreign = pg_server.create_database("foreign_one")  # someone else's table named meta
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(foreign, autocommit=True) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, data BYTEA)")
        con.execute("INSERT INTO meta VALUES ('dim', '64', NULL)")
    with pytest.raises(LedgerError, match="holds no passersby ledger"):
        PgLedger.open_existing(foreign)
    with PgLedger.open_existing(pg_url) as led:  # the dimension comes from the ledger
        assert led.dim == D


def test_spec_opens_the_right_backend(pg_url: str, tmp_path: Path) -> None:
    with LedgerSpec(tmp_path / "l.sqlite").open(D) as led:
        assert isinstance(led, SqliteLedger) and isinstance(led, Ledger)
    spec = LedgerSpec(tmp_path / "l.sqlite", pg_url, "g7", lease=3)
    with spec.open(D, "masc", seed=1) as led:
        assert isinstance(led, LeasedLedger) and isinstance(led, Ledger)
        i = led.claim(None, propose, "h")[0]
    with spec.open_existing() as led:
        np.testing.assert_array_equal(led.anchor(i), led.recent("masc", 1)[0][1])
        assert led.latest(1)[0]["channel"] == "g7/masc"
    assert "password" not in spec.describe() and "g7" in spec.describe()
    with LedgerSpec(tmp_path / "l.sqlite", pg_url, "g7", lease=0).open(D) as direct:
        assert isinstance(direct, PgLedger) and isinstance(direct, Ledger) and 1 <= len(direct) <= 4  # the one shown, and what the worker leased


def test_a_console_that_waited_while_another_created_the_ledger_uses_theirs(pg_url: str) -> None:
    import threading

    import psycopg

    from passersby.stream.ledger import new_meta
    from passersby.stream.ledger.postgres import LOCK_KEY, _schema

    other = psycopg.connect(pg_url, autocommit=True)  # the first console, creating
    other.execute("BEGIN")
    other.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    late = PgLedger.__new__(PgLedger)  # the second console, opening at the same moment
    late._errors, late.url, late.where, late._con, late.connect_timeout = (psycopg.Error,), pg_url, "x", None, 5
    assert late._read_meta() is None  # it looked before the first one committed
    got: list = []
    t = threading.Thread(target=lambda: got.append(late._create(new_meta(D, 2, None, None, None))))
    t.start()  # waits for the lock
    time.sleep(0.5)
    meta = new_meta(D, 1, None, None, None)
    for stmt in _schema(meta["lsh_tables"]):
        other.execute(stmt)
    with other.cursor() as cur:
        cur.executemany("INSERT INTO meta (key, value, data) VALUES (%s, %s, %s)",
                        [(k, "null", v) if isinstance(v, bytes) else (k, __import__("json").dumps(v), None)
                         for k, v in meta.items()])
    other.execute("COMMIT")
    t.join(30)
    late.close()
    other.close()
    assert got and got[0]["lsh_rotations"] == meta["lsh_rotations"]  # the first one's ledger
