"""Health and metrics of a running engine: ok while frames flow, failing when a screen stops,
degraded on a low disk; Prometheus counters that match the engine's own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import passersby.stream.health as health_mod
from passersby.stream.engine import Engine

from .test_engine import WALK, engine


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_health_follows_the_frames_and_says_why(tmp_path: Path, monkeypatch) -> None:
    with engine(tmp_path) as e:
        e.start()
        assert _wait(lambda: all(e.hub.latest(s) for s in e.screens))
        h = e.health()
        assert h["status"] == "ok" and h["reasons"] == [] and h["ledger_ok"] and h["disk_free_bytes"] > 0
        assert set(h["screens"]) == {"left", "right"} and h["screens"]["left"]["last_frame_age_s"] < 1.0
        assert str(tmp_path) not in str(h)  # no paths, no secrets
        assert h["memory"]["rss_mb"] > 0 and h["memory"]["grown_mb"] is None  # warm after ten minutes
        monkeypatch.setattr(e.trimmer, "warm_rss_mb", h["memory"]["rss_mb"] - 300)  # as if it had leaked
        h = e.health()
        assert h["status"] == "degraded" and h["reasons"][0].startswith("memory grew by 300 MB since the engine was warm")
        monkeypatch.setattr(e.trimmer, "warm_rss_mb", h["memory"]["rss_mb"] - 200)  # below MEMORY_GROWN_MB
        assert e.health()["status"] == "ok"
        monkeypatch.setattr(health_mod, "LOW_DISK_BYTES", 1 << 62)
        h = e.health()
        assert h["status"] == "degraded" and "free on the ledger's disk" in h["reasons"][0]
        monkeypatch.setattr(health_mod, "LOW_DISK_BYTES", 0)
        e.producers[0].error = RuntimeError("the renderer broke with /secret/path")
        h = e.health()
        assert h["status"] == "failing" and h["reasons"] == ["screen left stopped (RuntimeError)"]
        e.producers[0].error = None
        e.pacer.stop_event.set()  # the pacer hangs: frames stop coming
        e.pacer.join()
        monkeypatch.setattr(health_mod, "FAILING_AGE_S", 0.2)
        time.sleep(0.3)
        h = e.health()
        assert h["status"] == "failing" and "has shown nothing for" in h["reasons"][0]


def test_metrics_match_the_engines_counters(tmp_path: Path) -> None:
    with engine(tmp_path) as e:
        e.start()
        assert _wait(lambda: e.pacer.shown["left"] >= 20)
        text = e.metrics().decode()
        shown = e.pacer.shown["left"]
        claimed = e.producers[0].anchors.claimed
    line = next(l for l in text.splitlines() if l.startswith('passersby_frames_shown_total{screen="left"}'))
    assert shown - 3 <= float(line.split()[-1]) <= shown
    assert f'passersby_faces_claimed_total{{screen="left"}} {float(claimed)}' in text
    assert 'passersby_render_seconds_bucket{le="+Inf",screen="left"}' in text
    assert "process_resident_memory_bytes" in text and "passersby_last_frame_age_seconds" in text


def test_a_ledger_that_cannot_record_holds_the_screens_and_they_resume_by_themselves(tmp_path: Path, monkeypatch):
    """Issue 11: a full disk ended `serve` (a LedgerError traceback). Never repeating beats being
    available: no new face while the ledger cannot record, and back by itself when it can."""
    import passersby.stream.claims as claims_mod
    from passersby.stream.ledger import LedgerError, SqliteLedger

    monkeypatch.setattr(claims_mod, "HOLD_FIRST_S", 0.05)
    full = {"on": False}
    claim = SqliteLedger.claim

    def maybe_full(self, *a, **k):
        if full["on"]:
            raise LedgerError(f"{self.path}: database or disk is full")
        return claim(self, *a, **k)

    monkeypatch.setattr(SqliteLedger, "claim", maybe_full)
    with engine(tmp_path) as e:
        e.start()
        assert _wait(lambda: e.status()["faces_this_run"] >= 4)
        full["on"] = True
        assert _wait(lambda: "waiting_for_ledger" in e.status())
        claimed = e.status()["faces_this_run"]
        time.sleep(0.5)
        st, h = e.status(), e.health()
        assert st["faces_this_run"] == claimed and e.producers[0].error is None  # held, not crashed
        assert h["status"] == "degraded" and any("the ledger cannot record" in r for r in h["reasons"])
        full["on"] = False
        assert _wait(lambda: "waiting_for_ledger" not in e.status() and e.status()["faces_this_run"] > claimed)
        assert e.health()["status"] == "ok"
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        assert led.check().ok


def test_days_of_disk_left_at_this_rate():
    from types import SimpleNamespace

    e = SimpleNamespace(started_at=time.time() - 86_400, producers=[SimpleNamespace(anchors=SimpleNamespace(claimed=14_400))])
    # 14,400 faces a day x 820 bytes = 11.8 MB a day
    assert health_mod.days_of_disk_left(e, 118_080_000) == 10.0
    assert health_mod.days_of_disk_left(e, None) is None
    e.started_at = time.time()
    assert health_mod.days_of_disk_left(e, 10 ** 9) is None  # no rate yet
