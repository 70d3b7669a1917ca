"""Feedback screens from settings: the painter file, the loop in the engine, replay of a shown
frame from its key and the ledger, `--mode feedback` on the command line, clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from passersby.app.feedback import loop_step
from passersby.app.installation import build
from passersby.checkpoint import CheckpointError, load_model
from passersby.cli import app
from passersby.runtime import make_renderer
from passersby.settings import ScreenSettings, load_settings
from passersby.stream.feedback import replay
from passersby.stream.ledger import SqliteLedger
from passersby.model.load import load_painter


def _settings(model: Path, painter: Path, **over):
    s = load_settings(None, {"stream.seed": 3, "walk.tempo": 0.5, "walk.fps": 10.0, "model.runtime": "torch",
                             "model.path": str(model), "feedback.painter": str(painter), "feedback.crossfade": 0.2,
                             "enhancer.mode": "off", **over}, search=False)  # the enhancer: tests/app/test_chain.py
    return dataclasses.replace(s, screens=(ScreenSettings("left", "feminine", 0, "feedback"),
                                           ScreenSettings("right", "masculine", 1, "walk")))


def test_a_feedback_screen_beside_a_walk_screen_and_replay(tmp_path: Path, tiny_model_file: Path, painter_file: Path) -> None:
    inst = build(_settings(tiny_model_file, painter_file), tmp_path)
    try:
        st = inst.engine.status()
        assert st["sources"] == {"left": "feedback", "right": "walk"} and st["painter_hash"] == load_painter(painter_file)[1].hash
        assert st["feedback_step_every"] >= 1 and st["feedback_step_ms"] > 0
        inst.engine.start(pace=False)
        left = [inst.engine.take(0) for _ in range(12)]
        right = [inst.engine.take(1) for _ in range(3)]
    finally:
        inst.close()
    assert all(f.key["source"] == "feedback" and f.key["screen"] == "left" for f in left)
    assert left[0].key["models"] == {"generator": load_model(tiny_model_file)[1].hash,
                                    "painter": load_painter(painter_file)[1].hash}
    assert right[0].key["source"] == "latent-walk"
    g, _ = load_model(tiny_model_file)
    render = make_renderer(g.float().eval(), "torch", 1, 0)  # class 0 = feminine
    step = loop_step(load_painter(painter_file)[0])
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = dict(led.recent("left", 100))
    for f in left[::3]:
        np.testing.assert_array_equal(replay(f.key, rows.__getitem__, render, step), f.image)


def test_missing_painter_and_bad_source_are_clear_errors(tmp_path: Path, tiny_model_file: Path) -> None:
    with pytest.raises(ValueError, match=r"feedback.painter: .*does not exist; train one with"):
        build(_settings(tiny_model_file, tmp_path / "none.safetensors"), tmp_path)
    with pytest.raises(CheckpointError, match="is not a painter"):
        build(_settings(tiny_model_file, tiny_model_file), tmp_path)
    s = load_settings(None, search=False)
    with pytest.raises(ValueError, match="screens.source: 'dream' must be one of"):
        dataclasses.replace(s, screens=(ScreenSettings("a", "", 0, "dream"),))


def test_render_mode_feedback_from_the_command_line(tmp_path: Path, tiny_model_file: Path, painter_file: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[feedback]\npainter = "{painter_file}"\ncrossfade = 0.2\n[walk]\ntempo = 0.5\nfps = 10.0\n')
    r = CliRunner().invoke(app, ["render", "--seconds", "1", "--frames", str(tmp_path / "f"), "--dry-ledger", "--seed", "1",
                                 "--model", str(tiny_model_file), "--config", str(cfg), "--mode", "feedback",
                                 "--home", str(tmp_path / "home")])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "f" / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(s["source"] == "feedback" for row in rows for s in row["key"]["screens"])
    bad = CliRunner().invoke(app, ["render", "--seconds", "1", "--frames", str(tmp_path / "g"), "--dry-ledger",
                                   "--model", str(tiny_model_file), "--mode", "dream", "--home", str(tmp_path / "home")])
    assert bad.exit_code == 1 and "error: " in bad.output and "screens.source" in bad.output


def test_a_slow_painter_paints_every_few_frames_and_says_so() -> None:
    from passersby.app.feedback import choose_step_every

    class Clock:  # the painter's cost is read off this clock: exact, whatever the machine's load
        t = 0.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()

    def slow(image, field):
        clock.t += 0.05  # a painting takes 50 ms
        return image

    k, seconds = choose_step_every(slow, 16, 30.0, 0.2, 0, clock=clock)
    assert seconds == pytest.approx(0.05) and k == int(np.ceil(0.05 * 30 * 1.2 / 0.8)) == 3
    assert choose_step_every(slow, 16, 30.0, 0.2, 2, clock=clock)[0] == 2  # a setting wins
    assert choose_step_every(lambda im, f: im, 16, 30.0, 0.2, 0, clock=clock)[0] == 1
