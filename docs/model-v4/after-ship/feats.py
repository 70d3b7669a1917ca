"""Offline: can a linear probe on EfficientNet features tell v4's faces from training paintings?
Writes runs/real/feats.npz: grey and colour features of generated faces (with their latents) and
of training / held-out real faces."""
import sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from passersby.checkpoint import load_model
from passersby.sample import default_model_path, render
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.faces import find_faces
from passersby.metrics.probe_features import _effnet, grey

torch.set_num_threads(1)
N = int(sys.argv[1])
g, info = load_model(default_model_path()); g = g.float().eval()
fx = FeatureExtractor()
def load_dir(d):
    files = sorted(Path(d, "images").glob("*.png")) + sorted(Path(d, "images").glob("*.jpg"))
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((256, 256), Image.LANCZOS)) for f in files])
out = {}
t0 = time.time()
for name, d in (("train", "runs/data/train15"), ("held", "runs/data/heldout")):
    x = load_dir(d)
    out[f"{name}_g"], out[f"{name}_c"] = _effnet(grey(x), fx), _effnet(x, fx)
    print(name, len(x), time.time() - t0, flush=True)
z = np.random.default_rng(2026).standard_normal((N, 128)).astype(np.float32)
imgs = render(g, torch.from_numpy(z))
out["gen_found"] = np.array([f is not None for f in find_faces(list(imgs))])
out["gen_g"], out["gen_c"], out["gen_z"] = _effnet(grey(imgs), fx), _effnet(imgs, fx), z
np.save("runs/real/gen_imgs.npy", imgs)
print("gen", N, time.time() - t0, flush=True)
np.savez("runs/real/feats.npz", **out)
