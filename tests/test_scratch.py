"""Scratch folders (passersby/scratch.py): a killed run's folder goes at the next start; a live
run's and folders that are not ours stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from passersby.scratch import LOCK_NAME, ScratchDir, remove_stale_scratch

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import sys, time
from passersby.scratch import ScratchDir
with ScratchDir("passersby-test-") as d:
    (d / "home.txt").write_text("x")
    print(d, flush=True)
    time.sleep(60)
"""


def test_a_killed_run_leaves_no_scratch_folder_behind(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", RUN], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    try:
        killed, live = (Path(p.stdout.readline().strip()) for p in runs)
        runs[0].kill()  # kill -9: no cleanup of its own
        runs[0].wait()
        foreign = tmp_path / "passersby-someone-else"  # no lock file: not ours, left alone
        foreign.mkdir()
        (tmp_path / "passersby-a-file").write_text("x")
        assert killed.exists() and live.exists()
        r = subprocess.run([sys.executable, "-c", RUN.replace("time.sleep(60)", "print(d.exists())")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        new, existed = r.stdout.split()
        assert existed == "True" and not Path(new).exists()  # its own: used, then removed
        assert not killed.exists() and live.exists() and foreign.exists() and (tmp_path / "passersby-a-file").exists()
    finally:
        for p in runs:
            p.kill()
            p.wait()


def test_a_scratch_dir_is_locked_while_it_lives_and_closes_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    d = ScratchDir("passersby-unit-")
    assert d.path.parent == tmp_path and (d.path / LOCK_NAME).exists()
    assert remove_stale_scratch(tmp_path) == [] and d.path.exists()  # held: ours, alive
    d.close()
    d.close()
    assert not d.path.exists()
    with pytest.raises(ValueError, match="must start with 'passersby-'"):
        ScratchDir("other-")
