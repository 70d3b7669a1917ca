"""Atomic writes: a killed writer's temporary file is removed by the next write of the same
target; a live writer's is not (issue 11: 48 killed renders left 25 half videos behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from passersby.atomic import atomic_open, remove_stale_temps

WRITER = """
import sys, time
from pathlib import Path
from passersby.atomic import atomic_open
with atomic_open(Path(sys.argv[1]), "wb") as f:
    f.write(b"half a video")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def _start_writer(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_killed_writers_temp_is_removed_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "clip[1].mp4"  # a name glob() would misread
    killed = _start_writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    leftover = temps(tmp_path)
    assert len(leftover) == 1  # what kill -9 leaves
    live = _start_writer(target)  # its own write of the target removes the leftover first
    try:
        mine = temps(tmp_path)
        assert len(mine) == 1 and mine != leftover
        assert remove_stale_temps(target) == [] and temps(tmp_path) == mine  # the live writer's stays
        with atomic_open(target, "wb") as f:
            f.write(b"whole")
        assert target.read_bytes() == b"whole" and len(temps(tmp_path)) == 1
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    with atomic_open(target, "wb") as f:  # the next write cleans the second leftover
        f.write(b"again")
    assert temps(tmp_path) == [] and target.read_bytes() == b"again"
    (tmp_path / ".other.mp4.x.tmp").write_bytes(b"")  # another target's temp is not touched
    remove_stale_temps(target)
    assert temps(tmp_path) == [".other.mp4.x.tmp"]
