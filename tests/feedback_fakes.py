"""Model-free stand-ins for the feedback loop's generator and painter (tests of the stream's
feedback source and of the kiosk showing it): fixture paintings, tinted and moved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

R = 64
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gender"


def paintings() -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB").resize((R, R))) for f in sorted(FIXTURES.glob("*.jpg"))]


def render_anchor(z: np.ndarray) -> np.ndarray:
    """(1, D) -> (1, R, R, 3): one of the fixture paintings, tinted by z (a pure function of z)."""
    pics = paintings()
    base = pics[int(abs(z[0, 0]) * 1000) % len(pics)].astype(np.float32)
    tint = 1 + 0.1 * np.tanh(z[0, 1:4])
    return np.clip(base * tint, 0, 255).astype(np.uint8)[None]


def step(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """A stand-in painter: move the picture by the field (nearest pixel) and turn its colours a little."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    sx = np.clip(np.rint(xs + field[..., 0] * w / 2 * 40), 0, w - 1).astype(int)  # x40: visible moves
    sy = np.clip(np.rint(ys + field[..., 1] * h / 2 * 40), 0, h - 1).astype(int)
    moved = image[sy, sx].astype(np.float32)
    return np.clip(0.95 * moved + 0.05 * moved[..., [1, 2, 0]], 0, 255).astype(np.uint8)
