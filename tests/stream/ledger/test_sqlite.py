"""The SQLite ledger's own: files that are not ledgers, an empty file, and kill -9 mid-claim.

What every backend promises (no anchor twice, near copies refused, RNG continuity, export,
audit, migration) is checked once for all in test_contract.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from passersby.stream.ledger import LedgerError, LshParams, SqliteLedger

from .helpers import D, gaussian, min_pairwise_distance, stream

WORKER = Path(__file__).resolve().parent / "ledger_worker.py"
ROOT = Path(__file__).resolve().parents[3]
# A script's sys.path starts with its own folder: put this checkout first, so the worker runs the
# passersby under test even where another checkout is installed in the environment.
WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def all_anchors(ledger: SqliteLedger, channel: str | None = None) -> tuple[list[int], np.ndarray]:
    sql, args = "SELECT id, z FROM anchors ORDER BY id", ()
    if channel is not None:
        sql, args = "SELECT id, z FROM anchors WHERE channel = ? ORDER BY id", (channel,)
    rows = ledger.con.execute(sql, args).fetchall()
    z = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), D)
    return [r[0] for r in rows], z


@pytest.fixture
def ledger(tmp_path):
    with SqliteLedger(tmp_path / "anchors.ledger", D, seed=0) as led:
        yield led


def test_an_empty_file_becomes_a_ledger(tmp_path):
    path = tmp_path / "empty.ledger"
    path.touch()  # what a crash during creation can leave behind
    with SqliteLedger(path, D, seed=0) as led:
        assert led.claim("main", gaussian, "m")[0] == 1


def test_export_refuses_to_overwrite_the_ledger_itself(ledger):
    ledger.claim("a", gaussian, "hash-1")
    with pytest.raises(LedgerError, match="onto the ledger itself"):
        ledger.export(ledger.path)


# ---------------------------------------------------------------- bad files


def test_bad_files_raise_one_line_ledger_errors(tmp_path):
    good = tmp_path / "good.ledger"
    with SqliteLedger(good, D, seed=0) as led:
        for _ in range(300):
            led.claim("main", gaussian, "m")

    def fails(pattern: str, path: Path, **kw) -> None:
        with pytest.raises(LedgerError, match=pattern) as info:
            SqliteLedger(path, kw.pop("dim", D), **kw)
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
        with SqliteLedger(middle, D) as led:
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
                                             stdout=fo, stderr=fe, cwd=ROOT, env=WORKER_ENV), out)
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

    with SqliteLedger(path, D) as led:
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
