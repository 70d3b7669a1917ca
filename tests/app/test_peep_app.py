"""`passersby peep`: the installation's peepshow screen with the real model and enhancer, its
kiosk page in Chromium (a click is a press), `peep --press` through the inbox, and a kill -9
during a showing that never lets that face come back."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from passersby.app.capture import capture_screen
from passersby.app.installation import build
from passersby.app.peep import SCREEN, PressLatency, peep_settings
from passersby.settings import load_settings
from passersby.stream.ledger import SqliteLedger


def _settings(model: Path, enhancer: Path | None, **over):
    base = {"stream.seed": 4, "walk.fps": 10.0, "model.runtime": "torch", "model.path": str(model),
            "peep.seconds": 0.6, "peep.blank": "fade", "peep.fade": 0.3, "peep.debounce": 0.0,
            "enhancer.mode": "on" if enhancer else "off", **over}
    if enhancer:
        base["enhancer.path"] = str(enhancer)
    return peep_settings(load_settings(None, base, search=False), "")


def _wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_a_press_shows_a_claimed_enhanced_face_then_blank(tmp_path, tiny_model_file, tiny_enhancer_file):
    inst = build(_settings(tiny_model_file, tiny_enhancer_file), tmp_path)
    latency = PressLatency(inst.engine.producers[0].source)
    inst.engine.hub.subscribe(latency)
    try:
        inst.engine.start()
        hub = inst.engine.hub
        blank = _wait(lambda: hub.latest(SCREEN))
        assert blank.key["state"] == "blank" and not blank.image.any() and blank.image.shape == (128, 128, 3)
        hub.control("press")
        face = _wait(lambda: (f := hub.latest(SCREEN)).key.get("state") == "face" and f)
        assert face.image.any() and face.key["stages"] and face.key["ledger_ids"]
        cap = capture_screen(inst, SCREEN)
        assert cap.record["matches_shown"] and cap.record["anchor_id"] == face.key["ledger_ids"][0]
        hub.control("press")  # during the showing: ignored
        _wait(lambda: hub.latest(SCREEN).key["state"] == "fade")
        _wait(lambda: hub.latest(SCREEN).key["state"] == "blank")
        state = inst.engine.status()["screen_state"][SCREEN]
    finally:
        inst.close()
    assert state["faces_shown"] == 1 and state["presses"]["accepted"] == 1 and state["presses"]["ignored"] == 1
    assert latency.summary()["presses_answered"] == 1 and 0 < latency.seconds[0] < 1.0
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        assert [i for i, _ in led.recent(SCREEN, 10)] == face.key["ledger_ids"]  # its own channel, one face


def test_the_kiosk_page_presses_on_a_click(tmp_path, tiny_model_file):
    from webtest import launch_chromium

    from passersby.web import KioskServer

    inst = build(_settings(tiny_model_file, None, **{"peep.seconds": 2.0, "peep.blank": "black"}), tmp_path)
    browsers = launch_chromium()
    browser = next(browsers)
    server = KioskServer(inst.engine.hub, port=0, token="tok").start()
    try:
        inst.engine.start()
        page = browser.new_context(viewport={"width": 400, "height": 400}).new_page()
        sent = []
        page.on("request", lambda r: sent.append(r.post_data) if r.url.endswith("/api/control") else None)
        page.goto(server.screen_url(SCREEN, with_token=True))
        page.wait_for_selector("body[data-pressable=yes]", timeout=15_000)
        page.wait_for_function("() => Number(document.querySelector('#screen').dataset.frameIndex ?? -1) > 0")
        assert inst.engine.status()["screen_state"][SCREEN]["faces_shown"] == 0
        page.mouse.click(200, 200)
        _wait(lambda: inst.engine.status()["screen_state"][SCREEN]["faces_shown"] == 1, 10)
        lit = ("() => { const img = document.querySelector('#screen'); const c = document.createElement('canvas');"
               " c.width = 16; c.height = 16; const g = c.getContext('2d'); g.drawImage(img, 0, 0, 16, 16);"
               " return g.getImageData(0, 0, 16, 16).data.some((v, i) => i % 4 !== 3 && v > 30); }")
        page.wait_for_function(lit, timeout=10_000)  # the face reaches the page: no longer black
        # (request events reach Python while playwright is called: after the wait above)
        assert json.loads(sent[0]) == {"action": "press", "screen": SCREEN}  # this peephole's button only
        page.keyboard.press("Enter")  # while the face shows: ignored
        _wait(lambda: inst.engine.status()["screen_state"][SCREEN]["presses"]["ignored"] == 1, 10)
        page.wait_for_function(f"() => !({lit})()", timeout=10_000)  # then blank again
    finally:
        server.stop()
        inst.close()
        for _ in browsers:
            pass


def _start_peep(home: Path, model: Path, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["SDL_VIDEODRIVER"] = "offscreen"
    cmd = [sys.executable, "-m", "passersby.cli", "peep", "--home", str(home), "--model", str(model),
           "--runtime", "torch", "--enhancer", "off", "--port", "0", "--seconds", "30"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _press(home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "passersby.cli", "peep", "--press", "--home", str(home)],
                          capture_output=True, text=True, timeout=60)


def _peep_rows(home: Path) -> list[tuple[int, bytes]]:
    with SqliteLedger.open_existing(home / "ledger.sqlite") as led:
        return [(i, z.tobytes()) for i, z in led.recent(SCREEN, 100)]


@pytest.mark.slow
def test_kill_9_during_a_showing_never_shows_that_face_again(tmp_path, tiny_model_file):
    from passersby.app.inbox import running

    home = tmp_path / "home"
    faces = []
    with open(tmp_path / "peep.log", "w") as log:
        for run in range(2):
            proc = _start_peep(home, tiny_model_file, log)
            try:
                _wait(lambda: running(home) is not None and running(home)["pid"] == proc.pid, 120)
                r = _press(home)
                assert r.returncode == 0, r.stdout + r.stderr
                assert r.stdout.startswith("pressed:")
                rows = _wait(lambda: len(_peep_rows(home)) == run + 1 and _peep_rows(home), 30)
                faces.append(rows[-1])
                time.sleep(0.5)  # the face is on screen (30 s showing)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
            assert running(home) is None  # the stale record of a killed process is ignored
    r = _press(home)
    assert r.returncode == 1 and "error: no installation is running" in r.stdout + r.stderr
    (first_id, first_z), (second_id, second_z) = faces
    assert first_id != second_id and first_z != second_z  # the restart showed a new face
    assert [i for i, _ in _peep_rows(home)] == [first_id, second_id]
