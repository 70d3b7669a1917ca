"""Generator throughput at batch 1 in eager PyTorch: the shipped model vs a FastGAN-size reference.

Measures frames/s and per-frame latency (p50, p99) of one forward pass z (1, z_dim) -> image
(1, 3, R, R) under torch.inference_mode, for

  default    the model shipped in the package (`passersby.sample.default_model_path()`,
             loaded with `passersby.checkpoint.load_model`, eval mode);
  reference  `Generator(ModelConfig(resolution=256, ngf=64))` — FastGAN's width — random
             init (seed 0), eval mode.

Both are timed in the same run, in alternating rounds (default, reference, reference,
default, ...) so that slow drifts of the machine hit both alike; the figure to compare across
machines and commits is the ratio default/reference, not the absolute frames/s. Heavy load
from other processes skews even the ratio with several threads (see benchmarks/README.md);
the script measures how much CPU others took while it timed and warns above 10 %. Also reports
GFLOPs per frame (torch.utils.flop_counter.FlopCounterMode: 2 FLOPs per multiply-add, convs and
matmuls only) and parameter counts.

Usage:
    python benchmarks/generator.py                       # 20 s per model, ~1 min in all
    python benchmarks/generator.py --seconds 5 --threads 1 --json out/generator.json
    python benchmarks/generator.py --profile             # + torch.profiler top ops (default model)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from _common import CpuMeter, busy_note, machine_info, median, percentile, set_threads, write_json
from passersby.checkpoint import load_model
from passersby.config import ModelConfig
from passersby.model.generator import Generator
from passersby.sample import default_model_path

REFERENCE = ModelConfig(resolution=256, ngf=64)
N_LATENTS = 64  # cycled through; fresh latents per frame, the same ones for both models


class Subject:
    """One generator under test and the frames it was fed."""

    def __init__(self, name: str, g: Generator, desc: str) -> None:
        self.name, self.g, self.desc = name, g, desc
        cfg = g.cfg
        gen = torch.Generator().manual_seed(0)
        self.z = torch.randn(N_LATENTS, 1, cfg.z_dim, generator=gen)
        self.labels = [torch.tensor([i % cfg.n_classes]) if cfg.n_classes else None for i in range(N_LATENTS)]
        self.i = 0
        self.latencies: list[float] = []

    def frame(self) -> float:
        """Render one frame; returns its wall time in seconds."""
        k = self.i % N_LATENTS
        self.i += 1
        t0 = time.perf_counter()
        self.g(self.z[k], self.labels[k])
        return time.perf_counter() - t0

    def run_for(self, seconds: float, record: bool) -> None:
        """Render frames until `seconds` have passed (at least one frame)."""
        spent = 0.0
        while True:
            dt = self.frame()
            spent += dt
            if record:
                self.latencies.append(dt)
            if spent >= seconds:
                return

    @property
    def timed(self) -> float:
        return sum(self.latencies)


def gflops_per_frame(g: Generator) -> float:
    z = torch.zeros(1, g.cfg.z_dim)
    label = torch.zeros(1, dtype=torch.long) if g.cfg.n_classes else None
    counter = FlopCounterMode(display=False)
    with counter:
        g(z, label)
    return counter.get_total_flops() / 1e9


def n_params(g: torch.nn.Module) -> int:
    return sum(p.numel() for p in g.parameters())


def profile_top_ops(s: Subject, frames: int, rows: int) -> tuple[str, list[dict[str, Any]]]:
    """torch.profiler over `frames` batch-1 frames: (printable table, top ops by self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(frames):
            s.frame()
    avgs = prof.key_averages()
    table = avgs.table(sort_by="self_cpu_time_total", row_limit=rows)
    total = sum(e.self_cpu_time_total for e in avgs) or 1.0
    top = sorted(avgs, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    ops = [{"op": e.key, "calls": e.count, "self_cpu_ms_per_frame": e.self_cpu_time_total / 1e3 / frames,
            "self_cpu_share": e.self_cpu_time_total / total} for e in top]
    return table, ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per model (default 20)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--round", type=float, default=2.0, help="seconds per model per alternation round (default 2)")
    ap.add_argument("--warmup", type=float, default=2.0, help="untimed warm-up seconds per model (default 2)")
    ap.add_argument("--model", type=Path, default=None, help="model file to test (default: the shipped model)")
    ap.add_argument("--profile", action="store_true", help="also profile the default model (torch.profiler)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    args = ap.parse_args()

    set_threads(args.threads)
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)  # piped: do not squeeze the table into 80 columns
    before = machine_info()
    model_path = args.model or default_model_path()
    g_def, info = load_model(model_path)
    torch.manual_seed(0)
    g_ref = Generator(REFERENCE).eval()
    subjects = [
        Subject("default", g_def, f"{model_path.name} (hash {info.hash}, step {info.meta.get('step', '?')}): "
                f"res {info.config.resolution}, ngf {info.config.ngf}"),
        Subject("reference", g_ref, f"FastGAN-size: res {REFERENCE.resolution}, ngf {REFERENCE.ngf}, random init"),
    ]
    console.print(f"[bold]generator batch-1 throughput[/] — {before['cpu']}, {before['cpu_count']} cores, "
                  f"{before['torch_threads']} torch threads, load {before['load_average_1_5_15min']}")

    t_start = time.perf_counter()
    profile_table, profile_ops = None, None
    with torch.inference_mode():
        flops = {s.name: gflops_per_frame(s.g) for s in subjects}
        for s in subjects:
            s.run_for(args.warmup, record=False)
        rnd = 0
        meter = CpuMeter()
        with console.status("timing...") as status:
            while any(s.timed < args.seconds for s in subjects):
                order = subjects if rnd % 2 == 0 else subjects[::-1]
                for s in order:
                    if s.timed < args.seconds:
                        s.run_for(min(args.round, args.seconds - s.timed), record=True)
                rnd += 1
                status.update(f"timing... round {rnd}: " + ", ".join(f"{s.name} {s.timed:.0f}/{args.seconds:.0f} s"
                                                                     for s in subjects))
        cpu = meter.stop()
        if args.profile:
            profile_table, profile_ops = profile_top_ops(subjects[0], frames=20, rows=15)
    wall = time.perf_counter() - t_start
    after = machine_info()

    rows: dict[str, dict[str, Any]] = {}
    for s in subjects:
        lat = s.latencies
        rows[s.name] = {
            "model": s.desc,
            "config": s.g.cfg.to_dict(),
            "params": n_params(s.g),
            "gflops_per_frame": flops[s.name],
            "frames": len(lat),
            "timed_s": s.timed,
            "frames_per_s": len(lat) / s.timed,
            "latency_ms_p50": median(lat) * 1e3,
            "latency_ms_p99": percentile(lat, 99) * 1e3,
            "latency_ms_min": min(lat) * 1e3,
            "achieved_gflop_per_s": flops[s.name] * len(lat) / s.timed,
            "latencies_ms": [round(x * 1e3, 2) for x in lat],
        }
    d, r = rows["default"], rows["reference"]
    ratios = {
        "frames_per_s_default_over_reference": d["frames_per_s"] / r["frames_per_s"],
        "latency_p50_reference_over_default": r["latency_ms_p50"] / d["latency_ms_p50"],
        "gflops_default_over_reference": d["gflops_per_frame"] / r["gflops_per_frame"],
        "params_default_over_reference": d["params"] / r["params"],
    }

    table = Table(title="Generator, batch 1, eager, torch.inference_mode")
    for col in ("model", "params M", "GFLOPs", "frames", "frames/s", "p50 ms", "p99 ms", "GFLOP/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{row['params'] / 1e6:.2f}", f"{row['gflops_per_frame']:.2f}",
                      str(row["frames"]), f"{row['frames_per_s']:.2f}", f"{row['latency_ms_p50']:.1f}",
                      f"{row['latency_ms_p99']:.1f}", f"{row['achieved_gflop_per_s']:.1f}")
    table.add_row("[bold]default/ref[/]", f"{ratios['params_default_over_reference']:.3f}",
                  f"{ratios['gflops_default_over_reference']:.3f}", "",
                  f"[bold]{ratios['frames_per_s_default_over_reference']:.2f}×[/]",
                  f"{1 / ratios['latency_p50_reference_over_default']:.3f}", "", "")
    console.print(table)
    for name, row in rows.items():
        console.print(f"  {name}: {row['model']}")
    console.print("  GFLOPs = per frame (FlopCounterMode, 2 per multiply-add); GFLOP/s = achieved")
    console.print(f"{rnd} alternating rounds, {wall:.0f} s in all; load before {before['load_average_1_5_15min']}, "
                  f"after {after['load_average_1_5_15min']}; while timing, other processes used "
                  f"{cpu['others_share'] or 0:.0%} of the cores, hypervisor steal {cpu['steal_share'] or 0:.0%}")
    note = busy_note(cpu)
    if note:
        console.print(f"[yellow]{note}[/]")
    if profile_table:
        console.print("\n[bold]torch.profiler, default model, 20 frames at batch 1 (self CPU time):[/]")
        print(profile_table, flush=True)

    write_json(args.json, {
        "benchmark": "generator",
        "settings": {"seconds": args.seconds, "round_s": args.round, "warmup_s": args.warmup,
                     "threads": args.threads, "batch": 1, "mode": "eager, torch.inference_mode"},
        "machine_before": before, "machine_after": after, "wall_s": wall, "rounds": rnd, "cpu_while_timing": cpu,
        "results": rows, "ratios": ratios, "note": note or None,
        "profile_top_ops": profile_ops,
    })
    if args.json:
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
