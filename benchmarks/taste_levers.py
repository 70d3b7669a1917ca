"""Offline check of a taste-model lever: many simulated curators on a fixed pool of rendered faces.

benchmarks/taste.py renders every face it shows and judges it live: ~4 min per taste and seed,
and ONE curator per cell, whose 50 swipes are chaotic (a face liked or not changes every later
choice), so two runs of the same model differ by 10-30 points (--curators there shows it). A
lever worth shipping must beat that spread. Here the faces are rendered and judged once (a pool
of --pool-size faces: latents, true EfficientNet-Lite0 features, each hidden taste's judgement,
the same judges and thresholds as taste.py, percentiles over the pool), and each curator runs in
seconds, so a lever is measured over many curators.

A curator: --swipes swipes, each chosen by active.choose_next's rule (64 pool faces drawn; with
probability --explore the most informative, else the most liked), judged by the hidden taste,
the model refitted on the rated faces' TRUE features (as the swipe app does); then the stream:
100 anchors, each the most liked of 64 pool faces (steer at exactingness 1.0). Reported per
taste and variant: the share of anchors liked at 25 and 50 swipes (mean and min over curators),
the model's AUC on 1,500 pool faces at 50, the median refit time.

A variant is a '+'-joined list of overrides of taste/picture.py's constants (e.g.
"BLOCK_EVIDENCE=true", "Z_SCALE=0.5+BLOCK_EVIDENCE=head"), "explore=0.5", "bandwidth=0.7" (times
the kernel's median-distance bandwidth), "rerank=K" (the stream renders its K best guesses and keeps
the best seen: taste/steer.ranked, with the pool's true features), "head=PATH" (another feature head
file of the shipped model), or "z" (the z-only model.TasteModel); "shipped" is the package as it is.

Usage:
    python benchmarks/taste_levers.py --pool out/taste-pool.npz --pool-size 5000   # builds the pool once (~2 h)
    python benchmarks/taste_levers.py --pool out/taste-pool.npz --variants shipped z BLOCK_EVIDENCE=true \\
        --tastes portraits masculine --curators 16 --json out/levers.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only add overhead

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from _common import CpuMeter, machine_info, median, write_json  # noqa: E402

TASTES = ("portraits", "masculine", "old", "darker", "warm")
CANDIDATES, ANCHORS, EVAL = 64, 100, 1500


def build_pool(path: Path, n: int, seed: int = 0) -> None:
    """Render n faces of the shipped model and judge them with every hidden taste of taste.py."""
    import torch

    import taste as bench
    from passersby.checkpoint import load_model
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path
    from PIL import Image

    torch.set_num_threads(1)
    g, _ = load_model(default_model_path())
    render = make_renderer(g.float().eval(), "auto", threads=1)
    refs = np.stack([np.asarray(Image.open(bench.ROOT / "tests/fixtures/portraits" / f).convert("RGB"))
                     for f in bench.REFERENCE_PORTRAITS])
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("z", "f", "dark", "warm", "masc", "age")}
    for c in range(0, n, 100):
        z = np.random.default_rng([seed, c]).standard_normal((min(100, n - c), bench.Z_DIM))
        im = render(z.astype(np.float32))
        for k, v in (("z", z), ("f", bench._features(im).astype(np.float32)), ("dark", bench.border_brightness(im)),
                     ("warm", bench.warmth(im)), ("masc", bench.masculine(im)), ("age", bench.age(im))):
            cols[k].append(v)
        print(f"pool: {c + len(z)} / {n} faces", flush=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ref=bench._features(refs), **{k: np.concatenate(v) for k, v in cols.items()})
    os.replace(tmp, path)  # atomic: a half-built pool is never read


def judgements(pool: Any) -> dict[str, np.ndarray]:
    """Each hidden taste's like (bool) per pool face, thresholds as taste.py's (percentiles over the pool)."""
    f = pool["f"].astype(np.float64)
    sim = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ pool["ref"].T
    sim = sim.max(1)
    return {"portraits": sim >= np.percentile(sim, 70), "masculine": pool["masc"] == 1.0,
            "old": pool["age"] >= np.nanpercentile(pool["age"], 70),
            "darker": pool["dark"] < np.percentile(pool["dark"], 30),
            "warm": pool["warm"] >= np.percentile(pool["warm"], 70)}


def make_fit(variant: str, z: np.ndarray, f: np.ndarray, prior: np.ndarray, head: Any) -> tuple[Callable, float, int]:
    """(fit(rated indices, ratings) -> model scoring latents, explore) for a variant name."""
    import passersby.taste.picture as picture
    from passersby.taste.model import TasteModel

    explore, rerank = 0.7, 0
    defaults = _SHIPPED
    for k, v in defaults.items():  # every variant starts from the package as it is, not from the last variant
        setattr(picture, k, v)
    picture._bandwidth = _BANDWIDTH
    z_only = False
    for part in variant.split("+"):
        if part in ("shipped", ""):
            continue
        if part == "z":
            z_only = True
            continue
        key, _, value = part.partition("=")
        if key == "explore":
            explore = float(value)
        elif key == "head":  # another feature head file for the same generator (head.FeatureHead.load)
            from passersby.taste.head import FeatureHead

            head = FeatureHead.load(Path(value), head.model_hash)
        elif key == "rerank":  # the stream renders its K most liked candidates and re-scores them seen
            rerank = int(value)
        elif key == "bandwidth":
            picture._bandwidth = lambda c, g, k=float(value): k * _BANDWIDTH(c, g)
        elif key in defaults:
            cur = defaults[key]
            if isinstance(cur, tuple):  # "BANDWIDTH_FACTORS=0.5/0.7/1"
                setattr(picture, key, tuple(float(v) for v in value.split("/")))
            else:
                setattr(picture, key, value if isinstance(cur, str) else type(cur)(float(value)))
        else:
            raise SystemExit(f"unknown override {part!r} in variant {variant!r}")
    if z_only:
        return (lambda idx, r: TasteModel.fit(z[idx], r, prior=prior)), explore, 0
    return (lambda idx, r: picture.PictureTaste.fit(z[idx], r, head, prior, features=f[idx])), explore, rerank


def best(model: Any, cand: np.ndarray, z: np.ndarray, f: np.ndarray, rerank: int) -> int:
    """The stream's anchor among pool faces `cand`: the most liked, or, with rerank K, the most liked
    of the K best guesses once rendered (their true features)."""
    p = model.prob(z[cand])
    if rerank <= 1:
        return int(cand[int(np.argmax(p))])
    top = cand[np.argsort(-p)[:rerank]]
    return int(top[int(np.argmax(model.prob_seen(z[top], f[top])))])


def curator(fit: Callable, explore: float, z: np.ndarray, like: np.ndarray, seed: int, swipes: int,
            f: np.ndarray | None = None, rerank: int = 0) -> dict[str, Any]:
    """One simulated curator; the draws depend on the seed only, not on the variant."""
    from passersby.taste.active import information_gain
    from passersby.taste.model import roc_auc

    n = len(z)
    rng = np.random.default_rng([seed, 1])
    test = np.random.default_rng([seed, 9]).choice(n, min(n, EVAL), replace=False)
    model, rated, ratings, out, times = None, [], [], {}, []
    for i in range(1, swipes + 1):
        exploring = rng.random() < explore  # tossed first and always, as choose_next does
        cand = rng.choice(n, CANDIDATES)
        if model is None:
            pick = cand[0]
        else:
            score = information_gain(model, z[cand]) if exploring else model.prob(z[cand])
            pick = cand[int(np.argmax(score))]
        rated.append(pick)
        ratings.append("like" if like[pick] else "dislike")
        t0 = time.perf_counter()
        model = fit(np.array(rated), ratings)
        times.append(time.perf_counter() - t0)
        if i in (min(25, swipes), swipes):
            srng = np.random.default_rng([seed, 2])
            anchors = [best(model, srng.choice(n, CANDIDATES), z, f, rerank) for _ in range(ANCHORS)]
            out[i] = {"liked": float(like[anchors].mean()),
                      "auc": roc_auc(model.prob(z[test]), like[test].astype(float))}
    return {"cells": out, "refit_ms": 1e3 * median(times)}


_BANDWIDTH: Callable = None  # type: ignore[assignment]  # picture._bandwidth as shipped, set in main
_SHIPPED: dict[str, Any] = {}  # picture's constants as shipped, read in main before any variant


def main(argv: list[str]) -> int:
    global _BANDWIDTH
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="pool file (.npz); built when missing")
    ap.add_argument("--pool-size", type=int, default=5000, help="faces in a new pool")
    ap.add_argument("--variants", nargs="+", default=["shipped", "z"])
    ap.add_argument("--tastes", nargs="+", default=list(TASTES), choices=TASTES)
    ap.add_argument("--curators", type=int, default=16)
    ap.add_argument("--swipes", type=int, default=50)
    ap.add_argument("--prior-seed", type=int, default=1007, help="seed of the salience prior's renders")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.pool.exists():
        build_pool(args.pool, args.pool_size)
    import passersby.taste.picture as picture
    from passersby.checkpoint import load_model
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path
    from passersby.taste.head import FeatureHead, shipped_head_path
    from passersby.taste.model import salience_prior

    _BANDWIDTH = picture._bandwidth
    _SHIPPED.update({k: getattr(picture, k) for k in ("BLOCK_EVIDENCE", "Z_SCALE", "MIN_RATINGS_FOR_BLOCKS",
                                                      "MAX_CENTRES", "BANDWIDTH_FACTORS")})
    meter = CpuMeter()
    pool = np.load(args.pool)
    z, f = pool["z"].astype(np.float64), pool["f"].astype(np.float64)
    g, info = load_model(default_model_path())
    prior = salience_prior(make_renderer(g.float().eval(), "auto", threads=1), z.shape[1], seed=args.prior_seed)
    head = FeatureHead.load(shipped_head_path(info.hash), info.hash)
    likes = judgements(pool)
    res: dict[str, Any] = {"machine": machine_info(), "args": {k: str(v) if isinstance(v, Path) else v
                                                               for k, v in vars(args).items()},
                           "pool_faces": len(z), "results": {}}
    for taste in args.tastes:
        for variant in args.variants:
            fit, explore, rerank = make_fit(variant, z, f, prior, head)
            runs = [curator(fit, explore, z, likes[taste], s, args.swipes, f, rerank) for s in range(args.curators)]
            row = {"liked25": [r["cells"][min(25, args.swipes)]["liked"] for r in runs],
                   "liked50": [r["cells"][args.swipes]["liked"] for r in runs],
                   "auc50": [r["cells"][args.swipes]["auc"] for r in runs], "refit_ms": [r["refit_ms"] for r in runs]}
            res["results"].setdefault(taste, {})[variant] = row
            print(f"{taste:10s} {variant:30s} liked at 25: {np.mean(row['liked25']):.2f}  at {args.swipes}: "
                  f"{np.mean(row['liked50']):.2f} (min {np.min(row['liked50']):.2f}, "
                  f"max {np.max(row['liked50']):.2f})  AUC {np.mean(row['auc50']):.3f} "
                  f"(min {np.min(row['auc50']):.3f})  refit {median(row['refit_ms']):.0f} ms",
                  flush=True)
    res["cpu"] = meter.stop()
    res["machine_end"] = machine_info()
    print(f"CPU: {res['machine']['cpu']} ({' '.join(res['machine']['simd_flags'])})")
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
