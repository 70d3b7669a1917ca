"""Captures: a frame re-rendered from its key is the frame that was shown (walk and feedback
screens, keyframes and the frames blended between them, through the enhancer), and a capture
of a running screen keeps the best re-render with its key."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from passersby.app.capture import capture_screen
from passersby.app.captures import list_captures
from passersby.app.installation import build
from passersby.app.rerender import RerenderError
from passersby.checkpoint import file_hash
from passersby.settings import ScreenSettings, load_settings
from passersby.stream.ledger import LedgerError, SqliteLedger


def _settings(model: Path, painter: Path, enhancer: Path, **over):
    s = load_settings(None, {"stream.seed": 5, "walk.tempo": 0.5, "walk.fps": 10.0, "model.runtime": "torch",
                             "model.path": str(model), "feedback.painter": str(painter), "feedback.crossfade": 0.2,
                             "enhancer.path": str(enhancer), "enhancer.mode": "on", **over}, search=False)
    return dataclasses.replace(s, screens=(ScreenSettings("left", "feminine", 0, "feedback"),
                                           ScreenSettings("right", "masculine", 1, "walk")))


def test_every_frame_re_renders_from_its_key_bit_for_bit(tmp_path, tiny_model_file, painter_file, tiny_enhancer_file):
    # A keyframe every 2nd frame on the walk: half its frames are blends of two keyframes.
    inst = build(_settings(tiny_model_file, painter_file, tiny_enhancer_file, **{"enhancer.every": 2}), tmp_path,
                 realtime=False)
    try:
        inst.engine.start(pace=False)
        frames = [inst.engine.take(k) for _ in range(9) for k in (0, 1)]
        rr = inst.rerenderer()
        between = 0
        for f in frames:
            assert f.key["stages"] == [{"enhancer": file_hash(tiny_enhancer_file)}]
            np.testing.assert_array_equal(rr.shown(f.key), f.image)
            between += "between" in f.key
            best, quality = rr.best(f.key)
            assert quality.startswith("enhancer ") and best.shape == f.image.shape == (128, 128, 3)
        assert between >= 3  # the blends were checked, not only keyframes
        walk = next(f for f in frames if f.key["source"] == "latent-walk")
        with pytest.raises(RerenderError, match="made by generator 0000"):
            rr.shown({**walk.key, "model": "0000"})
        with pytest.raises(LedgerError, match="no anchor 999999"):
            rr.shown({**walk.key, "ledger_ids": [999999] * len(walk.key["ledger_ids"]), "between": None})
    finally:
        inst.close()


def test_capturing_a_running_screen_keeps_its_best_re_render(tmp_path, tiny_model_file, painter_file, tiny_enhancer_file):
    inst = build(_settings(tiny_model_file, painter_file, tiny_enhancer_file), tmp_path)
    try:
        with pytest.raises(ValueError, match="has shown nothing yet"):
            capture_screen(inst, "left")
        inst.engine.start()
        deadline = time.monotonic() + 30
        while any(inst.engine.hub.latest(s) is None for s in ("left", "right")) and time.monotonic() < deadline:
            time.sleep(0.05)
        with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
            before = len(led)
        caps = [capture_screen(inst, s) for s in ("left", "right")]
        with pytest.raises(ValueError, match="no screen 'middle'"):
            capture_screen(inst, "middle")
    finally:
        inst.close()
    for cap, source in zip(caps, ("feedback", "latent-walk")):
        r = cap.record
        assert r["matches_shown"] is True and r["key"]["source"] == source and r["quality"].startswith("enhancer ")
        assert cap.image().shape == (128, 128, 3) and r["shown_size"] == [128, 128]
        assert r["anchor_id"] is not None and cap.path.parent == tmp_path / "captures"
    assert [c.id for c in list_captures(tmp_path)] == sorted(c.id for c in caps)
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        assert len(led) >= before  # captures read the ledger; the screens went on claiming faces
        ids = {row[0] for row in led.recent("left", 1000)} | {row[0] for row in led.recent("right", 1000)}
    assert {c.record["anchor_id"] for c in caps} <= ids
