"""The main directions of a generator's latent space, found without labels (GANSpace).

Härkönen et al. 2020, "GANSpace: Discovering Interpretable GAN Controls", for a network without
a mapping network (their BigGAN recipe), here on the FastGAN generator (model/generator.py):

1. draw n latents z ~ N(0, I) (n, z_dim) and run the generator up to its first upsampling block:
   y = ups["8"](init(z)), the (n, C8, 8, 8) activations where the layout of the face (pose,
   head size, where the light falls) is decided; flatten to (n, C8 * 64);
2. PCA of y: the top k components, coordinates x = (n, k) (uncorrelated, variance S_k^2 / n);
3. back to z by linear regression, as GANSpace does for BigGAN: the z-direction u_k that best
   predicts x_k, u_k = argmin sum_i (x_ik - u . z_i)^2 (least squares; for z ~ N(0, I) this is
   GANSpace's z-on-x regression up to scale), normalised to a unit vector. Its R^2 (how much
   of the component a straight line in z explains) is stored per direction.

The choice: regressing the activation PCA back to z (rather than PCA of z itself, which is
isotropic, or of a mapping network's output, which this generator does not have) gives
directions that move what the early layers vary most, in the space the stream walks in. An
early layer (8x8) finds the coarse controls an artist names (head turn, tilt, face size, light
side); later layers would mostly find texture. Each PCA direction is made orthogonal to the
model's masculine/feminine direction when it has one, so a slider on a labelled screen keeps
the screen's sex; the label direction itself is added as one more direction ("label").
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from passersby.model.directions import AMOUNTS, Direction, DirectionSet

LAYER = "ups.8"  # the activations GANSpace runs PCA on (after the first upsampling block, 8x8)


@torch.no_grad()
def early_activations(g: torch.nn.Module, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(n, z_dim) latents -> (n, C8 * 64) float32 activations of the generator's 8x8 block.

    A conditional model is run between its classes (label -1, Generator.embed).

    Example:
        >>> from passersby.config import ModelConfig
        >>> from passersby.model.generator import Generator
        >>> early_activations(Generator(ModelConfig(resolution=64, ngf=8)).eval(), torch.randn(3, 128)).shape
        torch.Size([3, 4096])
    """
    out = []
    for i in range(0, len(z), batch):
        zb = z[i : i + batch]
        label = torch.full((len(zb),), -1, dtype=torch.long) if g.cfg.n_classes else None
        y = g.ups["8"](g.init(g.embed(zb, label)))  # (b, C8, 8, 8)
        out.append(y.flatten(1).float())
    return torch.cat(out)


def pca_directions(z: np.ndarray, y: np.ndarray, k: int, avoid: np.ndarray | None = None) -> list[dict[str, Any]]:
    """GANSpace's back-projection: the top-k principal components of activations y (n, D), each
    regressed onto latents z (n, z_dim) and turned into a unit z-direction.

    Args:
        z: (n, z_dim) latents; y: (n, D) their activations.
        k: components wanted (k < n).
        avoid: a unit (z_dim,) direction each result is made orthogonal to (the label direction), or None.

    Returns:
        k dicts {"vector": (z_dim,) unit, "std": 1 (z . vector under the prior N(0, I)),
        "sample_std": its std over these z, "explained": share of y's
        variance, "r2": share of the component a line in z explains, "cos_label": cosine with
        `avoid` before it was removed}, largest component first.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.standard_normal((400, 6)); y = np.stack([3 * z[:, 2], z[:, 4], 0.1 * z[:, 0]], 1)
        >>> d = pca_directions(z, y, 2)
        >>> [int(np.argmax(abs(r["vector"]))) for r in d]
        [2, 4]
    """
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    yc = y - y.mean(0)
    total = float((yc**2).sum())
    # Thin SVD of the centred activations: (n, D) = U S V^T; coordinates x = U S (n, k).
    u, s, _ = np.linalg.svd(yc, full_matrices=False) if yc.shape[1] <= 4096 else _svd_top(yc, k)
    out = []
    for j in range(k):
        x = u[:, j] * s[j]  # (n,) coordinates of component j (centred)
        w = np.linalg.lstsq(z, x, rcond=None)[0]  # (z_dim,): the line in z that best predicts x
        r2 = float(np.corrcoef(z @ w, x)[0, 1] ** 2)
        v = w / np.linalg.norm(w)
        cos = 0.0 if avoid is None else float(v @ avoid)
        if avoid is not None:
            v = v - (v @ avoid) * avoid
            v = v / np.linalg.norm(v)
        out.append({"vector": v, "std": 1.0, "sample_std": round(float((z @ v).std()), 4), "explained": float(s[j] ** 2 / total),
                    "r2": round(r2, 4), "cos_label": round(cos, 4)})
    return out


