"""A screen's claims: in its own thread or ahead in a worker (stream/claims.py), never a face twice."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from passersby.stream.claims import LedgerAnchors
from passersby.stream.ledger import LedgerError, LedgerSpec, SqliteLedger

D = 8


def _anchors(path, propose, ahead: bool) -> LedgerAnchors:
    return LedgerAnchors(LedgerSpec(path), D, "s", propose, "m0", seed=3, ahead=ahead)


def test_claiming_ahead_gives_the_same_anchors_in_the_same_order_from_a_thread_of_its_own(tmp_path) -> None:
    threads: list[str] = []

    def propose(rng):
        threads.append(threading.current_thread().name)
        return rng.standard_normal(D)

    plain = _anchors(tmp_path / "a.sqlite", propose, ahead=False)
    first = np.stack([plain() for _ in range(5)])
    plain.close()
    assert set(threads) == {threading.current_thread().name}
    threads.clear()
    ahead = _anchors(tmp_path / "b.sqlite", propose, ahead=True)
    assert ahead.ahead and not plain.ahead
    second = np.stack([ahead() for _ in range(5)])
    ahead.close()
    np.testing.assert_array_equal(first, second)  # same seed, same RNG, same order
    assert ahead.claimed == 5 and ahead.ledger_ids([3, 4]) == plain.ledger_ids([3, 4])
    assert len(plain.claim_seconds) == 5 and min(plain.claim_seconds) >= 0  # what benchmarks/stream.py reports
    assert threads and all(t.startswith("passersby-claims-s") for t in threads)


def test_the_next_anchor_is_recorded_while_this_one_shows_and_stays_unused_after_close(tmp_path) -> None:
    release = threading.Event()
    blocked = threading.Event()

    def propose(rng):
        if blocked.is_set():
            release.wait(10)  # an expensive proposal (a critic, a look at the candidates)
        return rng.standard_normal(D)

    path = tmp_path / "l.sqlite"
    anchors = _anchors(path, propose, ahead=True)
    anchors()
    deadline = time.monotonic() + 10
    while _rows(path) < 2 and time.monotonic() < deadline:  # the next face, claimed while this one shows
        time.sleep(0.02)
    assert _rows(path) == 2
    blocked.set()  # from now on a proposal takes as long as we like
    got: list[np.ndarray] = []
    taker = threading.Thread(target=lambda: got.append(anchors()))
    taker.start()
    taker.join(5)
    assert got, "the screen waited for a proposal although the next face was ready"
    release.set()
    anchors.close()  # waits for the claim made ahead: recorded, never shown
    with SqliteLedger.open_existing(path) as led:
        rows = led.recent("s", 10)
    assert len(rows) == 3 and any(np.allclose(got[0], r) for _, r in rows)
    anchors.close()  # twice: harmless


def _rows(path) -> int:
    if not path.exists():
        return 0
    with SqliteLedger.open_existing(path) as led:
        return len(led.recent("s", 10))


def test_a_claim_that_fails_ahead_raises_in_the_screens_thread(tmp_path) -> None:
    calls = {"n": 0}

    def propose(rng):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise LedgerError("the proposer found nothing new")
        return rng.standard_normal(D)

    anchors = _anchors(tmp_path / "l.sqlite", propose, ahead=True)
    anchors()
    with pytest.raises(LedgerError):
        anchors()
    anchors.close()


def test_closing_before_any_claim_opens_nothing(tmp_path) -> None:
    anchors = _anchors(tmp_path / "l.sqlite", lambda rng: rng.standard_normal(D), ahead=True)
    anchors.close()
    assert not (tmp_path / "l.sqlite").exists()


def test_ahead_a_slow_claim_is_waiting_only_while_the_screen_waits_for_it(tmp_path, monkeypatch) -> None:
    import passersby.stream.claims as claims

    monkeypatch.setattr(claims, "SLOW_CLAIM_S", 0.05)
    release = threading.Event()
    calls = {"n": 0}

    def propose(rng):
        calls["n"] += 1
        if calls["n"] >= 2:
            release.wait(10)  # the claim made ahead is slow
        return rng.standard_normal(D)

    anchors = _anchors(tmp_path / "l.sqlite", propose, ahead=True)
    anchors()
    time.sleep(0.2)
    assert anchors.waiting == ""  # slow, but the screen shows its face and asks for nothing
    taker = threading.Thread(target=anchors)
    taker.start()
    time.sleep(0.2)
    assert "has not answered a claim" in anchors.waiting  # now the screen holds its frame for it
    release.set()
    taker.join(5)
    assert anchors.waiting == ""
    anchors.close()


def test_after_the_ledger_records_again_the_screen_is_resuming_for_a_while(tmp_path, monkeypatch) -> None:
    import passersby.stream.claims as claims

    monkeypatch.setattr(claims, "HOLD_FIRST_S", 0.01)
    monkeypatch.setattr(claims, "RESUME_GRACE_S", 0.3)
    hold = threading.Event()
    hold.set()
    fails = {"n": 2}

    def propose(rng):
        if fails["n"] > 0:
            fails["n"] -= 1
            raise LedgerError("the disk is full")
        return rng.standard_normal(D)

    anchors = LedgerAnchors(LedgerSpec(tmp_path / "l.sqlite"), D, "s", propose, "m0", seed=3, hold=hold)
    anchors()  # two failed claims, retried, then recorded
    assert anchors.resuming and anchors.waiting == ""  # health: an old frame now is resuming, not hung
    time.sleep(0.4)
    assert not anchors.resuming
    anchors.close()


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="per-thread nice is Linux's")
def test_a_claim_made_ahead_runs_at_a_lower_cpu_priority_than_the_frames(tmp_path) -> None:
    import os

    from passersby.stream.claims import CLAIM_NICENESS

    seen: list[int] = []

    def propose(rng):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return rng.standard_normal(D)

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ahead = _anchors(tmp_path / "n.sqlite", propose, ahead=True)
    ahead(), ahead()
    ahead.close()
    plain = _anchors(tmp_path / "p.sqlite", propose, ahead=False)
    plain()
    plain.close()
    # Ahead: the worker's claims at +10 (capped at 19); in the screen's own thread: unchanged.
    assert seen[:2] == [min(19, mine + CLAIM_NICENESS)] * 2 and seen[-1] == mine
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
