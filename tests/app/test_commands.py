"""`passersby render`, `show` and `serve` end to end on the shipped model (real processes)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
from typer.testing import CliRunner

from passersby.cli import app
from passersby.stream.ledger import SqliteLedger

ROOT = Path(__file__).resolve().parents[2]


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate)
        return [f.to_ndarray(format="rgb24") for f in c.decode(stream)], rate


def test_render_writes_an_h264_video_of_both_screens_that_decodes_back(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "clip.mp4"
    r = CliRunner().invoke(app, ["render", "--seconds", "1", "--out", str(out), "--home", str(home), "--seed", "4"])
    assert r.exit_code == 0, r.output
    frames, rate = decode(out)
    assert len(frames) == 30 and rate == 30.0
    # Offline, every screen runs its largest chain: the shipped enhancer paints the 256² faces at 512².
    assert frames[0].shape == (512, 1024, 3)  # two 512² screens side by side
    steps = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:])]
    assert min(steps) > 0.05, steps  # every frame differs from the last: the network drew each
    left, right = frames[10][:, :512].astype(int), frames[10][:, 512:].astype(int)
    assert np.abs(left - right).mean() > 10  # two different faces
    with SqliteLedger.open_existing(home / "ledger.sqlite") as led:
        stats = led.stats()
        assert set(stats.channels) == {"masculine", "feminine"} and len(led) >= 6


def test_dry_ledger_uses_up_no_faces_and_per_screen_files_and_frames(tmp_path: Path, monkeypatch) -> None:
    home, out, frames_dir = tmp_path / "home", tmp_path / "clip.mp4", tmp_path / "frames"
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))  # where the throwaway ledger goes
    r = CliRunner().invoke(app, ["render", "--seconds", "0.2", "--out", str(out), "--per-screen", "--frames",
                                 str(frames_dir), "--dry-ledger", "--home", str(home), "--seed", "4",
                                 "--enhancer", "off"])  # the generator's own 256² frames
    assert r.exit_code == 0, r.output
    assert not (home / "ledger.sqlite").exists() and not list((tmp_path / "tmp").iterdir())  # and it is gone
    for name in ("masculine", "feminine"):
        frames, rate = decode(tmp_path / f"clip-{name}.mp4")
        assert len(frames) == 6 and frames[0].shape == (256, 256, 3) and rate == 30.0
    pngs = sorted(frames_dir.glob("frame-*.png"))
    lines = (frames_dir / "frames.jsonl").read_text().splitlines()
    assert len(pngs) == len(lines) == 6
    key = json.loads(lines[0])["key"]
    assert [k["screen"] for k in key["screens"]] == ["masculine", "feminine"]
    assert all(k["model"] and k["ledger_ids"] and "walk" in k for k in key["screens"])


def test_render_refuses_missing_outputs_and_bad_models(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["render", "--seconds", "1"])
    assert r.exit_code != 0 and "--out" in r.output
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    r = CliRunner().invoke(app, ["render", "--seconds", "1", "--out", str(tmp_path / "x.mp4"), "--model", str(bad),
                                 "--dry-ledger"])
    assert r.exit_code == 1 and "error:" in r.output and str(bad) in r.output


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "passersby.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(p: subprocess.Popen, pattern: str, timeout: float = 90) -> tuple[re.Match, str]:
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line and p.poll() is not None:
            break
        seen += line
        m = re.search(pattern, seen)
        if m:
            return m, seen
    p.kill()
    raise AssertionError(f"never printed {pattern!r}:\n{seen}")


def test_show_without_a_display_serves_the_kiosk_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    p = _start(["show", "--home", str(tmp_path), "--port", "0"], env)
    try:
        m, seen = _read_until(p, r"no display found: serving the installation on (http://127\.0\.0\.1:\d+/)")
        url = m.group(1)
        _read_until(p, r"Ctrl-C stops")
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())
            if sum(status.get("frames_shown", {}).values()) > 10 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status["screens"] == ["masculine", "feminine"] and status["faces_this_run"] >= 4
        assert all(v > 5 for v in status["frames_shown"].values()), status
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=30)[0]
    assert p.returncode == 0, out
    assert "faces this run" in out


def test_show_with_a_display_opens_windows_and_quits_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    p = _start(["show", "--home", str(tmp_path), "--windowed", "--screens", "feminine"], env)
    try:
        _read_until(p, r"showing 1 screen\(s\)")
        time.sleep(2.0)
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=30)[0]
    assert p.returncode == 0, out
    m = re.search(r"shown: \{'feminine': (\d+)\}", out)
    assert m and int(m.group(1)) > 10, out
