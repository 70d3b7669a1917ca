"""The feedback loop's painter: markers, the U-Net, and `train --kind painter` (samples, metric,
model file, exact resume)."""

from __future__ import annotations

import pytest
import torch

from passersby.checkpoint import CheckpointError, load_model, load_train_state
from passersby.config import PainterConfig, TrainConfig
from passersby.model.markers import perturb, read_markers
from passersby.model.painter import Painter
from passersby.model.load import load_painter
from passersby.train.run import train

from .test_training import _compare_states


def tiny_painter(**kw) -> PainterConfig:
    return PainterConfig(**{"resolution": 64, "ngf": 8, "depth": 3, "ndf": 8, "d_resolution": 64, **kw})


def test_markers_draw_lines_at_edges_and_keep_the_colour_layout():
    flat = torch.full((1, 3, 64, 64), 0.2)
    m = read_markers(flat)
    assert m.shape == (1, 4, 64, 64)
    assert m[:, 0].abs().max() < 1e-4  # no edge, no line
    assert torch.allclose(m[:, 1:], flat, atol=1e-5)  # the layout of a flat picture is its colour
    edge = flat.clone()
    edge[..., 32:] = -0.6  # a vertical dark/light boundary
    lines = read_markers(edge)[0, 0]
    assert lines[:, 30:34].abs().mean() > 0.5 and lines[:, :20].abs().max() < 1e-3
    assert m.min() >= -1 and m.max() <= 1


