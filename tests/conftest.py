"""Fixtures shared by the training, checkpoint, sampling and CLI tests.

Everything is built at test time from the committed portrait fixtures (tests/fixtures/portraits):
no test needs ../shared, a GPU or the network. Models are tiny (64 px, ngf = ndf = 8, z_dim 16)
so a training step costs a fraction of a second on one CPU core.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PORTRAITS = FIXTURES / "portraits"
TITLES = PORTRAITS / "titles.csv"

# Tests run on small CPU machines next to other work: one intra-op thread is both faster for
# these tiny tensors (no spinning thread pool) and steadier when the cores are shared.
torch.set_num_threads(1)

# Compiled models of the tests go to a throwaway cache of this run (passersby/compile_cache.py),
# never the user's ~/.cache; subprocesses inherit it.
if "PASSERSBY_COMPILE_CACHE" not in os.environ:
    import tempfile

    os.environ["PASSERSBY_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="passersby-compile-cache-")


def tiny_model_config(**overrides):
    """A ModelConfig small enough to train for a few steps in seconds."""
    from passersby.config import ModelConfig

    # The pixel discriminator: tiny tests train without EfficientNet features (ModelConfig's
    # default is the projected one, the shipped recipe).
    kw = dict(resolution=64, z_dim=16, ngf=8, ndf=8, discriminator="fastgan", d_resolution=0)
    kw.update(overrides)
    return ModelConfig(**kw)


def tiny_train_config(model=None, **overrides):
    """A TrainConfig for tiny runs: batch 2, nothing periodic unless asked for."""
    from passersby.config import TrainConfig

    kw = dict(batch_size=2, sample_every=1000, checkpoint_every=1000, metric_every=1000,
              metric_samples=8, keep_last=3, seed=0)
    kw.update(overrides)
    return TrainConfig(model=model or tiny_model_config(), **kw)


def _prepare(src_files: list[Path], dst: Path, size: int) -> Path:
    from passersby.data.prepare import prepare

    src = dst.parent / f"{dst.name}-src"
    src.mkdir(parents=True)
    for f in src_files:
        shutil.copy(f, src / f.name)
    # The fixtures are face crops (dlib misses a few of them): keep every one, centre-cropped.
    prepare(src, dst, size=size, labels=TITLES, progress=False, centre_crop_fallback=True)
    return dst


@pytest.fixture(scope="session")
def portrait_jpegs() -> list[Path]:
    files = sorted(PORTRAITS.glob("*.jpg"))
    assert len(files) == 12, "the portrait fixtures changed: update the tests"
    return files


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory, portrait_jpegs) -> Path:
    """All 12 fixture portraits prepared at 64 px, labelled from titles.csv (6 feminine,
    5 masculine, 1 unlabelled). Read-only for tests: copy it before changing anything."""
    return _prepare(portrait_jpegs, tmp_path_factory.mktemp("data") / "portraits64", 64)


@pytest.fixture(scope="session")
def prepared_subset(tmp_path_factory, portrait_jpegs):
    """n -> a dataset of the first n fixture portraits at 64 px (built once per n)."""
    cache: dict[int, Path] = {}

    def make(n: int) -> Path:
        if n not in cache:
            cache[n] = _prepare(portrait_jpegs[:n], tmp_path_factory.mktemp("data") / f"first{n}", 64)
        return cache[n]

    return make


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """An (untrained, BN-recalibrated) conditional 64 px generator saved as a model file."""
    from passersby.checkpoint import save_model
    from passersby.model.generator import Generator, recalibrate_batchnorm

    cfg = tiny_model_config(class_names=("feminine", "masculine"))
    torch.manual_seed(0)
    g = Generator(cfg)
    recalibrate_batchnorm(g, 2, 8, gen=torch.Generator().manual_seed(1), device=torch.device("cpu"))
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_model(path, g.eval(), cfg, {"step": 0})
    return path


@pytest.fixture(scope="session")
def model_config():
    """tiny_model_config as a fixture: model_config(**overrides) -> ModelConfig."""
    return tiny_model_config


@pytest.fixture(scope="session")
def train_config():
    """tiny_train_config as a fixture: train_config(model=None, **overrides) -> TrainConfig."""
    return tiny_train_config


@pytest.fixture(scope="session")
def hires_data(tmp_path_factory, prepared_data) -> Path:
    """`passersby hires` of the fixture faces: 48 px native squares, OUT/train (8) and OUT/held-out (1)."""
    from passersby.data.hires import native_face_squares

    out = tmp_path_factory.mktemp("hires") / "hires"
    native_face_squares(prepared_data, [prepared_data.parent / f"{prepared_data.name}-src"], out, size=48,
                        held_out=0.08)
    return out


def tiny_enhancer_config(**kw):
    from passersby.config import EnhancerConfig

    return EnhancerConfig(**{"resolution": 48, "channels": 8, "blocks": 1, "ndf": 8, **kw})


@pytest.fixture(scope="session")
def enhancer_config():
    """tiny_enhancer_config as a fixture: enhancer_config(**overrides) -> EnhancerConfig."""
    return tiny_enhancer_config


@pytest.fixture(scope="session")
def tiny_enhancer_file(tmp_path_factory, hires_data) -> Path:
    """A tiny enhancer trained for 3 steps, saved as training saves it."""
    from passersby.train.run import train

    run = tmp_path_factory.mktemp("enhancer") / "run"
    train(hires_data / "train", run, tiny_train_config(model=tiny_enhancer_config(), checkpoint_every=3), steps=3,
          device="cpu", evaluate_metrics=False)
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def painter_file(tmp_path_factory) -> Path:
    """An untrained tiny painter file (64 px), saved as training saves one."""
    import torch

    from passersby.checkpoint import save_model
    from passersby.config import PainterConfig
    from passersby.model.painter import Painter

    torch.manual_seed(0)
    cfg = PainterConfig(resolution=64, ngf=8, depth=3, ndf=8, d_resolution=64)
    path = tmp_path_factory.mktemp("painter") / "painter.safetensors"
    save_model(path, Painter(cfg).eval(), cfg, {"step": 0})
    return path


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server (tests/pgserver.py) for the session, or a skip saying why."""
    from pgserver import PgServer, pg_bin

    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's package)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[postgres]')")
    server = PgServer()
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty database on the session's server; its URL."""
    import hashlib
    import re

    # PostgreSQL names stop at 63 bytes; the hash keeps the backends of a parametrized test
    # (the same long name, another [id] at its end) in databases of their own.
    node = request.node.name.lower()
    name = "t_" + re.sub(r"[^a-z0-9_]", "_", node)[:50] + "_" + hashlib.sha1(node.encode()).hexdigest()[:8]
    if not (pg_server.data / "postmaster.pid").exists():  # a test stopped it
        pg_server.start()
    return pg_server.create_database(name)
