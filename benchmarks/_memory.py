"""Where a process's memory is, for the soak benchmark: probes sampled each minute (RSS, fds,
threads, glibc's arenas, resident MB per mapping kind, Python's blocks and objects) and the
summary of a run (slope with its 95 % interval, steps and what grew in them, a plot).

Not a benchmark itself; memory_soak.py imports it as `_memory`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def pin_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Blocks of >= `nbytes` are mmapped from now on, whatever was freed before: True if set.

    An experiment of the soak (`memory_soak.py --mmap-threshold`), not something the installation
    does: it cost 1.65 cores against 1.08 and late frames (passersby/stream/heap.py, docs/operations.md).

    Args:
        nbytes: the fixed threshold (glibc's initial default is 128 KB; it then moves on its own).

    Example:
        >>> pin_mmap_threshold()  # process-wide: changes this process's malloc  # doctest: +SKIP
        True
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to pin
        return False


def sample() -> dict[str, Any]:
    """Every probe below, once: one row of a soak."""
    return {"rss_mb": rss_bytes() / 1e6, "fds": open_fds(), "threads": threads(), **cpu(), **heap(),
            **malloc_arenas(), "maps": mappings()}


def cpu() -> dict[str, float]:
    """CPU seconds and minor page faults so far: what a memory setting costs (e.g. mmapped frames
    fault their pages in again on every allocation)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "minor_faults": ru.ru_minflt}


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def heap() -> dict[str, float]:
    """Where the memory is: glibc's malloc (in use, free but kept), Python's live blocks and
    objects tracked by the GC. RSS growing with `malloc_in_use_mb` flat points at native pools
    (OpenVINO, SQLite, fragmentation); `py_blocks` / `gc_objects` growing point at Python."""
    import ctypes
    import gc

    out = {"py_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects())}
    try:
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                        "fsmblks", "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        m = libc.mallinfo2()
        out.update(malloc_in_use_mb=(m.uordblks + m.hblkhd) / 1e6, malloc_free_mb=m.fordblks / 1e6)
    except (OSError, AttributeError):
        pass
    return out


def mappings(min_mb: float = 1.0) -> dict[str, float]:
    """Resident MB per kind of mapping, from /proc/self/smaps: each file by name, `[heap]`,
    `[stack]`, and anonymous mappings (malloc arenas of threads, thread stacks, numpy and model
    buffers) together as `anon`. A step in RSS shows up in the kind that grew."""
    out: dict[str, float] = {}
    name = "anon"
    try:
        for line in Path("/proc/self/smaps").read_text().splitlines():
            head = line.split(maxsplit=5)
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                name = Path(head[5]).name if len(head) == 6 and head[5].startswith("/") else (head[5] if len(head) == 6 else "anon")
            elif head[0] == "Rss:":
                out[name] = out.get(name, 0.0) + int(head[1]) / 1024
    except OSError:
        return {}
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= min_mb}


def malloc_arenas() -> dict[str, float]:
    """All of glibc's arenas (mallinfo2 sees only the main one), from malloc_info's XML: the number
    of arenas and the MB they hold from the system."""
    import ctypes
    import re
    import tempfile

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.fdopen.restype = ctypes.c_void_p  # a FILE*: the default int would cut the pointer
        libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        with tempfile.TemporaryFile() as f:
            fp = libc.fdopen(os.dup(f.fileno()), b"w")
            libc.malloc_info(0, fp)
            libc.fclose(fp)
            f.seek(0)
            xml = f.read().decode()
    except (OSError, AttributeError):
        return {}
    arenas = len(re.findall(r"<heap nr=", xml))
    total = re.findall(r'<system type="current" size="(\d+)"/>', xml)
    return {"arenas": arenas, "malloc_system_mb": int(total[-1]) / 1e6 if total else 0.0}


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def type_counts() -> dict[str, int]:
    import gc
    from collections import Counter

    return dict(Counter(type(o).__name__ for o in gc.get_objects()))


def grown(before: dict[str, int], after: dict[str, int], n: int = 15) -> dict[str, int]:
    """The n object types whose live count grew most between two `type_counts`."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return dict(sorted(((k, v) for k, v in d.items() if v > 0), key=lambda kv: -kv[1])[:n])


def slope_per_hour(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y over t (seconds), per hour."""
    if len(t) < 2:
        return 0.0
    return float(np.polyfit(t, y, 1)[0] * 3600)


