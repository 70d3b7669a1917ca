"""Offline: random faces chosen best-of-K by a realism score (grey-EfficientNet distance to the
nearest 3 training paintings, minus; plus face-region sharpness; each z-scored by the model's own
samples). Writes blind sheets paired with v4's random sheets (same seeds: same real faces, same
places) via benchmarks/blind.py."""
import sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import blind
from passersby.sample import load_generator, render
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.probe_features import _effnet, grey
torch.set_num_threads(2)
K = int(sys.argv[1]); out = Path(sys.argv[2]); seeds = [int(s) for s in sys.argv[3].split(",")]
sys.path.insert(0, "docs/model-v4/after-ship")
from realism_lib import realism  # the score (z-scored by 1,000 of the model's samples)
fx = FeatureExtractor()
g, info = load_generator(Path("runs/r3/model-6714.safetensors"))
def generated(model, n, seed, steer, choose):
    z = np.random.default_rng([seed, 11]).standard_normal((n, K, 128)).astype(np.float32)
    faces = render(g, torch.from_numpy(z.reshape(n * K, 128)), batch=1)
    s = realism(faces, _effnet(grey(faces), fx)).reshape(n, K)
    best = faces.reshape(n, K, *faces.shape[1:])[np.arange(n), s.argmax(1)]
    return best, {"path": str(info.path), "hash": info.hash, "latent_seed": seed, "steer": f"random, best of {K} by realism"}
blind._generated = generated
for s in seeds:
    blind.main(["make", "x", "--real", "runs/data/heldout", "--seed", str(s), "--out", str(out)])
