"""The enhancer's verdict: does it beat plain resizing, and what does it paint?

1. Held-out real faces (native pixels, from paintings never trained on: `passersby hires`'s
   OUT/held-out): shrink each 2x (antialiased bicubic), restore with Lanczos, bicubic and the
   enhancer (the fast runtime that ships, and the eager reference), and score PSNR and the
   LPIPS-style EfficientNet feature distance against the original (metrics/upscale.py). The
   enhancer ships on by default only if it beats Lanczos on both.
2. Side-by-side crops of eyes and mouth (dlib landmarks): held-out faces (Lanczos | enhancer |
   original) and the generator's own faces at 256 -> 512 (Lanczos | enhancer), 3x nearest
   zoom, for a person to look at.
3. Speed at the stream's size (256 -> 512), one thread, in the same run: the eager reference
   and the fast runtime, ms per frame, GFLOPs per frame, achieved GFLOP/s.

Usage:
    python benchmarks/enhancer.py --held-out runs/data/hires-192/held-out --out docs/enhancer
    python benchmarks/enhancer.py --held-out DIR --enhancer runs/enhancer/model.safetensors --json x.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import machine_info, write_json

ZOOM = 3


def _faces(folder: Path) -> list[np.ndarray]:
    from PIL import Image

    from passersby.data.manifest import load_manifest

    m = load_manifest(folder)
    return [np.asarray(Image.open(m.image_path(i)).convert("RGB")) for i in range(len(m))]


def _regions(image: np.ndarray, half: int) -> list[tuple[int, int]] | None:
    """Centres (x, y) of the image-left eye, the image-right eye and the mouth, or None."""
    from passersby.data.align import key_points, landmarks
    from passersby.data.faces import find_faces

    boxes, _ = find_faces(image, "hog")
    h, w = image.shape[:2]
    box = boxes[0] if boxes else (0, 0, w, h)
    pts = key_points(landmarks(image, box))
    return [(int(np.clip(p[0], half, w - half)), int(np.clip(p[1], half, h - half))) for p in pts]


def _crop(image: np.ndarray, centre: tuple[int, int], half: int) -> np.ndarray:
    x, y = centre
    c = image[y - half:y + half, x - half:x + half]
    return c.repeat(ZOOM, 0).repeat(ZOOM, 1)


def crops_sheet(rows: list[list[np.ndarray]], labels: list[str]) -> np.ndarray:
    """Rows of equal-size crops side by side, a label strip above (PIL's default font)."""
    from PIL import Image, ImageDraw

    h, w = rows[0][0].shape[:2]
    pad, top = 6, 22
    sheet = Image.new("RGB", (len(rows[0]) * (w + pad) + pad, top + len(rows) * (h + pad) + pad), (24, 24, 24))
    d = ImageDraw.Draw(sheet)
    for j, lab in enumerate(labels):
        d.text((pad + j * (w + pad) + 4, 5), lab, fill=(230, 230, 230))
    for i, row in enumerate(rows):
        for j, c in enumerate(row):
            sheet.paste(Image.fromarray(c), (pad + j * (w + pad), top + i * (h + pad)))
    return np.asarray(sheet)


def held_out_crops(faces: list[np.ndarray], up, n: int) -> np.ndarray:
    from passersby.metrics.upscale import downscale, lanczos

    rows = []
    half = faces[0].shape[0] // 8  # 24 px of a 192 face around an eye or the mouth
    for f in faces:
        regions = _regions(f, half)
        if regions is None:
            continue
        small = downscale(f, 2)
        pics = [lanczos(small, 2), up(small), f]
        for centre in (regions[0], regions[2]):  # an eye, the mouth
            rows.append([_crop(p, centre, half) for p in pics])
        if len(rows) >= 2 * n:
            break
    return crops_sheet(rows, ["Lanczos x2", "enhancer x2", "original (native)"])


def generated_crops(up, n: int) -> np.ndarray:
    from passersby.checkpoint import load_model
    from passersby.metrics.upscale import lanczos
    from passersby.runtime import make_renderer
    from passersby.sample import default_model_path

    g, _ = load_model(default_model_path())
    render = make_renderer(g.float().eval(), "torch")
    z = np.random.default_rng(11).standard_normal((n, g.cfg.z_dim)).astype(np.float32)
    rows = []
    half = 40  # of a 512 frame
    for frame in render(z):
        pics = [lanczos(frame, 2), up(frame)]
        regions = _regions(pics[1], half)
        for centre in (regions[0], regions[2]):
            rows.append([_crop(p, centre, half) for p in pics])
    return crops_sheet(rows, ["Lanczos 256 -> 512", "enhancer 256 -> 512"])


def speed(net, side: int, repeats: int) -> dict[str, Any]:
    """ms per frame, eager reference and fast runtime, at side -> 2 side, one thread."""
    import torch

    from passersby.model.enhancer import enhancer_flops
    from passersby.runtime import make_upscaler

    torch.set_num_threads(1)
    frame = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = {"side": side, "gflops_per_frame": enhancer_flops(net.cfg, side) / 1e9}
    for name in ("torch", "auto"):
        up = make_upscaler(net, name, 1, side)
        up(frame)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            up(frame)
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        out["reference" if name == "torch" else "fast"] = {"ms": ms, "gflop_per_s": out["gflops_per_frame"] / ms * 1000}
    out["speedup"] = out["reference"]["ms"] / out["fast"]["ms"]
    return out


def main(argv: list[str]) -> int:
    from PIL import Image

    from passersby.app.chain import default_enhancer_path
    from passersby.metrics.upscale import restore_scores
    from passersby.runtime import make_upscaler
    from passersby.model.load import load_enhancer
    from passersby.train.enhancer import upscaler

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--held-out", type=Path, required=True, help="a dataset of native faces never trained on")
    ap.add_argument("--enhancer", type=Path, default=None, help="default: the shipped one")
    ap.add_argument("--out", type=Path, default=None, help="folder for verdict.json and the crop sheets")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--crops", type=int, default=4, help="faces per crop sheet")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    console = Console(width=max(120, Console().width))
    net, info = load_enhancer(args.enhancer or default_enhancer_path())
    faces = _faces(args.held_out)
    side = faces[0].shape[0] // 2
    result: dict[str, Any] = {"machine_start": machine_info(), "enhancer": str(info.path), "enhancer_hash": info.hash,
                              "held_out": str(args.held_out)}
    console.print(f"{len(faces)} held-out faces, {faces[0].shape[0]} px; restoring from {side} px ...")
    fast = make_upscaler(net, "auto", 1, side)
    result["fast"] = restore_scores(faces, fast, 2)
    result["reference"] = restore_scores(faces, upscaler(net), 2)
    from passersby.metrics.upscale import feature_distance, downscale, psnr

    bic = [np.asarray(Image.fromarray(downscale(f, 2)).resize(f.shape[1::-1], Image.BICUBIC)) for f in faces]
    result["bicubic"] = {"psnr": float(np.mean([psnr(b, f) for b, f in zip(bic, faces)])),
                         "feature_distance": float(feature_distance(bic, faces).mean())}
    result["speed"] = speed(net, 256, args.repeats)
    v = result["fast"]
    result["beats_lanczos"] = bool(v["psnr"] > v["psnr_lanczos"] and v["feature_distance"] < v["feature_distance_lanczos"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(held_out_crops(faces, fast, args.crops)).save(args.out / "crops-held-out.png")
        Image.fromarray(generated_crops(make_upscaler(net, "auto", 1, 256), args.crops)).save(args.out / "crops-generated.png")
        write_json(args.out / "verdict.json", {**result, "machine_end": machine_info()})
    write_json(args.json, {**result, "machine_end": machine_info()})

    t = Table(title=f"restoring {len(faces)} held-out faces shrunk 2x ({result['machine_start']['cpu']})")
    for col in ("method", "PSNR dB", "feature distance", "better than Lanczos (PSNR / features)"):
        t.add_column(col, justify="right")
    t.add_row("Lanczos", f"{v['psnr_lanczos']:.2f}", f"{v['feature_distance_lanczos']:.4f}", "")
    t.add_row("bicubic", f"{result['bicubic']['psnr']:.2f}", f"{result['bicubic']['feature_distance']:.4f}", "")
    for name in ("reference", "fast"):
        r = result[name]
        t.add_row(f"enhancer ({name})", f"{r['psnr']:.2f}", f"{r['feature_distance']:.4f}",
                  f"{100 * r['wins_psnr']:.0f} % / {100 * r['wins_feature']:.0f} % of faces")
    console.print(t)
    s = result["speed"]
    console.print(f"256 -> 512, one thread: eager {s['reference']['ms']:.1f} ms, fast {s['fast']['ms']:.1f} ms "
                  f"({s['speedup']:.2f}x), {s['gflops_per_frame']:.2f} GFLOPs/frame, fast {s['fast']['gflop_per_s']:.0f} GFLOP/s")
    console.print(f"verdict: the enhancer {'BEATS' if result['beats_lanczos'] else 'does NOT beat'} Lanczos on both")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
