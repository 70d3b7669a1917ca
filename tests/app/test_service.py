"""The systemd service: the unit files, install / uninstall / status into a unit folder, and the
watchdog contract over a real sd_notify socket (READY, pings from the pacer while healthy, none
when the pacer hangs or a screen fails, STOPPING)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from typer.testing import CliRunner

from fakeclock import SteppedClock
from passersby.app.service import KIOSK_FLAGS, Notifier, service_unit
from passersby.cli import app


def test_the_unit_restarts_watches_and_limits_starts(tmp_path):
    text = service_unit(tmp_path / "gallery.toml", tmp_path / "home", user=False)
    for line in ("Type=notify", "Wants=network-online.target", "Restart=always", "WatchdogSec=30", "StartLimitBurst=10", "WantedBy=multi-user.target",
                 f"Environment=PASSERSBY_HOME={tmp_path / 'home'}"):
        assert line in text.splitlines(), line
    exec_line = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    assert " -m passersby.cli show --home " in exec_line and f"--config {tmp_path / 'gallery.toml'}" in exec_line


def test_install_status_uninstall_with_kiosks(tmp_path):
    units, home = tmp_path / "units", tmp_path / "home"
    r = CliRunner().invoke(app, ["service", "status", "--unit-dir", str(units)])
    assert r.exit_code == 1 and "not installed" in r.output
    r = CliRunner().invoke(app, ["service", "install", "--unit-dir", str(units), "--home", str(home), "--kiosk"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in units.iterdir())
    assert names == ["passersby-kiosk-feminine.service", "passersby-kiosk-masculine.service", "passersby.service"]
    kiosk = (units / "passersby-kiosk-feminine.service").read_text()
    assert all(flag in kiosk for flag in KIOSK_FLAGS) and "http://127.0.0.1:8765/screen/feminine" in kiosk
    assert " serve --home " in (units / "passersby.service").read_text()  # kiosk screens: the web server
    r = CliRunner().invoke(app, ["service", "status", "--unit-dir", str(units)])
    assert r.exit_code == 0 and "installed" in r.output
    r = CliRunner().invoke(app, ["service", "uninstall", "--unit-dir", str(units)])
    assert r.exit_code == 0 and list(units.iterdir()) == []


def test_watchdog_pings_come_from_the_pacer_only_while_healthy(tmp_path, monkeypatch):
    import numpy as np

    from passersby.stream.engine import Engine, ScreenPlan
    from passersby.stream.sources import LatentWalk
    from passersby.stream.walker import WalkConfig

    walk = WalkConfig(tempo=0.2, fps=30.0)
    render = lambda z: (np.tanh(z[:, :48]).reshape(-1, 4, 4, 3) * 127 + 128).astype(np.uint8)  # noqa: E731
    plans = [ScreenPlan(n, lambda rng: rng.standard_normal(128), lambda a: LatentWalk(walk, a, render, "h"))
             for n in ("left", "right")]

    sock_path = tmp_path / "notify.sock"
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sd.bind(str(sock_path))
    sd.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))

    def received(seconds=0.2):
        """What was sent: the socket read until it has been quiet for `seconds`."""
        out = []
        while True:
            sd.settimeout(seconds)
            try:
                out.append(sd.recv(4096).decode())
            except TimeoutError:
                return out

    # The pacer beats on its own clock (tests/fakeclock.py): held at a limit, it is frozen at an
    # exact moment, so a count of beats per second of that clock cannot depend on the load.
    clock = SteppedClock(start=0.0)
    e = Engine(plans, walk.fps, tmp_path / "ledger.sqlite", 128, "h", queue_size=4, seed=3, clock=clock,
               pacer_sleep=clock.sleep)
    clock.ready = lambda: e.quit_event.is_set() or all(p.frames.qsize() for p in e.producers)
    with e:
        clock.advance_to(2.5)
        n = Notifier(e)
        e.heartbeat = n.beat  # before the pacer starts: its first beat is at 0 s
        n.ready()
        e.start()
        clock.wait_blocked()
        msgs = received()
        assert msgs[0].startswith("READY=1") and len(msgs) == 4  # then a beat a second: at 0, 1 and 2 s
        # (the beat at 0 s comes before the first frame is shown: a start, not a failure: a ping too)
        assert msgs[1:] == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]
        e.producers[0].error = RuntimeError("stuck")  # a failing installation: no pings, a status instead
        clock.advance_to(4.5)
        clock.wait_blocked()
        msgs = received()
        assert "WATCHDOG=1" not in msgs and sum(m.startswith("STATUS=failing: screen left stopped") for m in msgs) == 2
        e.producers[0].error = None
        clock.advance_to(5.5)
        clock.wait_blocked()
        assert received() == ["WATCHDOG=1"]
        e.pacer.stop_event.set()  # the pacer hangs: the pings stop, systemd would restart us
        clock.release()
        e.pacer.join()
        assert "WATCHDOG=1" not in received(1.5)
        n.stopping()
        assert received(0.3) == ["STOPPING=1"]
    sd.close()