def test_perturbation_is_drawn_from_the_generator_passed_in():
    m = read_markers(torch.rand(2, 3, 64, 64) * 2 - 1)
    a = perturb(m, torch.Generator().manual_seed(1))
    assert torch.equal(a, perturb(m, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, perturb(m, torch.Generator().manual_seed(2)))
    assert not torch.equal(a, m) and a.shape == m.shape


def test_painter_shapes_and_a_frame_never_depends_on_its_batch():
    torch.manual_seed(0)
    p = Painter(tiny_painter()).eval()
    x = torch.rand(3, 4, 64, 64) * 2 - 1
    with torch.no_grad():
        y = p(x)
        assert y.shape == (3, 3, 64, 64) and y.abs().max() <= 1
        torch.testing.assert_close(p(x[1:2]), y[1:2], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"markers must be \(N, 4"):
        p(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="depth"):
        PainterConfig(resolution=64, depth=6)


def test_train_kind_painter_writes_samples_metric_and_a_painter_file(tmp_path, prepared_data, train_config):
    cfg = train_config(model=tiny_painter(), sample_every=2, metric_every=4, checkpoint_every=4, metric_samples=8)
    row = train(prepared_data, tmp_path / "p", cfg, steps=4, device="cpu")
    run = tmp_path / "p"
    assert (run / "samples" / "step-00000002.png").is_file() and (run / "curves.png").is_file()
    log = [__import__("json").loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    metric = [r for r in log if "kid_effnetlite0" in r]
    assert metric and metric[-1]["loop_steps"] == 8 and metric[-1]["kid_effnetlite0"] == metric[-1]["kid_effnetlite0"]
    assert row["step"] == 4
    painter, info = load_painter(run / "model.safetensors")
    assert isinstance(painter, Painter) and info.config == tiny_painter() and len(info.hash) == 16
    with pytest.raises(CheckpointError, match="is the feedback loop.s painter"):
        load_model(run / "model.safetensors")
    assert TrainConfig.from_dict(load_train_state(run / "checkpoints" / "step-00000004.safetensors")[1]
                                 ["train_config"]).model == tiny_painter()


def test_a_generator_file_is_not_a_painter(tmp_path, prepared_data, train_config):
    train(prepared_data, tmp_path / "g", train_config(checkpoint_every=1), steps=1, device="cpu", evaluate_metrics=False)
    with pytest.raises(CheckpointError, match="is not a painter"):
        load_painter(tmp_path / "g" / "model.safetensors")


def test_painter_resume_is_exact(tmp_path, prepared_data, train_config):
    cfg = train_config(model=tiny_painter(), checkpoint_every=3, beta1=0.0, beta2=0.99)
    a, b = tmp_path / "a", tmp_path / "b"
    train(prepared_data, a, cfg, steps=6, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=3, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=6, device="cpu", evaluate_metrics=False, resume_run=True)
    _compare_states(a / "checkpoints" / "step-00000006.safetensors", b / "checkpoints" / "step-00000006.safetensors")


def test_the_cli_trains_a_painter_and_refuses_a_gan_recipe_for_it(tmp_path, prepared_data):
    from typer.testing import CliRunner

    from passersby.cli import app

    r = CliRunner().invoke(app, ["train", str(prepared_data), "--kind", "painter", "--recipe", "fastgan",
                                 "--out", str(tmp_path / "x"), "--resolution", "64"])
    assert r.exit_code == 1 and "error: --recipe fastgan does not train --kind painter" in r.output
    r = CliRunner().invoke(app, ["train", str(prepared_data), "--kind", "sculptor", "--out", str(tmp_path / "y")])
    assert r.exit_code == 1 and "error: --kind: unknown kind 'sculptor'" in r.output


def test_self_feed_reads_the_painters_own_painting(prepared_data, train_config, monkeypatch):
    from passersby.train import dist
    from passersby.data.training_set import load_training_set
    from passersby.train.painter import build_state, train_step

    calls = []
    for share, expected in ((0.5, [2, 4]), (0.0, [4])):
        cfg = train_config(model=tiny_painter(self_feed=share), batch_size=4)
        ts = build_state(cfg, torch.device("cpu"))
        real_forward = ts.G.forward
        calls.clear()
        monkeypatch.setattr(ts.G, "forward", lambda m, f=real_forward: calls.append(len(m)) or f(m))
        train_step(ts, load_training_set(prepared_data, 64), cfg, torch.device("cpu"), dist.DistInfo())
        assert calls == expected  # half the batch painted first, then the whole batch from markers
    with pytest.raises(ValueError, match="self_feed"):
        tiny_painter(self_feed=1.5)


def test_the_pool_keeps_the_loops_own_states_and_learns_to_paint_their_faces_back(prepared_data, train_config):
    from passersby.train import dist
    from passersby.data.training_set import load_training_set
    from passersby.train.painter import build_state, train_step

    cfg = train_config(model=tiny_painter(pool=4, pool_depth=3), batch_size=4)  # 2 of 4 from the pool
    ts = build_state(cfg, torch.device("cpu"))
    data = load_training_set(prepared_data, 64)
    ages = []
    for _ in range(8):
        before = {k: v.clone() for k, v in ts.extra.items()}
        train_step(ts, data, cfg, torch.device("cpu"), dist.DistInfo())
        age = ts.extra["pool_age"]
        ages.append(age.clone())
        assert ts.extra["pool_state"].shape == (4, 3, 64, 64) and ts.extra["pool_state"].dtype == torch.float16
        if before:  # exactly two slots were painted this step; the others kept their states
            changed = (ts.extra["pool_state"] != before["pool_state"]).flatten(1).any(1)
            assert int(changed.sum()) == 2
            assert torch.equal(ts.extra["pool_target"][~changed], before["pool_target"][~changed])
    assert all(int(a.max()) <= 3 for a in ages)  # a state `depth` paintings old starts again
    assert max(int(a.max()) for a in ages) >= 2  # states are painted again and again
    with pytest.raises(ValueError, match="pool must be an integer"):
        tiny_painter(pool=-1)
    with pytest.raises(ValueError, match="pool_depth must be an integer >= 1"):
        tiny_painter(pool_depth=0)


def test_painter_resume_with_a_pool_is_exact(tmp_path, prepared_data, train_config):
    cfg = train_config(model=tiny_painter(pool=4), checkpoint_every=3, beta1=0.0, beta2=0.99, batch_size=4)
    a, b = tmp_path / "a", tmp_path / "b"
    train(prepared_data, a, cfg, steps=6, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=3, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=6, device="cpu", evaluate_metrics=False, resume_run=True)
    _compare_states(a / "checkpoints" / "step-00000006.safetensors", b / "checkpoints" / "step-00000006.safetensors")
    tensors, _ = load_train_state(a / "checkpoints" / "step-00000006.safetensors")
    assert {"extra.pool_state", "extra.pool_target", "extra.pool_age"} <= set(tensors)


def test_init_starts_a_run_from_a_model_files_weights(tmp_path, prepared_data, train_config):
    from typer.testing import CliRunner

    from passersby.cli import app

    cfg = train_config(model=tiny_painter(), checkpoint_every=2)
    train(prepared_data, tmp_path / "a", cfg, steps=2, device="cpu", evaluate_metrics=False)
    start = tmp_path / "a" / "model.safetensors"
    from passersby.train.run import start_from
    from passersby.train.painter import build_state

    ts = build_state(cfg, torch.device("cpu"))
    start_from(ts, start)
    painter, _ = load_painter(start)
    for k, v in painter.state_dict().items():
        assert torch.equal(ts.G.state_dict()[k], v) and torch.equal(ts.G_ema.state_dict()[k], v), k
    wider = train_config(model=tiny_painter(ngf=12), checkpoint_every=2)
    with pytest.raises(CheckpointError, match="does not fit this run's network"):
        train(prepared_data, tmp_path / "b", wider, steps=1, device="cpu", evaluate_metrics=False, init=start)
    r = CliRunner().invoke(app, ["train", str(prepared_data), "--kind", "painter", "--out", str(tmp_path / "c"),
                                 "--resolution", "64", "--init", str(tmp_path / "nothing.safetensors")])
    assert r.exit_code == 1 and "error: --init:" in r.output and "does not exist" in r.output
    r = CliRunner().invoke(app, ["train", str(prepared_data), "--out", str(tmp_path / "d"), "--pool", "4"])
    assert r.exit_code == 1 and "error: --pool: only --kind painter" in r.output
