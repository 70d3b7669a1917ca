"""Does memory stay flat? The live installation (`serve`: both screens, kiosk server, one reading
WebSocket client per screen) for --minutes, sampled every --every seconds (RSS, fds, threads,
glibc's arenas, resident MB per mapping kind: `_memory.py`); after --warmup minutes the RSS slope
with its 95 % interval, the daily bound, steps and what grew in them, fps and late frames.
With --tempo 0.25 the screens claim a face every 0.25 s instead of every 6 s (24 times as many
faces per hour): the slope per 1,000 faces bounds what each face costs, over days of faces.

Target: no growth after warm-up (the bound is the interval's upper end).

Usage:
    python benchmarks/memory_soak.py --minutes 60 --json docs/operations/memory-soak.json --plot docs/operations/memory-soak.png
    python benchmarks/memory_soak.py --minutes 20 --warmup 5 --tempo 0.25 --json runs/soak-faces.json   # faces x24
    python benchmarks/memory_soak.py --analyze runs/soak.json --warmup 20 --plot runs/soak.png   # again, another warm-up
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_info, setting, write_json
from _memory import grown, pin_mmap_threshold, plot, sample, summarize, type_counts


def soak(a: argparse.Namespace) -> dict[str, Any]:
    """Run the installation for a.minutes; the samples and what the web clients received."""
    import dataclasses

    from stream import WebClients
    from passersby.app.installation import build
    from passersby.scratch import ScratchDir
    from passersby.settings import load_settings
    from passersby.web.server import KioskServer

    out: dict[str, Any] = {}
    with ScratchDir("passersby-soak-") as home:  # a killed soak's home goes at the next start
        over = {"walk.tempo": a.tempo} if a.tempo else {}
        over.update(setting(kv) for kv in a.setting)  # e.g. enhancer.every=2: the same chain whatever the load
        s = load_settings(None, over, search=False)
        s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=a.mode) for sc in s.screens))
        if a.mmap_threshold:  # experiment: frame-sized buffers as their own mappings (stream/heap.py)
            pin_mmap_threshold(a.mmap_threshold)
        inst = build(s, Path(home))
        server = KioskServer(inst.engine.hub, port=0) if a.web else None
        samples: list[dict[str, Any]] = []
        try:
            inst.engine.start()
            if server is not None:  # --no-web: the engine alone, to tell its memory from the web's
                server.start()
                clients = WebClients(server.url, inst.engine.screens, decode=False)
                clients.thread.start()
            t0, types_warm = time.monotonic(), None
            while time.monotonic() - t0 < a.minutes * 60:
                st = inst.engine.status()
                samples.append({"t_s": round(time.monotonic() - t0, 1), "faces": st["faces_this_run"],
                                "late": st.get("late_frames"), "fps": st.get("fps"), **sample()})
                if types_warm is None and samples[-1]["t_s"] >= a.warmup * 60:
                    types_warm = type_counts()
                print({k: v for k, v in samples[-1].items() if k != "maps"}, flush=True)
                if a.json:  # the samples so far, each minute: a killed soak keeps what it measured
                    write_json(a.json, {"partial": True, "samples": samples})
                time.sleep(a.every)
                inst.engine.check()
            out["types_grown_after_warmup"] = grown(types_warm or {}, type_counts())
            out["heap_trim"] = inst.engine.status().get("heap_trim")  # stream/heap.py
            if server is not None:
                clients.stop.set()
                out["frames_received_by_web_clients"] = dict(clients.received)
        finally:
            if server is not None:
                server.stop()
            inst.close()
    out["samples"] = samples
    return out


def report(result: dict[str, Any], a: argparse.Namespace) -> None:
    print({k: v for k, v in result.items() if k not in ("samples", "machine_start", "machine_end", "args")})
    if a.plot:
        plot(result["samples"], a.warmup, a.plot)
    write_json(a.json, result)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=10.0, help="minutes left out of the slope")
    ap.add_argument("--mode", default="walk")
    ap.add_argument("--tempo", type=float, default=0.0,
                    help="walk.tempo in seconds (0: the default, a face every 6 s); short tempos claim faces "
                         "many times faster, to bound the memory each face costs")
    ap.add_argument("--no-web", dest="web", action="store_false",
                    help="the engine alone: no kiosk server, no reading clients")
    ap.add_argument("--mmap-threshold", type=int, default=0, metavar="BYTES",
                    help="experiment: pin glibc's mmap threshold (0: glibc's own, moving; 262144 cost "
                         "+50 %% CPU, see docs/operations.md)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a passersby setting, e.g. enhancer.every=2 (repeatable)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--analyze", type=Path, help="summarize an earlier run's JSON again instead of running")
    a = ap.parse_args(argv)
    if a.analyze:  # e.g. with another warm-up; the samples are kept as they were
        result = json.loads(a.analyze.read_text())
        result["args"] = {**result.get("args", {}), "warmup": str(a.warmup)}
    else:
        result = {"machine_start": machine_info(), "args": {k: str(v) for k, v in vars(a).items()}, **soak(a),
                  "machine_end": machine_info()}
    result.update(summarize(result["samples"], a.warmup))
    report(result, a)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
