"""One contract, every backend: what any `Ledger` promises, run on SQLite, PostgreSQL and leases.

`backend` yields each of the three (the PostgreSQL ones on tests/pgserver.py's throwaway server,
skipped only where PostgreSQL is not installed); `core` the two that record claims themselves
(SqliteLedger, PgLedger), for the tests that drive the claim protocol with hand-made proposal
functions or a second writer: a leased ledger runs proposals in its lease worker, ahead of time.

A leased ledger differs in two ways the tests spell out: its channels are "<console>/<screen>"
in the shared ledger (`Backend.ch`), and the shared ledger also holds the anchors leased ahead,
up to `Backend.lease` per screen (`settle` stops the leasing, so counts hold still).
Backend-specific tests (bad files, kill -9, outages, lease life cycle) live in test_sqlite.py,
test_postgres.py and test_leased.py.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from passersby.stream.ledger import (
    DEFAULT_THRESHOLD,
    LeasedLedger,
    Ledger,
    LedgerError,
    PgLedger,
    SqliteLedger,
)

from .helpers import D, at_distance, gaussian, min_pairwise_distance, stream

CONSOLE = "g1"


@dataclass
class Backend:
    """Opens ledgers of one kind on one store (a file, a database) and tampers with that store."""

    name: str
    tmp: Path
    url: str = ""
    lease: int = 0  # anchors leased ahead per screen (0: claims are recorded as they are made)
    opened: list[Any] = field(default_factory=list)

    def open(self, seed: int | None = None, channel: str = "main", *, half: bool | None = None,
             meta: dict[str, Any] | None = None) -> Ledger:
        """Another ledger object on this backend's store (a second process, as far as it knows)."""
        if self.name == "sqlite":
            led: Ledger = SqliteLedger(self.tmp / "anchors.ledger", D, channel=channel, seed=seed, half=half, meta=meta)
        elif self.name == "postgres":
            led = PgLedger(self.url, D, channel=channel, seed=seed, half=half, meta=meta)
        else:
            if meta is not None or half is not None:  # the shared ledger first, as `ledger migrate` makes it
                PgLedger(self.url, D, seed=seed, half=half, meta=meta).close()
            led = LeasedLedger(self.url, self.tmp / "lease.sqlite", D, CONSOLE, self.lease, channel, seed=seed,
                               connect_timeout=1, claim_wait=3)
        self.opened.append(led)
        return led

    def ch(self, channel: str) -> str:
        """A screen's channel as the (shared) ledger records it."""
        return f"{CONSOLE}/{channel}" if self.name == "leased" else channel

    def settle(self, led: Ledger) -> None:
        """Stop leasing ahead (leases go back, staying on the do-not-use list): counts hold still."""
        if isinstance(led, LeasedLedger):
            led.give_back()

    def tamper(self, sql: str, args: tuple = ()) -> None:
        """Run `sql` (with ? markers) on the store behind the ledger's back, as damage would."""
        if self.name == "sqlite":
            con = sqlite3.connect(self.tmp / "anchors.ledger")
            con.execute(sql, args)
            con.commit()
            con.close()
        else:
            with PgLedger.open_existing(self.url) as c:
                c.con.execute(sql.replace("?", "%s"), args)


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    b = Backend(request.param, tmp_path)
    if b.name != "sqlite":
        b.url = request.getfixturevalue("pg_url")  # skips, saying why, where PostgreSQL is missing
        b.lease = 2 if b.name == "leased" else 0
    return b


@pytest.fixture(params=["sqlite", "postgres", "leased"])
def backend(request, tmp_path):
    b = _backend(request, tmp_path)
    yield b
    for led in reversed(b.opened):
        led.close()


@pytest.fixture(params=["sqlite", "postgres"])
def core(request, tmp_path):
    b = _backend(request, tmp_path)
    yield b
    for led in reversed(b.opened):
        led.close()


@pytest.fixture
def ledger(backend):
    return backend.open(seed=0)


# ---------------------------------------------------------------- the interface


def test_an_opened_ledger_is_a_ledger(backend, ledger):
    assert isinstance(ledger, Ledger)
    assert ledger.dim == D and ledger.channel == "main" and ledger.where
    assert len(ledger) == 0 and ledger.stats().count == 0 and ledger.latest() == [] and ledger.recent() == []
    assert ledger.rng_states() == {} and [b for b in ledger.rows_for_copy() if b] == []


