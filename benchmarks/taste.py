"""Does the stream learn a curator's taste? Simulated curators swipe real faces of the shipped model.

Each simulated curator has a hidden taste, judged on the rendered face (the code under test
only ever sees latents and ratings):

    darker backgrounds    mean brightness of the outer 12 % frame below the 30th percentile of
                          random faces (so ~30 % of random faces are liked)
    like these portraits  EfficientNet-Lite0 features closest (max cosine) to 5 fixture
                          portraits, above the 70th percentile of random faces (~30 % liked)
    masculine screen      the independent gender classifier calls the face masculine
    old faces             the independent age estimator (metrics/gender.py's package, never seen by a
                          taste model) puts the face above the 70th percentile of random faces
    warm palette          mean (R - B) of the whole picture above the 70th percentile (a pixel
                          statistic; the taste models see latents, or features predicted from them)

Each curator swipes once with each taste model (--models): "z" (model.TasteModel, linear in z
with the salience prior) and "picture" (picture.PictureTaste: fitted on the TRUE EfficientNet-Lite0
features of the faces the curator rated, which are rendered to be judged and embedded as the
swipe app does, taste/features.py; candidates scored through the feature head's prediction,
taste/head.py), from the same seeds; "picture-head" is the same model fitted on the head's
predictions for the rated faces too (no embedding: what true features add).

The curator swipes as the app would: `choose_next` picks the face, the taste judges it,
`TasteModel.fit` refits on all ratings so far, with the salience prior of the shipped model
(`model.salience_prior`, from 512 renders that no taste sees; --prior none for the isotropic
one). Before training and after 25, 50 and 100 swipes
the stream (`steer` over the unsteered proposer z ~ N(0, I)) draws --anchors anchors at
exactingness 0.5 and 1.0 (the picture model's stream looks at its --rerank best guesses, rendered and
embedded, as the installation's does: taste.rerank); they are rendered and judged by the hidden taste. Reported: share of
streamed anchors liked, their diversity (mean pairwise distance; % of the untrained stream's),
the model's AUC against the hidden taste on the calibration faces, and the time to refit after
a rating and to choose the next face; and, through the taste app's HTTP server, the time from a
rating to its answer (--server-ratings). Every cell streams from the same seed (common random
numbers), so differences between cells come from the model, not from the draws.

Usage:
    python benchmarks/taste.py --json out/taste.json            # ~10 min on a 2-core CPU
    python benchmarks/taste.py --tastes darker --anchors 50      # one taste, quicker
"""

from __future__ import annotations

import os

# Small (129 x 129) matrices: OpenBLAS's thread pool only spins against the renderer here,
# making every refit several times slower on a 2-core machine. Must precede numpy's import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from _common import CpuMeter, busy_note, machine_info, median, write_json  # noqa: E402
from passersby.taste.active import choose_next  # noqa: E402
from passersby.taste.features import embed  # noqa: E402
from passersby.taste.model import TasteModel, evaluate, roc_auc, salience_prior  # noqa: E402
from passersby.taste.picture import PictureTaste, evaluate_picture  # noqa: E402
from passersby.settings import TasteSettings  # noqa: E402
from passersby.taste.steer import diversity, steer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Z_DIM = 128
BORDER = 0.12
REFERENCE_PORTRAITS = ("girl-with-a-fan.jpg", "man-with-a-pipe-1892.jpg", "pope-julius-ii.jpg",
                       "portrait-of-a-lady.jpg", "the-geisha-kamekichi.jpg")
TASTES = ("darker", "portraits", "masculine", "old", "warm")
MODELS = ("z", "picture", "picture-head")


def base(rng: np.random.Generator) -> np.ndarray:
    """The unsteered proposer."""
    return rng.standard_normal(Z_DIM)


# ---------------------------------------------------------------- hidden tastes (image -> score)


def border_brightness(images: np.ndarray) -> np.ndarray:
    """(n,) mean luma of the outer BORDER frame of (n, H, W, 3) uint8 images."""
    x = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (n, H, W)
    k = round(BORDER * images.shape[1])
    mask = np.ones(images.shape[1:3], bool)
    mask[k:-k, k:-k] = False
    return x[:, mask].mean(1)


