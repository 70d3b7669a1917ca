"""Restorer training: pairs by inversion (resumable), training steps that learn, exact resume,
and the command that writes a generator with the restorer attached."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from passersby.config import RestorerConfig
from passersby.model.generator import Generator
from passersby.train.restorer import RestorerRun, RestorerTrainConfig, to_float
from passersby.train.restorer_pairs import invert, layout, make_pairs, paint
from tests.conftest import tiny_model_config

SMALL = RestorerConfig(width=8, deep=8, blocks=1)


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(tiny_model_config()).eval()


@pytest.fixture(scope="module")
def faces(prepared_data):
    from passersby.data.training_set import load_training_set

    return load_training_set(prepared_data, 64).images  # (12, 3, 64, 64) uint8


def test_layout_and_paint_are_the_generator(G):
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.allclose(paint(G, layout(G, z)), G(z), atol=1e-6)


def test_inversion_brings_the_reconstruction_nearer(G, faces):
    real = faces[:4].float().div(127.5).sub(1)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    _, before = invert(G, real, z, steps=0)
    _, after = invert(G, real, z, steps=15)
    assert float(after.mean()) < 0.9 * float(before.mean())


def test_pairs_resume_where_a_killed_run_stopped(G, faces, tmp_path):
    whole = make_pairs(G, faces, tmp_path / "a.npz", steps=2, pool=64, batch=4, save_every=1, log=lambda s: None)

    class Killed(Exception):
        pass

    def killer(msg: str) -> None:
        if msg.startswith("8/"):
            raise Killed

    with pytest.raises(Killed):
        make_pairs(G, faces, tmp_path / "b.npz", steps=2, pool=64, batch=4, save_every=1, log=killer)
    with np.load(tmp_path / "b.npz") as d:
        assert int(d["done"]) == 4
    said = []
    again = make_pairs(G, faces, tmp_path / "b.npz", steps=2, pool=64, batch=4, save_every=1, log=said.append)
    assert said[0] == "resumed at face 4 of 12"
    np.testing.assert_array_equal(again, whole)
    assert not list(tmp_path.glob("*.tmp*"))


def _run(faces: torch.Tensor, seed: int = 0, **kw) -> RestorerRun:
    arr = faces.numpy()
    pale = (faces.float() * 0.6 + 90).round().to(torch.uint8).numpy()  # the generator's pastel, exaggerated
    return RestorerRun(arr, pale, arr, RestorerTrainConfig(**{**dict(restorer=SMALL, batch=4, crop=32, lr=2e-3, seed=seed), **kw}))


def test_training_learns_to_undo_what_the_pairs_show(faces):
    run = _run(faces, lr=5e-3, perceptual_weight=0.0, adv_weight=0.0)  # the paired term alone: fast
    inp, real = to_float(run.recon[:8]), to_float(run.real[:8])
    with torch.no_grad():
        before = float((run.R(inp) - real).abs().mean())
    for _ in range(40):
        run.train_step()
    with torch.no_grad():
        after = float((run.R(inp) - real).abs().mean())
    assert after < 0.7 * before


def test_resume_is_exact(faces, tmp_path):
    from passersby.checkpoint import load_train_state, save_train_state

    a = _run(faces)
    for _ in range(4):
        a.train_step()
    b = _run(faces)
    for _ in range(2):
        b.train_step()
    save_train_state(tmp_path / "s.safetensors", *b.state())
    c = _run(faces, seed=5)  # a different start, overwritten by the checkpoint
    c.load(*load_train_state(tmp_path / "s.safetensors"))
    for _ in range(2):
        c.train_step()
    assert c.step == 4
    for (k, va), vc in zip(a.R_ema.state_dict().items(), c.R_ema.state_dict().values()):
        assert torch.equal(va, vc), k


def test_the_command_writes_a_generator_with_its_restorer(prepared_data, tmp_path):
    from passersby.checkpoint import save_model
    from passersby.cli import app
    from passersby.model.load import load_generator

    cfg = tiny_model_config()
    torch.manual_seed(0)
    save_model(tmp_path / "g.safetensors", Generator(cfg).eval(), cfg, {"step": 3, "directions": {}})
    r = CliRunner().invoke(app, ["restorer", str(prepared_data), "--model", str(tmp_path / "g.safetensors"),
                                 "--run", str(tmp_path / "run"), "--minutes", "0.02", "--invert-steps", "1",
                                 "--out", str(tmp_path / "gr.safetensors")])
    assert r.exit_code == 0, r.output
    g, info = load_generator(tmp_path / "gr.safetensors")
    assert g.restorer is not None and info.meta["restorer"]["faces"] == 12 and info.meta["step"] == 3
    assert (tmp_path / "run" / "pairs.npz").exists() and (tmp_path / "run" / "state.safetensors").exists()
    again = CliRunner().invoke(app, ["restorer", str(prepared_data), "--model", str(tmp_path / "gr.safetensors"),
                                     "--out", str(tmp_path / "x.safetensors")])
    assert again.exit_code == 1 and "error:" in again.output and "already has a restorer" in again.output


def test_the_command_names_a_missing_data_folder(tmp_path):
    from passersby.cli import app

    r = CliRunner().invoke(app, ["restorer", str(tmp_path / "nope"), "--out", str(tmp_path / "x.safetensors")])
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output
