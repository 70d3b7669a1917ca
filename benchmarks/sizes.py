"""How large a generator the real-time budget allows: two screens at once, fast runtime.

For each generator width (--ngf list; random weights, BN in eval mode: speed does not depend on
what was learnt) this builds the runtime the stream uses (`passersby.runtime.make_renderer`,
"auto" by default: OpenVINO on the fused generator), starts one renderer thread per screen with
one CPU thread each, as `passersby show` does with two screens, and counts frames for
--seconds. Reports GFLOPs per frame, parameters and frames/s per screen beside the 30 fps
target; the shipped model's own row (same width as its config) is the reference measured in
the same run. Absolute frames/s differ a lot between CPUs: compare rows of one run.

Usage:
    python benchmarks/sizes.py                         # ngf 16, 24, 32; 15 s each
    python benchmarks/sizes.py --ngf 16,20 --seconds 10 --json out/sizes.json
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _common import CpuMeter, busy_note, cpu_line, lscpu, machine_info, write_json
from generator import gflops_per_frame, n_params
from passersby.checkpoint import load_model
from passersby.model.generator import Generator
from passersby.runtime import make_renderer
from passersby.sample import default_model_path

TARGET_FPS = 30.0


def screens_fps(g: Generator, runtime: str, seconds: float, screens: int = 2) -> dict[str, Any]:
    """Frames/s per screen with `screens` renderer threads running at once (1 CPU thread each)."""
    renderers = [make_renderer(g, runtime, threads=1) for _ in range(screens)]
    z = np.random.default_rng(0).standard_normal((16, 1, g.cfg.z_dim)).astype(np.float32)
    for r in renderers:  # warm-up (compilation, first-call allocations)
        for k in range(3):
            r(z[k])
    counts = [0] * screens
    stop = threading.Event()

    def work(i: int) -> None:
        while not stop.is_set():
            renderers[i](z[counts[i] % len(z)])
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(screens)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    return {"runtime": renderers[0].name, "fps_per_screen": [c / dt for c in counts]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ngf", default="16,24,32", help="generator widths to try, comma-separated")
    ap.add_argument("--seconds", type=float, default=15.0, help="timed seconds per width")
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console()
    info = {**machine_info(), "lscpu": lscpu()}
    console.print(cpu_line(info["lscpu"]))
    shipped, _ = load_model(default_model_path())
    rows = []
    meter = CpuMeter()
    for ngf in [int(x) for x in args.ngf.split(",")]:
        torch.manual_seed(0)
        g = Generator(dataclasses.replace(shipped.cfg, ngf=ngf, class_names=())).eval()
        fps = screens_fps(g, args.runtime, args.seconds)
        rows.append({"ngf": ngf, "shipped_width": ngf == shipped.cfg.ngf, "gflops_per_frame": gflops_per_frame(g),
                     "params": n_params(g), **fps, "min_fps": min(fps["fps_per_screen"])})
    cpu = meter.stop()
    table = Table(title=f"two screens at once, {rows[0]['runtime']} runtime, 1 thread each (target {TARGET_FPS:.0f} fps)")
    for col in ("ngf", "GFLOPs/frame", "params (M)", "fps per screen", "meets 30 fps"):
        table.add_column(col, justify="right")
    for r in rows:
        mark = " (shipped)" if r["shipped_width"] else ""
        table.add_row(f"{r['ngf']}{mark}", f"{r['gflops_per_frame']:.2f}", f"{r['params'] / 1e6:.2f}",
                      " / ".join(f"{f:.1f}" for f in r["fps_per_screen"]), "yes" if r["min_fps"] >= TARGET_FPS else "no")
    console.print(table)
    note = busy_note(cpu)
    if note:
        console.print(note)
    write_json(args.json, {"machine": info, "cpu": cpu, "rows": rows, "target_fps": TARGET_FPS})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
