"""Rebuild the generated faces of earlier blind sheets with the judge's verdict on each:
runs/real/judged-<name>.npz (faces (n,256,256,3), caught (n,), sheet (n,))."""
import json, sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import blind
torch.set_num_threads(1)
folder, model, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
F, C, S = [], [], []
for kp in sorted(folder.glob("key-*.json")):
    key = json.loads(kp.read_text()); seed, n = key["seed"], key["n"]
    m = key["model"]
    marked = set(json.loads((folder / f"score-{seed}.json").read_text())["marked"])
    faces, _ = blind._generated(model, n, m["latent_seed"], m["steer"], m.get("choose", 4 if m["steer"] == "screens" else 0))
    rng = np.random.default_rng(seed); rng.choice(94, size=n, replace=False); order = rng.permutation(2 * n)
    pos_of = {int(order[p]) - n: p + 1 for p in range(2 * n) if order[p] >= n}
    assert sorted(pos_of.values()) == key["generated"]
    F.append(faces); C += [pos_of[i] in marked for i in range(n)]; S += [seed] * n
    print(name, seed, sum(C), len(C), flush=True)
np.savez(f"runs/real/judged-{name}.npz", faces=np.concatenate(F), caught=np.array(C), sheet=np.array(S))
