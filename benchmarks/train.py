"""Training throughput (images/s) of `train_step` on this CPU: the default model vs FastGAN width.

One `passersby.train.loop.train_step` is one discriminator update and one generator update on a
batch (G forward, D forward on real + fake, backward through both, Adam, EMA). Measured for

  default    what `passersby train` builds by default: its default recipe (passersby.train.recipes,
             "projected": ngf 16, heads on frozen EfficientNet-Lite0 features at 192 px, batch 8,
             bf16 where the CPU has it);
  reference  the same with a FastGAN-size generator (ngf 64; same discriminator, ndf 32);

at resolution 256 and 128, on a synthetic in-memory dataset (random uint8 images in a
`passersby.data.training_set.TrainingSet`, nothing read from disk). The two models are timed in the
same run, alternating step by step (default, reference, reference, default, ...), after untimed
warm-up steps; the figure to compare across machines and commits is the ratio
default/reference, not the absolute images/s.

A step at 256² takes 12-21 s on an idle 2-core CPU, so the default is a time budget
(`--seconds` of timed steps per resolution, both models together, at least `--min-steps` and
at most `--max-steps` steps each; the round that crosses the budget is finished) that keeps
the whole run near 3 minutes on an idle 2-core machine (~5 on a shared one).
`--min-steps 10 --max-steps 10 --warmup 2` gives a steadier (~12 min) measurement.

On a machine shared with other processes even the ratio is skewed (see benchmarks/README.md);
the script measures how much CPU others took and warns above 10 %.

FLOPs per image come from torch.utils.flop_counter.FlopCounterMode over one train_step at
batch 1 (convolutions and matmuls, forward and backward; they scale linearly with the batch).

Usage:
    python benchmarks/train.py                                 # ~3 min on an idle 2-core CPU
    python benchmarks/train.py --resolutions 128 --seconds 30 --json out/train.json
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from _common import CpuMeter, busy_note, machine_info, median, set_threads, write_json
from passersby.config import ModelConfig, TrainConfig
from passersby.data.training_set import TrainingSet
from passersby.train.dist import DistInfo
from passersby.train.loop import build_state, train_step

REFERENCE_NGF = 64  # FastGAN's generator width
DEVICE = torch.device("cpu")


def cli_model_defaults() -> dict[str, Any]:
    """The model `passersby train` builds by default: its default recipe's model settings."""
    from passersby.train.cli import train_command
    from passersby.train.recipes import recipe_defaults

    recipe = inspect.signature(train_command).parameters["recipe"].default
    model, _ = recipe_defaults(getattr(recipe, "default", recipe))
    return {**model, "z_dim": 128}


def cli_train_defaults() -> TrainConfig:
    """TrainConfig with the default recipe's training settings (batch, betas, amp...)."""
    from passersby.train.cli import train_command
    from passersby.train.recipes import recipe_defaults

    recipe = inspect.signature(train_command).parameters["recipe"].default
    _, train = recipe_defaults(getattr(recipe, "default", recipe))
    return TrainConfig(**train)


def synthetic_set(resolution: int, n: int, seed: int = 0) -> TrainingSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8, generator=g)
    return TrainingSet(images=images, labels=torch.full((n,), -1, dtype=torch.int64), class_names=(),
                       data_hash=f"synthetic-{resolution}-{n}-{seed}", root=Path("<synthetic>"))


def gflop_per_image(cfg: TrainConfig, data: TrainingSet) -> float:
    """FLOPs of one train_step at batch 1, on a throw-away state (the timed states stay untouched)."""
    cfg1 = dataclasses.replace(cfg, batch_size=1)
    ts = build_state(cfg1, DEVICE)
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(ts, data, cfg1, DEVICE, DistInfo())
    return counter.get_total_flops() / 1e9


class Subject:
    def __init__(self, name: str, cfg: TrainConfig, data: TrainingSet) -> None:
        self.name, self.cfg, self.data = name, cfg, data
        self.ts = build_state(cfg, DEVICE)
        self.step_s: list[float] = []
        self.losses: list[tuple[float, float, float]] = []

    def step(self, record: bool) -> float:
        t0 = time.perf_counter()
        st = train_step(self.ts, self.data, self.cfg, DEVICE, DistInfo())
        dt = time.perf_counter() - t0
        if record:
            self.step_s.append(dt)
            self.losses.append((st.loss_d, st.loss_g, st.loss_recon))
        return dt


