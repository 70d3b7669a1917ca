"""Quality against CPU wall-clock minutes: the projected recipe against the previous (fastgan) one.

Same data, same machine, same run of this script: each recipe trains from scratch for
--minutes of training wall time (`passersby.train.loop.train_step`, the recipe's defaults from
`passersby.train.recipes`), and every --eval-every minutes its EMA generator is measured:
KID x1000 in EfficientNet-Lite0 space (what the projected discriminator sees, so not
independent evidence for that recipe), KID x1000 in dlib's face-descriptor space (never seen
by either discriminator; passersby.metrics.quality) and the face rate. Measuring time
is not counted as training time. A horizontal line marks the shipped model's KID on the same
data and samples, the quality the new recipe must reach.

With --parallel the recipes train at the same time, one process and one core each (the
machine's two cores split evenly between them), so a long comparison takes half the wall time;
without it they take turns with every core.

Usage:
    python benchmarks/recipes.py runs/data/aligned-256 --minutes 20 --eval-every 5 \\
        --json docs/default-model/recipes.json --plot docs/default-model/recipes.png
    python benchmarks/recipes.py runs/data/aligned-256 --minutes 45 --eval-every 7.5 --parallel
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from _common import lscpu, write_json
from passersby.config import ModelConfig, TrainConfig
from passersby.train import dist
from passersby.data.training_set import load_training_set
from passersby.train.loop import build_state, ema_for_inference, make_sampler, train_step
from passersby.train.recipes import RECIPES, recipe_defaults


def measure(sample: Callable[[int], torch.Tensor], real: torch.Tensor, n: int, seed: int) -> dict[str, float]:
    """KID x1000 (EfficientNet-Lite0, and face descriptors when available) of n samples."""
    from passersby.metrics.distances import kid
    from passersby.metrics.features import FeatureExtractor

    fake = sample(n)
    fx = FeatureExtractor(batch_size=50)
    import numpy as np

    mean, _ = kid(fx(fake).numpy(), fx(real).numpy(), rng=np.random.default_rng(seed))
    out = {"kid_effnet_x1000": 1000 * float(mean)}
    # The second, independent feature space (dlib's face descriptors) and the face rate.
    from passersby.metrics.quality import face_space
    from passersby.pictures import to_uint8

    faces, _, _ = face_space(to_uint8(fake), to_uint8(real), seed, subsets=50)
    out["kid_descriptor_x1000"] = faces["face_descriptor"].get("kid_x1000")
    out["face_rate"] = faces["face_rate"]["fake"]["rate"]
    out["face_rate_real"] = faces["face_rate"]["real"]["rate"]
    return out


def run_recipe(name: str, data, minutes: float, eval_every: float, n: int, seed: int,
               conditional: bool) -> list[dict[str, Any]]:
    """Train `name` for `minutes` of training time; a row of metrics every `eval_every` minutes."""
    m, t = recipe_defaults(name)
    classes = list(data.class_names) if conditional else []
    cfg = TrainConfig(seed=seed, model=ModelConfig(resolution=data.resolution, class_names=classes, **m), **t)
    dev = torch.device("cpu")
    ts = build_state(cfg, dev)
    real = data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:n]]
    real = real.float().div(127.5).sub(1.0)
    rows, trained, next_eval = [], 0.0, eval_every * 60
    while True:
        t0 = time.perf_counter()
        train_step(ts, data, cfg, dev, dist.DistInfo())
        trained += time.perf_counter() - t0
        if trained >= next_eval or trained >= minutes * 60:
            g = ema_for_inference(ts, dev)
            row = {"recipe": name, "minutes": trained / 60, "step": ts.step,
                   "images_seen": ts.step * cfg.batch_size, **measure(make_sampler(g, dev, seed + 1), real, n, seed)}
            print(row, flush=True)
            rows.append(row)
            next_eval += eval_every * 60
            if trained >= minutes * 60:
                return rows


def _recipe_worker(name: str, data_dir: Path, *rest) -> list[dict[str, Any]]:
    """One recipe in its own process, on one core (--parallel)."""
    torch.set_num_threads(1)
    return run_recipe(name, load_training_set(data_dir), *rest)


def shipped_reference(data, n: int, seed: int, path: str) -> dict[str, float]:
    from passersby.checkpoint import load_model
    from passersby.sample import default_model_path

    g, _ = load_model(default_model_path() if path == "default" else Path(path))
    real = data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:n]]
    return measure(make_sampler(g, torch.device("cpu"), seed + 1), real.float().div(127.5).sub(1.0), n, seed)


def plot(rows: list[dict], ref: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name in RECIPES:
        pts = [(r["minutes"], r["kid_effnet_x1000"]) for r in rows if r["recipe"] == name]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=f"{name} recipe")
    ax.axhline(ref["kid_effnet_x1000"], color="grey", ls="--", label="reference model")
    ax.set_xlabel("CPU training wall-clock minutes")
    ax.set_ylabel("KID x1000 (EfficientNet-Lite0), lower is better")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    import numpy as np
    from PIL import Image

    from passersby.pictures import save_png  # atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    save_png(path, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a dataset folder made by `passersby prepare`")
    ap.add_argument("--minutes", type=float, default=20.0, help="training wall time per recipe")
    ap.add_argument("--eval-every", type=float, default=5.0, help="minutes of training between measurements")
    ap.add_argument("--n", type=int, default=250, help="generated and real images per measurement")
    ap.add_argument("--recipes", default="fastgan,projected")
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", default="default",
                    help="model file drawn as the quality to reach (default: the shipped model)")
    ap.add_argument("--parallel", action="store_true", help="train the recipes at once, one core each")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    print("machine:", lscpu(), flush=True)
    data = load_training_set(a.data)
    ref = shipped_reference(data, a.n, a.seed, a.reference)
    print("shipped model:", ref, flush=True)
    names = a.recipes.split(",")
    args = [(name, a.data, a.minutes, a.eval_every, a.n, a.seed, a.conditional) for name in names]
    if a.parallel:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(len(names)) as pool:
            rows = [r for part in pool.starmap(_recipe_worker, args) for r in part]
    else:
        rows = [r for arg in args for r in run_recipe(arg[0], data, *arg[2:])]
    if a.json:
        write_json(a.json, {"machine": lscpu(), "args": {k: str(v) for k, v in vars(a).items()},
                            "shipped": ref, "rows": rows})
    if a.plot:
        plot(rows, ref, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
