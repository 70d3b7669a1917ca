"""Does an upscaler beat plain resizing? Downscale real faces, restore them, compare.

For each held-out face (native pixels, never resized): shrink it `scale` times (PIL's
antialiased bicubic, what "downscale" means in any image editor), restore it with the upscaler
and with Lanczos, and measure both against the original:

- PSNR (dB, RGB 0..255, per face, then averaged): exact pixels.
- feature distance: LPIPS-style, without learned weights, on EfficientNet-Lite0 (ImageNet
  weights, a network the enhancer never trains against): at blocks 2, 4 and 10 (strides 4, 8
  and 16), each position's channel vector normalised to unit length, squared distance summed
  over channels, averaged over positions, then over the three blocks. Lower is closer; it
  rewards strokes and edges in the right place, which PSNR barely sees.

Example:
    >>> scores = restore_scores(faces, enhance, scale=2)  # a trained enhancer and held-out faces  # doctest: +SKIP
    >>> scores["psnr"], scores["psnr_lanczos"]  # a trained enhancer and held-out faces  # doctest: +SKIP
    (31.2, 30.4)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

FEATURE_TAPS = (2, 4, 10)


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/scale, W/scale, 3) uint8, antialiased bicubic (PIL)."""
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w // scale, h // scale), Image.BICUBIC))


def lanczos(image: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (scale h, scale w, 3) uint8 with PIL's Lanczos filter."""
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * scale, h * scale), Image.LANCZOS))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 pictures of one size.

    Example:
        >>> round(psnr(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)), 1)
        0.0
    """
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    return (x / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def feature_distance(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """(N,) LPIPS-style distances between pictures a[i] and b[i] (uint8, same size per pair).

    Example:
        >>> x = [np.zeros((64, 64, 3), np.uint8)]
        >>> float(feature_distance(x, x)[0])
        0.0
    """
    from passersby.metrics.features import load_model, trunk_maps

    net = load_model("cpu")
    out = []
    for x, y in zip(a, b):
        ma = trunk_maps(net, _to_tensor([x]), FEATURE_TAPS)
        mb = trunk_maps(net, _to_tensor([y]), FEATURE_TAPS)
        d = [((F_norm(p) - F_norm(q)) ** 2).sum(1).mean() for p, q in zip(ma, mb)]
        out.append(float(torch.stack(d).mean()))
    return np.asarray(out)


def F_norm(m: torch.Tensor) -> torch.Tensor:
    """Each position's channel vector at unit length: (N, C, H, W) -> same shape."""
    return m / (m.norm(dim=1, keepdim=True) + 1e-10)


def restore_scores(faces: list[np.ndarray], upscale: Callable[[np.ndarray], np.ndarray], scale: int) -> dict:
    """PSNR and feature distance of `upscale` and of Lanczos restoring shrunk `faces`.

    Args:
        faces: native (H, W, 3) uint8 pictures, sides divisible by `scale`.
        upscale: (h, w, 3) uint8 -> (scale h, scale w, 3) uint8.
        scale: 2 or 4.

    Returns:
        {"psnr", "psnr_lanczos", "feature_distance", "feature_distance_lanczos", "n",
         "wins_psnr", "wins_feature"} (wins: share of faces where the upscaler is better).
    """
    small = [downscale(f, scale) for f in faces]
    ours = [upscale(s) for s in small]
    lz = [lanczos(s, scale) for s in small]
    p_ours = np.array([psnr(o, f) for o, f in zip(ours, faces)])
    p_lz = np.array([psnr(o, f) for o, f in zip(lz, faces)])
    d_ours, d_lz = feature_distance(ours, faces), feature_distance(lz, faces)
    return {"n": len(faces), "psnr": float(p_ours.mean()), "psnr_lanczos": float(p_lz.mean()),
            "feature_distance": float(d_ours.mean()), "feature_distance_lanczos": float(d_lz.mean()),
            "wins_psnr": float((p_ours > p_lz).mean()), "wins_feature": float((d_ours < d_lz).mean())}