# ---------------------------------------------------------------- uniqueness and rejection


def test_claims_are_unique_follow_the_channel_rng_and_read_back(backend, ledger):
    n = 1500 if backend.name == "sqlite" else 200  # PostgreSQL fsyncs each claim: fewer, same checks
    claimed = [ledger.claim("main", gaussian, "m") for _ in range(n)]
    ids = [i for i, _ in claimed]
    assert ids == list(range(1, n + 1))
    backend.settle(ledger)
    recent = ledger.recent("main", n)
    assert [i for i, _ in recent] == ids
    z = np.stack([zi for _, zi in recent])
    np.testing.assert_array_equal(z, np.stack([zi for _, zi in claimed]))
    assert len({row.tobytes() for row in z}) == n
    assert min_pairwise_distance(z) > 9  # independent draws: 16 +- 1, the closest of ~1M pairs ~11.5
    np.testing.assert_array_equal(z, stream(0, backend.ch("main"), n))  # no proposal was rejected
    st, held = ledger.stats(), len(ledger)
    assert n <= held <= n + backend.lease  # a leased ledger also holds what it leased ahead
    ch = st.channels[backend.ch("main")]
    assert st.count == held and ch.count == held and ch.rejected == 0
    assert st.first_shown <= st.last_shown and st.file_bytes > n * 512
    assert ledger.check(deep=True).ok
    np.testing.assert_array_equal(ledger.anchor(7), claimed[6][1])
    assert n <= ledger.latest(1)[0]["id"] <= n + backend.lease
    assert [i for i, _ in ledger.recent("main", 3)] == [n - 2, n - 1, n]


def test_contains_near_finds_copies_and_near_copies_not_far_points(ledger):
    rng = np.random.default_rng(1)
    recorded = [ledger.claim("main", gaussian, "m")[1] for _ in range(200)]
    for z in recorded[:50]:
        assert ledger.contains_near(z)  # identical
        assert ledger.contains_near(z + rng.normal(0, 0.05, D).astype(np.float32))  # tiny noise
        for r in (1.0, 2.0, 3.0, 4.0, 5.0):
            assert ledger.contains_near(at_distance(z, r, rng)), r
        assert not ledger.contains_near(at_distance(z, DEFAULT_THRESHOLD + 0.5, rng))  # exact distance decides
    assert not any(ledger.contains_near(gaussian(rng)) for _ in range(200))


def test_proposed_copies_are_skipped_and_counted(core):
    ledger = core.open(seed=0)
    rng = np.random.default_rng(1)
    recorded = [ledger.claim("main", gaussian, "m")[1] for _ in range(200)]
    # Deliberately proposed copies: the exact one and a near one are skipped, the fresh one is taken.
    fresh = gaussian(np.random.default_rng(99))
    queue = [recorded[7], at_distance(recorded[3], 2.0, rng), fresh]
    before = ledger.stats().channels["main"].rejected
    anchor_id, z = ledger.claim("main", lambda _rng: queue.pop(0), "m")
    np.testing.assert_array_equal(z, fresh)
    assert anchor_id == 201 and ledger.stats().channels["main"].rejected == before + 2


def test_a_copy_or_near_copy_is_refused_whatever_the_channel(backend):
    led = backend.open(seed=1)
    _, z = led.claim("one", gaussian, "h")
    fixed = lambda rng: z + 0.05 * rng.standard_normal(D)  # noqa: E731 - always near z
    with pytest.raises(LedgerError, match="proposals in a row were within"):
        led.claim("two", fixed, "h", max_tries=5)
    assert led.contains_near(z) and led.contains_near(z + 0.5) and not led.contains_near(-z)
    backend.settle(led)
    assert 1 <= len(led) <= 1 + backend.lease and backend.ch("two") not in led.stats().channels


def test_near_copies_of_anchors_on_other_channels_are_rejected(core):
    ledger = core.open(seed=0)
    a = [ledger.claim("left", gaussian, "m")[1] for _ in range(20)]
    b = [ledger.claim("right", gaussian, "m")[1] for _ in range(20)]
    assert min_pairwise_distance(np.stack(a + b)) > 9  # channels draw different streams
    np.testing.assert_array_equal(np.stack(a), stream(0, "left", 20))
    np.testing.assert_array_equal(np.stack(b), stream(0, "right", 20))
    copies = iter([a[5], at_distance(b[2], 1.0, np.random.default_rng(0))])
    with pytest.raises(LedgerError, match="proposals in a row"):
        ledger.claim("third", lambda _rng: next(copies), "m", max_tries=2)
    st = ledger.stats()
    assert set(st.channels) == {"left", "right"} and st.count == 40  # nothing of "third" recorded


