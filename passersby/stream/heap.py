"""Give freed heap memory back to the system, once a minute, so that RSS follows what is in use.

Measured (benchmarks/memory_soak.py, walk screens + kiosk + clients): what the process has
allocated stays flat after warm-up (glibc's in-use bytes, Python's blocks), yet RSS climbed in
steps (~0.6-1.6 MB at a time): frames, JPEGs and tensors of ~0.2-3 MB are allocated and freed
30 times a second in several threads; glibc raises its mmap threshold after freeing big blocks,
so later ones come from the arenas, and a freed arena region is kept (free, resident) for
reuse. `malloc_trim(0)` returns every free page of every arena to the kernel. It walks the
arenas one lock at a time (measured: about a millisecond), in its own thread.

Not done: keeping big buffers out of the arenas with a fixed mmap threshold (an experiment,
so it lives beside its benchmark: `benchmarks/_memory.py`, `memory_soak.py --mmap-threshold`). At
256 KB every frame-sized buffer is its own mapping, its pages faulted in afresh each time:
measured 317,000 minor faults/s against 76, 1.65 cores busy against 1.08, late frames and a
lowered chain (docs/operations.md, "Memory over hours").

Not glibc (musl, macOS): nothing to do, `trim()` says False.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

TRIM_EVERY_S = 60.0
WARM_CALLS = 10  # RSS after ten trims (minutes) is the warm level the health page compares with

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    return _libc


def trim() -> bool:
    """malloc_trim(0) where glibc has it: True if it released memory."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


def rss_mb() -> float | None:
    """This process's resident memory in MB (/proc/self/statm), None where there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer(threading.Thread):
    """Calls `trim()` every `every_s` seconds until `stop()`; `stats()` for the status page.

    After each trim it reads RSS; the reading after `warm_calls` trims is the warm level
    (start-up caches and pools have their size by then: the soaks level off by minute 10), and
    `stats()["grown_mb"]` is how far RSS has moved above it since: the health page's memory
    watch (stream/health.py) for a run of years.

    Example:
        >>> t = HeapTrimmer(60.0); t.start(); ...; t.stop()  # process-wide: changes the test run's malloc  # doctest: +SKIP
    """

    def __init__(self, every_s: float = TRIM_EVERY_S, warm_calls: int = WARM_CALLS) -> None:
        super().__init__(name="passersby-heap-trim", daemon=True)
        self.every_s = every_s
        self.warm_calls = warm_calls
        self._halt = threading.Event()
        self.calls = 0
        self.max_ms = 0.0
        self.rss_mb: float | None = rss_mb()  # known from the start; the warm level after warm_calls trims
        self.warm_rss_mb: float | None = None

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            t = time.perf_counter()
            trim()
            self.calls += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - t) * 1000)
            self.rss_mb = rss_mb()
            if self.calls == self.warm_calls:
                self.warm_rss_mb = self.rss_mb

    def stop(self) -> None:
        self._halt.set()

    def stats(self) -> dict[str, float | None]:
        """Trims so far, the longest (ms), RSS now and when warm (MB), and the growth since."""
        rss, warm = self.rss_mb, self.warm_rss_mb
        return {"calls": self.calls, "max_ms": round(self.max_ms, 2),
                "rss_mb": None if rss is None else round(rss, 1),
                "warm_rss_mb": None if warm is None else round(warm, 1),
                "grown_mb": None if rss is None or warm is None else round(rss - warm, 1)}
