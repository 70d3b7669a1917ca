"""Fast runtimes against the reference (eager PyTorch on the training-time Generator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from passersby.checkpoint import load_model
from passersby.config import ModelConfig
from passersby.model.fused import fuse, upsample_conv_as_transposed
from passersby.model.generator import Generator
from passersby.runtime import RUNTIMES, available, make_renderer, resolve
from passersby.sample import default_model_path

FAST = [n for n in RUNTIMES if n not in ("auto", "torch", "compile")]


def _random_bn(g: Generator, seed: int) -> Generator:
    """Non-trivial BatchNorm statistics, so folding them is really tested."""
    gen = torch.Generator().manual_seed(seed)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
    return g.eval()


def test_upsample_conv_equals_transposed_conv() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 6, generator=gen)
    w = torch.randn(4, 5, 3, 3, generator=gen)
    up = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    ref = torch.nn.functional.conv2d(up, w, padding=1)
    fast = torch.nn.functional.conv_transpose2d(x, upsample_conv_as_transposed(w), stride=2, padding=1)
    assert fast.shape == ref.shape == (2, 4, 14, 12)
    assert torch.allclose(fast, ref, atol=1e-4), (fast - ref).abs().max()


@pytest.mark.parametrize("resolution, n_classes, label", [(64, 0, None), (128, 0, None), (64, 2, 1), (64, 2, -1)])
def test_fused_generator_matches_reference(resolution: int, n_classes: int, label: int | None) -> None:
    # label -1 on a conditional model: between the classes (the mean class embedding)
    names = ("feminine", "masculine")[:n_classes]
    torch.manual_seed(1)
    g = _random_bn(Generator(ModelConfig(resolution=resolution, ngf=8, class_names=names)), 2)
    z = torch.randn(3, 128)
    with torch.no_grad():
        ref = g(z, None if label is None else torch.full((3,), label))
        got = fuse(g, label)(z)
    ref = ((ref + 1) * 127.5).permute(0, 2, 3, 1)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-3


def test_fuse_refuses_wrong_label_use() -> None:
    g = Generator(ModelConfig(resolution=64, ngf=8))
    with pytest.raises(ValueError, match="unconditional"):
        fuse(g, 0)
    gc = Generator(ModelConfig(resolution=64, ngf=8, class_names=("feminine", "masculine")))
    with pytest.raises(ValueError, match="conditional"):
        fuse(gc)


@pytest.fixture(scope="module")
def default_g() -> Generator:
    g, _ = load_model(default_model_path())
    return g.float().eval()


@pytest.mark.parametrize("name", FAST)
def test_fast_runtime_matches_reference_on_the_default_model(name: str, default_g: Generator) -> None:
    if not available(name):
        pytest.skip(f"{name} not installed")
    z = np.random.default_rng(3).standard_normal((4, 128)).astype(np.float32)
    label = 0 if default_g.cfg.n_classes else None
    ref = make_renderer(default_g, "torch", label=label)(z).astype(int)
    fast = make_renderer(default_g, name, label=label)
    got = fast(z).astype(int)
    assert got.shape == ref.shape == (4, 256, 256, 3)
    diff = np.abs(got - ref)
    if fast.precision == "bf16":
        # OpenVINO computes in bf16 where the CPU has it (avx512_bf16/AMX): 8 mantissa bits,
        # so a few levels off on average, never a different picture.
        assert diff.mean() < 1.5 and np.percentile(diff, 99.9) <= 24, (diff.mean(), np.percentile(diff, 99.9))
        return
    # fp32 everywhere: only rounding at .5 boundaries may differ, by one level.
    assert diff.max() <= 2 and diff.mean() < 0.02, (diff.max(), diff.mean())


def test_auto_picks_a_fast_runtime_and_unknown_names_fail() -> None:
    assert resolve("auto") in ("openvino", "onnxruntime", "torch-fused")
    with pytest.raises(ValueError, match="unknown runtime"):
        available("tensorrt")


def test_openvino_is_installed() -> None:
    # The default install must ship a fast runtime; "auto" silently falling back to eager
    # PyTorch would halve the frame rate.
    assert available("openvino")


def test_the_feedback_loop_step_fast_path_matches_its_reference():
    from passersby.config import PainterConfig
    from passersby.model.markers import read_markers, warp
    from passersby.model.painter import LoopStep, Painter
    from passersby.runtime import available, make_loop_step
    from passersby.stream.feedback import FeedbackConfig, drift_field

    torch.manual_seed(0)
    p = Painter(PainterConfig(resolution=64, ngf=8, depth=3)).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    f = torch.from_numpy(drift_field(3, 5, 64, FeedbackConfig(drift=1.0)))[None]
    with torch.no_grad():  # the one-graph step is the three calls
        torch.testing.assert_close(LoopStep(p)(x, f), p(read_markers(warp(x, f))))
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    ref = make_loop_step(p, "torch")(img, f[0].numpy())
    assert ref.shape == (64, 64, 3) and ref.dtype == np.uint8
    if available("openvino"):
        fast = make_loop_step(p, "openvino")(img, f[0].numpy())
        assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="unknown runtime"):
        make_loop_step(p, "warp-drive")


def test_auto_prefers_the_gpu_where_torch_sees_one(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert available("cuda") and resolve("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("auto") != "cuda"
    with pytest.raises(ValueError, match="not installed here"):
        resolve("cuda")


@pytest.mark.skipif(not available("cuda"), reason="needs CUDA")
def test_the_whole_chain_on_the_gpu_matches_the_cpu_reference() -> None:
    import torch

    from passersby.config import EnhancerConfig, PainterConfig
    from passersby.model.enhancer import Enhancer
    from passersby.model.painter import Painter
    from passersby.runtime import make_loop_step, make_upscaler

    torch.manual_seed(0)
    p = Painter(PainterConfig(resolution=64, ngf=8, depth=3)).eval()
    e = Enhancer(EnhancerConfig(resolution=64, channels=8, blocks=1)).eval()
    for q in e.parameters():
        torch.nn.init.normal_(q, std=0.03)
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    field = np.zeros((64, 64, 2), np.float32)
    import copy

    ref_step = make_loop_step(copy.deepcopy(p), "torch")(frame, field).astype(int)
    gpu_step = make_loop_step(copy.deepcopy(p), "cuda")(frame, field).astype(int)
    assert np.abs(ref_step - gpu_step).max() <= 2
    ref_up = make_upscaler(copy.deepcopy(e), "torch", side=64)(frame).astype(int)
    gpu_up = make_upscaler(copy.deepcopy(e), "cuda", side=64)(frame).astype(int)
    assert np.abs(ref_up - gpu_up).max() <= 2
