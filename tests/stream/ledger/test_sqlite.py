"""The do-not-use ledger: no anchor twice, near copies rejected, RNG and records survive kill -9."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from passersby.stream.ledger import (
    DEFAULT_THRESHOLD,
    Ledger,
    LedgerError,
    LshParams,
    bucket_keys,
    channel_seed,
    probe_keys,
)

D = 128
WORKER = Path(__file__).resolve().parent / "ledger_worker.py"
ROOT = Path(__file__).resolve().parents[2]


def gaussian(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(D, dtype=np.float32)


def stream(seed: int, channel: str, n: int) -> np.ndarray:
    """The first n anchors a channel proposes: its RNG stream, straight from the seed."""
    rng = np.random.Generator(np.random.PCG64(channel_seed(seed, channel)))
    return np.stack([gaussian(rng) for _ in range(n)]) if n else np.empty((0, D), np.float32)


def all_anchors(ledger: Ledger, channel: str | None = None) -> tuple[list[int], np.ndarray]:
    sql, args = "SELECT id, z FROM anchors ORDER BY id", ()
    if channel is not None:
        sql, args = "SELECT id, z FROM anchors WHERE channel = ? ORDER BY id", (channel,)
    rows = ledger.con.execute(sql, args).fetchall()
    z = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), D)
    return [r[0] for r in rows], z


def min_pairwise_distance(z: np.ndarray) -> float:
    z = z.astype(np.float64)
    sq = (z * z).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * z @ z.T
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(max(d2.min(), 0.0)))


def at_distance(z: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(D)
    return (z + e * (r / np.linalg.norm(e))).astype(np.float32)


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "anchors.ledger", D, seed=0) as led:
        yield led


# ---------------------------------------------------------------- uniqueness and rejection


def test_thousands_of_claims_are_unique_and_follow_the_rng(ledger):
    n = 1500
    ids = [ledger.claim("main", gaussian, "m")[0] for _ in range(n)]
    assert ids == list(range(1, n + 1))
    _, z = all_anchors(ledger)
    assert len({row.tobytes() for row in z}) == n
    assert min_pairwise_distance(z) > 9  # independent draws: 16 +- 1, the closest of ~1M pairs ~11.5
    np.testing.assert_array_equal(z, stream(0, "main", n))  # no proposal was rejected
    st = ledger.stats()
    assert st.count == n and st.channels["main"].count == n and st.channels["main"].rejected == 0
    assert st.first_shown <= st.last_shown and st.file_bytes > n * 512
    assert ledger.check(deep=True).ok


def test_exact_and_near_copies_are_rejected_far_points_accepted(ledger):
    rng = np.random.default_rng(1)
    recorded = [ledger.claim("main", gaussian, "m")[1] for _ in range(200)]
    for z in recorded[:50]:
        assert ledger.contains_near(z)  # identical
        assert ledger.contains_near(z + rng.normal(0, 0.05, D).astype(np.float32))  # tiny noise
        for r in (1.0, 2.0, 3.0, 4.0, 5.0):
            assert ledger.contains_near(at_distance(z, r, rng)), r
        assert not ledger.contains_near(at_distance(z, DEFAULT_THRESHOLD + 0.5, rng))  # exact distance decides
    assert not any(ledger.contains_near(gaussian(rng)) for _ in range(200))

    # Deliberately proposed copies: the exact one and a near one are skipped, the fresh one is taken.
    fresh = gaussian(np.random.default_rng(99))
    queue = [recorded[7], at_distance(recorded[3], 2.0, rng), fresh]
    before = ledger.stats().channels["main"].rejected
    anchor_id, z = ledger.claim("main", lambda _rng: queue.pop(0), "m")
    np.testing.assert_array_equal(z, fresh)
    assert anchor_id == 201 and ledger.stats().channels["main"].rejected == before + 2


def test_near_copies_of_anchors_on_other_channels_are_rejected(ledger):
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


def test_a_proposal_function_that_repeats_itself_fails_without_recording(ledger):
    first = ledger.claim("main", gaussian, "m")[1]
    with pytest.raises(LedgerError, match=r"anchors\.ledger: channel 'main': 100 proposals in a row"):
        ledger.claim("main", lambda _rng: first, "m")
    with pytest.raises(ValueError, match=r"shape \(128,\)"):
        ledger.claim("main", lambda rng: rng.standard_normal(3), "m")
    with pytest.raises(ZeroDivisionError):
        ledger.claim("main", lambda rng: [rng.standard_normal(), 1 / 0], "m")
    # Each failure rolled back: the RNG did not advance, so the next anchor is the stream's second.
    _, z = ledger.claim("main", gaussian, "m")
    np.testing.assert_array_equal(z, stream(0, "main", 2)[1])
    assert len(ledger) == 2 and ledger.check().ok


def test_default_channel_and_recent(tmp_path):
    with Ledger(tmp_path / "l", D, channel="hall", seed=3) as led:
        claimed = [led.claim(None, gaussian, "m") for _ in range(5)]
        assert list(led.stats().channels) == ["hall"]
        recent = led.recent(None, 3)
        assert [i for i, _ in recent] == [3, 4, 5]
        np.testing.assert_array_equal(recent[-1][1], claimed[-1][1])
        assert led.recent("nobody", 3) == []


# ---------------------------------------------------------------- persistence


def test_reopening_continues_the_rng_and_keeps_the_count(tmp_path):
    path = tmp_path / "anchors.ledger"
    with Ledger(path, D, seed=5) as led:
        first = [led.claim("main", gaussian, "m")[1] for _ in range(30)]
    with Ledger(path, D, seed=12345) as led:  # the seed only starts new channels
        assert led.stats().count == 30
        anchor_id, z = led.claim("main", gaussian, "m")
    assert anchor_id == 31
    assert not any(np.array_equal(z, f) for f in first)
    np.testing.assert_array_equal(np.stack(first + [z]), stream(5, "main", 31))


def test_an_empty_file_becomes_a_ledger(tmp_path):
    path = tmp_path / "empty.ledger"
    path.touch()  # what a crash during creation can leave behind
    with Ledger(path, D, seed=0) as led:
        assert led.claim("main", gaussian, "m")[0] == 1


def test_half_precision_storage(tmp_path):
    path = tmp_path / "half.ledger"
    with Ledger(path, D, half=True, seed=0) as led:
        _, z = led.claim("main", gaussian, "m")
        assert z.dtype == np.float32 and np.array_equal(z, z.astype(np.float16).astype(np.float32))
        assert led.contains_near(stream(0, "main", 1)[0])  # the float32 original: 0.003 away
        assert led.check(deep=True).ok
    with Ledger(path, D) as led:
        assert led.half and led.recent()[0][1].tobytes() == z.tobytes()
    with pytest.raises(LedgerError, match="float16"):
        Ledger(path, D, half=False)


def test_export_is_complete_exact_and_atomic(ledger, tmp_path):
    claimed = [ledger.claim(c, gaussian, "hash-1") for c in ("a", "b", "a")]
    out = tmp_path / "exports" / "anchors.jsonl"
    assert ledger.export(out) == 3
    head, *rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert head["format"] == "passersby-ledger-export" and head["dim"] == D and head["z_dtype"] == "float32"
    assert [(r["id"], r["channel"], r["model_hash"]) for r in rows] == [
        (1, "a", "hash-1"), (2, "b", "hash-1"), (3, "a", "hash-1")]
    for r, (_, z) in zip(rows, claimed):
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(r["z"]), "<f4"), z)
    assert sorted(p.name for p in out.parent.iterdir()) == ["anchors.jsonl"]  # no temporary left
    with pytest.raises(LedgerError, match="onto the ledger itself"):
        ledger.export(ledger.path)


def test_check_finds_tampering(ledger):
    for _ in range(10):
        ledger.claim("main", gaussian, "m")
    assert ledger.integrity_check() == "ok" and ledger.check(deep=True).ok
    ledger.con.execute("UPDATE anchors SET k3 = k3 + 1 WHERE id = 4")
    assert ledger.check().ok and not ledger.check(deep=True).ok
    ledger.con.execute("UPDATE anchors SET z = ? WHERE id = 2", (np.zeros(D, np.float32).tobytes(),))
    ledger.con.execute("UPDATE rng SET counter = 9")
    problems = "\n".join(ledger.check().problems)
    assert "anchor 2: z does not match its hash" in problems and "counter says 9 anchors, table holds 10" in problems


# ---------------------------------------------------------------- bad files


def test_bad_files_raise_one_line_ledger_errors(tmp_path):
    good = tmp_path / "good.ledger"
    with Ledger(good, D, seed=0) as led:
        for _ in range(300):
            led.claim("main", gaussian, "m")

    def fails(pattern: str, path: Path, **kw) -> None:
        with pytest.raises(LedgerError, match=pattern) as info:
            Ledger(path, kw.pop("dim", D), **kw)
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some text that is long enough to have a header" * 20)
    fails("not an SQLite database", text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    fails("not a passersby ledger", other)
    fails("dim 128, asked for 64", good, dim=64)
    fails("threshold 6.0, asked for 4.0", good, threshold=4.0)
    fails("created with LshParams", good, lsh=LshParams(tables=4))
    fails("is a directory", tmp_path)
    fails("no such ledger", tmp_path / "missing.ledger", create=False)
    assert not (tmp_path / "missing.ledger").exists()

    newer = tmp_path / "newer.ledger"
    newer.write_bytes(good.read_bytes())
    con = sqlite3.connect(newer)
    con.execute("UPDATE meta SET value = 99 WHERE key = 'version'")
    con.commit()
    con.close()
    fails("version 99 is newer", newer)

    data = good.read_bytes()
    schema_hit = tmp_path / "schema.ledger"  # page 1 holds the schema: corrupt it
    schema_hit.write_bytes(data[:200] + b"\xff" * 3000 + data[3200:])
    fails("corrupt", schema_hit)

    middle = tmp_path / "middle.ledger"  # data pages: found by check, never silently used
    page = 4096
    n = len(data) // page
    middle.write_bytes(data[: n // 2 * page] + b"\x07" * (8 * page) + data[(n // 2 + 8) * page :])
    try:
        with Ledger(middle, D) as led:
            report = led.check()
            assert not report.ok and "integrity_check" in report.problems[0]
    except LedgerError as e:  # or already refused at open, if the pages hit were needed there
        assert "corrupt" in str(e)


# ---------------------------------------------------------------- kill -9


def test_kill_9_at_random_moments_never_shows_an_anchor_twice(tmp_path):
    """Two workers (screens) claim on one ledger and are SIGKILLed at random moments, 30 times."""
    path = tmp_path / "kill.ledger"
    seed, channels, kills = 7, ("left", "right"), 30
    rnd = random.Random(2024)
    shown: dict[str, list[tuple[int, str]]] = {c: [] for c in channels}
    for k in range(kills):
        procs = {}
        for c in channels:
            out = tmp_path / f"{c}-{k}.out"
            with open(out, "wb") as fo, open(tmp_path / f"{c}-{k}.err", "wb") as fe:
                procs[c] = (subprocess.Popen([sys.executable, str(WORKER), str(path), c, str(seed)],
                                             stdout=fo, stderr=fe, cwd=ROOT), out)
        # A worker needs ~0.25 s to start: the first round may hit ledger creation, later ones
        # mostly land mid-claim (inside the transaction, in its fsync, or between commit and show).
        deadlines = sorted((rnd.uniform(0.0, 0.3) if k == 0 else rnd.uniform(0.25, 0.9), c) for c in channels)
        start = time.monotonic()
        for at, c in deadlines:
            time.sleep(max(0.0, start + at - time.monotonic()))
            procs[c][0].send_signal(signal.SIGKILL)
        for c, (p, out) in procs.items():
            p.wait(timeout=30)
            err = (tmp_path / f"{c}-{k}.err").read_text()
            assert p.returncode == -signal.SIGKILL, f"worker {c} exited by itself ({p.returncode}): {err}"
            lines = out.read_bytes().decode().split("\n")
            assert lines[-1] == ""  # every write was a whole line
            shown[c] += [(int(i), sha) for i, sha in (line.split() for line in lines[:-1])]

    with Ledger(path, D) as led:
        assert led.integrity_check() == "ok"
        assert led.check(deep=True).ok
        ids, z = all_anchors(led)
        sha = {i: hashlib.sha256(row.tobytes()).hexdigest()[:16] for i, row in zip(ids, z)}
        assert len(set(sha.values())) == len(ids)  # no anchor recorded twice
        assert min_pairwise_distance(z) > 9
        total_shown = 0
        for c in channels:
            seq = shown[c]
            total_shown += len(seq)
            assert len({i for i, _ in seq}) == len(seq) and len({s for _, s in seq}) == len(seq)  # never shown twice
            assert all(a[0] < b[0] for a, b in zip(seq, seq[1:]))  # each restart continues, never goes back
            assert all(sha.get(i) == s for i, s in seq)  # everything shown was recorded first
            # Kills before a commit replayed the same proposal, kills after it never re-proposed:
            # the channel's records are exactly its RNG stream, as if it had never been killed.
            _, zc = all_anchors(led, c)
            np.testing.assert_array_equal(zc, stream(seed, c, len(zc)))
            assert led.stats().channels[c].count == len(zc)
        all_shown = [s for c in channels for _, s in shown[c]]
        assert len(set(all_shown)) == len(all_shown)  # not across screens either
    assert total_shown > 200, "the workers were killed before showing much: the test proved little"


# ---------------------------------------------------------------- the LSH index itself


def test_probe_keys_start_with_the_own_bucket_and_catch_near_points():
    from passersby.stream.ledger import make_rotations

    params = LshParams()
    rot = make_rotations(params, D, np.random.default_rng(0)).astype(np.float64)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((100, D))
    own = bucket_keys(rot, z)
    found = 0
    for zi, ki in zip(z, own):
        pk = probe_keys(rot, zi, params.probes)
        assert pk.shape == (params.tables, params.probes + 1)
        assert (pk[:, 0] == ki).all() and all(len(set(row)) == params.probes for row in pk[:, 1:])
        near = bucket_keys(rot, at_distance(zi, 3.0, rng)[None])[0]
        found += any(near[t] in pk[t] for t in range(params.tables))
    assert found == 100
    assert (0 <= own).all() and (own < params.buckets_per_table).all()


def test_a_slow_proposal_holds_no_write_lock(ledger, tmp_path):
    # Another process (here: another connection) claims while this claim's proposal is running:
    # with the write lock held during proposals it would wait for it (and here: dead-lock).
    other = Ledger(ledger.path, dim=D, seed=0)
    try:
        def propose(rng):
            t0 = time.monotonic()
            other.claim("right", gaussian, "m")
            assert time.monotonic() - t0 < 5
            return gaussian(rng)

        _, z = ledger.claim("left", propose, "m")
        np.testing.assert_array_equal(z, stream(0, "left", 1)[0])
        assert {c: s.count for c, s in ledger.stats().channels.items()} == {"left": 1, "right": 1}
    finally:
        other.close()


def test_a_claim_overtaken_on_its_channel_starts_over_from_the_new_rng_state(ledger):
    other = Ledger(ledger.path, dim=D, seed=0)
    calls = []
    try:
        def propose(rng):
            calls.append(1)
            if len(calls) == 1:  # meanwhile another process takes this channel's next anchor
                other.claim("main", gaussian, "m")
            return gaussian(rng)

        _, z = ledger.claim("main", propose, "m")
        expected = stream(0, "main", 2)
        # The overtaking claim got the stream's first anchor; this one, started over, the second.
        np.testing.assert_array_equal(z, expected[1])
        _, zs = all_anchors(ledger)
        np.testing.assert_array_equal(zs, expected)
        # Calls: the overtaken draw (a copy of what the other took: rejected), one more, then the restart.
        assert len(calls) == 3 and ledger.check().ok
    finally:
        other.close()


def test_a_near_anchor_recorded_during_the_proposal_is_not_recorded_again(ledger):
    other = Ledger(ledger.path, dim=D, seed=0)
    copy = gaussian(np.random.default_rng(5))
    queue = [copy]
    try:
        def propose(rng):
            if queue:
                other.claim("right", lambda _rng: queue.pop(), "m")  # the same face, elsewhere, first
                return copy
            return gaussian(rng)

        _, z = ledger.claim("left", propose, "m")
        assert np.linalg.norm(z - copy) > 9
        assert ledger.stats().channels["left"].rejected == 1 and len(ledger) == 2 and ledger.check().ok
    finally:
        other.close()


def test_copy_in_is_all_or_nothing(tmp_path: Path) -> None:
    with Ledger(tmp_path / "src.sqlite", D, seed=4) as src:
        for _ in range(6):
            src.claim("a", gaussian, "h")
        batches, rng = [list(b) for b in src.rows_for_copy()], src.rng_states()
    rows = batches[0]
    broken = rows[:4] + [rows[1]]  # the same id twice: the database refuses it mid-copy
    with Ledger(tmp_path / "dst.sqlite", D, meta=dict(src.meta)) as dst:
        with pytest.raises(LedgerError, match="while migrating"):
            dst.copy_in([broken], rng)
        assert len(dst) == 0 and dst.rng_states() == {}  # nothing of the failed copy stays
        assert dst.copy_in([rows], rng) == 6 and dst.rng_states() == rng
        with pytest.raises(LedgerError, match="already holds anchors"):
            dst.copy_in([rows], rng)
        assert len(dst) == 6 and dst.check(deep=True).ok
