"""Spectral equalisation: a fixed filter H(f) = clip(sqrt(P_real / P_gen), 0, cap) on reflect-padded
512² images, estimated from training faces and v4 samples; applied per channel."""
import sys
import numpy as np
from PIL import Image
from pathlib import Path
S = 512
def pad(x):  # (n,256,256,c) -> (n,512,512,c) symmetric extension (no edges for the FFT)
    return np.concatenate([np.concatenate([x, x[:, :, ::-1]], 2), np.concatenate([x[:, ::-1], x[:, ::-1, ::-1]], 2)], 1)
def power(x):
    g = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    g = pad(g[..., None])[..., 0]
    g = g - g.mean((1, 2), keepdims=True)
    return (np.abs(np.fft.fft2(g)) ** 2).mean(0)
def estimate(gen, real):
    pg = sum(power(gen[i:i + 100]) * len(gen[i:i + 100]) for i in range(0, len(gen), 100)) / len(gen)
    pr = sum(power(real[i:i + 100]) * len(real[i:i + 100]) for i in range(0, len(real), 100)) / len(real)
    return pr, pg
def apply(x, H):
    xp = pad(x.astype(np.float32))
    F = np.fft.fft2(xp, axes=(1, 2)) * H[None, :, :, None]
    y = np.real(np.fft.ifft2(F, axes=(1, 2)))[:, :256, :256]
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)
if __name__ == "__main__":
    gen = np.load("runs/real/gen_imgs.npy")
    files = sorted(Path("runs/data/train15/images").glob("*.png"))
    real = np.stack([np.asarray(Image.open(f).convert("RGB").resize((256, 256), Image.LANCZOS)) for f in files])
    pr, pg = estimate(gen[:1500], real)
    np.savez("runs/real/spectra.npz", pr=pr, pg=pg)
    for cap in (1.0, 1.5):
        H = np.clip(np.sqrt(np.where(pg > 0, pr, 1.0) / np.where(pg > 0, pg, 1.0)), 0, cap); H[0, 0] = 1.0
        np.save(f"runs/real/H-{cap}.npy", H.astype(np.float32))
        y = apply(gen[1500:1516], H)
        tiles = np.concatenate([np.concatenate(list(gen[1500:1508]), 1), np.concatenate(list(y[:8]), 1)], 0)
        Image.fromarray(tiles).save(f"runs/real/degrid-{cap}.png")
        crop = np.concatenate([gen[1500:1504, 64:192, 64:192], y[:4, 64:192, 64:192]], 0)
        Image.fromarray(np.concatenate([np.concatenate(list(crop[:4]), 1), np.concatenate(list(crop[4:]), 1)], 0)).resize((1024, 512), Image.NEAREST).save(f"runs/real/degrid-crop-{cap}.png")
        print(cap, "H<0.5 share", float((H < 0.5).mean()), "H min", float(H.min()), "mean", float(H.mean()))
