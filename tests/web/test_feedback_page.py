"""The kiosk in real headless Chromium showing a feedback screen: the engine runs the feedback
loop (model-free stand-ins, tests/feedback_fakes.py) and the page shows its frames, changing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feedback_fakes import render_anchor, step
from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.feedback import FeedbackConfig, FeedbackLoop
from passersby.web import KioskServer

from .test_browser import pixels, wait_frames_past


def test_the_kiosk_shows_a_feedback_screen(tmp_path: Path, page) -> None:
    cfg = FeedbackConfig(tempo=2.0, fps=30.0, drift=1.0, crossfade=0.5)
    plan = ScreenPlan("loop", lambda rng: rng.standard_normal(16),
                      lambda anchors: FeedbackLoop(cfg, anchors, render_anchor, step))
    with Engine([plan], cfg.fps, tmp_path / "ledger.sqlite", 16, "g0", queue_size=4, seed=2) as engine:
        engine.start()
        server = KioskServer(engine.hub, port=0, token="t0k3n").start()
        try:
            page.goto(server.screen_url("loop"))
            first = wait_frames_past(page, "#screen", -1)
            before = pixels(page, "#screen")
            later = wait_frames_past(page, "#screen", first + 15, timeout_ms=5_000)
            after = pixels(page, "#screen")
            assert later > first + 15
            assert np.abs(after - before).max() > 10  # the loop moves the picture
            assert engine.hub.latest("loop").key["source"] == "feedback"
        finally:
            server.stop()


def test_the_overview_says_which_chain_each_screen_runs_and_when_it_was_lowered(tmp_path: Path, page) -> None:
    """A screen whose stage is too slow is lowered to its next level; the status page says so."""
    from passersby.stream.keyframes import Keyframes

    cfg = FeedbackConfig(tempo=2.0, fps=30.0, drift=1.0, crossfade=0.5)

    class Slow:
        name = "enhancer"

        def __call__(self, image, key):
            import time

            time.sleep(0.05)  # 50 ms a frame: over the 30 fps budget
            return image.repeat(2, 0).repeat(2, 1), {**key, "stages": ["enhancer"]}

    plan = ScreenPlan("loop", lambda rng: rng.standard_normal(16),
                      lambda anchors: Keyframes(FeedbackLoop(cfg, anchors, render_anchor, step),
                                                [((Slow(),), 1), ((), 1)], budget=0.8 / 30, patience=10))
    with Engine([plan], cfg.fps, tmp_path / "ledger.sqlite", 16, "g0", queue_size=4, seed=2) as engine:
        engine.start()
        server = KioskServer(engine.hub, port=0, token="t0k3n").start()
        try:
            page.goto(server.url)
            page.wait_for_selector('#status tr[data-key="chains"]')
            page.wait_for_function("() => document.querySelector('#status tr[data-key=\"chains\"] td')"
                                   ".textContent.includes('no stages')", timeout=10_000)
            text = page.inner_text('#status tr[data-key="chains"]')  # the table is redrawn every second
            assert "lowered" in text and "ms_per_frame" in text
            assert engine.status()["chains"]["loop"]["level"] == 1
        finally:
            server.stop()
