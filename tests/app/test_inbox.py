"""The inbox: `passersby capture` reaches the running installation through its home."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from passersby.app import inbox as inbox_mod
from passersby.app.inbox import INBOX, RUNNING, Inbox, post, running
from passersby.cli import app


def test_requests_are_answered_in_order_and_errors_come_back(tmp_path):
    seen = []

    def capture(req):
        seen.append(req["screen"])
        if req["screen"] == "bad":
            raise ValueError("screen 'bad' has shown nothing yet")
        if req["screen"] == "boom":
            raise RuntimeError("kaput")
        return {"id": f"cap-{req['screen']}"}

    with pytest.raises(ValueError, match="no installation is running in"):
        post(tmp_path, {"action": "capture", "screen": "a"})
    with Inbox(tmp_path, {"capture": capture}, ["a", "b"]):
        assert running(tmp_path)["pid"] == os.getpid() and running(tmp_path)["screens"] == ["a", "b"]
        assert post(tmp_path, {"action": "capture", "screen": "a"}) == {"ok": True, "id": "cap-a"}
        assert post(tmp_path, {"action": "capture", "screen": "bad"}) == {"ok": False, "error": "screen 'bad' has shown nothing yet"}
        assert post(tmp_path, {"action": "capture", "screen": "boom"}) == {"ok": False, "error": "RuntimeError: kaput"}
        with pytest.raises(ValueError, match="does not answer 'peep'"):
            post(tmp_path, {"action": "peep"})
        # An old request (a press from before a power cut) is not acted on.
        old = tmp_path / INBOX / "1-old.json"
        old.write_text(json.dumps({"action": "capture", "screen": "a", "sent": time.time() - 3600}))
        deadline = time.monotonic() + 5
        while not old.with_suffix(".done").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "expired" in json.loads(old.with_suffix(".done").read_text())["error"]
    assert seen == ["a", "bad", "boom"]
    assert running(tmp_path) is None and not (tmp_path / RUNNING).exists()


def test_a_stale_record_and_a_silent_installation(tmp_path, monkeypatch):
    (tmp_path / RUNNING).write_text(json.dumps({"pid": 2 ** 22 + 12345, "actions": ["capture"]}))  # no such process
    assert running(tmp_path) is None
    r = CliRunner().invoke(app, ["capture", "feminine", "--home", str(tmp_path)])
    assert r.exit_code == 1 and "error: no installation is running in" in r.output and "Traceback" not in r.output
    # A live record but nobody answering: the request is withdrawn after the timeout.
    (tmp_path / RUNNING).write_text(json.dumps({"pid": os.getpid(), "actions": ["capture"]}))
    monkeypatch.setattr(inbox_mod, "POLL_S", 0.01)
    with pytest.raises(ValueError, match="no answer from the installation"):
        post(tmp_path, {"action": "capture", "screen": "x"}, timeout=0.2)
    assert not list((tmp_path / INBOX).glob("*.json"))


def test_the_capture_command_end_to_end(tmp_path, tiny_model_file):
    import dataclasses

    from passersby.app.installation import build
    from passersby.app.stream_cli import _inbox
    from passersby.settings import ScreenSettings, load_settings

    s = load_settings(None, {"stream.seed": 2, "walk.tempo": 0.5, "walk.fps": 10.0, "model.runtime": "torch",
                             "model.path": str(tiny_model_file), "enhancer.mode": "off"}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("solo", "", 0, "walk"),))
    inst = build(s, tmp_path)
    try:
        inst.engine.start()
        with _inbox(inst):
            deadline = time.monotonic() + 30
            while inst.engine.hub.latest("solo") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            r = CliRunner().invoke(app, ["capture", "solo", "--home", str(tmp_path)])
            wrong = CliRunner().invoke(app, ["capture", "duo", "--home", str(tmp_path)])
            deadline = time.monotonic() + 10
            while inst.engine.pacer.stats()["fps"].get("solo", 0) < 9 and time.monotonic() < deadline:
                time.sleep(0.1)
            status = CliRunner().invoke(app, ["status", "--home", str(tmp_path)])
            as_json = CliRunner().invoke(app, ["status", "--home", str(tmp_path), "--json"])
    finally:
        inst.close()
    assert r.exit_code == 0, r.output
    assert r.output.startswith("captured ") and "the re-render matches the screen" in r.output
    assert len(list((tmp_path / "captures").glob("*.json"))) == 1
    assert wrong.exit_code == 1 and "error: capture duo: no screen 'duo'" in wrong.output
    assert status.exit_code == 0, status.output
    assert status.output.startswith("ok") and "solo: last frame" in status.output and "ledger ok" in status.output
    assert "\n  memory " in status.output and "since warm" not in status.output  # warm after ten minutes
    assert json.loads(as_json.output)["screens"]["solo"]["fps"] > 0
    gone = CliRunner().invoke(app, ["status", "--home", str(tmp_path)])  # stopped: nobody answers
    assert gone.exit_code == 1 and "no installation is running" in gone.output
