"""passersby.checkpoint: round trips, self-description, clear errors, atomic writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file

from passersby import checkpoint as ck
from passersby.checkpoint import (
    CheckpointError, atomic_write_bytes, file_hash, load_model, load_train_state, save_model,
    save_train_state,
)
from passersby.config import ModelConfig
from passersby.model.generator import Generator, recalibrate_batchnorm

CPU = torch.device("cpu")


@pytest.fixture
def generator(model_config):
    cfg = model_config(class_names=("feminine", "masculine"))
    torch.manual_seed(0)
    g = Generator(cfg)
    recalibrate_batchnorm(g, 2, 8, gen=torch.Generator().manual_seed(1), device=CPU)
    return g.eval(), cfg


def _inputs(cfg, n=4):
    z = torch.randn(n, cfg.z_dim, generator=torch.Generator().manual_seed(9))
    return z, torch.arange(n) % 2


def _assert_clear(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


# ---------------------------------------------------------------- model files


def test_model_round_trip_fp32_is_exact(tmp_path, generator):
    g, cfg = generator
    path = tmp_path / "m.safetensors"
    save_model(path, g, cfg, {"step": 123, "note": "hello"})
    g2, info = load_model(path)  # nothing but the path
    assert not g2.training
    assert info.config == cfg
    assert info.meta["step"] == 123 and info.meta["note"] == "hello"
    assert info.meta["format"] == "passersby-model" and info.meta["config"] == cfg.to_dict()
    assert info.path == path and info.hash == file_hash(path)
    for (k, a), (k2, b) in zip(g.state_dict().items(), g2.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    z, lab = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(g(z, lab), g2(z, lab))


def test_model_round_trip_half(tmp_path, generator):
    g, cfg = generator
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_model(full, g, cfg, {})
    save_model(half, g, cfg, {}, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    g2, _ = load_model(half)
    assert all(p.dtype == torch.float32 for p in g2.parameters())  # loads back as fp32
    z, lab = _inputs(cfg)
    with torch.no_grad():
        a, b = g(z, lab), g2(z, lab)
    torch.testing.assert_close(b, a, atol=2e-2, rtol=0)
    assert not torch.equal(a, b)  # it really was rounded


def test_file_hash_is_stable_and_content_addressed(tmp_path, generator):
    g, cfg = generator
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_model(a, g, cfg, {"step": 1})
    save_model(b, g, cfg, {"step": 1})
    assert a.read_bytes() == b.read_bytes()  # serialisation is deterministic
    h = file_hash(a)
    assert h == file_hash(a) == file_hash(b)
    assert h == hashlib.sha256(a.read_bytes()).hexdigest()[:16]
    assert len(h) == 16 and int(h, 16) >= 0
    save_model(b, g, cfg, {"step": 2})
    assert file_hash(b) != h


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "no such")
    with pytest.raises(CheckpointError) as e:
        load_train_state(tmp_path)  # a folder is not a checkpoint file either
    _assert_clear(e, tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped-header"])
def test_corrupt_file(tmp_path, generator, damage):
    g, cfg = generator
    path = tmp_path / "m.safetensors"
    save_model(path, g, cfg, {})
    data = path.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = os.urandom(4096)
    elif damage == "empty":
        data = b""
    else:  # header length says more than there is
        data = (len(data) * 2).to_bytes(8, "little") + data[8:]
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "not a readable")


def test_foreign_safetensors_file(tmp_path):
    plain = tmp_path / "someone-elses.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(CheckpointError) as e:
        load_model(plain)
    _assert_clear(e, plain, "not ours")
    other_meta = tmp_path / "other-meta.safetensors"
    save_file({"w": torch.zeros(3)}, str(other_meta), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load_train_state(other_meta)
    _assert_clear(e, other_meta, "not ours")


def _write_raw(path: Path, meta, tensors=None) -> Path:
    path.write_bytes(st_save(tensors or {"w": torch.zeros(1)}, metadata={"passersby": meta}))
    return path


def test_corrupt_passersby_metadata(tmp_path):
    for name, meta in (("bad-json", "{not json"), ("list", "[1, 2]")):
        path = _write_raw(tmp_path / f"{name}.safetensors", meta)
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        _assert_clear(e, path, "metadata")


def test_training_checkpoint_passed_as_a_model(tmp_path):
    path = tmp_path / "step-00000010.safetensors"
    save_train_state(path, {"G.x": torch.zeros(2)}, {"step": 10})
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "passersby-train", "model.safetensors")
    tensors, meta = load_train_state(path)  # it is a fine training checkpoint
    assert meta["step"] == 10 and torch.equal(tensors["G.x"], torch.zeros(2))
    assert meta["format"] == "passersby-train" and meta["version"] == ck.VERSION


def test_model_passed_as_a_training_checkpoint(tmp_path, generator):
    g, cfg = generator
    path = tmp_path / "model.safetensors"
    save_model(path, g, cfg, {})
    with pytest.raises(CheckpointError) as e:
        load_train_state(path)
    _assert_clear(e, path, "passersby-model")


def test_future_version(tmp_path, generator):
    g, cfg = generator
    meta = {"format": "passersby-model", "version": ck.VERSION + 1, "config": cfg.to_dict()}
    path = _write_raw(tmp_path / "future.safetensors", json.dumps(meta), g.state_dict())
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "newer", "upgrade")
    meta["version"] = "1"  # not an int either
    path = _write_raw(tmp_path / "weird.safetensors", json.dumps(meta), g.state_dict())
    with pytest.raises(CheckpointError):
        load_model(path)


def test_newer_config_fields_and_mismatched_weights(tmp_path, generator):
    g, cfg = generator
    meta = {"format": "passersby-model", "version": ck.VERSION,
            "config": {**cfg.to_dict(), "style_mixing": True}}
    path = _write_raw(tmp_path / "newer-config.safetensors", json.dumps(meta), g.state_dict())
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "config")
    meta["config"] = ModelConfig(resolution=64, z_dim=16, ngf=12, ndf=8).to_dict()
    path = _write_raw(tmp_path / "wrong-weights.safetensors", json.dumps(meta), g.state_dict())
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    _assert_clear(e, path, "do not match")


# ---------------------------------------------------------------- atomic writes


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fail_at", ["fsync", "write", "replace"])
def test_full_disk_keeps_the_previous_file(tmp_path, generator, monkeypatch, fail_at):
    g, cfg = generator
    path = tmp_path / "model.safetensors"
    save_model(path, g, cfg, {"step": 1})
    before = path.read_bytes()
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def boom(*a, **k):
        raise enospc

    if fail_at == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    elif fail_at == "replace":
        monkeypatch.setattr(os, "replace", boom)
    else:
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def fileno(self):
                return self.f.fileno()

            def write(self, data):
                self.f.write(data[:100])  # part of it lands, then the disk is full
                self.f.flush()
                raise enospc

            def flush(self):
                self.f.flush()

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)  # other weights this time
    with pytest.raises(CheckpointError) as e:
        save_model(path, g, cfg, {"step": 2})
    _assert_clear(e, path, "no space left on device", "MB free", "intact")
    assert path.read_bytes() == before
    assert _entries(tmp_path) == ["model.safetensors"]  # no temporary file left
    monkeypatch.undo()
    _, info = load_model(path)
    assert info.meta["step"] == 1


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, b"old")

    def interrupt(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert _entries(tmp_path) == ["x.bin"]


def test_unwritable_destination_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "sub" / "model.safetensors"  # its "folder" is a file
    with pytest.raises(CheckpointError) as e:
        atomic_write_bytes(target, b"data")
    _assert_clear(e, target)


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    new = tmp_path / "new.bin"
    atomic_write_bytes(new, b"1")
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask  # as open(..., "w") would make it
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"0")
    kept.chmod(0o640)
    atomic_write_bytes(kept, b"1")
    assert kept.read_bytes() == b"1"
    assert kept.stat().st_mode & 0o777 == 0o640  # replacing keeps the file's permissions


def test_atomic_write_creates_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(path, b"payload")
    assert path.read_bytes() == b"payload"


def test_model_defaults_are_the_training_recipes():
    from passersby.train.recipes import recipe_defaults

    model, _ = recipe_defaults("projected")
    assert model == {"discriminator": "projected", "ngf": 16, "ndf": 32, "d_resolution": 192}
    assert {k: getattr(ModelConfig(), k) for k in model} == model


def test_an_old_config_without_newer_fields_loads_as_before(tmp_path):
    """A config stored before `discriminator` and `d_resolution` existed (models/previous-default,
    candidate-b) means fastgan / 0 and ngf 32 when absent, as when it was written: the fallbacks
    are frozen, not ModelConfig's defaults (which are the recipe's since issue 20)."""
    old = {"class_names": [], "ndf": 32, "ngf": 16, "resolution": 256, "z_dim": 128}
    assert ModelConfig.from_dict(old) == ModelConfig(resolution=256, z_dim=128, ngf=16, ndf=32,
                                                     discriminator="fastgan", d_resolution=0)
    assert ModelConfig.from_dict({}) == ModelConfig(ngf=32, ndf=32, discriminator="fastgan", d_resolution=0)
    new = ModelConfig(resolution=64, z_dim=16, ngf=12, ndf=8)
    assert ModelConfig.from_dict(new.to_dict()) == new  # a full config is taken as written
    # The stored file itself: the same config as the loader made of it before the defaults moved.
    root = Path(__file__).resolve().parents[1]
    _, info = load_model(root / "models" / "previous-default-211e34d3987f187b.safetensors")
    assert (info.config.discriminator, info.config.d_resolution, info.config.ngf) == ("fastgan", 0, 16)
    # Written again, it says every field: it loads the same wherever the defaults go.
    cfg = ModelConfig.from_dict(old | {"resolution": 64, "z_dim": 16, "ngf": 8})
    save_model(tmp_path / "m.safetensors", Generator(cfg).eval(), cfg, {})
    assert load_model(tmp_path / "m.safetensors")[1].config == cfg
