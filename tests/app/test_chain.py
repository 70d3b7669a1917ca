"""Chains on this machine (app/chain.py): levels from measured costs, the enhancer file, and the
enhancer in a real installation (frames upscaled, keys that name it, the chain in the status)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from passersby.app.chain import HEADROOM, EnhanceStage, enhancer_path, levels_for
from passersby.app.installation import build
from passersby.settings import EnhancerSettings, ScreenSettings, SettingsError, load_settings


def test_levels_prefer_the_enhancer_at_the_fewest_keyframes_that_fit():
    fps = 30.0
    lv, start = levels_for(0.010, 0.010, fps, "auto", keyframes=True)
    assert [(x.enhance, x.every) for x in lv][start] == (True, 1)  # 20 ms <= 26.7 ms
    lv, start = levels_for(0.030, 0.015, fps, "auto", keyframes=True)
    assert [(x.enhance, x.every) for x in lv][start] == (True, 2)  # 45/2 ms
    lv, start = levels_for(0.060, 0.050, fps, "auto", keyframes=True)
    assert [(x.enhance, x.every) for x in lv][start] == (False, 3)  # 110/3 too slow, 60/3 fits
    lv, start = levels_for(0.030, 0.015, fps, "auto", keyframes=False)  # a feedback screen
    assert [(x.enhance, x.every) for x in lv] == [(True, 1), (False, 1)] and start == 1
    lv, start = levels_for(0.5, 0.5, fps, "auto", keyframes=True)
    assert start == len(lv) - 1  # nothing fits: the smallest chain
    assert all(x.enhance for x in levels_for(0.5, 0.5, fps, "on", True)[0])
    assert not any(x.enhance for x in levels_for(0.001, 0.001, fps, "off", True)[0])
    assert not any(x.enhance for x in levels_for(0.001, None, fps, "auto", True)[0])
    lv, start = levels_for(0.030, 0.015, fps, "auto", True, every=1)  # pinned: every frame, enhancer or not
    assert [(x.enhance, x.every) for x in lv] == [(True, 1), (False, 1)] and start == 1
    lv, _ = levels_for(0.030, 0.015, fps, "auto", True)
    assert lv[1].cost == pytest.approx(0.0225) and HEADROOM / fps == pytest.approx(0.02667, abs=1e-4)


def test_enhancer_path_rules(tmp_path, monkeypatch):
    import passersby.app.chain as chain

    monkeypatch.setattr(chain, "default_enhancer_path", lambda: tmp_path / "none.safetensors")
    assert enhancer_path("", "auto") is None  # nothing shipped: run without
    with pytest.raises(ValueError, match="enhancer.path: .* does not exist"):
        enhancer_path("", "on")
    with pytest.raises(ValueError, match="does not exist"):
        enhancer_path(str(tmp_path / "missing.safetensors"), "auto")
    f = tmp_path / "e.safetensors"
    f.write_bytes(b"x")
    assert enhancer_path(str(f), "auto") == f and enhancer_path(str(f), "off") is None


def test_enhance_stage_records_itself():
    st = EnhanceStage(lambda im: np.zeros((8, 8, 3), np.uint8), "cafe")
    im, key = st(np.zeros((4, 4, 3), np.uint8), {"stages": [{"x": 1}]})
    assert im.shape == (8, 8, 3) and key["stages"] == [{"x": 1}, {"enhancer": "cafe"}]


def test_settings_check_the_enhancer_mode():
    with pytest.raises(SettingsError, match="enhancer.mode"):
        load_settings(None, {"enhancer.mode": "sometimes"}, search=False)
    assert load_settings(None, None, search=False).enhancer == EnhancerSettings()


def _settings(tmp_path: Path, model: Path, enhancer: Path, mode: str):
    s = load_settings(None, {"stream.seed": 3, "walk.tempo": 0.5, "model.path": str(model),
                             "enhancer.path": str(enhancer), "enhancer.mode": mode}, search=False)
    return dataclasses.replace(s, screens=(ScreenSettings("solo", "", 0),))


def _frames(settings, home: Path, n: int, dry: bool = True):
    """n frames of the first screen and the status, from a real installation (throwaway ledger)."""
    inst = build(settings, home, dry_ledger=dry)
    try:
        inst.engine.start(pace=False)
        return [inst.engine.take(0) for _ in range(n)], inst.engine.status()
    finally:
        inst.close()


def test_an_installation_with_the_enhancer_on_shows_larger_frames_that_name_it(tmp_path, tiny_model_file,
                                                                               tiny_enhancer_file):
    from passersby.checkpoint import file_hash

    frames, status = _frames(_settings(tmp_path, tiny_model_file, tiny_enhancer_file, "on"), tmp_path, 6)
    assert all(f.image.shape == (128, 128, 3) for f in frames)  # the 64 px generator, x2
    ehash = file_hash(tiny_enhancer_file)
    assert all(f.key["stages"] == [{"enhancer": ehash}] for f in frames)
    assert status["enhancer"] == ehash and status["chains"]["solo"]["stages"] == "enhancer"
    assert "walk" in status["chain_start"]
    chain = status["chains"]["solo"]
    assert chain["raised"] == [] and chain["raise_after"] == 300.0  # [enhancer] raise_after reaches the chain
    never = dataclasses.replace(_settings(tmp_path, tiny_model_file, tiny_enhancer_file, "on"),
                                enhancer=EnhancerSettings(path=str(tiny_enhancer_file), mode="on", raise_after=0.0))
    assert _frames(never, tmp_path / "never", 2)[1]["chains"]["solo"]["raise_after"] is None


def test_an_installation_with_the_enhancer_off_is_the_plain_walk(tmp_path, tiny_model_file, tiny_enhancer_file):
    frames, status = _frames(_settings(tmp_path, tiny_model_file, tiny_enhancer_file, "off"), tmp_path, 4)
    assert all(f.image.shape == (64, 64, 3) and "stages" not in f.key for f in frames)
    assert status["enhancer"] is None and status["chains"]["solo"]["stages"] == "no stages"


def test_a_feedback_frame_through_the_enhancer_replays_from_its_key(tmp_path, tiny_model_file, tiny_enhancer_file):
    """Re-rendering a frame = its source's replay, then the stages its key names."""
    import torch

    from passersby.app.feedback import loop_step
    from passersby.checkpoint import file_hash, load_model
    from passersby.config import PainterConfig
    from passersby.checkpoint import save_model
    from passersby.model.painter import Painter
    from passersby.runtime import make_renderer, make_upscaler
    from passersby.stream.feedback import replay
    from passersby.stream.ledger import SqliteLedger
    from passersby.model.load import load_enhancer
    from passersby.model.load import load_painter

    torch.manual_seed(0)
    pcfg = PainterConfig(resolution=64, ngf=8, depth=3, ndf=8, d_resolution=64)
    painter = tmp_path / "painter.safetensors"
    save_model(painter, Painter(pcfg).eval(), pcfg, {"step": 0})
    s = load_settings(None, {"stream.seed": 3, "walk.tempo": 0.5, "walk.fps": 10.0, "model.runtime": "torch",
                             "model.path": str(tiny_model_file), "feedback.painter": str(painter),
                             "feedback.crossfade": 0.2, "enhancer.path": str(tiny_enhancer_file),
                             "enhancer.mode": "on"}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("loop", "", 0, "feedback"),))
    frames, status = _frames(s, tmp_path, 8, dry=False)
    assert status["chains"]["loop"]["stages"] == "enhancer"
    g, _ = load_model(tiny_model_file)
    render = make_renderer(g.float().eval(), "torch", 1, -1)
    step = loop_step(load_painter(painter)[0])
    up = make_upscaler(load_enhancer(tiny_enhancer_file)[0], "torch", side=64)
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = dict(led.recent("loop", 100))
    for f in frames[::3]:
        assert f.image.shape == (128, 128, 3) and f.key["stages"] == [{"enhancer": file_hash(tiny_enhancer_file)}]
        np.testing.assert_array_equal(up(replay(f.key, rows.__getitem__, render, step)), f.image)
