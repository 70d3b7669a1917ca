"""`passersby sample` and passersby.sample: reproducible faces from (model, seed, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from passersby.checkpoint import load_model, save_train_state
from passersby.cli import app
from passersby.sample import default_model_path, latents, render, sample

runner = CliRunner()


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def _invoke(*args: str):
    res = runner.invoke(app, list(args), prog_name="passersby")
    return res


def _assert_one_line_error(res, *words: str) -> None:
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, not an uncaught exception
    out = res.output.strip()
    assert out.startswith("error: ") and "\n" not in out, out
    assert "Traceback" not in res.output
    for w in words:
        assert w in out, out


def test_same_seed_same_bytes_other_seed_other_faces(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for out, seed in ((a, "3"), (b, "3"), (c, "4")):
        res = _invoke("sample", "--n", "2", "--seed", seed, "--out", str(out))
        assert res.exit_code == 0, res.output
        assert str(out) in res.output and "2 faces" in res.output
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    grid = _png(a)
    assert grid.shape == (1 * 258 + 2, 2 * 258 + 2, 3)  # 2 faces of 256 px side by side, 2 px gaps


def test_singles_and_their_index(tmp_path):
    folder = tmp_path / "faces"
    res = _invoke("sample", "--n", "3", "--seed", "5", "--out", str(folder), "--singles")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["seed5-0000.png", "seed5-0001.png", "seed5-0002.png"]
    faces = [_png(folder / n) for n in names]
    assert all(f.shape == (256, 256, 3) for f in faces)
    assert not np.array_equal(faces[0], faces[1])
    # the face at an index depends on (model, seed, index) only: not on how many were drawn
    grid = tmp_path / "grid.png"
    assert _invoke("sample", "--n", "5", "--seed", "5", "--out", str(grid), "--ncol", "5").exit_code == 0
    g = _png(grid)
    for i in range(3):
        x0 = 2 + i * 258
        assert np.array_equal(g[2:258, x0 : x0 + 256], faces[i]), i


def test_default_model_makes_256px_faces():
    path = default_model_path()
    assert path.is_file()
    g, info = load_model(path)
    assert info.config.resolution == 256 and info.meta["format"] == "passersby-model"
    assert len(info.hash) == 16
    faces, info2 = sample(None, 4, seed=0)
    assert info2.hash == info.hash
    assert faces.shape == (4, 256, 256, 3) and faces.dtype == np.uint8
    for f in faces:
        assert f.std() > 20  # a picture, not a flat colour
        assert 30 < f.mean() < 225
    # four different faces, and the centre (the face) differs more than nothing
    assert min(np.abs(faces[i].astype(int) - faces[j]).mean() for i in range(4) for j in range(i)) > 5


@pytest.mark.parametrize("z_dim", [16, 20, 100, 128])
def test_latent_i_does_not_depend_on_n(z_dim):
    z8 = latents(8, z_dim, seed=11)
    assert z8.shape == (8, z_dim)
    for n in (1, 3, 5):
        assert torch.equal(latents(n, z_dim, seed=11), z8[:n])
    assert not torch.equal(latents(2, z_dim, seed=12), z8[:2])
    assert abs(float(latents(256, z_dim, 0).std()) - 1) < 0.1


def test_latents_of_usual_sizes_are_plain_randn():
    # z_dim a multiple of 16: the shipped model's faces for a seed never changed
    expected = torch.randn(3, 128, generator=torch.Generator().manual_seed(7))
    assert torch.equal(latents(3, 128, 7), expected)


def test_conditional_model_classes(tiny_model_file):
    faces, info = sample(tiny_model_file, 4, seed=0)
    assert faces.shape == (4, 64, 64, 3) and info.config.class_names == ("feminine", "masculine")
    fem, _ = sample(tiny_model_file, 4, seed=0, class_name="feminine")
    masc, _ = sample(tiny_model_file, 4, seed=0, class_name="masculine")
    # default alternates classes: 0 feminine, 1 masculine, ...
    assert np.array_equal(faces[0], fem[0]) and np.array_equal(faces[1], masc[1])
    assert not np.array_equal(fem[0], masc[0])
    with pytest.raises(ValueError, match="not in this model's classes"):
        sample(tiny_model_file, 1, seed=0, class_name="cat")


def test_render_is_batch_independent(tiny_model_file):
    g, _ = load_model(tiny_model_file)
    z = latents(5, 16, seed=1)
    label = torch.tensor([0, 1, 0, 1, 1])
    assert np.array_equal(render(g, z, label, batch=5), render(g, z, label, batch=2))


def test_cli_with_a_trained_model_file(tiny_model_file, tmp_path):
    out = tmp_path / "tiny.png"
    res = _invoke("sample", "--model", str(tiny_model_file), "--n", "4", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert _png(out).shape == (2 * 66 + 2, 2 * 66 + 2, 3)


def test_bad_model_path_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    res = _invoke("sample", "--model", str(missing), "--out", str(tmp_path / "x.png"))
    _assert_one_line_error(res, str(missing))
    assert not (tmp_path / "x.png").exists()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\0" * 100)
    _assert_one_line_error(_invoke("sample", "--model", str(junk), "--out", str(tmp_path / "x.png")), str(junk))


def test_training_checkpoint_as_model_is_a_one_line_error(tmp_path):
    ck = tmp_path / "step-00000001.safetensors"
    save_train_state(ck, {"x": torch.zeros(1)}, {"step": 1})
    _assert_one_line_error(_invoke("sample", "--model", str(ck), "--out", str(tmp_path / "x.png")),
                           str(ck), "model.safetensors")


def test_unwritable_out_is_a_one_line_error(tmp_path, tiny_model_file):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "grid.png"
    _assert_one_line_error(_invoke("sample", "--model", str(tiny_model_file), "--n", "1", "--out", str(out)), str(out))
