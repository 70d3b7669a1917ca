import numpy as np
def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
def z(v): return (v - v.mean()) / (v.std() + 1e-9)
for name in ("random", "chosen", "pushed"):
    s = dict(np.load(f"runs/real/scalars-{name}.npz")); c = s["caught"]
    combos = {"-nn": -s["nn_real_dist"], "-nn+sharp": -z(s["nn_real_dist"]) + z(s["sharp_face"]),
              "-nn+sharp+dlib": -z(s["nn_real_dist"]) + z(s["sharp_face"]) + z(s["dlib"]),
              "-border": -s["border"], "-nn-border": -z(s["nn_real_dist"]) - z(s["border"]),
              "sharp+dlib": z(s["sharp_face"]) + z(s["dlib"])}
    print(name, {k: round(auc(v[~c], v[c]), 3) for k, v in combos.items()})