def _svd_top(yc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """Top-k left singular vectors and values of a wide (n, D) matrix via its (n, n) Gram matrix."""
    gram = yc @ yc.T  # (n, n)
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(vals)[::-1][:k]
    return vecs[:, order], np.sqrt(np.maximum(vals[order], 0.0)), None


def find_directions(g: torch.nn.Module, model_hash: str, n: int = 2000, k: int = 10, seed: int = 0,
                    label: Any = None, model_file: str = "", yaw_faces: int = 0) -> DirectionSet:
    """A generator's top-k GANSpace directions (names "pca-0" ...), plus its label direction and,
    with `yaw_faces`, a measured head turn (model/yaw.py, source "yaw", named "head turn").

    Args:
        g: the generator (eval mode, fp32).
        model_hash: its file hash, stored in the set (a file for another model is refused later).
        n: latents sampled (a few thousand are plenty for 10 components).
        k: PCA directions.
        seed: seed of the latents.
        label: the model's LabelDirection (model/direction.py), or None.
        model_file: the generator's file name, for people reading the set.
        yaw_faces: faces rendered to measure the head turn (0: none; ~400 for a good one, a minute).

    Example:
        >>> from passersby.model.load import load_generator
        >>> g, info = load_generator()
        >>> s = find_directions(g.float().eval(), info.hash, n=64, k=2)
        >>> [d.source for d in s.directions]
        ['pca-0', 'pca-1']
    """
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..n-1, got k={k}, n={n}")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.cfg.z_dim, generator=gen)  # (n, z_dim)
    y = early_activations(g, z).numpy()  # (n, C8 * 64)
    avoid = None if label is None else np.asarray(label.vector, np.float64) / np.linalg.norm(label.vector)
    dirs = [Direction(f"pca-{j}", f"pca-{j}", r.pop("vector"), r.pop("std"), r)
            for j, r in enumerate(pca_directions(z.numpy(), y, k, avoid))]
    if label is not None:
        zl = z.numpy().astype(np.float64) @ avoid
        dirs.append(Direction("label", "masculine", avoid, 1.0,
                              {"probe_accuracy": float(label.probe_accuracy), "sample_std": round(float(zl.std()), 4)}))
    if yaw_faces:
        from passersby.model.yaw import yaw_direction

        dirs.append(yaw_direction(g, yaw_faces, seed + 1))
    found = {"how": "GANSpace: PCA of the 8x8 block's activations, regressed to z", "layer": LAYER, "n": n,
             "seed": seed}
    return DirectionSet(model_hash, tuple(dirs), {}, model_file, found)


@torch.no_grad()
def render_strips(g: torch.nn.Module, directions: DirectionSet, base: np.ndarray, tile: int = 128,
                  quality: int = 88) -> DirectionSet:
    """The set with each direction's thumbnail strip: `base` (z_dim,) moved by AMOUNTS std along it,
    rendered, tiles of `tile` px side by side, JPEG bytes.

    Example:
        >>> s = render_strips(g, find_directions(g, info.hash, n=64, k=1), np.zeros(128))  # a generator loaded elsewhere  # doctest: +SKIP
    """
    from PIL import Image

    strips = {}
    base32 = np.asarray(base, np.float32)
    for d in directions.directions:
        z = np.stack([base32 + np.float32(a) * d.step for a in AMOUNTS])  # (7, z_dim)
        label = torch.full((len(z),), -1, dtype=torch.long) if g.cfg.n_classes else None
        im = ((g(torch.from_numpy(z), label).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (7, 3, R, R)
        row = np.concatenate(list(im.permute(0, 2, 3, 1).numpy()), axis=1)  # (R, 7R, 3)
        pic = Image.fromarray(row).resize((tile * len(AMOUNTS), tile), Image.LANCZOS)
        buf = io.BytesIO()
        pic.save(buf, format="JPEG", quality=quality)
        strips[d.source] = buf.getvalue()
    return DirectionSet(directions.model, directions.directions, strips, directions.model_file, directions.found)
