"""`passersby train --kind enhancer`: losses, samples, the held-out verdict metric, the model
file, exact resume, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from passersby.checkpoint import CheckpointError, load_model
from passersby.model.load import load_enhancer
from passersby.train.enhancer import restore_loss, shrink
from passersby.model.load import load_painter
from passersby.train.run import train

from .test_training import _compare_states


def test_shrink_and_the_restore_loss():
    hr = torch.rand(2, 3, 32, 32) * 2 - 1
    assert shrink(hr, 2).shape == (2, 3, 16, 16)
    assert restore_loss(hr, hr, 1.0).item() == 0.0
    blurred = torch.nn.functional.avg_pool2d(hr, 3, 1, 1)
    # The edge term charges blur beyond what plain L1 does.
    assert restore_loss(blurred, hr, 1.0) > restore_loss(blurred, hr, 0.0) > 0


def test_train_kind_enhancer_writes_samples_a_verdict_metric_and_an_enhancer_file(tmp_path, hires_data, train_config, enhancer_config):
    cfg = train_config(model=enhancer_config(adv_weight=0.1), sample_every=2, metric_every=2,
                       checkpoint_every=2)
    run = tmp_path / "e"
    row = train(hires_data / "train", run, cfg, steps=2, device="cpu")
    assert row["step"] == 2 and (run / "samples" / "step-00000002.png").is_file()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    metric = [r for r in log if "psnr" in r][-1]
    assert metric["n"] == 1  # the held-out split, not the training faces
    assert metric["score"] == metric["feature_distance"] and metric["psnr_lanczos"] > 10
    losses = [r for r in log if "loss_d" in r][-1]
    assert losses["loss_d"] > 0  # adv_weight > 0 trains the patch discriminator
    e, info = load_enhancer(run / "model.safetensors")
    assert info.config == enhancer_config(adv_weight=0.1)
    with pytest.raises(CheckpointError, match="not a painter"):
        load_painter(run / "model.safetensors")
    with pytest.raises(CheckpointError, match="is an enhancer"):
        load_model(run / "model.safetensors")


def test_enhancer_resume_is_exact(tmp_path, hires_data, train_config, enhancer_config):
    cfg = train_config(model=enhancer_config(adv_weight=0.1), checkpoint_every=3)  # D's state too
    a, b = tmp_path / "a", tmp_path / "b"
    data = hires_data / "train"
    train(data, a, cfg, steps=6, device="cpu", evaluate_metrics=False)
    train(data, b, cfg, steps=3, device="cpu", evaluate_metrics=False)
    train(data, b, cfg, steps=6, device="cpu", evaluate_metrics=False, resume_run=True)
    _compare_states(a / "checkpoints" / "step-00000006.safetensors", b / "checkpoints" / "step-00000006.safetensors")


def test_cli_trains_an_enhancer_at_the_datasets_size(tmp_path, hires_data, tiny_model_file):
    from typer.testing import CliRunner

    from passersby.cli import app

    r = CliRunner().invoke(app, ["train", str(hires_data / "train"), "--kind", "enhancer", "--out", str(tmp_path / "x"),
                                 "--steps", "2", "--ngf", "8", "--no-metrics", "--sample-every", "2"])
    assert r.exit_code == 0, r.output
    e, info = load_enhancer(tmp_path / "x" / "model.safetensors")
    assert info.config.resolution == 48 and info.config.channels == 8
    r = CliRunner().invoke(app, ["train", str(hires_data / "train"), "--kind", "enhancer", "--recipe", "painter",
                                 "--out", str(tmp_path / "y")])
    assert r.exit_code == 1 and "error: --recipe painter does not train --kind enhancer" in r.output
    with pytest.raises(CheckpointError, match="is not an enhancer"):
        load_enhancer(tiny_model_file)
