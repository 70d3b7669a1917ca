"""A measured head-turn direction: where the nose sits between the eyes, regressed onto z.

GANSpace (model/ganspace.py) finds directions without labels; on the default model its first
one turns the head but also darkens the ground (it moves what the 8x8 block varies most). For a
knob that turns the head and little else, this module measures the turn on rendered faces and
fits the z-direction along which it grows, as the masculine/feminine direction is fitted
(model/direction.fit_linear_direction):

    yaw = (x of the nose base - x of the eyes' midpoint) / distance between the eye centres

from dlib's 5-point landmarks (data/align.py) in the face dlib finds (else the crop's middle,
where the aligned training framing puts it): 0 for a frontal face, about +-0.1 for the turns in
the default model's faces (+ = the nose toward the picture's right). The direction's `info`
holds the correlation of z . direction with yaw on fresh held-out faces.
"""

from __future__ import annotations

import numpy as np
import torch

from passersby.model.direction import fit_linear_direction
from passersby.model.directions import Direction

HELD_OUT = 0.2  # share of the rendered faces kept out of the fit, for the reported correlation


def measure_yaw(rgb: np.ndarray) -> float:
    """The head turn of the face in an (R, R, 3) uint8 picture (see the module docstring).

    Example:
        >>> bool(np.isfinite(measure_yaw(np.full((64, 64, 3), 128, np.uint8))))
        True
    """
    from passersby.data.align import key_points, landmarks
    from passersby.data.faces import detect_faces

    side = rgb.shape[0]
    boxes = detect_faces(rgb) or [(side // 6, side // 6, side - side // 6, side - side // 6)]
    points = landmarks(rgb, boxes[0])  # (5, 2): eye corners, nose base
    eye_left, eye_right, _ = key_points(points)
    apart = float(np.linalg.norm(eye_right - eye_left)) or 1.0
    return float((points[4][0] - (eye_left[0] + eye_right[0]) / 2) / apart)


@torch.no_grad()
def yaw_direction(g: torch.nn.Module, n: int = 400, seed: int = 1, batch: int = 25) -> Direction:
    """Render n faces, measure each one's yaw, fit the unit z-direction along which it grows.

    Args:
        g: the generator (eval, fp32); a conditional one is run between its classes.
        n: faces rendered (>= 10); 1 in 5 is held out to measure the fit.
        seed: seed of their latents.

    Example:
        >>> d = yaw_direction(g, n=400)  # a generator loaded elsewhere (~1 minute on 2 cores)  # doctest: +SKIP
        >>> d.source, d.info["held_out_corr"] > 0.5  # a generator loaded elsewhere (~1 minute on 2 cores)  # doctest: +SKIP
        ('yaw', True)
    """
    if n < 10:
        raise ValueError(f"n must be at least 10 faces, got {n}")
    z = np.random.default_rng(seed).standard_normal((n, g.cfg.z_dim)).astype(np.float32)  # (n, z_dim)
    yaw = np.empty(n)
    for i in range(0, n, batch):
        zb = torch.from_numpy(z[i : i + batch])
        label = torch.full((len(zb),), -1, dtype=torch.long) if g.cfg.n_classes else None
        ims = ((g(zb, label).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        yaw[i : i + len(ims)] = [measure_yaw(np.ascontiguousarray(im)) for im in ims]
    cut = n - max(2, int(n * HELD_OUT))
    zf = z.astype(np.float64)
    v = fit_linear_direction(zf[:cut], yaw[:cut], l2=10.0)
    held = float(np.corrcoef(zf[cut:] @ v, yaw[cut:])[0, 1])
    return Direction("yaw", "head turn", v, 1.0,
                     {"held_out_corr": round(held, 4), "yaw_std": round(float(yaw.std()), 4), "n": n})
