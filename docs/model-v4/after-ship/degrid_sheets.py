import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "benchmarks"); sys.path.insert(0, "runs/real")
import blind
from degrid import apply
H = np.load(sys.argv[1]); out = Path(sys.argv[2])
orig = blind._generated
def generated(model, n, seed, steer, choose):
    faces, info = orig(model, n, seed, steer, choose)
    return apply(faces, H), {**info, "filter": sys.argv[1]}
blind._generated = generated
for s in (1, 2, 3):
    blind.main(["make", "runs/r3/model-6714.safetensors", "--real", "runs/data/heldout", "--seed", str(s), "--out", str(out)])