def _features(images: np.ndarray) -> np.ndarray:
    import torch

    from passersby.metrics.features import FeatureExtractor

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    f = FeatureExtractor(batch_size=16).extract(x).numpy().astype(np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def portrait_similarity(reference: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """images -> (n,) max cosine similarity of their features to the reference features."""
    return lambda images: (_features(images) @ reference.T).max(1)


def masculine(images: np.ndarray) -> np.ndarray:
    """(n,) 1.0 where the classifier says masculine, 0.0 feminine, NaN no face."""
    from passersby.metrics.gender import classify_gender

    lab = [label for label, _ in classify_gender(list(images))]
    return np.array([1.0 if v == "masculine" else 0.0 if v == "feminine" else np.nan for v in lab])


def age(images: np.ndarray) -> np.ndarray:
    """(n,) the independent estimator's age of the largest face, NaN no face."""
    from passersby.metrics.gender import _largest_face, _predictor, _prepare

    out = []
    for image in images:
        faces = _predictor().predict(_prepare(np.asarray(image)))
        out.append(float(_largest_face(faces)["age"]["value"]) if faces else np.nan)
    return np.array(out)


def warmth(images: np.ndarray) -> np.ndarray:
    """(n,) mean red minus mean blue over the picture, in 0..255 units."""
    x = images.astype(np.float32)
    return x[..., 0].mean((1, 2)) - x[..., 2].mean((1, 2))


class Taste:
    """A hidden taste: score(images), and a threshold on the score that makes a like.

    `calibration` holds the scores of the random calibration faces (computed once).
    """

    def __init__(self, name: str, score: Callable, calibration: np.ndarray, threshold: float, below: bool) -> None:
        self.name, self.score, self.calibration = name, score, calibration
        self.threshold, self.below = threshold, below

    def rule(self, scores: np.ndarray) -> np.ndarray:
        return (scores < self.threshold) if self.below else (scores >= self.threshold)  # NaN: not liked

    def likes(self, images: np.ndarray) -> np.ndarray:
        return self.rule(self.score(images))


def make_tastes(names: list[str], calibration: np.ndarray) -> list[Taste]:
    """The hidden tastes, thresholds calibrated on random faces."""
    from PIL import Image

    out = []
    for name in names:
        if name == "darker":
            s = border_brightness(calibration)
            out.append(Taste("darker backgrounds", border_brightness, s, float(np.percentile(s, 30)), True))
        elif name == "portraits":
            refs = np.stack([np.asarray(Image.open(ROOT / "tests/fixtures/portraits" / f).convert("RGB"))
                             for f in REFERENCE_PORTRAITS])
            score = portrait_similarity(_features(refs))
            s = score(calibration)
            out.append(Taste("like these portraits", score, s, float(np.percentile(s, 70)), False))
        elif name == "masculine":
            out.append(Taste("masculine screen", masculine, masculine(calibration), 0.5, False))
        elif name == "old":
            s = age(calibration)
            out.append(Taste("old faces", age, s, float(np.nanpercentile(s, 70)), False))
        elif name == "warm":
            s = warmth(calibration)
            out.append(Taste("warm palette", warmth, s, float(np.percentile(s, 70)), False))
        else:
            raise SystemExit(f"unknown taste {name!r}; choose from {TASTES}")
    return out


# ---------------------------------------------------------------- simulation


def stream_cell(model: Any, e: float, renderer: Callable, taste: Taste, n: int, seed: int,
                untrained_div: float, rerank: int = 0) -> dict[str, Any]:
    look = None
    if rerank > 1:  # as the installation's look (app/installation._look): render, then embed
        fx = _extractor()
        look = lambda z: embed(renderer(np.asarray(z, np.float32)), fx)  # noqa: E731
    st = steer(base, model, e, look=look, rerank=rerank if look is not None else 0)
    rng = np.random.default_rng([seed, 2])
    anchors = np.stack([st(rng) for _ in range(n)])
    liked = taste.likes(renderer(anchors.astype(np.float32)))
    div = diversity(anchors)
    return {"exactingness": e, "liked": float(liked.mean()), "diversity": div,
            "diversity_pct_of_untrained": 100.0 * div / untrained_div}


_EXTRACTOR: list[Any] = []


def _extractor() -> Any:
    """One EfficientNet-Lite0 extractor for every look of the run (building it is the slow part)."""
    if not _EXTRACTOR:
        from passersby.metrics.features import FeatureExtractor
        from passersby.taste.features import EMBED_BATCH

        _EXTRACTOR.append(FeatureExtractor(batch_size=EMBED_BATCH))
    return _EXTRACTOR[0]


def fitter(kind: str, args: argparse.Namespace, prior: np.ndarray | None, head: Any) -> tuple[Callable, ...]:
    """(empty() -> model, fit(z, ratings, features) -> model, evaluate(z, ratings, features) -> dict,
    whether the model wants the true features of the rated faces) of taste model `kind`."""
    if kind == "z":
        return (lambda: TasteModel.empty(Z_DIM, args.features, prior=prior),
                lambda z, r, f: TasteModel.fit(z, r, features=args.features, prior=prior),
                lambda z, r, f: evaluate(z, r, features=args.features, prior=prior), False)
    true = kind == "picture"
    return (lambda: PictureTaste.empty(head, prior),
            lambda z, r, f: PictureTaste.fit(z, r, head, prior, features=f if true else None),
            lambda z, r, f: evaluate_picture(z, r, head, prior, features=f if true else None), true)


def swipe(taste: Taste, renderer: Callable, args: argparse.Namespace, kind: tuple[Callable, Callable, Callable],
          cal_z: np.ndarray, cal_liked: np.ndarray, untrained_div: float, index: int,
          curator: int = 0, cal_feats: np.ndarray | None = None) -> dict[str, Any]:
    """One curator with one taste model: --swipes swipes, stream cells at each checkpoint.

    The rng depends on the curator only, not on the model: both models see the same draws.
    `cal_feats` (n, F): the calibration faces' true features; a model fitted on true features is
    also scored on them ("model_auc_seen": the AUC of the judgement the look makes).
    """
    empty, fit, held_out, wants_features = kind
    # Curator 0 keeps the draws of the runs before --curators; others swipe their own sequence.
    rng = np.random.default_rng([args.seed, index, 1] if curator == 0 else [args.seed, index, 1, curator])
    model = empty()
    zs, ratings, feats, fit_s, choose_s, embed_s, cells = [], [], [], [], [], [], []
    for i in range(1, max(args.checkpoints) + 1):
        t0 = time.perf_counter()
        z = choose_next(model, base, rng, explore=args.explore)
        choose_s.append(time.perf_counter() - t0)
        image = renderer(z[None].astype(np.float32))  # the face the curator sees
        liked = bool(taste.likes(image)[0])
        if wants_features:  # as the swipe app's render worker does, before the face is shown
            t0 = time.perf_counter()
            feats.append(embed(image)[0])
            embed_s.append(time.perf_counter() - t0)
        zs.append(z)
        ratings.append("like" if liked else "dislike")
        f = np.stack(feats) if wants_features else None
        t0 = time.perf_counter()
        model = fit(np.stack(zs), ratings, f)
        fit_s.append(time.perf_counter() - t0)
        if i in args.checkpoints:
            auc = roc_auc(model.prob(cal_z), cal_liked.astype(float))
            seen = (roc_auc(model.prob_seen(cal_z, cal_feats), cal_liked.astype(float))
                    if wants_features and cal_feats is not None else None)
            for e in args.exactingness:
                cell = stream_cell(model, e, renderer, taste, args.anchors, args.seed, untrained_div,
                                   args.rerank if wants_features else 0)
                cells.append({"swipes": i, "model_auc": auc, "model_auc_seen": seen, "l2": model.l2, **cell})
    held = held_out(np.stack(zs), ratings, np.stack(feats) if wants_features else None)
    both = [c + f for c, f in zip(choose_s, fit_s)]
    return {"cells": cells, "liked_while_swiping": ratings.count("like") / len(ratings), "held_out": held,
            "embed_ms": {"median": 1e3 * median(embed_s), "max": 1e3 * max(embed_s)} if embed_s else None,
            "refit_ms": {"median": 1e3 * median(fit_s), "max": 1e3 * max(fit_s)},
            "choose_next_ms": {"median": 1e3 * median(choose_s), "max": 1e3 * max(choose_s)},
            "choose_and_refit_ms": {"median": 1e3 * median(both), "max": 1e3 * max(both)}}


def _cells_summary(run: dict[str, Any]) -> list[dict[str, float]]:
    """One curator's stream cells, short: swipes, exactingness, liked, model AUC, choose + refit median."""
    return [{"swipes": c["swipes"], "exactingness": c["exactingness"], "liked": c["liked"], "model_auc": c["model_auc"],
             "model_auc_seen": c.get("model_auc_seen"),
             "choose_and_refit_ms": run["choose_and_refit_ms"]["median"]} for c in run["cells"]]


def _spread(res: dict[str, Any]) -> list[str]:
    """Lines of mean, min and max over curators of each cell (only with --curators > 1)."""
    lines = []
    for name, r in res["tastes"].items():
        for m, x in r["models"].items():
            cur = x.get("curators", [])
            if len(cur) < 2:
                continue
            for i, c in enumerate(cur[0]):
                liked = [k[i]["liked"] for k in cur]
                auc = [k[i]["model_auc"] for k in cur]
                seen = [k[i]["model_auc_seen"] for k in cur if k[i].get("model_auc_seen") is not None]
                lines.append(f"{name} / {m} at {c['swipes']} swipes, e {c['exactingness']:.1f}, {len(cur)} curators: "
                             f"liked {np.mean(liked):.0%} ({min(liked):.0%}-{max(liked):.0%}), "
                             f"AUC {np.mean(auc):.2f} ({min(auc):.2f}-{max(auc):.2f})"
                             + (f", as seen {np.mean(seen):.2f} ({min(seen):.2f}-{max(seen):.2f})" if seen else ""))
    return lines


def _prior_summary(prior: np.ndarray | None, seconds: float) -> dict[str, Any] | None:
    if prior is None:
        return None
    ev = np.sort(np.linalg.eigvalsh(prior))[::-1]
    return {"seconds": seconds, "top_share": {k: float(ev[:k].sum() / ev.sum()) for k in (1, 4, 16, 32)}}


def rate_round_trips(renderer: Callable, model_hash: str, n: int, seed: int) -> dict[str, float] | None:
    """The taste app's side: ms from POST /api/rate to its answer (the next face), over HTTP on
    loopback, each rating made with the queue full (as a curator who looks at a face first);
    tests/taste/test_app.py checks that such an answer renders nothing, this measures it."""
    if n <= 0:
        return None
    import json
    import tempfile
    import urllib.request

    from passersby.taste.server import TasteServer
    from passersby.taste.store import TasteStore

    def call(url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Authorization": "Bearer bench",
                                                               "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    times = []
    with tempfile.TemporaryDirectory() as tmp, TasteStore(Path(tmp) / "taste.sqlite") as store, \
            TasteServer(store, renderer, lambda rng: rng.standard_normal(Z_DIM), model_hash, "bench", port=0,
                        token="bench", seed=seed) as server:
        for i in range(n):
            deadline = time.monotonic() + 60
            while len((face := call(server.url + "api/face"))["queue"]) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            t0 = time.perf_counter()
            call(server.url + "api/rate", {"face": face["face"]["id"], "rating": ("like", "dislike")[i % 2]})
            times.append((time.perf_counter() - t0) * 1000)
    return {"n": n, "median": median(times), "max": max(times)}


# ---------------------------------------------------------------- report


def report(console: Console, res: dict[str, Any]) -> None:
    models = res["args"]["models"]
    t = Table(title=f"share of streamed anchors the hidden taste likes ({res['args']['anchors']} anchors a cell), "
                    + " / ".join(models))
    for col in ("taste", "swipes", "exactingness", "liked", "% diversity of untrained", "model AUC",
                "AUC as seen"):
        t.add_column(col, justify="right")
    for name, r in res["tastes"].items():
        t.add_row(name, "0", "any", f"{r['untrained_liked']:.0%}", "100%", "—", "—")
        cells = [r["models"][m]["cells"] for m in models]
        for row in zip(*cells):
            c = row[0]
            t.add_row("", str(c["swipes"]), f"{c['exactingness']:.1f}", " / ".join(f"{x['liked']:.0%}" for x in row),
                      " / ".join(f"{x['diversity_pct_of_untrained']:.0f}%" for x in row),
                      " / ".join(f"{x['model_auc']:.2f}" for x in row),
                      " / ".join("—" if x.get("model_auc_seen") is None else f"{x['model_auc_seen']:.2f}"
                                 for x in row))
        t.add_section()
    console.print(t)
    s = Table(title="the curator's side")
    for col in ("taste", "model", "random faces liked", "liked while swiping", "held-out acc / AUC (last 50)",
                "refit ms (median / max)", "choose_next ms (median / max)", "choose + refit ms (median)"):
        s.add_column(col, justify="right")
    for name, r in res["tastes"].items():
        for m in models:
            x = r["models"][m]
            h = x["held_out"]
            s.add_row(name, m, f"{r['calibration_liked']:.0%}", f"{x['liked_while_swiping']:.0%}",
                      f"{h['accuracy']:.2f} / {h['auc']:.2f}",
                      f"{x['refit_ms']['median']:.1f} / {x['refit_ms']['max']:.1f}",
                      f"{x['choose_next_ms']['median']:.2f} / {x['choose_next_ms']['max']:.2f}",
                      f"{x['choose_and_refit_ms']['median']:.1f}")
    console.print(s)
    pr = res["prior"]
    prior = ("identity (isotropic)" if pr is None else
             f"salience ({res['args']['prior_faces']} faces, {pr['seconds']:.0f} s; top 4 of {Z_DIM} directions hold "
             f"{pr['top_share'][4]:.0%} of it)")
    if res.get("rate_round_trip_ms"):
        rt = res["rate_round_trip_ms"]
        console.print(f"taste app: rating to next face over HTTP, queue full: median {rt['median']:.1f} ms, "
                      f"max {rt['max']:.1f} ms ({rt['n']} ratings)")
    console.print(f"prior: {prior}; features {res['args']['features']!r}; wall {res['cpu']['wall_s']:.0f} s")
    if res.get("head"):
        h = res["head"]
        console.print(f"feature head: {h['samples']} faces, held-out R² of its {len(h['r2'])} components: mean "
                      f"{h['r2_mean']:.2f}, first 8 {h['r2_first8']:.2f}")
    for line in _spread(res):
        console.print(line)
    console.print(f"CPU: {res['machine']['cpu']} ({' '.join(res['machine']['simd_flags'])})")
    if res.get("masculine_no_face") is not None:
        console.print(f"masculine screen: no face found in {res['masculine_no_face']:.0%} of random faces "
                      "(never liked)")
    note = busy_note(res["cpu"])
    if note:
        console.print(f"[yellow]{note}[/yellow]")


def set_picture(overrides: str) -> None:
    """Set taste/picture.py's constants named in "KEY=VALUE+KEY=VALUE" (a tuple's values '/'-joined)."""
    import passersby.taste.picture as picture

    for part in filter(None, overrides.split("+")):
        key, _, value = part.partition("=")
        cur = getattr(picture, key, None)
        if cur is None or not key.isupper():
            raise SystemExit(f"error: --picture: {key!r} is not a constant of passersby/taste/picture.py")
        if isinstance(cur, tuple):
            setattr(picture, key, tuple(float(v) for v in value.split("/")))
        else:
            setattr(picture, key, value if isinstance(cur, str) else type(cur)(float(value)))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tastes", nargs="+", default=list(TASTES), choices=TASTES)
    ap.add_argument("--anchors", type=int, default=100, help="streamed anchors per cell")
    ap.add_argument("--calibration", type=int, default=300, help="random faces that set the thresholds")
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[25, 50, 100], help="swipes after which to stream")
    ap.add_argument("--exactingness", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--explore", type=float, default=0.7, help="choose_next's explore probability")
    ap.add_argument("--features", default="z", help="TasteModel feature map (model.FEATURE_MAPS)")
    ap.add_argument("--prior", default="salience", choices=("salience", "none"),
                    help="weight prior: model.salience_prior of the shipped model, or the identity")
    ap.add_argument("--prior-faces", type=int, default=512, help="faces rendered for the salience prior")
    ap.add_argument("--models", nargs="+", default=["z", "picture"], choices=MODELS, help="taste models to compare")
    ap.add_argument("--head-cache", type=Path, default=ROOT / "out" / "taste-home",
                    help="home whose cache/ holds (or receives) the feature head of the shipped model")
    ap.add_argument("--threads", type=int, default=1, help="renderer threads")
    ap.add_argument("--server-ratings", type=int, default=20,
                    help="ratings timed through the taste app's HTTP server (0: skip)")
    ap.add_argument("--curators", type=int, default=1,
                    help="curators per taste and model, each with its own draws: the run-to-run spread "
                         "(mean, min, max)")
    ap.add_argument("--picture", default="",
                    help="overrides of taste/picture.py's constants for a lever, '+'-joined: "
                         "BLOCK_EVIDENCE=true+BANDWIDTH_FACTORS=0.5/0.7/1 (benchmarks/taste_levers.py's syntax)")
    ap.add_argument("--rerank", type=int, default=TasteSettings().rerank,
                    help="the stream's look: the picture model's best guesses rendered and re-ranked per anchor "
                         "(taste.rerank; 0 = the head's guesses alone)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    set_picture(args.picture)
    console = Console(width=130)
    result = run(args, console)
    report(console, result)
    write_json(args.json, result)
    return 0


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    import torch

    from passersby.checkpoint import load_model
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path

    meter = CpuMeter()
    g, info = load_model(default_model_path())
    torch.set_num_threads(args.threads)  # the feature extractor: more threads only fight the renderer here
    renderer = make_renderer(g.float().eval(), "auto", threads=args.threads)
    t0 = time.perf_counter()
    prior = None
    if args.prior == "salience":  # its own latents (seed + 1000): none of them is judged by a taste
        prior = salience_prior(renderer, Z_DIM, n=args.prior_faces, seed=args.seed + 1000)
    prior_s = time.perf_counter() - t0
    head = None
    if any(m.startswith("picture") for m in args.models):
        from passersby.taste.head import cached_head

        head = cached_head(args.head_cache, info.hash, renderer, Z_DIM,
                           on_compute=lambda why: console.print(f"building the feature head ({why}) ..."))
    cal_z = np.random.default_rng([args.seed, 0]).standard_normal((args.calibration, Z_DIM))
    calibration = renderer(cal_z.astype(np.float32))
    cal_feats = None
    if any(m == "picture" for m in args.models):  # true features of the calibration faces (AUC as seen)
        cal_feats = embed(calibration, _extractor())
    untrained_rng = np.random.default_rng([args.seed, 2])  # the stream's seed: steer at e = 0
    untrained_z = np.stack([base(untrained_rng) for _ in range(args.anchors)])
    untrained = renderer(untrained_z.astype(np.float32))
    untrained_div = diversity(untrained_z)
    res: dict[str, Any] = {"machine": machine_info(), "args": {k: (str(v) if isinstance(v, Path) else v)
                                                               for k, v in vars(args).items()},
                           "model": info.path.name, "runtime": renderer.name, "untrained_diversity": untrained_div,
                           "prior": _prior_summary(prior, prior_s), "tastes": {},
                           "head": None if head is None else {
                               "samples": head.config.samples, "r2": head.r2.tolist(),
                               "r2_mean": float(head.r2.mean()), "r2_first8": float(head.r2[:8].mean())}}
    for index, taste in enumerate(make_tastes(args.tastes, calibration)):
        console.print(f"curator {index + 1}: {taste.name} ...")
        cal_liked = taste.rule(taste.calibration)
        runs = {m: swipe(taste, renderer, args, fitter(m, args, prior, head), cal_z, cal_liked, untrained_div, index,
                      cal_feats=cal_feats)
                for m in args.models}
        for m in args.models:  # the run-to-run spread: the same taste swiped by other curators (other draws)
            kind = fitter(m, args, prior, head)
            others = [swipe(taste, renderer, args, kind, cal_z, cal_liked, untrained_div, index, c, cal_feats)
                      for c in range(1, args.curators)]
            runs[m]["curators"] = [_cells_summary(r) for r in [runs[m], *others]]
        res["tastes"][taste.name] = {"calibration_liked": float(cal_liked.mean()),
                                     "threshold": taste.threshold,
                                     "untrained_liked": float(taste.likes(untrained).mean()), "models": runs}
        if taste.name == "masculine screen":
            res["masculine_no_face"] = float(np.isnan(taste.calibration).mean())
    res["rate_round_trip_ms"] = rate_round_trips(renderer, info.hash, args.server_ratings, args.seed)
    res["cpu"] = meter.stop()
    res["machine_end"] = machine_info()
    return res


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
