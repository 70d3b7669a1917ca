"""Blind test: can a judge tell a model's faces from held-out paintings? Make a sheet, score it.

`make` draws --n real faces from a prepared held-out set (paintings never used for training:
`passersby prepare ... --split held-out`) and --n random faces of a model, gives all of them the
same size (--size, Lanczos from the 256² aligned crops), shuffles them with --seed and writes:

- OUT/sheet-SEED.jpg (and .png, the same decoded pixels): an 8-column grid, every face numbered 1..2n beneath it: what the judge sees;
- OUT/key-SEED.json: which numbers are generated, the real files, the model's hash, the latent
  seed: what the judge must never see (keep it apart until scoring).

`score` reads a key and the judge's answer (the numbers marked generated, any separators) and
writes the accuracy: share of the 2n faces classed right (chance 0.5), hits, false alarms.
`summary` averages several scored sheets.

Usage:
    python benchmarks/blind.py make default --real runs/data/heldout --seed 1 --out docs/blind
    python benchmarks/blind.py score docs/blind/key-1.json --answer "3 7 12 ..." --json docs/blind/score-1.json
    python benchmarks/blind.py summary docs/blind/score-*.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_json

NCOL, LABEL_H = 8, 22


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example:\n  python benchmarks/blind.py make default --real data/held --seed 1 --out out/")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write a shuffled sheet and its key")
    mk.add_argument("model", help="model .safetensors, or 'default' for the shipped one")
    mk.add_argument("--real", type=Path, required=True, help="prepared held-out dataset (or folder of faces)")
    mk.add_argument("--seed", type=int, required=True, help="picks the real faces, the latents and the order")
    mk.add_argument("--out", type=Path, required=True, help="folder for sheet-SEED.jpg and key-SEED.json")
    mk.add_argument("--n", type=int, default=32, help="faces of each kind (default 32)")
    mk.add_argument("--size", type=int, default=160, help="side of each face in pixels (default 160)")
    mk.add_argument("--choose", type=int, default=4, help="--steer screens: candidates each face is chosen "
                    "from, as model.choose (default 4; 0 = pushed to the file's offsets)")
    mk.add_argument("--steer", choices=("none", "screens"), default="none",
                    help="none: random faces; screens: half masculine, half feminine, as the screens show them")
    sc = sub.add_parser("score", help="score a judge's answer against a key")
    sc.add_argument("key", type=Path)
    sc.add_argument("--answer", required=True, help="numbers marked generated (text, or @FILE to read it)")
    sc.add_argument("--json", type=Path, default=None)
    sm = sub.add_parser("summary", help="mean accuracy of scored sheets")
    sm.add_argument("scores", type=Path, nargs="+")
    sm.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def _resize(faces: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS)) for f in faces])


def _generated(model: str, n: int, seed: int, steer: str, choose: int) -> tuple[np.ndarray, dict[str, Any]]:
    from passersby.model.load import load_choice
    from passersby.sample import default_model_path, sample

    path = default_model_path() if model == "default" else Path(model)
    if steer == "none":
        faces, info = sample(path, n, seed)
        return faces, {"path": str(info.path), "hash": info.hash, "latent_seed": seed, "steer": steer}
    a, info = sample(path, n // 2, seed, class_name="masculine")
    choice = load_choice(info) if choose > 1 else None
    if choice is None:  # pushed to the file's offsets, as a screen with model.choose = 0
        b, _ = sample(path, n - n // 2, seed + 1, class_name="feminine")
        faces = np.concatenate([a, b])
    else:  # chosen, as the installation's screens choose (model/choose.py)
        faces = _chosen(path, {"masculine": (n // 2, seed), "feminine": (n - n // 2, seed + 1)}, choice, choose)
    return faces, {"path": str(info.path), "hash": info.hash, "latent_seed": seed, "steer": steer,
                   "choose": choose if choice is not None else 0}


def _chosen(path: Path, screens: dict[str, tuple[int, int]], choice: Any, k: int) -> np.ndarray:
    """Faces of screens that choose among k candidates, as the installation draws them:
    screens {label: (n, seed)} -> (sum n, H, W, 3), in the order given."""
    from passersby.checkpoint import load_model
    from passersby.metrics.features import FeatureExtractor
    from passersby.model.choose import choosing_proposer, sex_reader
    from passersby.model.load import load_direction
    from passersby.runtime import make_renderer

    g, info = load_model(path)
    render, fx = make_renderer(g.float().eval(), "torch", 1), FeatureExtractor()
    d = load_direction(info.meta)
    out = []
    for label, (n, seed) in screens.items():
        propose = choosing_proposer(info.config.z_dim, d.vector, choice, label, k, sex_reader(render, fx, choice, label))
        rng = np.random.default_rng([seed, 7])
        out.append(render(np.stack([propose(rng) for _ in range(n)]).astype(np.float32)))
    return np.concatenate(out)


def sheet_image(faces: np.ndarray, numbers: list[int]) -> Any:
    """faces (N, S, S, 3) uint8 -> an 8-column grid with each face's number beneath it."""
    from PIL import Image, ImageDraw, ImageFont

    n, s = len(faces), faces.shape[1]
    rows = (n + NCOL - 1) // NCOL
    pad = 4
    im = Image.new("RGB", (NCOL * (s + pad) + pad, rows * (s + LABEL_H + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1 has one size only
        font = ImageFont.load_default()
    for i, (face, num) in enumerate(zip(faces, numbers)):
        x, y = pad + (i % NCOL) * (s + pad), pad + (i // NCOL) * (s + LABEL_H + pad)
        im.paste(Image.fromarray(face), (x, y))
        draw.text((x + s // 2, y + s + 2), str(num), fill=(0, 0, 0), font=font, anchor="mt")
    return im


def make(args: argparse.Namespace) -> int:
    from passersby.metrics.reference import ReferenceError, load_reference

    try:
        ref = load_reference(args.real, 256)
    except ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(ref.images) < args.n:
        print(f"error: {args.real}: {len(ref.images)} real faces, fewer than --n {args.n}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    real_idx = rng.choice(len(ref.images), size=args.n, replace=False)
    fake, model = _generated(args.model, args.n, 10_000 + args.seed, args.steer, args.choose)
    faces = np.concatenate([_resize(ref.images[real_idx], args.size), _resize(fake, args.size)])
    order = rng.permutation(2 * args.n)  # position p shows face order[p]
    shown = faces[order]
    numbers = list(range(1, 2 * args.n + 1))
    args.out.mkdir(parents=True, exist_ok=True)
    sheet = args.out / f"sheet-{args.seed}.jpg"
    # One JPEG for the whole sheet: every face gets the same compression, real or generated.
    sheet_image(shown, numbers).save(sheet, quality=92)
    # The same pixels, losslessly, for judges whose image viewer shows PNG only (the agents' does).
    from PIL import Image

    with Image.open(sheet) as im:
        im.save(sheet.with_suffix(".png"))
    key = {"seed": args.seed, "n": args.n, "size": args.size, "sheet": sheet.name, "model": model,
           "real_set": str(args.real),
           "generated": sorted(int(p + 1) for p in np.flatnonzero(order >= args.n)),
           "real": {str(int(p + 1)): ref.names[int(real_idx[order[p]])] for p in np.flatnonzero(order < args.n)}}
    write_json(args.out / f"key-{args.seed}.json", key)
    print(f"sheet: {sheet}  key: {args.out / f'key-{args.seed}.json'} (keep it from the judge)")
    return 0


def parse_answer(text: str, total: int) -> set[int]:
    """The numbers in a judge's answer (any separators), each checked to be on the sheet."""
    nums = {int(t) for t in re.findall(r"\d+", text)}
    bad = sorted(x for x in nums if not 1 <= x <= total)
    if bad:
        raise ValueError(f"answer names faces that are not on the sheet: {bad} (1..{total})")
    return nums


def score_answer(key: dict[str, Any], marked: set[int]) -> dict[str, Any]:
    """Accuracy of a judge who marked `marked` as generated, against `key`.

    Example:
        >>> score_answer({"n": 2, "generated": [1, 3]}, {1, 2})["accuracy"]
        0.5
    """
    total = 2 * key["n"]
    gen = set(key["generated"])
    hits, false_alarms = len(marked & gen), len(marked - gen)
    correct = hits + (total - len(gen) - false_alarms)
    return {"seed": key.get("seed"), "model": key.get("model"), "marked": sorted(marked),
            "n_marked": len(marked), "hits": hits, "false_alarms": false_alarms,
            "accuracy": correct / total, "hit_rate": hits / len(gen),
            "false_alarm_rate": false_alarms / (total - len(gen))}


def score(args: argparse.Namespace) -> int:
    key = json.loads(args.key.read_text())
    text = Path(args.answer[1:]).read_text() if args.answer.startswith("@") else args.answer
    try:
        result = score_answer(key, parse_answer(text, 2 * key["n"]))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(args.json, result)
    print(f"sheet {key['seed']}: accuracy {result['accuracy']:.1%} ({result['hits']} of {len(key['generated'])} "
          f"generated found, {result['false_alarms']} real faces called generated)")
    return 0


def summary(args: argparse.Namespace) -> int:
    rows = [json.loads(p.read_text()) for p in args.scores]
    acc = [r["accuracy"] for r in rows]
    result = {"sheets": len(rows), "mean_accuracy": float(np.mean(acc)), "accuracies": acc,
              "models": sorted({r["model"]["hash"] for r in rows if r.get("model")})}
    write_json(args.json, result)
    print(f"{len(rows)} sheets: mean accuracy {result['mean_accuracy']:.1%} ({', '.join(f'{a:.0%}' for a in acc)})")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return {"make": make, "score": score, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
