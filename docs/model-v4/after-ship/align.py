"""Do the realness probes agree with the blind judges? P(real) of each generated face on v4's
random sheets (docs/model-v3/blind/r3-6714, seeds 1-3) against whether the judge caught it."""
import json, sys
import numpy as np, torch
from passersby.sample import sample
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.faces import find_faces
from passersby.metrics.probe_features import _effnet, grey
from passersby.model.direction import fit_probe
from pathlib import Path
torch.set_num_threads(1)
d = np.load("runs/real/feats.npz")
NF = 1500
fx = FeatureExtractor()
probes = {}
for kind, keys in (("grey", ["g"]), ("colour", ["c"]), ("both", ["g", "c"])):
    f = lambda p: np.hstack([d[f"{p}_{k}"] for k in keys])
    X = np.vstack([f("train"), f("gen")[:NF]]); y = np.r_[np.ones(len(d["train_g"])), np.zeros(NF)]
    probes[kind] = (keys, fit_probe(X, y, np.random.default_rng(0))[0])
def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
rows = []
folder, model = Path(sys.argv[1]), sys.argv[2]
for kp in sorted(folder.glob("key-*.json")):
    key = json.loads(kp.read_text()); seed, n = key["seed"], key["n"]
    score = json.loads((folder / f"score-{seed}.json").read_text())
    marked = set(score["marked"])
    faces, _ = sample(Path(model), n, 10_000 + seed)
    rng = np.random.default_rng(seed); rng.choice(94, size=n, replace=False); order = rng.permutation(2 * n)
    feats = {"g": _effnet(grey(faces), fx), "c": _effnet(faces, fx)}
    found = [f is not None for f in find_faces(list(faces))]
    pos_of = {int(order[p]) - n: p + 1 for p in range(2 * n) if order[p] >= n}
    assert sorted(pos_of.values()) == key["generated"]
    for i in range(n):
        r = {"seed": seed, "pos": pos_of[i], "caught": pos_of[i] in marked, "face": found[i]}
        for kind, (keys, pr) in probes.items():
            r[kind] = float(pr.predict(np.hstack([feats[k][i:i + 1] for k in keys]))[0])
        rows.append(r)
caught = [r for r in rows if r["caught"]]; missed = [r for r in rows if not r["caught"]]
print(len(caught), "caught", len(missed), "missed")
for kind in probes:
    print(kind, "AUC P(real) missed>caught:", round(auc(np.array([r[kind] for r in missed]), np.array([r[kind] for r in caught])), 3),
          "mean missed", round(np.mean([r[kind] for r in missed]), 3), "caught", round(np.mean([r[kind] for r in caught]), 3))
json.dump(rows, open(folder.name + "-align.json", "w"))