def test_a_proposal_function_that_repeats_itself_fails_without_recording(core):
    ledger = core.open(seed=0)
    first = ledger.claim("main", gaussian, "m")[1]
    # SQLite: ".../anchors.ledger: channel 'main': ..."; PostgreSQL: the URL without its password.
    with pytest.raises(LedgerError, match=re.escape(ledger.where) + r": channel 'main': 100 proposals in a row"):
        ledger.claim("main", lambda _rng: first, "m")
    with pytest.raises(ValueError, match=r"shape \(128,\)"):
        ledger.claim("main", lambda rng: rng.standard_normal(3), "m")
    with pytest.raises(ZeroDivisionError):
        ledger.claim("main", lambda rng: [rng.standard_normal(), 1 / 0], "m")
    # Each failure rolled back: the RNG did not advance, so the next anchor is the stream's second.
    _, z = ledger.claim("main", gaussian, "m")
    np.testing.assert_array_equal(z, stream(0, "main", 2)[1])
    assert len(ledger) == 2 and ledger.check().ok


def test_default_channel_and_recent(backend):
    led = backend.open(seed=3, channel="hall")
    claimed = [led.claim(None, gaussian, "m") for _ in range(5)]
    assert list(led.stats().channels) == [backend.ch("hall")]
    recent = led.recent(None, 3)
    assert [i for i, _ in recent] == [3, 4, 5]
    np.testing.assert_array_equal(recent[-1][1], claimed[-1][1])
    assert led.recent("nobody", 3) == []


# ---------------------------------------------------------------- persistence


def test_reopening_continues_the_rng_and_keeps_the_count(backend):
    with backend.open(seed=5) as led:
        first = [led.claim("main", gaussian, "m")[1] for _ in range(30)]
    with backend.open(seed=12345) as led:  # the seed only starts new channels
        assert 30 <= led.stats().count <= 30 + backend.lease
        anchor_id, z = led.claim("main", gaussian, "m")
    assert anchor_id == 31
    assert not any(np.array_equal(z, f) for f in first)
    np.testing.assert_array_equal(np.stack(first + [z]), stream(5, backend.ch("main"), 31))


def test_half_precision_storage(core):
    with core.open(seed=0, half=True) as led:
        _, z = led.claim("main", gaussian, "m")
        assert z.dtype == np.float32 and np.array_equal(z, z.astype(np.float16).astype(np.float32))
        assert led.contains_near(stream(0, "main", 1)[0])  # the float32 original: 0.003 away
        assert led.check(deep=True).ok
    with core.open() as led:
        assert led.half and led.recent()[0][1].tobytes() == z.tobytes()
    with pytest.raises(LedgerError, match="float16"):
        core.open(half=False)


def test_export_is_complete_exact_and_atomic(backend, ledger, tmp_path):
    claimed = [ledger.claim(c, gaussian, "hash-1") for c in ("a", "b", "a")]
    backend.settle(ledger)
    out = tmp_path / "exports" / "anchors.jsonl"
    n = ledger.export(out)
    assert n == len(ledger) and 3 <= n <= 3 + 2 * backend.lease
    head, *rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert head["format"] == "passersby-ledger-export" and head["dim"] == D and head["z_dtype"] == "float32"
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == n  # id order, all of them
    by_id = {r["id"]: r for r in rows}
    assert [(by_id[i]["channel"], by_id[i]["model_hash"]) for i, _ in claimed] == [
        (backend.ch(c), "hash-1") for c in ("a", "b", "a")]
    if not backend.lease:
        assert [(r["id"], r["channel"], r["model_hash"]) for r in rows] == [
            (1, "a", "hash-1"), (2, "b", "hash-1"), (3, "a", "hash-1")]
    for i, z in claimed:
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(by_id[i]["z"]), "<f4"), z)
    assert sorted(p.name for p in out.parent.iterdir()) == ["anchors.jsonl"]  # no temporary left


