"""Does memory stay flat? The live installation (`serve`: both screens, kiosk server, one reading
WebSocket client per screen) for --minutes, RSS and open file descriptors sampled every
--every seconds; the slope after --warmup minutes (least squares), fps and late frames.

Target: no growth after warm-up (the slope's bound is stated with the figures).

Usage:
    python benchmarks/memory_soak.py --minutes 60 --json docs/operations/memory-soak.json --plot docs/operations/memory-soak.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine_info, write_json


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


def main(argv: list[str]) -> int:
    import dataclasses
    import tempfile

    from stream import WebClients
    from passersby.app.installation import build
    from passersby.settings import load_settings
    from passersby.web.server import KioskServer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=10.0, help="minutes left out of the slope")
    ap.add_argument("--mode", default="walk")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args(argv)
    result: dict[str, Any] = {"machine_start": machine_info(), "args": {k: str(v) for k, v in vars(a).items()}}
    with tempfile.TemporaryDirectory(prefix="passersby-soak-") as home:
        s = load_settings(None, {}, search=False)
        s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=a.mode) for sc in s.screens))
        inst = build(s, Path(home))
        server = KioskServer(inst.engine.hub, port=0)
        samples = []
        try:
            inst.engine.start()
            server.start()
            clients = WebClients(server.url, inst.engine.screens, decode=False)
            clients.thread.start()
            t0 = time.monotonic()
            types_warm = None
            while time.monotonic() - t0 < a.minutes * 60:
                st = inst.engine.status()
                samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": rss_bytes() / 1e6, "fds": open_fds(),
                                "faces": st["faces_this_run"], "late": st.get("late_frames"), "fps": st.get("fps"),
                                **heap()})
                if types_warm is None and samples[-1]["t_s"] >= a.warmup * 60:
                    types_warm = type_counts()
                print(samples[-1], flush=True)
                time.sleep(a.every)
                inst.engine.check()
            result["types_grown_after_warmup"] = grown(types_warm or {}, type_counts())
            result["heap_trim"] = inst.engine.status().get("heap_trim")  # stream/heap.py
            clients.stop.set()
            received = dict(clients.received)
        finally:
            server.stop()
            inst.close()
    t = np.array([x["t_s"] for x in samples])
    keep = t >= a.warmup * 60
    rss = np.array([x["rss_mb"] for x in samples])
    fds = np.array([x["fds"] for x in samples])
    result.update(samples=samples, frames_received_by_web_clients=received,
                  rss_mb_first_last=[rss[0], rss[-1]],
                  rss_slope_mb_per_hour_after_warmup=slope_per_hour(t[keep], rss[keep]),
                  fds_slope_per_hour_after_warmup=slope_per_hour(t[keep], fds[keep]),
                  heap_slopes_per_hour_after_warmup={
                      k: slope_per_hour(t[keep], np.array([x.get(k, 0) for x in samples])[keep])
                      for k in ("malloc_in_use_mb", "malloc_free_mb", "py_blocks", "gc_objects")},
                  rss_range_mb_after_warmup=[float(rss[keep].min()), float(rss[keep].max())] if keep.any() else None,
                  machine_end=machine_info())
    print({k: result[k] for k in ("rss_mb_first_last", "rss_slope_mb_per_hour_after_warmup",
                                  "fds_slope_per_hour_after_warmup", "rss_range_mb_after_warmup",
                                  "heap_slopes_per_hour_after_warmup", "types_grown_after_warmup")})
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(t / 60, rss, label="RSS (MB)")
        ax.axvline(a.warmup, color="grey", ls=":", label="end of warm-up")
        ax.set_xlabel("minutes")
        ax.set_ylabel("MB")
        ax.legend()
        a.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.plot, dpi=100, bbox_inches="tight")
    write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
