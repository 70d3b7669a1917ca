"""How good are a model's random faces? Every quality figure of issue 8, against real images.

Draws --n random faces from a model file (for a conditional model, classes in turn, so they
are balanced; an unconditional model's faces are unsteered), and compares them with the real
images of --data (a `passersby prepare` dataset, or a plain folder of images, resized to the
model's resolution):

- face rate: share of images where dlib's HOG detector (same settings for both) finds a face;
- EfficientNet-Lite0 space: k-NN precision and recall (k=3) with the two-halves-of-real
  reference, KID x1000, Fréchet distance, memorisation (nearest training image);
- dlib face-descriptor space (no discriminator sees it): KID x1000 on the faces found;
- pictures: a 64-face contact sheet (--sheet; corner dot green = the detector found a face)
  and the 5 closest generated/training pairs (--pairs).

Usage:
    python benchmarks/quality.py passersby/assets/default.safetensors \\
        --data ../shared/data/portraits-256 --n 1000 --json out/quality.json \\
        --sheet out/sheet.jpg --pairs out/pairs.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import CpuMeter, busy_note, cpu_line, lscpu, machine_info, set_threads, write_json

SHEET_FACES, SHEET_TILE, PAIR_TILE, JPEG_QUALITY = 64, 120, 160, 85


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example:\n  python benchmarks/quality.py default --data data/mine --n 200")
    ap.add_argument("model", help="model .safetensors, or 'default' for the shipped one")
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset or folder of real images")
    ap.add_argument("--n", type=int, default=1000, help="generated faces (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="latent seed, KID subsets, real-halves split")
    ap.add_argument("--k", type=int, default=3, help="neighbours for precision/recall (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--sheet", type=Path, default=None, help="64-face contact sheet (JPEG)")
    ap.add_argument("--pairs", type=Path, default=None, help="5 closest generated/training pairs (JPEG)")
    return ap.parse_args(argv)


def generate(model: str, n: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """n random faces (n, R, R, 3) uint8 and what the model file says about itself."""
    from passersby.sample import default_model_path, sample

    path = default_model_path() if model == "default" else Path(model)
    faces, info = sample(path, n, seed)  # conditional: classes in turn (balanced)
    classes = list(info.config.class_names) if info.config.n_classes else []
    counts = {c: int(np.sum(np.arange(n) % len(classes) == i)) for i, c in enumerate(classes)}
    return faces, {"path": str(info.path), "hash": info.hash, "resolution": int(faces.shape[1]),
                   "conditional": bool(classes), "samples_per_class": counts or None,
                   "step": info.meta.get("step")}


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def print_table(console: Console, r: dict[str, Any]) -> None:
    eff, face, rate = r["effnet"], r["face_descriptor"], r["face_rate"]
    pr, halves, mem = eff["precision_recall"], eff["real_halves"], eff["memorisation"]
    same = halves.get("fake_vs_real_half")
    t = Table(title=f"{r['n_fake']} generated vs {r['n_real']} real faces")
    for col in ("figure", "generated", "real / reference"):
        t.add_column(col, justify="right")
    t.add_row("face rate (dlib HOG)", f"{rate['fake']['rate']:.1%} ({rate['fake']['n_found']})",
              f"{rate['real']['rate']:.1%} ({rate['real']['n_found']})")
    t.add_row(f"precision (k={pr['k']}, EffNet-Lite0)", f"{pr['precision']:.3f}",
              f"{halves['real_vs_real']['precision']:.3f} (real halves)")
    t.add_row(f"recall (k={pr['k']}, EffNet-Lite0)", f"{pr['recall']:.3f}",
              f"{halves['real_vs_real']['recall']:.3f} (real halves)")
    if same:
        t.add_row(f"P / R at half size ({same['n_fake']} vs {same['n_real']})",
                  f"{same['precision']:.3f} / {same['recall']:.3f}",
                  f"{halves['real_vs_real']['precision']:.3f} / {halves['real_vs_real']['recall']:.3f}")
    t.add_row("KID x1000, EffNet-Lite0", f"{_fmt(eff['kid_x1000'], '.2f')} ± {_fmt(eff['kid_x1000_std'], '.2f')}", "")
    t.add_row(f"KID x1000, dlib face descriptors ({face['n_fake_faces']} / {face['n_real_faces']} faces)",
              f"{_fmt(face['kid_x1000'], '.3f')} ± {_fmt(face['kid_x1000_std'], '.3f')}", "")
    t.add_row("FD, EffNet-Lite0", f"{eff['fd']:.1f}", "")
    t.add_row("memorisation: median nearest-training distance", f"{mem['median_gen_to_train']:.3f}",
              f"{mem['median_train_to_train']:.3f} (real, leave-one-out)")
    t.add_row("memorisation: ratio / suspected copies", f"{mem['ratio']:.2f} / {mem['suspected_copy_fraction']:.1%}",
              f"threshold {mem['copy_threshold']:.3f}")
    closest = ", ".join(f"{p['distance']:.3f}" for p in eff["closest_pairs"])
    t.add_row("5 closest pairs (cosine distance)", closest, "")
    console.print(t)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    if args.n < 2 * (args.k + 1) or args.k < 1:
        console.print(f"error: --n must be at least {2 * (args.k + 1)} and --k at least 1")
        return 2
    set_threads(args.threads)
    cpu = lscpu()
    console.print(cpu_line(cpu))
    console.print(f"flags: {' '.join(cpu['flags'])}", style="dim", markup=False)
    from passersby.checkpoint import CheckpointError
    from passersby.metrics.quality import measure_quality
    from passersby.metrics.reference import ReferenceError, load_reference
    from passersby.metrics.sheets import contact_sheet, pairs_image, save_jpeg

    result: dict[str, Any] = {"machine": machine_info(), "lscpu": cpu,
                              "args": {k: str(v) for k, v in vars(args).items()}}
    meter, wall0 = CpuMeter(), time.perf_counter()
    try:
        t0 = time.perf_counter()
        fake, result["model"] = generate(args.model, args.n, args.seed)
        result["model"]["sample_seconds"] = time.perf_counter() - t0
        ref = load_reference(args.data, fake.shape[1])
    except (CheckpointError, ReferenceError, ValueError) as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    result["reference"] = ref.describe()
    console.print(f"model {result['model']['path']} ({result['model']['hash']}); "
                  f"real: {len(ref.images)} images ({ref.kind}) from {ref.root}", markup=False)
    measured = measure_quality(fake, ref.images, seed=args.seed, k=args.k)
    result.update(measured.report)
    for pair in result["effnet"]["closest_pairs"]:
        pair["train_file"] = ref.names[pair["train"]]
    result["wall_seconds"] = time.perf_counter() - wall0
    result["cpu"] = meter.stop()
    result["machine_end"] = machine_info()
    print_table(console, result)
    if args.sheet:
        sheet = contact_sheet(fake[:SHEET_FACES], ncol=8, tile=SHEET_TILE, found=measured.fake_found[:SHEET_FACES])
        size = save_jpeg(args.sheet, sheet, JPEG_QUALITY)
        console.print(f"contact sheet: {args.sheet} ({size // 1024} KB; dot green = face found, red = not)")
    if args.pairs:
        size = save_jpeg(args.pairs, pairs_image(fake, ref.images, measured.pairs, PAIR_TILE), JPEG_QUALITY)
        console.print(f"closest pairs: {args.pairs} ({size // 1024} KB; top generated, below nearest real)")
    write_json(args.json, result)
    note = busy_note(result["cpu"])
    console.print(f"{result['wall_seconds']:.0f} s wall (sampling {result['model']['sample_seconds']:.0f} s; "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items()) + ")")
    if note:
        console.print(note, style="yellow")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
