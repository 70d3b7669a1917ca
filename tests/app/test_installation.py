"""Settings + model -> engine: labelled screens and a curator's taste reach the anchors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from passersby.checkpoint import load_model
from passersby.sample import default_model_path
from passersby.settings import ScreenSettings, TasteSettings, load_settings
from passersby.app.installation import build
from passersby.stream.ledger import SqliteLedger
from passersby.taste.store import TasteStore


def _settings(**taste):
    s = load_settings(None, {"stream.seed": 5, "walk.tempo": 0.2}, search=False)
    return dataclasses.replace(s, screens=(ScreenSettings("solo", "", 0),), taste=TasteSettings(**taste))


@pytest.mark.parametrize("model", ["picture", "z"])
def test_the_stream_follows_a_curators_taste_and_the_knob_is_live(tmp_path: Path, model: str) -> None:
    from passersby.runtime import make_renderer
    from passersby.taste.prior import cached_prior

    g, info = load_model(default_model_path())
    rng = np.random.default_rng(0)
    # A curator who likes something visible: a latent direction that changes the picture a lot
    # (the prior's main one; the stream computes the same prior from the same cache).
    prior = cached_prior(tmp_path, info.hash, make_renderer(g.float().eval(), "auto"), 128)
    u = np.linalg.eigh(prior)[1][:, -1]
    with TasteStore(tmp_path / "taste.sqlite") as store:
        for _ in range(150):
            z = rng.standard_normal(128).astype(np.float32)
            store.add("ada", z, "like" if z @ u > 0.5 else "dislike", info.hash)
        rated, _, _ = store.ratings("ada", info.hash)
    home = tmp_path
    inst = build(_settings(curator="ada", exactingness=1.0, model=model), home)
    try:
        assert inst.engine.status()["curator"] == "ada" and inst.engine.status()["exactingness"] == 1.0
        # 'picture' uses the head the package ships for its model: nothing is built or cached.
        assert not list((tmp_path / "cache").glob("taste-head-*"))
        if model == "picture":  # a profile without true features: its faces rendered and embedded once
            from passersby.taste.features import FeatureCache, feature_cache_path

            with FeatureCache(feature_cache_path(home, info.hash)) as cache:
                assert len(cache) == 150 and all(f is not None for f in cache.get(rated))
        # The picture taste looks at its best guesses (taste.rerank): claimed ahead, off the frames' thread.
        assert inst.engine.producers[0].anchors.ahead == (model == "picture")
        inst.engine.hub.control("exactingness", 0.25)
        assert inst.engine.exactingness.value == 0.25
        inst.engine.hub.control("exactingness", 1.0)
        inst.engine.start(pace=False)
        for _ in range(60):
            inst.engine.take(0)
    finally:
        inst.close()
    with SqliteLedger.open_existing(home / "ledger.sqlite") as led:
        steered = np.stack([z for _, z in led.recent("solo", 100)])
    assert len(steered) >= 5
    assert float(np.mean(steered @ u)) > 1.0  # unsteered anchors average 0 along u (sd 1)


def test_a_curator_without_ratings_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        build(_settings(curator="nobody"), tmp_path)
    TasteStore(tmp_path / "taste.sqlite").close()
    with pytest.raises(ValueError, match="has rated no faces"):
        build(_settings(curator="nobody"), tmp_path)


def test_labelled_screens_push_anchors_along_the_models_direction(tmp_path: Path) -> None:
    from passersby.model.load import load_direction

    _, info = load_model(default_model_path())
    d = load_direction(info.meta)
    # model.choose = 0: every anchor pushed to the file's offset (the choosing screens: below).
    s = dataclasses.replace(load_settings(None, {"stream.seed": 1, "model.choose": 0}, search=False),
                            screens=(ScreenSettings("m", "masculine", 0), ScreenSettings("f", "feminine", 1)))
    inst = build(s, tmp_path)
    try:
        inst.engine.start(pace=False)
        for _ in range(10):
            inst.engine.take(0), inst.engine.take(1)
    finally:
        inst.close()
    v = d.vector / np.linalg.norm(d.vector)
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        for channel, sign, label in (("m", 1, "masculine"), ("f", -1, "feminine")):
            proj = [float(z @ v) for _, z in led.recent(channel, 50)]
            assert proj and all(abs(p - sign * d.scale_for(label)) < 1e-3 for p in proj), proj


def test_the_critic_only_lets_clear_faces_through(tmp_path: Path) -> None:
    from passersby.data.faces import face_score
    from passersby.runtime import make_renderer

    inst = build(_settings(min_critic=0.8), tmp_path)
    try:
        assert inst.engine.status()["min_critic"] == 0.8
        inst.engine.start(pace=False)
        for _ in range(30):
            inst.engine.take(0)
    finally:
        inst.close()
    g, _ = load_model(default_model_path())
    render = make_renderer(g.float().eval(), "auto")
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        anchors = np.stack([z for _, z in led.recent("solo", 100)])
    scores = [face_score(im) for im in render(anchors)]
    assert len(scores) >= 4 and min(scores) >= 0.8 - 1e-3, scores
    random_scores = [face_score(im) for im in render(np.random.default_rng(3).standard_normal((12, 128)).astype(np.float32))]
    assert min(random_scores) < 0.8  # the gate did something: random faces are not all this clear


@pytest.mark.parametrize("choose", [4, 0])
def test_labelled_screens_choose_their_faces_near_the_typical_face(tmp_path: Path, choose: int) -> None:
    from passersby.model.load import load_choice, load_direction

    _, info = load_model(default_model_path())
    choice, d = load_choice(info), load_direction(info.meta)
    assert choice.scale < d.scale_for("masculine") and choice.feminine_scale < d.scale_for("feminine")
    s = load_settings(None, {"stream.seed": 5, "walk.tempo": 0.2, "model.choose": choose}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("m", "masculine", 0), ScreenSettings("f", "feminine", 1)))
    inst = build(s, tmp_path)
    try:
        # Choosing renders candidates: claimed ahead, off the frames' thread; pushing does not.
        assert [p.anchors.ahead for p in inst.engine.producers] == [choose > 1] * 2
        for p, label, sign in zip(inst.engine.producers, ("masculine", "feminine"), (1, -1)):
            z = p.anchors.propose(np.random.default_rng(0))
            want = (choice if choose > 1 else d).scale_for(label)
            assert np.isclose(z @ d.vector, sign * want, atol=1e-6)
        inst.engine.start(pace=False)
        for _ in range(8):
            assert inst.engine.take(0).image.shape[-1] == 3 and inst.engine.take(1).image.shape[-1] == 3
    finally:
        inst.close()
    # A screen with a critic (or a taste) chooses by those: its faces are pushed as before.
    critic = dataclasses.replace(s, taste=TasteSettings(min_critic=0.0), screens=s.screens[:1])
    inst = build(critic, tmp_path / "critic")
    try:
        z = inst.engine.producers[0].anchors.propose(np.random.default_rng(0))
        assert np.isclose(z @ d.vector, d.scale_for("masculine"), atol=1e-6)
    finally:
        inst.close()


def test_candidates_are_judged_with_a_pytorch_renderer_in_every_background_thread(monkeypatch) -> None:
    """The choice, the critic and the look render their candidates in claim / lease threads; two
    OpenVINO renderers called from two such threads hung for good (docs/operations/
    claim-hang-openvino.txt), so they ask for the fused PyTorch generator whatever the screens run."""
    from passersby.app import installation

    asked = []
    monkeypatch.setattr(installation, "make_renderer", lambda g, name, threads=1, label=None: asked.append(name) or (lambda z: z))
    installation._critic(None, "auto", None)
    installation._look(None, "auto", None)
    installation._sex_reader(None, "auto", None, "feminine")
    assert asked == ["torch-fused"] * 3
    monkeypatch.undo()
    g, info = load_model(default_model_path())
    z = np.random.default_rng(0).standard_normal((2, info.config.z_dim)).astype(np.float32)
    from passersby.runtime import make_renderer

    fused, ref = installation._candidate_renderer(g.float().eval(), "auto", None)(z), make_renderer(g, "torch")(z)
    assert fused.shape == ref.shape and np.abs(fused.astype(int) - ref.astype(int)).mean() < 1.0  # the same faces
