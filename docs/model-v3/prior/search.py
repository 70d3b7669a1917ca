"""Experiment: nearest latent of a big pool for every training face (no optimisation)."""
import sys, time
from pathlib import Path
import numpy as np, torch
from passersby.model.load import load_generator
from passersby.data.training_set import load_training_set
from passersby.train.coverage import search_features, real_features
data_dir, out, pool = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
G, info = load_generator(None); G = G.float().eval()
imgs = load_training_set(data_dir, 256).images
t0 = time.time()
rf = real_features(imgs, torch.device("cpu"))
gen = torch.Generator().manual_seed(1)
best = torch.full((len(imgs),), 1e9); Z = torch.zeros(len(imgs), 128)
with torch.no_grad():
    for i in range(0, pool, 256):
        z = torch.randn(256, 128, generator=gen)
        f = torch.cat([search_features(G(z[j:j+64])) for j in range(0, 256, 64)])
        d = torch.cdist(rf, f); m, a = d.min(1)
        upd = m < best; best[upd] = m[upd]; Z[upd] = z[a[upd]]
        if i % 2048 == 0: print(i, best.mean().item(), time.time()-t0, flush=True)
np.save(out, Z.numpy()); np.save(str(out)[:-4] + "-dist.npy", best.numpy())
print("done", best.mean().item(), time.time()-t0)
