import numpy as np, torch
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.probe_features import _effnet, grey
torch.set_num_threads(2)
def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
def z(v): return (v - v.mean()) / (v.std() + 1e-9)
d = np.load("runs/real/feats.npz"); fx = FeatureExtractor()
for name in ("random", "chosen", "pushed"):
    j = np.load(f"runs/real/judged-{name}.npz"); c = j["caught"]; s = np.load(f"runs/real/scalars-{name}.npz")
    eg = _effnet(grey(j["faces"]), fx); ec = _effnet(j["faces"], fx)
    np.savez(f"runs/real/judgedfeats-{name}.npz", g=eg, c=ec)
    out = {}
    for fn, e, R in (("grey", eg, d["train_g"]), ("colour", ec, d["train_c"])):
        D = np.sort(((e[:, None] - R[None]) ** 2).sum(-1), 1)
        for k in (1, 3, 10):
            nn = D[:, :k].mean(1)
            out[f"{fn}-nn{k}"] = round(auc(-nn[~c], -nn[c]), 3)
            out[f"{fn}-nn{k}+sharp"] = round(auc((-z(nn) + z(s["sharp_face"]))[~c], (-z(nn) + z(s["sharp_face"]))[c]), 3)
    print(name, out, flush=True)
