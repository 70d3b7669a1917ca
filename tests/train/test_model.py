"""Generator, discriminator and DiffAugment: shapes, conditioning, batch independence, determinism."""

from __future__ import annotations

import pytest
import torch

from passersby.config import ModelConfig
from passersby.model.augment import color, cutout, diff_augment, parse_policy, translation
from passersby.model.discriminator import Discriminator
from passersby.model.generator import Generator, recalibrate_batchnorm

CPU = torch.device("cpu")
ALL = ("color", "translation", "cutout")


def _warm(g: Generator, seed: int = 0) -> Generator:
    """Give BatchNorm non-trivial running statistics, as training would, then eval mode."""
    recalibrate_batchnorm(g, 2, 6, gen=torch.Generator().manual_seed(seed), device=CPU)
    return g.eval()


@pytest.mark.parametrize("resolution, ngf, ndf", [(64, 8, 8), (128, 8, 8), (256, 4, 4)])
def test_generator_and_discriminator_shapes(resolution, ngf, ndf):
    cfg = ModelConfig(resolution=resolution, z_dim=16, ngf=ngf, ndf=ndf)
    torch.manual_seed(0)
    g, d = Generator(cfg), Discriminator(cfg)
    z = torch.randn(2, 16)
    img = g(z)
    assert img.shape == (2, 3, resolution, resolution)
    assert img.dtype == torch.float32
    assert img.abs().max() <= 1.0  # tanh output
    assert img.std() > 0  # not a constant picture
    logits, recon = d(img, reconstruct=True)
    assert logits.shape == (2, 50)  # 5x5 patch logits at two scales
    side = min(128, resolution)
    assert recon.shape == (2, 3, side, side)
    assert d(img).shape == (2, 50)
    # gradients reach the generator through the discriminator
    d(img).mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_model_config_rejects_bad_values():
    with pytest.raises(ValueError, match="resolution"):
        ModelConfig(resolution=100)
    with pytest.raises(ValueError, match="two class names"):
        ModelConfig(class_names=("feminine",))
    with pytest.raises(ValueError, match="z_dim"):
        ModelConfig(z_dim=4)
    cfg = ModelConfig(resolution=64, class_names=["feminine", "masculine"])
    assert cfg.class_names == ("feminine", "masculine") and cfg.n_classes == 2
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "mapping_layers": 8})


def test_conditional_models_require_labels(model_config):
    cfg = model_config(class_names=("feminine", "masculine"))
    torch.manual_seed(0)
    g, d = Generator(cfg).eval(), Discriminator(cfg).eval()
    z = torch.randn(3, cfg.z_dim)
    with pytest.raises(ValueError, match="conditional"):
        g(z)
    label = torch.tensor([0, 1, 0])
    img = g(z, label)
    assert img.shape == (3, 3, 64, 64)
    # the label changes the face
    assert not torch.allclose(g(z, torch.tensor([1, 1, 1]))[0], img[0])
    with pytest.raises(ValueError, match="conditional"):
        d(img)
    with torch.no_grad():
        by_class = [d(img, torch.full((3,), c)) for c in (-1, 0, 1)]
    # -1 (unknown) drops the projection term; each known class adds a different one
    assert not torch.allclose(by_class[0], by_class[1])
    assert not torch.allclose(by_class[1], by_class[2])
    # the unknown-label logits are exactly those of the unconditional discriminator with the
    # same weights: the projection is the only use of the label
    plain = Discriminator(model_config()).eval()
    sd = {k: v for k, v in d.state_dict().items() if not k.startswith("class_embed.")}
    plain.load_state_dict(sd, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(img), by_class[0])


def test_label_minus_one_is_between_the_classes(model_config):
    cfg = model_config(class_names=("feminine", "masculine"))
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    z = torch.randn(2, cfg.z_dim)
    mean = g.class_embed.weight.mean(0)
    x = g.embed(z, torch.tensor([-1, 1]))[:, :, 0, 0]  # (2, 2 z_dim)
    torch.testing.assert_close(x[0, cfg.z_dim:], mean)
    torch.testing.assert_close(x[1, cfg.z_dim:], g.class_embed.weight[1])
    out = g(z, torch.tensor([-1, -1]))
    assert not torch.allclose(out, g(z, torch.tensor([0, 0]))) and not torch.allclose(out, g(z, torch.tensor([1, 1])))


