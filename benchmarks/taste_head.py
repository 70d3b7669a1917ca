"""How well, and how cheaply, does the feature head see the picture? (taste/head.py)

Renders --faces fresh faces of the shipped model (latents the head never saw), embeds them with
EfficientNet-Lite0 and compares with the head's prediction from z alone:

    R² per component        1 - MSE / variance of the true (standardised) PCA scores
    cosine                  between the true and the predicted PCA-score vectors
    rank agreement          Spearman correlation, over the faces, of "similarity to 5 fixture
                            portraits" computed from predicted vs true scores (the benchmark's
                            "like these portraits" judge uses the full 1280 features instead)

and times the two ways of getting picture features for the 64 candidates of one anchor: the
head (z -> features) and rendering + embedding (256 px render, EfficientNet at 224 px; and a
96 px render, what "render candidates small" would cost). --build builds (or rebuilds) the head
into --home's cache first; without it the cached or shipped head is used.

Usage:
    python benchmarks/taste_head.py --json out/taste_head.json
    python benchmarks/taste_head.py --build --samples 6000 --home /tmp/h   # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import CpuMeter, busy_note, machine_info, median, write_json
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
PORTRAITS = ("girl-with-a-fan.jpg", "man-with-a-pipe-1892.jpg", "pope-julius-ii.jpg", "portrait-of-a-lady.jpg",
             "the-geisha-kamekichi.jpg")


def _embed(images: np.ndarray) -> np.ndarray:
    import torch

    from passersby.metrics.features import FeatureExtractor

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return FeatureExtractor(batch_size=32).extract(x).numpy().astype(np.float64)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=256, help="fresh faces to check the head on")
    ap.add_argument("--home", type=Path, default=ROOT / "out" / "taste-home", help="home whose cache holds the head")
    ap.add_argument("--build", action="store_true", help="build the head into --home's cache first")
    ap.add_argument("--samples", type=int, default=6000, help="faces to build the head from (--build)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console(width=120)
    res = run(args, console)
    console.print(f"feature head of {res['model_hash']} ({res['head_samples']} training faces): held-out R² "
                  f"mean {res['r2_train_holdout_mean']:.2f}; on {args.faces} fresh faces: R² mean "
                  f"{res['r2_fresh_mean']:.2f} (first 8: {res['r2_fresh_first8']:.2f}), cosine "
                  f"{res['cosine_median']:.2f} median, portrait-similarity rank agreement "
                  f"{res['portrait_spearman']:.2f}")
    t = res["ms_per_64_candidates"]
    console.print(f"features of 64 candidates: head {t['head']:.2f} ms; render 256 px + EfficientNet "
                  f"{t['render256_effnet']:.0f} ms; render 96 px + EfficientNet {t['render96_effnet']:.0f} ms")
    console.print(f"CPU: {res['machine']['cpu']}")
    note = busy_note(res["cpu"])
    if note:
        console.print(f"[yellow]{note}[/yellow]")
    write_json(args.json, res)
    return 0


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    import torch
    from PIL import Image

    from passersby.checkpoint import load_model
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path
    from passersby.taste.head import HeadConfig, cached_head, head_path

    meter = CpuMeter()
    torch.set_num_threads(args.threads)
    g, info = load_model(default_model_path())
    renderer = make_renderer(g.float().eval(), "auto", threads=args.threads)
    if args.build:
        head_path(args.home, info.hash).unlink(missing_ok=True)
    head = cached_head(args.home, info.hash, renderer, 128, HeadConfig(samples=args.samples),
                       on_compute=lambda why: console.print(f"building the head: {why}"), threads=args.threads)
    z = np.random.default_rng([args.seed, 77]).standard_normal((args.faces, 128)).astype(np.float32)
    images = renderer(z)
    true = head.project(_embed(images))  # (n, pca)
    pred = head(z)  # (n, pca)
    r2 = 1.0 - ((pred - true) ** 2).mean(0) / true.var(0)
    cos = (pred * true).sum(1) / np.linalg.norm(pred, axis=1) / np.linalg.norm(true, axis=1)
    refs = np.stack([np.asarray(Image.open(ROOT / "tests/fixtures/portraits" / f).convert("RGB").resize((256, 256)))
                     for f in PORTRAITS])
    ref_p = head.project(_embed(refs))  # (5, pca)

    def similarity(p: np.ndarray) -> np.ndarray:
        return -np.linalg.norm(p[:, None] - ref_p[None], axis=2).min(1)

    timings: dict[str, list[float]] = {"head": [], "render256_effnet": [], "render96_effnet": []}
    for i in range(3):
        zc = np.random.default_rng([args.seed, 78, i]).standard_normal((64, 128)).astype(np.float32)
        t0 = time.perf_counter()
        head(zc)
        timings["head"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _embed(renderer(zc))
        timings["render256_effnet"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        small = np.stack([np.asarray(Image.fromarray(x).resize((96, 96), Image.BILINEAR)) for x in renderer(zc)])
        _embed(small)  # the renderer has one size: this is the embedding cost of a 96 px candidate
        timings["render96_effnet"].append(time.perf_counter() - t0)
    return {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "model_hash": info.hash,
            "head_samples": head.config.samples, "r2_train_holdout_mean": float(head.r2.mean()),
            "r2_train_holdout": head.r2.tolist(), "r2_fresh": r2.tolist(), "r2_fresh_mean": float(r2.mean()),
            "r2_fresh_first8": float(r2[:8].mean()), "cosine_median": float(np.median(cos)),
            "portrait_spearman": _spearman(similarity(pred), similarity(true)),
            "ms_per_64_candidates": {k: 1e3 * median(v) for k, v in timings.items()}, "cpu": meter.stop()}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
