"""Random faces with truncated latents z * psi (the classic quality/diversity trade), on v4's random
sheets (same seeds: same real faces, same places, same latents scaled)."""
import sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
import blind
from passersby.sample import load_generator, latents, render
torch.set_num_threads(1)
psi = float(sys.argv[1]); out = Path(sys.argv[2])
g, info = load_generator(Path("runs/r3/model-6714.safetensors"))
def generated(model, n, seed, steer, choose):
    z = latents(n, info.config.z_dim, seed) * psi
    return render(g, z, batch=1), {"path": str(info.path), "hash": info.hash, "latent_seed": seed, "steer": f"random, z x {psi}"}
blind._generated = generated
for s in (1, 2, 3):
    blind.main(["make", "x", "--real", "runs/data/heldout", "--seed", str(s), "--out", str(out)])