def test_unconditional_generator_ignores_no_labels(model_config):
    g = Generator(model_config()).eval()
    assert not hasattr(g, "class_embed")
    assert g(torch.randn(1, 16)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("conditional", [False, True])
def test_generator_is_batch_independent_in_eval_mode(model_config, conditional):
    names = ("feminine", "masculine") if conditional else ()
    torch.manual_seed(0)
    g = _warm(Generator(model_config(class_names=names)))
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(7))
    label = torch.tensor([0, 1, 1, 0, 1]) if conditional else None
    with torch.no_grad():
        batch = g(z, label)
        for i in (0, 2, 4):
            alone = g(z[i : i + 1], None if label is None else label[i : i + 1])
            torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=1e-4)
        # and in another batch composition
        torch.testing.assert_close(g(z[[4, 0]], None if label is None else label[[4, 0]])[1], batch[0],
                                   atol=1e-5, rtol=1e-4)
    # a sanity check that this test can fail: in train mode BatchNorm uses batch statistics
    g.train()
    with torch.no_grad():
        assert not torch.allclose(g(z[:2], None if label is None else label[:2])[0], g(z, label)[0], atol=1e-3)


def test_recalibrate_batchnorm_is_deterministic_and_restores_mode(model_config):
    torch.manual_seed(0)
    g1 = Generator(model_config())
    g2 = Generator(model_config())
    g2.load_state_dict(g1.state_dict())
    g1.eval()
    bn = next(m for m in g1.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    for g in (g1, g2):
        recalibrate_batchnorm(g, 3, 4, gen=torch.Generator().manual_seed(5), device=CPU)
    assert not g1.training and g2.training  # the mode each had before
    assert bn.momentum == 0.1  # momentum put back
    assert not torch.equal(bn.running_mean, before)
    for (k, a), b in zip(g1.state_dict().items(), g2.state_dict().values()):
        assert torch.equal(a, b), k


# ---------------------------------------------------------------- DiffAugment


def _images(n=4, size=32, seed=0, dtype=torch.float32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def test_diff_augment_is_deterministic_given_generator_state():
    x = _images()
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    a = diff_augment(x, ALL, gen)
    after_a = gen.get_state()
    gen.set_state(state)
    b = diff_augment(x, ALL, gen)
    assert torch.equal(a, b)
    assert torch.equal(gen.get_state(), after_a)  # it consumed the same draws
    c = diff_augment(x, ALL, gen)  # the stream moved on: other transforms
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.is_contiguous()
    assert not torch.equal(a, x)


def test_diff_augment_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    diff_augment(_images(), ALL, torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


def test_diff_augment_is_differentiable():
    x = _images(n=2, size=16).requires_grad_(True)
    y = diff_augment(x, ALL, torch.Generator().manual_seed(0))
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # analytic gradients agree with finite differences (fixed draws in every call)
    xd = _images(n=2, size=8, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: diff_augment(t, ALL, torch.Generator().manual_seed(0)), (xd,))


def test_translation_moves_whole_pixels_and_cutout_zeroes_a_square():
    x = _images(n=8, size=16, seed=1) + 3  # no zeros in the input
    t = translation(x, torch.Generator().manual_seed(0))
    for i in range(8):
        nz = t[i] != 0
        # the visible part is an exact, shifted copy of the input
        vals = set(t[i][nz].tolist())
        assert vals <= set(x[i].flatten().tolist())
    c = cutout(x, torch.Generator().manual_seed(0))
    zeros = (c == 0).all(dim=1)  # (N, H, W)
    for i in range(8):
        ys, xs = torch.nonzero(zeros[i], as_tuple=True)
        assert len(ys) > 0
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert len(ys) == h * w  # one rectangle
        assert h <= 8 and w <= 8  # at most half the side
    col = color(x, torch.Generator().manual_seed(0))
    assert col.shape == x.shape and not torch.equal(col, x)


def test_parse_policy():
    assert parse_policy("color, translation") == ("color", "translation")
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_policy("color,rotate")
