"""The PostgreSQL ledger, leases and migration, against a real PostgreSQL (tests/pgserver.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from passersby.stream.lease import LeasedLedger, LeaseMirror
from passersby.stream.ledger import Ledger, LedgerError, LedgerUnreachable
from passersby.stream.ledger_pg import PgLedger, redact
from passersby.stream.ledgers import LedgerSpec

D = 128


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D, dtype=np.float32)


def test_same_seed_same_anchors_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D, seed=5) as a, PgLedger(pg_url, D, seed=5) as b:
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


def test_a_copy_or_near_copy_is_refused_whatever_the_channel(pg_url: str) -> None:
    with PgLedger(pg_url, D, seed=1) as led:
        _, z = led.claim("one/a", propose, "h")
        fixed = lambda rng: z + 0.05 * rng.standard_normal(D)  # noqa: E731 - always near z
        with pytest.raises(LedgerError, match="proposals in a row were within"):
            led.claim("two/b", fixed, "h", max_tries=5)
        assert led.contains_near(z) and led.contains_near(z + 0.5) and not led.contains_near(-z)
        assert len(led) == 1


def test_check_finds_damage(pg_url: str) -> None:
    with PgLedger(pg_url, D, seed=2) as led:
        for _ in range(5):
            led.claim("c/x", propose, "h")
        assert led.check(deep=True).ok
        led.con.execute("UPDATE anchors SET z = %s WHERE id = 2", (np.zeros(D, np.float32).tobytes(),))
        led.con.execute("UPDATE anchors SET k3 = k3 + 1 WHERE id = 4")
        led.con.execute("UPDATE rng SET counter = 9")
        problems = " | ".join(led.check(deep=True).problems)
    assert "anchor 2: z does not match its hash" in problems
    assert "anchor 4: bucket keys do not match z" in problems
    assert "counter says 9 anchors, table holds 5" in problems


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


def _leased(url: str, tmp_path: Path, lease: int = 10, console: str = "g1") -> LeasedLedger:
    return LeasedLedger(url, tmp_path / "lease.sqlite", D, console, lease, seed=9, connect_timeout=1, claim_wait=3)


def _until(cond, seconds: float = 30.0) -> bool:
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_leases_play_through_an_outage_and_never_repeat(pg_server, pg_url: str, tmp_path: Path) -> None:
    shown = []
    with _leased(pg_url, tmp_path, lease=10) as led:
        shown += [led.claim("masc", propose, "h")[0] for _ in range(3)]
        assert led.mirror.counts()["leased"] <= 10 and led.shared  # the worker leases ahead, never more
        assert led.fill("masc", propose, "h") == 10
        pg_server.stop("immediate")  # the database goes away, mid-run
        try:
            shown += [led.claim("masc", propose, "h")[0] for _ in range(10)]  # all from the lease
            assert _until(lambda: not led.shared) and led.last_state["leases_left"] == 0
            with pytest.raises(LedgerError, match="no lease left for g1/masc"):
                led.claim("masc", propose, "h")
            np.testing.assert_array_equal(led.anchor(shown[-1]), led.recent("masc", 1)[0][1])  # offline reads
        finally:
            pg_server.start()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # reconnects in the background (1, 2, 4 ... s)
            try:
                shown.append(led.claim("masc", propose, "h")[0])
                break
            except LedgerError:
                time.sleep(0.3)
        assert len(shown) == 14 and len(set(shown)) == 14
        assert led.sync() and led.check(deep=True).ok
        edition, mirror = led.leases()["edition"]["g1"], led.mirror.counts()
    assert edition["shown"] == mirror["shown"] == 14 and edition["returned"] == 0
    assert edition["leased"] == mirror["leased"] >= 1 and mirror["unreported"] == 0


def test_returned_leases_are_proved_unshown_and_never_shown(pg_url: str, tmp_path: Path) -> None:
    with _leased(pg_url, tmp_path, lease=6) as led:
        first = led.claim("fem", propose, "h")[0]
        led.fill("fem", propose, "h")
        assert led.give_back() == 6 and led.mirror.counts()["leased"] == 0
        nxt = led.claim("fem", propose, "h")[0]  # a new lease, not a returned one
        assert _until(lambda: led.sync() and led.mirror.counts()["unreported"] == 0)
        leases = led.leases()["edition"]["g1"]
        assert leases["returned"] == 6 and leases["shown"] == 2
        returned = {r[0] for r in led.mirror.rows() if r[2] == "returned"}
        assert first not in returned and nxt not in returned and nxt > max(returned)
        # another model: the old model's leases go back, the new model gets its own
        led.fill("fem", propose, "h")
        other = led.claim("fem", propose, "h2")[0]
        time.sleep(0.5)  # the worker now leases for the new model only
        assert led.mirror._q("SELECT model_hash FROM lease WHERE id = ?", (other,))[0][0] == "h2"
        assert led.mirror.count("g1/fem", "h") == 0 and led.check().ok


def test_a_console_restarts_during_an_outage_from_its_leases(pg_server, pg_url: str, tmp_path: Path) -> None:
    with _leased(pg_url, tmp_path, lease=5) as led:
        a = led.claim("m", propose, "h")[0]
        led.fill("m", propose, "h")
    pg_server.stop("fast")
    (tmp_path / "new").mkdir()
    try:
        with _leased(pg_url, tmp_path, lease=5) as led:  # starts without the database
            b = [led.claim("m", propose, "h")[0] for _ in range(5)]
        with pytest.raises(LedgerError, match="cannot be reached .* holds no lease yet"):
            _leased(pg_url, tmp_path / "new", lease=5)
    finally:
        pg_server.start()
    assert len({a, *b}) == 6


def test_the_mirror_belongs_to_one_console(pg_url: str, tmp_path: Path) -> None:
    _leased(pg_url, tmp_path).close()
    with pytest.raises(LedgerError, match="holds the leases of console 'g1', not 'g2'"):
        _leased(pg_url, tmp_path, console="g2")


def test_spec_opens_the_right_backend(pg_url: str, tmp_path: Path) -> None:
    assert isinstance(LedgerSpec(tmp_path / "l.sqlite").open(D), Ledger)
    spec = LedgerSpec(tmp_path / "l.sqlite", pg_url, "g7", lease=3)
    with spec.open(D, "masc", seed=1) as led:
        assert isinstance(led, LeasedLedger)
        i = led.claim(None, propose, "h")[0]
    with spec.open_existing() as led:
        np.testing.assert_array_equal(led.anchor(i), led.recent("masc", 1)[0][1])
        assert led.latest(1)[0]["channel"] == "g7/masc"
    assert "password" not in spec.describe() and "g7" in spec.describe()
    with LedgerSpec(tmp_path / "l.sqlite", pg_url, "g7", lease=0).open(D) as direct:
        assert isinstance(direct, PgLedger) and 1 <= len(direct) <= 4  # the one shown, and what the worker leased


def test_a_console_that_waited_while_another_created_the_ledger_uses_theirs(pg_url: str) -> None:
    import threading

    import psycopg

    from passersby.stream.ledger_core import new_meta
    from passersby.stream.ledger_pg import LOCK_KEY, _schema

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


def test_the_mirror_forgets_old_reported_leases_only(pg_url: str, tmp_path: Path) -> None:
    with _leased(pg_url, tmp_path, lease=3) as led:
        ids = [led.claim("m", propose, "h")[0] for _ in range(4)]
        led.fill("m", propose, "h")
        assert led.sync()
        led.close()  # no worker now
    with LeaseMirror(tmp_path / "lease.sqlite", "g1") as mirror:
        mirror._q("UPDATE lease SET at = 0 WHERE id IN (?, ?)", ids[:2])  # shown long ago, reported
        mirror._q("UPDATE lease SET at = 0, reported = 0 WHERE id = ?", (ids[2],))  # long ago, not reported
        assert mirror.prune() == 2
        left = {r[0]: r[2] for r in mirror.rows()}
    assert ids[0] not in left and ids[1] not in left and left[ids[2]] == "shown" and left[ids[3]] == "shown"
    assert list(left.values()).count("leased") == 3
