"""Fit real-vs-generated probes (grey, colour, both) on training paintings vs v4 samples; AUC on
held-out paintings vs unseen samples; sheets of the most and least 'real' unseen samples, and of
groups of 4 (first drawn vs chosen)."""
import json
import numpy as np
from PIL import Image
from passersby.model.direction import fit_probe

d = np.load("runs/real/feats.npz")
imgs = np.load("runs/real/gen_imgs.npy")
NF = 1500
def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
res = {}
probes = {}
for kind, keys in (("grey", ["g"]), ("colour", ["c"]), ("both", ["g", "c"])):
    f = lambda p: np.hstack([d[f"{p}_{k}"] for k in keys])
    X = np.vstack([f("train"), f("gen")[:NF]]); y = np.r_[np.ones(len(d["train_g"])), np.zeros(NF)]
    pr, acc = fit_probe(X, y, np.random.default_rng(0))
    ph, pg = pr.predict(f("held")), pr.predict(f("gen")[NF:])
    res[kind] = {"acc_split": acc, "auc_heldout_vs_unseen": auc(ph, pg), "p_real_held_mean": float(ph.mean()),
                 "p_real_gen_mean": float(pg.mean())}
    probes[kind] = pg
    print(kind, res[kind], flush=True)
json.dump(res, open("runs/real/probe.json", "w"), indent=1)
pg = probes["colour"]; unseen = imgs[NF:]
order = pg.argsort()
def sheet(ix, path):
    t = [np.asarray(Image.fromarray(unseen[i]).resize((128, 128), Image.LANCZOS)) for i in ix]
    rows = [np.concatenate(t[r * 8:(r + 1) * 8], 1) for r in range(len(t) // 8)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)
sheet(order[-32:][::-1], "runs/real/most-real.png"); sheet(order[:32], "runs/real/least-real.png")
grp = pg[:500].reshape(125, 4)
sheet(np.arange(0, 128, 4)[:32], "runs/real/first-of-4.png")
sheet((np.arange(125) * 4 + grp.argmax(1))[:32], "runs/real/chosen-of-4.png")
