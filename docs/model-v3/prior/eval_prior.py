"""Experiment: recall/precision of faces drawn from latent priors around matched centres."""
import sys, json, time
from pathlib import Path
import numpy as np, torch
from passersby.model.load import load_generator
from passersby.sample import render
from passersby.metrics.quality import effnet_features
from passersby.metrics.precision_recall import precision_recall
from passersby.metrics.memorisation import memorisation_report
from passersby.metrics.reference import load_reference

centres = np.load(sys.argv[1]); out = Path(sys.argv[2]); strengths = [float(s) for s in sys.argv[3].split(",")]
n = 1000
G, info = load_generator(None); G = G.float().eval()
cache = Path("runs/prior/realfeats.npz")
if cache.exists():
    r = np.load(cache); tr, ho = r["tr"], r["ho"]
else:
    tr = effnet_features(load_reference(Path("runs/data/train15"), 256).images)
    ho = effnet_features(load_reference(Path("runs/data/heldout"), 256).images)
    np.savez(cache, tr=tr, ho=ho)
res = {}
for s in strengths:
    rng = np.random.default_rng(0)
    if s >= 1:
        z = s * rng.standard_normal((n, 128))  # s > 1: wider than N(0, I)
    else:
        c = centres[rng.integers(0, len(centres), n)]
        z = np.sqrt(1 - s * s) * c + s * rng.standard_normal((n, 128))
    t0 = time.time()
    faces = render(G, torch.from_numpy(z).float(), batch=50)
    f = effnet_features(faces)
    row = {}
    for name, real in (("train", tr), ("heldout", ho)):
        pr = precision_recall(real, f, 3)
        row[name] = {"precision": pr["precision"], "recall": pr["recall"]}
    mem = memorisation_report(f, tr)
    row["copies"] = mem["suspected_copy_fraction"]; row["ratio"] = mem["ratio"]
    res[str(s)] = row
    print(s, json.dumps(row), f"{time.time()-t0:.0f}s", flush=True)
    np.save(out.parent / f"faces-{out.stem}-{s}.npy", faces[:64])
json.dump(res, open(out, "w"), indent=1)
