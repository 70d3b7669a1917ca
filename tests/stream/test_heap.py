"""Freed heap memory goes back to the system (stream/heap.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from passersby.stream.heap import HeapTrimmer, trim

from .test_health import _wait


SCRIPT = """
import ctypes
from pathlib import Path
from passersby.stream.heap import trim

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
start = rss()
blocks = [libc.malloc(64_000) for _ in range(3000)]  # ~190 MB from the heap (below the mmap threshold)
for b in blocks:
    ctypes.memset(b, 1, 64_000)  # touched: resident
pin = blocks.pop()  # the last one, at the top of the heap, stays in use: free() alone cannot shrink it
for b in blocks:
    libc.free(b)
freed = rss()
trimmed = trim()
print(start, freed, rss(), trimmed)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_trim_returns_freed_arena_memory() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    start, freed, after, trimmed = out.stdout.split()
    assert float(freed) - float(start) > 150  # freed, but still resident: the growth the soak saw
    assert trimmed == "True" and float(after) - float(start) < 20  # given back


def test_the_trimmer_watches_memory_from_its_warm_level() -> None:
    t = HeapTrimmer(0.02, warm_calls=2)
    t.start()
    try:
        assert _wait(lambda: t.stats()["grown_mb"] is not None)
        warm = t.stats()["warm_rss_mb"]
        held = bytearray(120_000_000)  # 120 MB, touched (zeroed), kept: a leak as the trimmer sees it
        calls = t.calls
        assert _wait(lambda: t.calls >= calls + 2)
        st = t.stats()
        assert st["warm_rss_mb"] == warm and st["grown_mb"] > 100 and st["rss_mb"] > warm + 100
        del held
    finally:
        t.stop()
        t.join(2)


def test_the_trimmer_runs_and_stops() -> None:
    t = HeapTrimmer(0.02)
    t.start()
    time.sleep(0.3)
    t.stop()
    t.join(2)
    assert not t.is_alive() and t.stats()["calls"] >= 3 and t.stats()["max_ms"] > 0


# The soak's experiment (benchmarks/_memory.py), kept working: a pinned threshold does what it says.
PIN = """
import ctypes, sys
sys.path.insert(0, sys.argv[2])
from _memory import pin_mmap_threshold

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else False
libc.free(libc.malloc(16 << 20))  # freeing a big mapping raises glibc's dynamic threshold to 16 MB
frame = libc.malloc(768 * 1024)  # a 512-px RGB frame
size_field = ctypes.c_size_t.from_address(frame - ctypes.sizeof(ctypes.c_size_t)).value
print(pinned, bool(size_field & 2))  # IS_MMAPPED: the chunk is its own mapping, unmapped on free
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc (glibc)")
@pytest.mark.parametrize("mode, expected", [("free", "False False"), ("pin", "True True")])
def test_a_pinned_threshold_keeps_frames_out_of_the_arenas(mode: str, expected: str) -> None:
    bench = str(Path(__file__).resolve().parents[2] / "benchmarks")
    out = subprocess.run([sys.executable, "-c", PIN, mode, bench], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == expected.split()  # unpinned: the frame lands in the heap, to fragment it
