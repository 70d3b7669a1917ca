"""The restorer as the generator's last stage: identity until trained, the same numbers eager,
fused and compiled, stored in and loaded from the model file, old files unchanged."""

import numpy as np
import pytest
import torch

from passersby.config import ModelConfig, RestorerConfig
from passersby.model.generator import Generator
from passersby.model.restorer import Restorer, gflops
from tests.conftest import tiny_model_config


def _trained_like(g: Generator, seed: int = 0) -> Generator:
    """Give the restorer's zero-initialised last layer weights, as training would."""
    torch.manual_seed(seed)
    with torch.no_grad():
        g.restorer.out.weight.normal_(std=0.05)
        g.restorer.out.bias.normal_(std=0.05)
    return g


def test_an_untrained_restorer_changes_nothing():
    torch.manual_seed(0)
    bare = Generator(tiny_model_config()).eval()
    with_r = Generator(tiny_model_config(restorer=RestorerConfig(width=8, deep=8, blocks=1))).eval()
    sd = {**with_r.state_dict(), **bare.state_dict()}
    with_r.load_state_dict(sd)
    z = torch.randn(3, 16)
    assert torch.equal(with_r(z), bare(z))


def test_a_trained_restorer_changes_faces_and_stays_in_range():
    g = _trained_like(Generator(tiny_model_config(restorer=RestorerConfig(width=8, deep=8, blocks=1))).eval())
    z = torch.randn(3, 16)
    with torch.no_grad():
        out = g(z)
        plain = Generator(tiny_model_config()).eval()
        plain.load_state_dict({k: v for k, v in g.state_dict().items() if not k.startswith("restorer.")})
        before = plain(z)
    assert (out - before).abs().max() > 1e-3
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("runtime", ["torch-fused", "openvino"])
def test_fused_and_compiled_renderers_match_the_reference(runtime):
    from passersby.runtime import available, make_renderer

    if not available(runtime):
        pytest.skip(f"{runtime} not installed")
    g = _trained_like(Generator(tiny_model_config(restorer=RestorerConfig(width=8, deep=8, blocks=1))).eval())
    z = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    ref = make_renderer(g, "torch")(z).astype(int)
    got = make_renderer(g, runtime)(z).astype(int)
    assert np.abs(got - ref).max() <= 2  # uint8 rounding of fp32 sums in another order


def test_the_model_file_carries_the_restorer_and_old_files_load_without_one(tmp_path):
    from passersby.checkpoint import load_model, save_model

    cfg = tiny_model_config(restorer=RestorerConfig(width=8, deep=8, blocks=1))
    g = _trained_like(Generator(cfg).eval())
    save_model(tmp_path / "g.safetensors", g, cfg, {"step": 1})
    g2, info = load_model(tmp_path / "g.safetensors")
    assert info.config.restorer == RestorerConfig(width=8, deep=8, blocks=1)
    z = torch.randn(2, 16)
    assert torch.equal(g2(z), g(z))
    assert ModelConfig.from_dict({"ngf": 16}).restorer is None  # a file written before restorers


def test_the_shipped_generators_load_as_before():
    from passersby.model.load import load_generator

    g, info = load_generator()
    assert info.config.restorer is None or g.restorer is not None


def test_gflops_counts_every_convolution():
    """gflops() against multiply-adds counted by hooks on a real forward pass."""
    r = Restorer(RestorerConfig(width=16, deep=24, blocks=2))
    macs = []

    def hook(m, inp, out):
        macs.append(out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups)

    for m in r.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    r(torch.zeros(1, 3, 64, 64))
    assert abs(gflops(RestorerConfig(width=16, deep=24, blocks=2), 64) - 2 * sum(macs) / 1e9) < 1e-9


def test_bad_restorer_configs_are_refused():
    with pytest.raises(ValueError, match="restorer"):
        RestorerConfig(width=0)
