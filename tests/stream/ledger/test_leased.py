"""A console's leases from the shared PostgreSQL ledger: outages, restarts, returns, the mirror.

Against a real PostgreSQL (tests/pgserver.py), stopped and started mid-test. What every backend
promises is checked once for all in test_contract.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from passersby.stream.ledger import LeasedLedger, LeaseMirror, LedgerError

D = 128


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D, dtype=np.float32)


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


def test_what_only_the_shared_ledger_knows_says_so_during_an_outage(pg_server, pg_url: str, tmp_path: Path) -> None:
    with _leased(pg_url, tmp_path, lease=3) as led:
        _, z = led.claim("m", propose, "h")
        led.fill("m", propose, "h")
        assert led.contains_near(z) and not led.contains_near(-z)
        assert led.rng_states()["g1/m"][1] == 4  # the one shown and the three leased ahead
        assert sum(len(b) for b in led.rows_for_copy()) == 4 and led.integrity_check() == "ok"
        pg_server.stop("immediate")
        try:
            for call in (lambda: led.contains_near(z), led.rng_states, lambda: list(led.rows_for_copy()),
                         lambda: led.copy_in([], {})):
                with pytest.raises(LedgerError) as e:  # never an answer from this console's leases alone
                    call()
                assert "\n" not in str(e.value) and "secret" not in str(e.value)
            assert led.integrity_check() != "ok"
            i, _ = led.claim("m", propose, "h")  # the screen still plays from its lease
        finally:
            pg_server.start()
    assert i > 1
