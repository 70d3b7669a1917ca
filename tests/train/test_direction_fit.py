"""`passersby direction` end to end on the shipped model: a probe on real labelled faces, a
latent direction orthogonal to brightness and faceness, a scale chosen by probe and detector,
the direction stored in the written model; bad input gives one error line."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from passersby.cli import app
from passersby.checkpoint import load_model
from passersby.sample import default_model_path
from passersby.model.load import load_choice, load_direction
from passersby.train.direction import SCALES, choose_scale, face_brightness, fit_direction, grey, write_with_direction


def test_grey_and_brightness() -> None:
    im = np.zeros((1, 8, 8, 3), np.uint8)
    im[0, 2:6, 2:6] = (255, 0, 0)  # a red centre
    g = grey(im)
    assert g.shape == im.shape and (g[..., 0] == g[..., 1]).all() and g[0, 3, 3, 0] == 76
    assert np.isclose(face_brightness(im)[0], 0.299 * 255, atol=0.1)


def test_choose_scale_prefers_the_smallest_good_one_and_keeps_faces() -> None:
    c = lambda s, a, f: {"scale": s, "probe_agreement": a, "face_fraction": f}  # noqa: E731
    assert choose_scale([c(2, .95, .95), c(3, .99, .95)], 0.9) == 2
    assert choose_scale([c(2, .7, .95), c(3, .8, .92), c(4, .95, .5)], 0.9) == 3  # 4 loses the faces
    # No offset keeps 90 % faces on this side: those within 5 points of the best count.
    assert choose_scale([c(2, .79, .87), c(3, .82, .85), c(5, .9, .867)], 0.9) == 5
    assert choose_scale([c(2, .7, .5), c(3, .8, .7)], 0.9) == 3


def test_fit_direction_on_the_shipped_model(prepared_data, tmp_path) -> None:
    src = default_model_path()
    d, report, choice = fit_direction(src, prepared_data, n=60, seed=0, n_eval=6, n_check=6)
    assert np.isclose(np.linalg.norm(d.vector), 1.0)
    assert report["probe"] == "descriptor" and 0 < report["n_real_labelled"] <= 11
    assert report["scale"] in SCALES and report["feminine_scale"] in SCALES
    assert sorted((c["label"], c["scale"]) for c in report["scale_checks"]) == sorted(
        (label, s) for label in ("feminine", "masculine") for s in SCALES)
    assert d.scale_for("masculine") == report["scale"] and d.scale_for("feminine") == report["feminine_scale"]
    assert -1.0 <= report["cos_raw_vs_final"] <= 1.0 + 1e-9
    assert report["classifier"]["n"] == 12 and report["classifier_unsteered"]["n"] == 6
    out = tmp_path / "with-dir.safetensors"
    # The screens' choice: the probe itself, at the offsets its rule chose.
    assert choice.kind == "grey" and choice.probe.w.shape == (1280,) and 0 <= report["choice_probe_heldout_accuracy"] <= 1
    assert (choice.scale, choice.feminine_scale) == (report["scale"], report["feminine_scale"])
    write_with_direction(src, out, d, report, choice)
    _, info = load_model(out)
    back = load_direction(info.meta)
    assert np.allclose(back.vector, d.vector) and back.scale == report["scale"]
    assert back.scale_for("feminine") == report["feminine_scale"]
    stored = load_choice(info)
    assert stored.scale == choice.scale and np.allclose(stored.probe.w, choice.probe.w)
    assert stored.probe.b == choice.probe.b and np.allclose(stored.probe.mean, choice.probe.mean)


def test_direction_cli_refuses_an_unknown_probe_and_unlabelled_data(prepared_data, tmp_path) -> None:
    r = CliRunner().invoke(app, ["direction", str(prepared_data), "--out", str(tmp_path / "x.safetensors"),
                                 "--probe", "vibes"])
    assert r.exit_code == 1 and "error: --probe" in r.output and "Traceback" not in r.output
    empty = tmp_path / "nolabels"
    empty.mkdir()
    r = CliRunner().invoke(app, ["direction", str(empty), "--out", str(tmp_path / "y.safetensors")])
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "Traceback" not in r.output
