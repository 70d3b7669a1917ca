"""The projected discriminator (frozen EfficientNet-Lite0 + fixed random mixing + trained heads)
and the projected recipe's training run, resume included."""

from __future__ import annotations

import pytest
import torch

from passersby.checkpoint import load_train_state
from passersby.metrics.features import load_model
from passersby.model.projected import ProjectedDiscriminator
from passersby.train.loop import build_state, make_discriminator, train_step
from passersby.train.recipes import RECIPES, recipe_defaults
from passersby.train.run import train

from .test_training import _ckpts, _compare_states


def _cfg(model_config, **kw):
    return model_config(discriminator="projected", d_resolution=64, **kw)


def test_shapes_and_what_is_trained(model_config):
    d = ProjectedDiscriminator(_cfg(model_config))
    out = d(torch.randn(3, 3, 64, 64))
    assert out.ndim == 2 and out.shape[0] == 3 and torch.isfinite(out).all()
    keys = list(d.state_dict())
    # the ImageNet network is never part of the discriminator's state (not saved, not trained)
    assert not any("_blocks" in k or "_conv_stem" in k for k in keys)
    assert any(k.startswith("mixing.") for k in keys) and any(k.startswith("heads.") for k in keys)
    trainable = {n for n, p in d.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("heads.") for n in trainable)
    # the random mixing is reproducible: a second discriminator gets the same projections
    d2 = ProjectedDiscriminator(_cfg(model_config))
    for (k, a), b in zip(d.mixing.state_dict().items(), d2.mixing.state_dict().values()):
        assert torch.equal(a, b), k


def test_gradients_reach_the_image(model_config):
    d = ProjectedDiscriminator(_cfg(model_config))
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    d(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in load_model("cpu").parameters())


def test_input_is_resized_to_d_resolution(model_config):
    d = ProjectedDiscriminator(model_config(resolution=128, discriminator="projected", d_resolution=64))
    small = ProjectedDiscriminator(_cfg(model_config))
    assert d(torch.randn(1, 3, 128, 128)).shape == small(torch.randn(1, 3, 64, 64)).shape


def test_conditional_projection_only_for_known_labels(model_config):
    torch.manual_seed(0)
    # eval: spectral norm's power iteration and BN batch statistics would move between calls
    cond = ProjectedDiscriminator(_cfg(model_config, class_names=("feminine", "masculine"))).eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match="conditional"):
        cond(x)
    unknown = cond(x, torch.tensor([-1, -1]))
    fem, masc = cond(x, torch.tensor([0, 0])), cond(x, torch.tensor([1, 1]))
    assert not torch.allclose(fem, masc)
    # label -1: only the unconditional patch logits, the same as with the projection removed
    for h in cond.heads:
        h.embed = None
    assert torch.allclose(unknown, cond(x, torch.tensor([-1, -1])))


def test_train_step_changes_heads_only(model_config, train_config, prepared_data):
    from passersby.train import dist
    from passersby.data.training_set import load_training_set

    cfg = train_config(model=_cfg(model_config), beta1=0.0, beta2=0.99)
    ts = build_state(cfg, torch.device("cpu"))
    mixing = {k: v.clone() for k, v in ts.D.mixing.state_dict().items()}
    heads = {k: v.clone() for k, v in ts.D.heads.state_dict().items() if "weight_orig" in k}
    net = {k: v.clone() for k, v in load_model("cpu").state_dict().items()}
    data = load_training_set(prepared_data, 64)
    for _ in range(2):
        st = train_step(ts, data, cfg, torch.device("cpu"), dist.DistInfo())
    assert all(map(lambda v: v == v, (st.loss_d, st.loss_g)))  # finite, not NaN
    assert all(torch.equal(v, ts.D.mixing.state_dict()[k]) for k, v in mixing.items())
    assert all(torch.equal(v, load_model("cpu").state_dict()[k]) for k, v in net.items())
    assert any(not torch.equal(v, ts.D.heads.state_dict()[k]) for k, v in heads.items())


def test_make_discriminator_follows_the_config(model_config):
    assert isinstance(make_discriminator(_cfg(model_config)), ProjectedDiscriminator)
    assert not isinstance(make_discriminator(model_config()), ProjectedDiscriminator)
    with pytest.raises(ValueError, match="discriminator"):
        model_config(discriminator="stylegan")
    with pytest.raises(ValueError, match="d_resolution"):
        model_config(d_resolution=100)


def test_recipes():
    assert set(RECIPES) == {"projected", "fastgan", "painter", "enhancer"}
    m, t = recipe_defaults("projected")
    assert m["discriminator"] == "projected" and t["beta1"] == 0.0
    with pytest.raises(ValueError, match="fastgan"):
        recipe_defaults("nope")


