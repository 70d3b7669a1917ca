"""Named latent directions on the real shipped generator: GANSpace finding (small n), the measured
head turn, the direction file (round trip, refusals, rename) and the shipped file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from passersby.app.directions import strip_pictures, write_sheet
from passersby.model.directions import (AMOUNTS, DirectionFileError, directions_for, read_directions,
                                        rename_in_file)
from passersby.model.ganspace import early_activations, find_directions, pca_directions, render_strips
from passersby.model.load import default_directions_path, load_direction, load_generator
from passersby.model.yaw import measure_yaw, yaw_direction


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    g, info = load_generator()
    return g.float().eval(), info


@pytest.fixture(scope="module")
def found(generator):
    g, info = generator
    s = find_directions(g, info.hash, n=96, k=3, seed=0, label=load_direction(info.meta), model_file="default.safetensors")
    return render_strips(g, s, np.random.default_rng(5).standard_normal(128), tile=48)


def test_ganspace_on_the_shipped_model_finds_directions_that_move_its_main_components(generator, found):
    g, _ = generator
    assert [d.source for d in found.directions] == ["pca-0", "pca-1", "pca-2", "label"]
    pcs = found.directions[:3]
    shares = [d.info["explained"] for d in pcs]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) < 1
    for d in found.directions:
        assert abs(np.linalg.norm(d.vector) - 1) < 1e-6 and d.std == 1.0 and 0.7 < d.info["sample_std"] < 1.3
    label = found.directions[-1].vector
    assert all(abs(float(d.vector @ label)) < 1e-6 for d in pcs)  # a slider keeps the screen's sex
    # Fresh latents: moving along pca-0 moves the 8x8 activations' first component the most.
    z = torch.randn(48, 128, generator=torch.Generator().manual_seed(9))
    base = early_activations(g, z)
    moved = [early_activations(g, z + torch.from_numpy(d.step)) - base for d in pcs]
    sizes = [float(m.norm(dim=1).mean()) for m in moved]
    assert sizes[0] == max(sizes), sizes


def test_pca_directions_recover_the_latent_coordinates_a_linear_layer_varies_most():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 8))
    y = np.stack([4 * z[:, 5], 2 * z[:, 1], 0.5 * z[:, 3]], 1) + 0.01 * rng.standard_normal((500, 3))
    got = pca_directions(z, y, 3)
    assert [int(np.argmax(abs(r["vector"]))) for r in got] == [5, 1, 3]
    assert all(r["r2"] > 0.99 for r in got)  # a linear layer: a line in z explains each component
    avoid = np.eye(8)[1]
    assert all(abs(r["vector"] @ avoid) < 1e-9 for r in pca_directions(z, y, 3, avoid))


def test_the_file_round_trips_with_its_strips(found, tmp_path):
    path = tmp_path / "d.safetensors"
    found.save(path)
    back = read_directions(path)
    assert back.model == found.model and back.names == found.names and back.found == found.found
    for a, b in zip(found.directions, back.directions):
        assert np.allclose(a.vector, b.vector, atol=1e-7) and a.std == b.std and a.info == b.info
    assert back.steps().digest == found.steps().digest
    pics = strip_pictures(back)
    assert len(pics) == 4 and all(p.shape == (48, 48 * len(AMOUNTS), 3) for p in pics)
    # The strip's middle face is the base face; its ends differ from it.
    mid = pics[0][:, 3 * 48 : 4 * 48].astype(int)
    assert np.abs(pics[0][:, :48].astype(int) - mid).mean() > 5
    assert write_sheet(back, tmp_path / "sheet.jpg") > 10_000
    assert b"safetensors" not in path.read_bytes()[:8] and path.read_bytes()[8:9] == b"{"  # a safetensors header


def test_a_file_for_another_model_a_damaged_one_and_a_model_file_are_refused(found, tmp_path):
    path = tmp_path / "d.safetensors"
    found.save(path)
    with pytest.raises(DirectionFileError, match=r"model.directions: .* holds the directions of model .* this installation runs model 0123"):
        directions_for(path, "0123456789abcdef")
    (tmp_path / "bad.safetensors").write_bytes(path.read_bytes()[:200])
    with pytest.raises(DirectionFileError, match="bad.safetensors: not a readable direction file"):
        read_directions(tmp_path / "bad.safetensors")
    from passersby.model.load import default_model_path

    with pytest.raises(DirectionFileError, match="not a readable direction file"):
        read_directions(default_model_path())
    with pytest.raises(DirectionFileError, match="no such direction file"):
        read_directions(tmp_path / "missing.safetensors")


def test_rename_by_index_name_or_source_rewrites_the_file_and_keeps_the_vectors(found, tmp_path):
    path = tmp_path / "d.safetensors"
    found.save(path)
    before = read_directions(path).steps()
    rename_in_file(path, "1", "head turn")
    rename_in_file(path, "pca-2", "palette")
    rename_in_file(path, "head turn", "turn")
    after = read_directions(path)
    assert after.names == ("pca-0", "turn", "palette", "masculine")
    assert after.steps().ids == before.ids and after.steps().digest == before.digest  # keys stay valid
    with pytest.raises(DirectionFileError, match="already called 'turn'"):
        rename_in_file(path, "0", "turn")
    with pytest.raises(DirectionFileError, match="no direction '9'"):
        rename_in_file(path, "9", "x")
    with pytest.raises(DirectionFileError, match="without '='"):
        rename_in_file(path, "0", "a=b")
    assert read_directions(path).names == after.names  # a refused rename leaves the file as it was
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_the_shipped_file_belongs_to_the_shipped_model_and_its_head_turn_turns_heads(generator):
    g, info = generator
    shipped = directions_for(default_directions_path(), info.hash)
    assert {"head turn", "masculine"} <= set(shipped.names)
    turn = shipped.directions[shipped.index_of("head turn")]
    z = np.random.default_rng(21).standard_normal((8, 128)).astype(np.float32)
    yaws = {}
    with torch.no_grad():
        for a in (-2.5, 2.5):
            ims = ((g(torch.from_numpy(z + np.float32(a) * turn.step)).clamp(-1, 1) + 1) * 127.5).round()
            ims = ims.to(torch.uint8).permute(0, 2, 3, 1).numpy()
            yaws[a] = np.array([measure_yaw(np.ascontiguousarray(im)) for im in ims])
    assert (yaws[2.5] > yaws[-2.5]).sum() >= 7, yaws  # the nose moves to the right on (nearly) every face
    assert float((yaws[2.5] - yaws[-2.5]).mean()) > 0.05


def test_yaw_direction_is_fitted_on_measured_faces(generator):
    g, _ = generator
    d = yaw_direction(g, n=20, seed=3)
    assert d.source == "yaw" and d.name == "head turn" and abs(np.linalg.norm(d.vector) - 1) < 1e-6
    assert np.isfinite(d.info["held_out_corr"]) and d.info["yaw_std"] > 0
