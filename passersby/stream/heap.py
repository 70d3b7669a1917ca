"""Give freed heap memory back to the system, once a minute, so that RSS follows what is in use.

Measured (benchmarks/memory_soak.py, walk screens + kiosk + clients): what the process has
allocated stays flat after warm-up (glibc's in-use bytes, Python's blocks), yet RSS climbed in
steps (~0.6-1.6 MB at a time): frames, JPEGs and tensors of ~0.2-3 MB are allocated and freed
30 times a second in several threads; glibc raises its mmap threshold after freeing big blocks,
so later ones come from the arenas, and a freed arena region is kept (free, resident) for
reuse. `malloc_trim(0)` returns every free page of every arena to the kernel. It walks the
arenas one lock at a time (measured: about a millisecond), in its own thread.

Not glibc (musl, macOS): nothing to do, `trim()` says False.
"""

from __future__ import annotations

import ctypes
import threading
import time

TRIM_EVERY_S = 60.0

_libc = None


def trim() -> bool:
    """malloc_trim(0) where glibc has it: True if it released memory."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    return bool(_libc and _libc.malloc_trim(0))


class HeapTrimmer(threading.Thread):
    """Calls `trim()` every `every_s` seconds until `stop()`; `stats()` for the status page.

    Example:
        >>> t = HeapTrimmer(60.0); t.start(); ...; t.stop()  # doctest: +SKIP
    """

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        super().__init__(name="passersby-heap-trim", daemon=True)
        self.every_s = every_s
        self._halt = threading.Event()
        self.calls = 0
        self.max_ms = 0.0

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            t = time.perf_counter()
            trim()
            self.calls += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - t) * 1000)

    def stop(self) -> None:
        self._halt.set()

    def stats(self) -> dict[str, float]:
        return {"calls": self.calls, "max_ms": round(self.max_ms, 2)}
