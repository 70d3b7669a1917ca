"""Do the run's own discriminators (D, and P on eyes and mouth) agree with the blind judges?
Scores of each generated face on blind sheets against whether the judge caught it."""
import json, sys
from pathlib import Path
import numpy as np, torch
from passersby.checkpoint import load_train_state
from passersby.config import TrainConfig
from passersby.train.loop import build_state
from passersby.train.state import unpack
from passersby.sample import sample
torch.set_num_threads(2)
tensors, meta = load_train_state(Path("runs/r3/run/checkpoints/step-00006714.safetensors"))
cfg = TrainConfig.from_dict(meta["train_config"])
ts = build_state(cfg, torch.device("cpu")); unpack(ts, tensors, meta)
ts.D.eval(); ts.P.eval()
def scores(faces):
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        d = ts.D(x).mean(1).numpy()
        p = ts.P(x)
    return {"D": d, **{f"P_{k}": v.mean(1).numpy() for k, v in p.items()}}
def auc(pos, neg):
    s = np.concatenate([pos, neg]); r = s.argsort().argsort() + 1
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
if __name__ == "__main__":
    folder, model = Path(sys.argv[1]), sys.argv[2]
    rows = []
    for kp in sorted(folder.glob("key-*.json")):
        key = json.loads(kp.read_text()); seed, n = key["seed"], key["n"]
        marked = set(json.loads((folder / f"score-{seed}.json").read_text())["marked"])
        faces, _ = sample(Path(model), n, 10_000 + seed)
        rng = np.random.default_rng(seed); rng.choice(94, size=n, replace=False); order = rng.permutation(2 * n)
        pos_of = {int(order[p]) - n: p + 1 for p in range(2 * n) if order[p] >= n}
        s = scores(faces)
        for i in range(n):
            rows.append({"caught": pos_of[i] in marked, **{k: float(v[i]) for k, v in s.items()}})
    caught = [r for r in rows if r["caught"]]; missed = [r for r in rows if not r["caught"]]
    print(len(caught), "caught", len(missed), "missed")
    for k in rows[0]:
        if k != "caught":
            print(k, "AUC missed>caught", round(auc(np.array([r[k] for r in missed]), np.array([r[k] for r in caught])), 3))
