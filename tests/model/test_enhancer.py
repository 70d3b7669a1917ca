"""The enhancer: shapes, its bicubic base against PyTorch's, an untrained one resizes, FLOPs,
and its fast path (OpenVINO) against the eager reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from passersby.config import EnhancerConfig
from passersby.model.enhancer import Bicubic, Enhancer, PatchCritic, enhancer_flops
from passersby.runtime import available, make_upscaler


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_convolution_equals_pytorchs_bicubic(scale):
    x = torch.rand(2, 3, 18, 22) * 2 - 1
    ref = F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)
    torch.testing.assert_close(Bicubic(scale)(x), ref, rtol=0, atol=1e-5)


def test_shapes_and_an_untrained_enhancer_is_bicubic_resizing():
    cfg = EnhancerConfig(resolution=64, channels=8, blocks=1)
    e = Enhancer(cfg).eval()
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        y = e(x)
    assert y.shape == (1, 3, 64, 96)
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="even sides"):
        e(torch.zeros(1, 3, 31, 32))
    assert PatchCritic(cfg)(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 8, 8)


def test_frames_do_not_depend_on_their_batch():
    torch.manual_seed(0)
    e = Enhancer(EnhancerConfig(resolution=64, channels=8, blocks=2)).eval()
    for p in e.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(e(x[1:2]), e(x)[1:2], rtol=1e-5, atol=1e-5)


def test_config_checks_and_flops():
    with pytest.raises(ValueError, match="scale"):
        EnhancerConfig(scale=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        EnhancerConfig(resolution=66)
    assert EnhancerConfig.from_dict(EnhancerConfig().to_dict()) == EnhancerConfig()
    with pytest.raises(ValueError, match="unknown enhancer config"):
        EnhancerConfig.from_dict({"kind": "enhancer", "wings": 2})
    # Doubling the width roughly quadruples the body's cost.
    small, big = enhancer_flops(EnhancerConfig(channels=16), 256), enhancer_flops(EnhancerConfig(channels=32), 256)
    assert 2.5 < big / small < 4.0


@pytest.mark.skipif(not available("openvino"), reason="openvino not installed")
def test_fast_upscaler_matches_the_eager_reference():
    torch.manual_seed(1)
    e = Enhancer(EnhancerConfig(resolution=64, channels=16, blocks=2)).eval()
    for p in e.parameters():
        torch.nn.init.normal_(p, std=0.03)
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ref = make_upscaler(e, "torch", side=64)(frame)
    fast = make_upscaler(e, "openvino", side=64)(frame)
    assert ref.shape == fast.shape == (128, 128, 3) and ref.dtype == fast.dtype == np.uint8
    diff = np.abs(ref.astype(int) - fast.astype(int))
    # bf16 where the CPU has it: a few grey levels at most, on average well under one.
    assert diff.max() <= 6 and diff.mean() < 0.6
    other = np.zeros((32, 32, 3), np.uint8)  # another size goes through the reference
    assert make_upscaler(e, "openvino", side=64)(other).shape == (64, 64, 3)