def slope_ci_per_hour(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """95 % confidence interval of the least-squares slope, per hour, from the residuals (normal
    approximation: the samples are many). Its upper end is the bound we state.

    Example:
        >>> t = np.arange(0, 3600, 60.0); lo, hi = slope_ci_per_hour(t, 500 + t / 3600)
        >>> round(lo, 6), round(hi, 6)
        (1.0, 1.0)
    """
    if len(t) < 3:
        return (0.0, 0.0)
    slope, icept = np.polyfit(t, y, 1)
    resid = y - (slope * t + icept)
    se = float(np.sqrt(resid @ resid / (len(t) - 2) / np.sum((t - t.mean()) ** 2)))
    return (float((slope - 1.96 * se) * 3600), float((slope + 1.96 * se) * 3600))


def steps(samples: list[dict], min_mb: float = 5.0) -> list[dict[str, Any]]:
    """RSS jumps of >= min_mb between two samples, with what grew (mapping kinds, threads)."""
    out = []
    for a, b in zip(samples, samples[1:]):
        d = b["rss_mb"] - a["rss_mb"]
        if abs(d) >= min_mb:
            ma, mb = a.get("maps", {}), b.get("maps", {})
            grew = {k: round(mb.get(k, 0) - ma.get(k, 0), 1) for k in set(ma) | set(mb)}
            out.append({"minute": round(b["t_s"] / 60, 1), "rss_mb": round(d, 1),
                        "threads": [a.get("threads"), b.get("threads")],
                        "maps": {k: v for k, v in grew.items() if abs(v) >= 1}})
    return out


def summarize(samples: list[dict], warmup_min: float) -> dict[str, Any]:
    """Slopes (the RSS slope with its 95 % interval and the daily bound from its upper end),
    ranges and steps, counting only samples from `warmup_min` minutes on."""
    t = np.array([x["t_s"] for x in samples])
    keep = t >= warmup_min * 60
    rss = np.array([x["rss_mb"] for x in samples])
    ci = slope_ci_per_hour(t[keep], rss[keep])
    faces = np.array([x.get("faces") or 0 for x in samples], float)[keep]
    per_kface = (1000 * float(np.polyfit(faces, rss[keep], 1)[0])
                 if keep.sum() > 2 and np.ptp(faces) > 0 else None)  # MB per 1,000 faces claimed
    series = lambda k: np.array([x.get(k, 0) for x in samples])[keep]  # noqa: E731
    return dict(
        rss_mb_first_last=[float(rss[0]), float(rss[-1])],
        rss_slope_mb_per_hour_after_warmup=slope_per_hour(t[keep], rss[keep]),
        rss_slope_ci95_mb_per_hour=list(ci),
        rss_bound_mb_per_day=max(ci[1], 0.0) * 24,
        rss_mb_per_1000_faces=per_kface,
        faces_per_hour=float(np.polyfit(t[keep], faces, 1)[0] * 3600) if keep.sum() > 2 else None,
        rss_range_mb_after_warmup=[float(rss[keep].min()), float(rss[keep].max())] if keep.any() else None,
        fds_slope_per_hour_after_warmup=slope_per_hour(t[keep], series("fds")),
        heap_slopes_per_hour_after_warmup={
            k: slope_per_hour(t[keep], series(k))
            for k in ("malloc_in_use_mb", "malloc_free_mb", "malloc_system_mb", "py_blocks", "gc_objects")},
        threads_range=[int(min(x.get("threads", 0) for x in samples)), int(max(x.get("threads", 0) for x in samples))],
        steps=steps(samples),
        **cpu_rates(t[keep], series("cpu_s"), series("minor_faults")),
        faces_end=samples[-1].get("faces"), late_frames_end=samples[-1].get("late"))


def cpu_rates(t: np.ndarray, cpu_s: np.ndarray, faults: np.ndarray) -> dict[str, float | None]:
    """Cores busy (CPU seconds per second) and minor page faults per second after warm-up."""
    if t.size < 2 or not cpu_s.any():  # runs from before the CPU probe
        return {"cpu_cores_busy": None, "minor_faults_per_s": None}
    dt = float(t[-1] - t[0])
    return {"cpu_cores_busy": round(float(cpu_s[-1] - cpu_s[0]) / dt, 3),
            "minor_faults_per_s": round(float(faults[-1] - faults[0]) / dt, 1)}


def plot(samples: list[dict], warmup_min: float, path: Path) -> None:
    """RSS over the run; below it the mapping kinds that hold the most (anon: thread arenas and
    buffers; [heap]: the main arena; the biggest libraries)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([x["t_s"] for x in samples]) / 60
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[2, 1])
    ax.plot(t, [x["rss_mb"] for x in samples], label="RSS (MB)")
    ax.axvline(warmup_min, color="grey", ls=":", label="end of warm-up")
    ax.set_ylabel("MB")
    ax.legend()
    kinds = list(samples[-1].get("maps", {}))[:4]
    for kind in kinds:
        bx.plot(t, [x.get("maps", {}).get(kind, np.nan) for x in samples], label=kind)
    bx.set_xlabel("minutes")
    bx.set_ylabel("resident MB")
    if kinds:
        bx.legend(fontsize=7, loc="center right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