def test_check_finds_tampering(backend, ledger):
    for _ in range(10):
        ledger.claim("main", gaussian, "m")
    backend.settle(ledger)
    held = len(ledger)
    assert ledger.integrity_check() == "ok" and ledger.check(deep=True).ok
    backend.tamper("UPDATE anchors SET k3 = k3 + 1 WHERE id = 4")
    assert ledger.check().ok and not ledger.check(deep=True).ok
    assert "anchor 4: bucket keys do not match z" in "\n".join(ledger.check(deep=True).problems)
    backend.tamper("UPDATE anchors SET z = ? WHERE id = 2", (np.zeros(D, np.float32).tobytes(),))
    backend.tamper("UPDATE rng SET counter = 9")
    problems = "\n".join(ledger.check().problems)
    assert "anchor 2: z does not match its hash" in problems
    assert f"counter says 9 anchors, table holds {held}" in problems


def test_copy_in_is_all_or_nothing(backend, tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "src.sqlite", D, seed=4) as src:
        for _ in range(6):
            src.claim("a", gaussian, "h")
        batches, rng, meta = [list(b) for b in src.rows_for_copy()], src.rng_states(), dict(src.meta)
    rows = batches[0]
    broken = rows[:4] + [rows[1]]  # the same id twice: the database refuses it mid-copy
    dst = backend.open(meta=meta)
    with pytest.raises(LedgerError, match="while migrating"):
        dst.copy_in([broken], rng)
    assert len(dst) == 0 and dst.rng_states() == {}  # nothing of the failed copy stays
    assert dst.copy_in([rows], rng) == 6 and dst.rng_states() == rng
    with pytest.raises(LedgerError, match="already holds anchors"):
        dst.copy_in([rows], rng)
    assert len(dst) == 6 and dst.check(deep=True).ok
    back = [(r[0], r[1], bytes(r[2]), *r[3:]) for b in dst.rows_for_copy() for r in b]
    assert back == [(r[0], r[1], bytes(r[2]), *r[3:]) for r in rows]  # read back exactly as copied


# ---------------------------------------------------------------- concurrent writers


def test_a_slow_proposal_holds_no_write_lock(core):
    # Another process (here: another connection) claims while this claim's proposal is running:
    # with the write lock held during proposals it would wait for it (and here: dead-lock).
    ledger, other = core.open(seed=0), core.open(seed=0)

    def propose(rng):
        t0 = time.monotonic()
        other.claim("right", gaussian, "m")
        assert time.monotonic() - t0 < 5
        return gaussian(rng)

    _, z = ledger.claim("left", propose, "m")
    np.testing.assert_array_equal(z, stream(0, "left", 1)[0])
    assert {c: s.count for c, s in ledger.stats().channels.items()} == {"left": 1, "right": 1}


def test_a_claim_overtaken_on_its_channel_starts_over_from_the_new_rng_state(core):
    ledger, other = core.open(seed=0), core.open(seed=0)
    calls = []

    def propose(rng):
        calls.append(1)
        if len(calls) == 1:  # meanwhile another process takes this channel's next anchor
            other.claim("main", gaussian, "m")
        return gaussian(rng)

    _, z = ledger.claim("main", propose, "m")
    expected = stream(0, "main", 2)
    # The overtaking claim got the stream's first anchor; this one, started over, the second.
    np.testing.assert_array_equal(z, expected[1])
    np.testing.assert_array_equal(np.stack([zi for _, zi in ledger.recent("main", 10)]), expected)
    assert len(ledger) == 2
    # Calls: the overtaken draw (a copy of what the other took: rejected), one more, then the restart.
    assert len(calls) == 3 and ledger.check().ok


def test_a_near_anchor_recorded_during_the_proposal_is_not_recorded_again(core):
    ledger, other = core.open(seed=0), core.open(seed=0)
    copy = gaussian(np.random.default_rng(5))
    queue = [copy]

    def propose(rng):
        if queue:
            other.claim("right", lambda _rng: queue.pop(), "m")  # the same face, elsewhere, first
            return copy
        return gaussian(rng)

    _, z = ledger.claim("left", propose, "m")
    assert np.linalg.norm(z - copy) > 9
    assert ledger.stats().channels["left"].rejected == 1 and len(ledger) == 2 and ledger.check().ok