@pytest.mark.slow
def test_projected_resume_is_exact(tmp_path, prepared_data, train_config, model_config):
    cfg = train_config(model=_cfg(model_config), checkpoint_every=3, beta1=0.0, beta2=0.99)
    a, b = tmp_path / "a", tmp_path / "b"
    train(prepared_data, a, cfg, steps=6, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=3, device="cpu", evaluate_metrics=False)
    train(prepared_data, b, cfg, steps=6, device="cpu", evaluate_metrics=False, resume_run=True)
    assert _ckpts(b)[-1] == "step-00000006.safetensors"
    _compare_states(a / "checkpoints" / "step-00000006.safetensors", b / "checkpoints" / "step-00000006.safetensors")
    tensors, meta = load_train_state(b / "checkpoints" / "step-00000006.safetensors")
    assert meta["train_config"]["model"]["discriminator"] == "projected"
    assert not any("_blocks" in k for k in tensors)


def test_mode_seeking_loss_punishes_a_generator_that_ignores_z():
    from passersby.train.loop import mode_seeking_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    collapsed = torch.rand(1, 3, 8, 8, generator=g).expand(8, -1, -1, -1) + 1e-3 * torch.randn(8, 3, 8, 8, generator=g)
    diverse = torch.rand(8, 3, 8, 8, generator=g) * 2 - 1
    assert mode_seeking_loss(collapsed, z, 4) > 50 * mode_seeking_loss(diverse, z, 4)
    # it pushes the two pictures of a pair apart
    x = diverse.clone().requires_grad_(True)
    mode_seeking_loss(x, z, 4).backward()
    step = x - 0.01 * x.grad
    assert mode_seeking_loss(step, z, 4) < mode_seeking_loss(diverse, z, 4)


def test_mode_seeking_pairs_share_their_class(model_config, train_config, prepared_data, monkeypatch):
    from passersby.train import dist
    from passersby.data.training_set import load_training_set

    cfg = train_config(model=_cfg(model_config, class_names=("feminine", "masculine")), batch_size=6, ms_weight=1.0)
    ts = build_state(cfg, torch.device("cpu"))
    seen = []
    real_g = ts.G.forward
    monkeypatch.setattr(ts.G, "forward", lambda z, label=None: seen.append(label.clone()) or real_g(z, label))
    train_step(ts, load_training_set(prepared_data, 64), cfg, torch.device("cpu"), dist.DistInfo())
    assert seen and torch.equal(seen[0][:3], seen[0][3:])


def test_feature_space_mode_seeking_uses_the_discriminators_pooled_features(model_config, train_config,
                                                                             prepared_data, monkeypatch):
    from passersby.config import TrainConfig
    from passersby.train import dist
    from passersby.train import loop
    from passersby.data.training_set import load_training_set

    cfg = train_config(model=_cfg(model_config), batch_size=4, ms_weight=1.0, ms_space="features")
    ts = build_state(cfg, torch.device("cpu"))
    seen = []
    real_ms = loop.mode_seeking_loss
    monkeypatch.setattr(loop, "mode_seeking_loss", lambda x, z, half: seen.append(x.shape) or real_ms(x, z, half))
    st = train_step(ts, load_training_set(prepared_data, 64), cfg, torch.device("cpu"), dist.DistInfo())
    assert seen == [torch.Size([4, ts.D(torch.zeros(1, 3, 64, 64), return_features=True)[1].shape[1]])]
    assert st.loss_g == st.loss_g  # finite, a real step was taken
    with pytest.raises(ValueError, match="ms_space must be one of"):
        TrainConfig(ms_space="latent")
    with pytest.raises(ValueError, match="needs the projected discriminator"):
        TrainConfig(ms_space="features", model=model_config(discriminator="fastgan"))


@pytest.mark.slow
def test_parts_and_coverage_resume_is_exact(tmp_path, prepared_data, train_config, model_config):
    """The eye/mouth discriminators and the coverage term's matches are part of the exact resume."""
    cfg = train_config(model=_cfg(model_config), checkpoint_every=3, beta1=0.0, beta2=0.99,
                       parts_weight=0.5, cov_weight=1.0, cov_pool=8, cov_every=2, cov_batch=2)
    a, b = tmp_path / "a", tmp_path / "b"
    train(prepared_data, a, cfg, steps=5, device="cpu", evaluate_metrics=False, conditional=False)
    train(prepared_data, b, cfg, steps=3, device="cpu", evaluate_metrics=False, conditional=False)
    train(prepared_data, b, cfg, steps=5, device="cpu", evaluate_metrics=False, conditional=False, resume_run=True)
    _compare_states(a / "checkpoints" / "step-00000005.safetensors", b / "checkpoints" / "step-00000005.safetensors")
    tensors, meta = load_train_state(b / "checkpoints" / "step-00000005.safetensors")
    assert any(k.startswith("P.heads.eyes") for k in tensors) and any(k.startswith("opt_p.") for k in tensors)
    assert tensors["extra.cov_z"].shape == (12, cfg.model.z_dim) and int(tensors["extra.cov_step"]) == 4
    assert not any("_blocks" in k for k in tensors)  # the frozen feature network is never saved


def test_parts_and_coverage_need_the_projected_recipe(train_config, model_config):
    with pytest.raises(ValueError, match="projected"):
        train_config(model=model_config(), parts_weight=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        train_config(model=_cfg(model_config), cov_weight=-1.0)