def bench_resolution(res: int, args: argparse.Namespace, model_defaults: dict[str, int], status) -> dict[str, Any]:
    base = cli_train_defaults()
    data = synthetic_set(res, args.images)
    cfgs = {
        "default": dataclasses.replace(base, model=ModelConfig(resolution=res, **model_defaults)),
        "reference": dataclasses.replace(base, model=ModelConfig(resolution=res, **{**model_defaults, "ngf": REFERENCE_NGF})),
    }
    status.update(f"{res}²: counting FLOPs (one batch-1 step each)")
    flops = {k: gflop_per_image(c, data) for k, c in cfgs.items()}
    subjects = [Subject(k, c, data) for k, c in cfgs.items()]
    for i in range(args.warmup):
        for s in subjects:
            status.update(f"{res}²: warm-up {i + 1}/{args.warmup}, {s.name}")
            s.step(record=False)
    rounds, timed = 0, 0.0
    while True:
        order = subjects if rounds % 2 == 0 else subjects[::-1]
        t_round = 0.0
        for s in order:
            status.update(f"{res}²: step {rounds + 1}, {s.name} (budget {timed:.0f}/{args.seconds:.0f} s)")
            t_round += s.step(record=True)
        rounds += 1
        timed += t_round
        if rounds >= args.max_steps:
            break
        if rounds >= args.min_steps and timed >= args.seconds:
            break
    rows = {}
    for s in subjects:
        m = s.cfg.model
        bs = s.cfg.batch_size
        img_s = bs * len(s.step_s) / sum(s.step_s)
        rows[s.name] = {
            "model": {"resolution": res, "ngf": m.ngf, "ndf": m.ndf, "z_dim": m.z_dim},
            "batch_size": bs,
            "params_g": sum(p.numel() for p in s.ts.G.parameters()),
            "params_d": sum(p.numel() for p in s.ts.D.parameters()),
            "gflop_per_image": flops[s.name],
            "steps": len(s.step_s),
            "step_s": s.step_s,
            "step_s_median": median(s.step_s),
            "images_per_s": img_s,
            "images_per_s_best_step": bs / min(s.step_s),
            "achieved_gflop_per_s": flops[s.name] * img_s,
            "last_losses_d_g_recon": s.losses[-1],
        }
    d, r = rows["default"], rows["reference"]
    return {
        "resolution": res,
        "rounds": rounds,
        "results": rows,
        "ratios": {
            "images_per_s_default_over_reference": d["images_per_s"] / r["images_per_s"],
            "images_per_s_best_step_default_over_reference": d["images_per_s_best_step"] / r["images_per_s_best_step"],
            "gflop_default_over_reference": d["gflop_per_image"] / r["gflop_per_image"],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="256,128", help="comma-separated (default 256,128)")
    ap.add_argument("--seconds", type=float, default=45.0,
                    help="timed-step budget per resolution, both models together (default 45)")
    ap.add_argument("--min-steps", type=int, default=1, help="timed steps per model at least (default 1)")
    ap.add_argument("--max-steps", type=int, default=10, help="timed steps per model at most (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per model first (default 1)")
    ap.add_argument("--images", type=int, default=64, help="size of the synthetic dataset (default 64)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    args = ap.parse_args()
    if args.min_steps < 1 or args.max_steps < args.min_steps:
        ap.error("need 1 <= --min-steps <= --max-steps")

    set_threads(args.threads)
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)  # piped: do not squeeze the table into 80 columns
    resolutions = [int(x) for x in args.resolutions.split(",") if x.strip()]
    model_defaults = cli_model_defaults()
    before = machine_info()
    console.print(f"[bold]train_step throughput[/] — {before['cpu']}, {before['cpu_count']} cores, "
                  f"{before['torch_threads']} torch threads, load {before['load_average_1_5_15min']}; "
                  f"batch {TrainConfig().batch_size}, default model {model_defaults}, reference ngf {REFERENCE_NGF}")
    t0, meter = time.perf_counter(), CpuMeter()
    per_res = []
    with console.status("starting...") as status:
        for res in resolutions:
            per_res.append(bench_resolution(res, args, model_defaults, status))
            console.log(f"{res}² done ({time.perf_counter() - t0:.0f} s so far, load {machine_info()['load_average_1_5_15min']})")
    wall = time.perf_counter() - t0
    cpu = meter.stop()
    after = machine_info()

    table = Table(title=f"train_step, CPU, batch {TrainConfig().batch_size}, synthetic in-memory data")
    for col in ("res", "model", "ngf/ndf", "G/D params M", "GFLOP/img", "steps", "s/step", "img/s", "GFLOP/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for pr in per_res:
        for name, row in pr["results"].items():
            m = row["model"]
            table.add_row(str(pr["resolution"]), name, f"{m['ngf']}/{m['ndf']}",
                          f"{row['params_g'] / 1e6:.2f}/{row['params_d'] / 1e6:.2f}", f"{row['gflop_per_image']:.1f}",
                          str(row["steps"]), f"{row['step_s_median']:.1f}", f"{row['images_per_s']:.3f}",
                          f"{row['achieved_gflop_per_s']:.1f}")
        rt = pr["ratios"]
        table.add_row(str(pr["resolution"]), "[bold]default/ref[/]", "", "", f"{rt['gflop_default_over_reference']:.3f}",
                      "", "", f"[bold]{rt['images_per_s_default_over_reference']:.2f}×[/]", "", end_section=True)
    console.print(table)
    console.print("  img/s = batch × timed steps / their total time; GFLOP/img = one train_step's FLOPs per image "
                  "(FlopCounterMode, forward + backward); GFLOP/s = achieved")
    console.print(f"{wall:.0f} s in all; load before {before['load_average_1_5_15min']}, after "
                  f"{after['load_average_1_5_15min']}; other processes used {cpu['others_share'] or 0:.0%} of the cores, "
                  f"hypervisor steal {cpu['steal_share'] or 0:.0%}")
    note = busy_note(cpu)
    if note:
        console.print(f"[yellow]{note}[/]")

    write_json(args.json, {
        "benchmark": "train",
        "settings": {"resolutions": resolutions, "seconds": args.seconds, "min_steps": args.min_steps,
                     "max_steps": args.max_steps, "warmup": args.warmup, "images": args.images,
                     "threads": args.threads, "train_config": {k: v for k, v in TrainConfig().to_dict().items() if k != "model"},
                     "default_model": model_defaults, "reference_ngf": REFERENCE_NGF, "device": "cpu"},
        "machine_before": before, "machine_after": after, "wall_s": wall, "cpu": cpu,
        "per_resolution": per_res, "note": note or None,
    })
    if args.json:
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
