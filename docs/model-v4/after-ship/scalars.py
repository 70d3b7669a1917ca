"""Which simple properties of a generated face predict that a blind judge misses it?
AUC (missed > caught) of each scalar on the rebuilt judged faces."""
import sys, json
import numpy as np, torch, cv2
from passersby.metrics.faces import find_faces
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.probe_features import _effnet
torch.set_num_threads(1)

def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))

real = np.load("runs/real/feats.npz")["train_c"]
fx = FeatureExtractor()
def scalars(faces):
    out = {k: [] for k in ("dlib", "sharp", "sharp_face", "sat", "bright", "contrast", "border", "eye_sym",
                           "grid", "face_bright_minus_border")}
    for f, det in zip(faces, find_faces(list(faces))):
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = cv2.Laplacian(g, cv2.CV_32F)
        out["dlib"].append(det.score if det else -1.0)
        out["sharp"].append(float(lap.var()))
        out["sharp_face"].append(float(lap[80:220, 60:196].var()))
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        out["sat"].append(float(hsv[..., 1].mean()))
        out["bright"].append(float(g.mean())); out["contrast"].append(float(g.std()))
        b = np.concatenate([g[:20].ravel(), g[:, :20].ravel(), g[:, -20:].ravel()])
        out["border"].append(float(b.mean()))
        out["face_bright_minus_border"].append(float(g[90:200, 70:186].mean() - b.mean()))
        le, re_ = g[84:146, 51:128], g[84:146, 128:205][:, ::-1]
        out["eye_sym"].append(float(np.corrcoef(le.ravel(), re_.ravel())[0, 1]))
        F = np.abs(np.fft.fft2(g - g.mean())); n = g.shape[0]
        out["grid"].append(float(F[n // 2, :].sum() + F[:, n // 2].sum() + F[n // 4, :].sum() + F[:, n // 4].sum()) / F.sum())
    e = _effnet(faces, fx)
    d = ((e[:, None, :] - real[None]) ** 2).sum(-1)
    out["nn_real_dist"] = list(np.sort(d, 1)[:, :3].mean(1))
    return {k: np.array(v) for k, v in out.items()}

res = {}
for name in sys.argv[1:]:
    z = np.load(f"runs/real/judged-{name}.npz")
    s = scalars(z["faces"]); c = z["caught"]
    res[name] = {k: round(auc(v[~c], v[c]), 3) for k, v in s.items()}
    print(name, int((~c).sum()), "missed of", len(c), res[name], flush=True)
    np.savez(f"runs/real/scalars-{name}.npz", caught=c, **s)
json.dump(res, open("runs/real/scalars.json", "w"), indent=1)
