"""passersby.train.run.train end to end on the 12 fixture portraits, with tiny models.

The key test is exact resume: 4 steps + resume to 8 must give bit-identical networks,
optimiser moments and random streams to 8 uninterrupted steps.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from passersby.checkpoint import CheckpointError, load_model, load_train_state, save_train_state
from passersby.data.manifest import DatasetError
from passersby.train.run import train

CLASSES = ("feminine", "masculine")


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _ckpts(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("*"))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, prepared_data, train_config):
    """6 steps; samples, metrics and checkpoints every 3 steps; keep only the last checkpoint."""
    run = tmp_path_factory.mktemp("runs") / "short"
    cfg = train_config(sample_every=3, checkpoint_every=3, metric_every=3, metric_samples=8, keep_last=1)
    row = train(prepared_data, run, cfg, steps=6, device="cpu", evaluate_metrics=True)
    return run, row


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory, prepared_data, train_config):
    """The cheapest finished run: 1 step, no metrics; copy it before use."""
    run = tmp_path_factory.mktemp("runs") / "one-step"
    train(prepared_data, run, train_config(), steps=1, device="cpu", evaluate_metrics=False)
    assert _ckpts(run) == ["step-00000001.safetensors"]
    return run


@pytest.mark.slow
def test_short_run_writes_everything(short_run, prepared_data):
    run, row = short_run
    assert row["step"] == 6
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "latest.png", "step-00000003.png", "step-00000006.png"]
    with Image.open(run / "samples" / "step-00000006.png") as im:
        # 16 faces of 64 px, 8 per row for a conditional model, 2 px gaps
        assert im.size == (8 * 66 + 2, 2 * 66 + 2) and im.mode == "RGB"
        grid = np.asarray(im)
    assert (run / "samples" / "latest.png").read_bytes() == (run / "samples" / "step-00000006.png").read_bytes()
    assert grid[2:66, 2:66].std() > 1  # a face tile, not the background
    with Image.open(run / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 500
    assert _ckpts(run) == ["step-00000006.safetensors"]  # keep_last=1: step 3 rotated out
    for name in ("model.safetensors", "best-model.safetensors", "best.safetensors"):
        assert (run / name).is_file(), name

    g, info = load_model(run / "model.safetensors")
    assert info.meta["step"] == 6
    assert info.config.class_names == CLASSES and info.config.resolution == 64
    assert not g.training
    _, best = load_model(run / "best-model.safetensors")
    assert best.meta["step"] in (3, 6)
    tensors, meta = load_train_state(run / "checkpoints" / "step-00000006.safetensors")
    assert meta["step"] == 6 and meta["world_size"] == 1
    assert meta["data_hash"] == json.loads((prepared_data / "manifest.json").read_text())["data_hash"]
    assert meta["train_config"]["model"]["class_names"] == list(CLASSES)
    assert {"rng.data", "rng.z", "rng.aug"} <= set(tensors)
    assert any(k.startswith("opt_g.") for k in tensors) and any(k.startswith("opt_d.") for k in tensors)
    # the model file holds the EMA generator (BN recalibrated), not the raw one
    ema = {k[len("G_ema."):]: v for k, v in tensors.items() if k.startswith("G_ema.")}
    for k, v in g.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, ema[k]), k

    cfg = json.loads((run / "train_config.json").read_text())
    assert cfg["model"]["class_names"] == list(CLASSES) and cfg["batch_size"] == 2


@pytest.mark.slow
def test_short_run_logs_losses_and_metrics(short_run):
    run, _ = short_run
    rows = _rows(run)
    metric_rows = [r for r in rows if "kid_effnetlite0" in r]
    assert [r["step"] for r in metric_rows] == [3, 6]
    for r in metric_rows:
        assert math.isfinite(r["kid_effnetlite0"]) and math.isfinite(r["fd_effnetlite0"])
        assert r["fd_effnetlite0"] > 0
        assert r["n_generated"] == 8 and r["n_train"] == 12
        assert r["mem_ratio"] > 0 and 0 <= r["mem_suspected_copy_fraction"] <= 1
    loss_rows = [r for r in rows if "loss_d" in r]
    assert [r["step"] for r in loss_rows] == [6]  # logged every 50 steps and at the end
    r = loss_rows[0]
    assert all(math.isfinite(r[k]) for k in ("loss_d", "loss_g", "loss_recon"))
    assert r["loss_d"] > 0 and r["loss_recon"] > 0 and r["img_per_s"] > 0


def test_fresh_run_into_a_finished_run_is_refused(one_step_run, prepared_data, train_config, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(one_step_run, run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    with pytest.raises(CheckpointError) as e:
        train(prepared_data, run, train_config(), steps=2, device="cpu", evaluate_metrics=False)
    assert str(run) in str(e.value) and "--resume" in str(e.value)
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before


def _compare_states(a: Path, b: Path) -> None:
    ta, ma = load_train_state(a)
    tb, mb = load_train_state(b)
    assert set(ta) == set(tb)
    groups = {k.split(".")[0] for k in ta}
    assert {"G", "D", "G_ema", "opt_g", "opt_d", "rng"} <= groups
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"{len(differ)} of {len(ta)} tensors differ, e.g. {differ[:8]}"
    for key in ("step", "best_metric", "opt_g_groups", "opt_d_groups", "train_config", "data_hash"):
        assert ma[key] == mb[key], key


@pytest.mark.slow
def test_resume_is_exact(tmp_path, prepared_data, train_config):
    # samples, metrics and checkpoints on a schedule that does not line up with the
    # interruption, so their side effects get a chance to leak into the training state
    cfg = train_config(sample_every=3, checkpoint_every=5, metric_every=4, metric_samples=8)
    a, b = tmp_path / "a", tmp_path / "b"
    train(prepared_data, a, cfg, steps=8, device="cpu")
    train(prepared_data, b, cfg, steps=4, device="cpu")
    assert _ckpts(b) == ["step-00000004.safetensors"]
    row = train(prepared_data, b, cfg, steps=8, device="cpu", resume_run=True)
    assert row["step"] == 8
    _compare_states(a / "checkpoints" / "step-00000008.safetensors", b / "checkpoints" / "step-00000008.safetensors")
    ga, _ = load_model(a / "model.safetensors")
    gb, _ = load_model(b / "model.safetensors")
    for (k, x), y in zip(ga.state_dict().items(), gb.state_dict().values()):
        assert torch.equal(x, y), k
    # and the run really moved on from step 4
    t4, _ = load_train_state(b / "checkpoints" / "step-00000004.safetensors")
    t8, m8 = load_train_state(b / "checkpoints" / "step-00000008.safetensors")
    assert not torch.equal(t4["G.to_rgb.weight"], t8["G.to_rgb.weight"])
    assert [r["step"] for r in m8["history"] if "kid_effnetlite0" in r] == [4, 8]
    # a resumed run that is already at its step count does nothing more
    row = train(prepared_data, b, cfg, steps=8, device="cpu", resume_run=True)
    assert row["step"] == 8 and _ckpts(b)[-1] == "step-00000008.safetensors"


@pytest.fixture
def resumable(one_step_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_step_run, run)
    return run


def test_resume_refuses_another_model_config(resumable, prepared_data, train_config, model_config):
    for cfg in (train_config(model=model_config(ngf=12)), train_config(model=model_config(z_dim=32))):
        with pytest.raises(CheckpointError) as e:
            train(prepared_data, resumable, cfg, steps=8, device="cpu", resume_run=True)
        msg = str(e.value)
        assert "step-00000001.safetensors" in msg and "model config" in msg and "\n" not in msg
    # unconditional instead of conditional is another model too
    with pytest.raises(CheckpointError, match="model config"):
        train(prepared_data, resumable, train_config(), steps=8, device="cpu", resume_run=True, conditional=False)
    assert _ckpts(resumable) == ["step-00000001.safetensors"]


def test_resume_refuses_other_data(resumable, prepared_subset, train_config):
    other = prepared_subset(10)
    with pytest.raises(CheckpointError) as e:
        train(other, resumable, train_config(), steps=8, device="cpu", resume_run=True)
    assert "other data" in str(e.value) and "step-00000001" in str(e.value)


def test_resume_without_checkpoint(prepared_data, train_config, tmp_path):
    for run in (tmp_path / "missing", tmp_path / "empty"):
        if run.name == "empty":
            (run / "checkpoints").mkdir(parents=True)
        with pytest.raises(CheckpointError) as e:
            train(prepared_data, run, train_config(), steps=2, device="cpu", resume_run=True)
        assert str(run) in str(e.value) and "nothing to resume" in str(e.value)


def _one_line_naming(err, folder: Path, *words):
    msg = str(err.value)
    assert str(folder) in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_too_small_dataset(prepared_subset, train_config, tmp_path):
    small = prepared_subset(5)
    with pytest.raises(DatasetError) as e:
        train(small, tmp_path / "run", train_config(), steps=2, device="cpu")
    _one_line_naming(e, small, "5 images", "at least 8")
    assert not (tmp_path / "run").exists()


def test_dataset_of_another_resolution(prepared_data, train_config, model_config, tmp_path):
    with pytest.raises(DatasetError) as e:
        train(prepared_data, tmp_path / "run", train_config(model=model_config(resolution=128)), steps=2, device="cpu")
    _one_line_naming(e, prepared_data, "64px", "128")


def test_missing_or_broken_manifest(prepared_data, train_config, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "does-not-exist"):
        with pytest.raises(DatasetError) as e:
            train(folder, tmp_path / "run", train_config(), steps=2, device="cpu")
        _one_line_naming(e, folder)
    broken = tmp_path / "broken"
    shutil.copytree(prepared_data, broken)
    next((broken / "images").iterdir()).unlink()
    with pytest.raises(DatasetError) as e:
        train(broken, tmp_path / "run", train_config(), steps=2, device="cpu")
    _one_line_naming(e, broken, "missing")


def test_wall_clock_limit_stops_with_a_checkpoint(prepared_data, train_config, tmp_path):
    run = tmp_path / "run"
    row = train(prepared_data, run, train_config(), steps=1000, device="cpu", max_minutes=1e-6,
                evaluate_metrics=False)
    assert row["step"] == 1
    assert _ckpts(run) == ["step-00000001.safetensors"]
    assert (run / "model.safetensors").is_file()


def test_unconditional_run_and_bad_schedule(prepared_data, train_config, tmp_path):
    run = tmp_path / "run"
    train(prepared_data, run, train_config(augment="translation"), steps=2, device="cpu",
          evaluate_metrics=False, conditional=False)
    _, info = load_model(run / "model.safetensors")
    assert info.config.class_names == ()
    with pytest.raises(ValueError, match="sample_every"):
        train_config(sample_every=0)
    with pytest.raises(ValueError, match="keep_last"):
        train_config(keep_last=0)
    with pytest.raises(ValueError, match="unknown augmentation"):
        train(prepared_data, tmp_path / "run2", train_config(augment="rotate"), steps=2, device="cpu",
              evaluate_metrics=False)


def test_a_checkpoint_older_than_a_model_config_field_still_resumes(resumable, prepared_data, train_config):
    # A run folder written before ModelConfig grew `restorer` stores no such key; it is the
    # same model, so --resume must go on rather than call it "another model config".
    ck = resumable / "checkpoints" / "step-00000001.safetensors"
    tensors, meta = load_train_state(ck)
    del meta["train_config"]["model"]["restorer"]
    save_train_state(ck, tensors, {k: v for k, v in meta.items() if k not in ("format", "version", "passersby_version")})
    assert "restorer" not in load_train_state(ck)[1]["train_config"]["model"]
    row = train(prepared_data, resumable, train_config(), steps=2, device="cpu", resume_run=True, evaluate_metrics=False)
    assert row["step"] == 2
