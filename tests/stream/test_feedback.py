"""The feedback loop as a frame source, without a model: segments from ledger anchors, drift,
crossfades, collapse detection and re-anchoring, replay from keys, and the engine carrying it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.feedback import FeedbackConfig, FeedbackLoop, crossfade_weight, drift_field, replay
from passersby.stream.ledger import SqliteLedger
from passersby.stream.vitals import Vitals

from feedback_fakes import R, paintings, render_anchor, step

D = 16

CFG = FeedbackConfig(tempo=1.0, fps=20.0, drift=1.0, crossfade=0.25, face_every=0.25, max_faceless=1.0,
                     freeze_seconds=0.5)


def run_engine(tmp_path: Path, n: int, step_fn=step, face_found=None, cfg=CFG):
    plan = ScreenPlan("loop", lambda rng: rng.standard_normal(D),
                      lambda anchors: FeedbackLoop(cfg, anchors, render_anchor, step_fn, face_found, {"painter": "p0"}))
    with Engine([plan], cfg.fps, tmp_path / "ledger.sqlite", D, "g0", queue_size=2, seed=5) as e:
        e.start(pace=False)
        frames = [e.take(0) for _ in range(n)]
        source = e.producers[0].source
    return frames, source


def test_segments_start_from_claimed_anchors_and_crossfade(tmp_path: Path) -> None:
    frames, source = run_engine(tmp_path, 70)
    starts = sorted({f.key["segment"]["start"] for f in frames})
    assert starts[:4] == [0, 20, 40, 60]  # a new anchor every tempo (20 frames), none collapsed
    assert source.collapses == {}
    first = frames[0]
    np.testing.assert_array_equal(first.image, render_anchor(_anchor(tmp_path, first.key["ledger_ids"][0])[None])[0])
    fading = [f for f in frames if f.key["previous"] is not None]
    assert [f.index for f in fading] == [20, 21, 22, 23, 24, 40, 41, 42, 43, 44, 60, 61, 62, 63, 64]
    assert all(0 < f.key["mix"] < 1 and len(f.key["ledger_ids"]) == 2 for f in fading)
    changes = [np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in zip(frames, frames[1:])]
    assert min(changes) > 0.05  # it moves at every frame
    assert max(changes[i] for i in range(len(changes)) if i + 1 not in (20, 40, 60)) < 40  # no flicker


def _anchor(tmp_path: Path, ledger_id: int) -> np.ndarray:
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        return dict(led.recent("loop", 1000))[ledger_id]


def test_every_frame_replays_from_its_key_bit_for_bit(tmp_path: Path) -> None:
    frames, _ = run_engine(tmp_path, 50)
    for f in frames[::7] + [frames[21], frames[44]]:
        again = replay(f.key, lambda i: _anchor(tmp_path, i), render_anchor, step)
        np.testing.assert_array_equal(again, f.image)
    with pytest.raises(ValueError, match="not this frame's anchor"):
        replay(frames[5].key, lambda i: _anchor(tmp_path, i) + 1, render_anchor, step)


def test_a_collapsing_loop_is_re_anchored_at_once(tmp_path: Path) -> None:
    blank = lambda image, field: np.full_like(image, 128)  # noqa: E731 - the painter paints nothing
    frames, source = run_engine(tmp_path, 12, step_fn=blank)
    assert source.collapses["blank"] >= 3
    assert frames[1].key["collapse"] == "blank" and frames[2].key["segment"]["start"] == 2
    ids = {f.key["segment"]["ledger_id"] for f in frames}
    assert len(ids) >= 4  # a fresh face each time, from the ledger


def test_no_face_for_too_long_re_anchors(tmp_path: Path) -> None:
    frames, source = run_engine(tmp_path, 45, face_found=lambda image: False)
    # tempo 20 frames would give starts 0, 20, 40; max_faceless 1 s = 20 frames checked every 5
    assert source.collapses.get("no face", 0) >= 1
    assert any(f.key.get("collapse") == "no face" for f in frames)


def test_vitals_on_synthetic_collapses_and_on_paintings() -> None:
    rng = np.random.default_rng(0)
    v = Vitals(20.0, None, 0.25, 1.0, 0.5)
    still = paintings()[0]
    seen = [v.update(still) for _ in range(11)]  # 10 unchanged frames after the first
    assert seen[-1] == "frozen" and set(seen[:-1]) == {None}
    assert Vitals(20.0, None, 1, 1, 1).update(rng.integers(0, 256, (R, R, 3), dtype=np.uint8)) == "noise"
    assert Vitals(20.0, None, 1, 1, 1).update(np.full((R, R, 3), 7, np.uint8)) == "blank"
    primaries = np.zeros((R, R, 3), np.uint8)
    primaries[:, : R // 2, 0] = 255
    primaries[:, R // 2 :, 2] = 255
    assert Vitals(20.0, None, 1, 1, 1).update(primaries) == "colours"
    for pic in paintings():  # real paintings, changing: alive
        w = Vitals(20.0, None, 1, 1, 1)
        assert w.update(pic) is None and w.update(np.roll(pic, 3, axis=1)) is None


def test_drift_field_is_smooth_in_time_and_scaled_by_drift() -> None:
    cfg = FeedbackConfig(drift=1.0)
    fields = np.stack([drift_field(9, f, 32, cfg) for f in range(200)])
    steps = np.abs(np.diff(fields, axis=0)).max()
    assert steps < 0.1 * np.abs(fields).max()  # no jumps from frame to frame
    np.testing.assert_array_equal(drift_field(9, 17, 32, cfg), fields[17])  # random access, pure
    assert np.abs(drift_field(9, 17, 32, FeedbackConfig(drift=0.5))).max() == pytest.approx(np.abs(fields[17]).max() / 2, rel=1e-5)
    assert crossfade_weight(0, 5) < crossfade_weight(4, 5) < 1 == crossfade_weight(5, 5)


def test_next_starts_a_new_segment_at_the_next_frame(tmp_path: Path) -> None:
    plan = ScreenPlan("loop", lambda rng: rng.standard_normal(D),
                      lambda anchors: FeedbackLoop(CFG, anchors, render_anchor, step))
    with Engine([plan], CFG.fps, tmp_path / "ledger.sqlite", D, "g0", queue_size=1, seed=5) as e:
        e.start(pace=False)
        e.take(0)
        e.hub.control("next")
        later = [e.take(0) for _ in range(4)]
    assert any(f.key["segment"]["start"] in (2, 3, 4) and f.index < 20 for f in later)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="crossfade"):
        FeedbackConfig(tempo=1.0, crossfade=2.0)
    with pytest.raises(ValueError, match="drift must be a finite number >= 0"):
        FeedbackConfig(drift=-1)


def test_painting_every_k_frames_blends_between_and_still_replays(tmp_path: Path) -> None:
    import dataclasses

    calls = []

    def counting(image, field):
        calls.append(1)
        return step(image, field)

    cfg = dataclasses.replace(CFG, step_every=3)
    frames, _ = run_engine(tmp_path, 19, step_fn=counting, cfg=cfg)  # one segment: frames 0-18
    assert {f.key["segment"]["start"] for f in frames} == {0}
    assert len(calls) <= 7  # states 1..6 (+1 rendered ahead), not 18 paintings
    a, b, mid = frames[3].image.astype(int), frames[6].image.astype(int), frames[4].image.astype(int)
    np.testing.assert_allclose(mid, np.rint(a + (b - a) / 3), atol=1)  # 1/3 of the way from state 1 to 2
    for f in frames[::4]:
        np.testing.assert_array_equal(replay(f.key, lambda i: _anchor(tmp_path, i), render_anchor, step), f.image)


def test_kept_loop_states_replay_late_frames_in_a_few_paintings_bit_for_bit(tmp_path: Path) -> None:
    """Issue 22: a feedback capture replayed up to a segment's whole run of paintings from the
    anchor; a gallery page re-renders many. Kept states: the same bytes, a few paintings each."""
    import dataclasses

    from passersby.stream.feedback import LoopStates

    cfg = dataclasses.replace(CFG, tempo=2.0, step_every=2)  # one 40-frame segment: states 0..19
    frames, _ = run_engine(tmp_path, 39, cfg=cfg)
    calls = []

    def counting(image, field):
        calls.append(1)
        return step(image, field)

    states = LoopStates(every=4)
    anchor = lambda i: _anchor(tmp_path, i)  # noqa: E731
    last = frames[38]  # state 19 (a painting at every 2nd frame)
    np.testing.assert_array_equal(replay(last.key, anchor, render_anchor, counting, states), last.image)
    assert len(calls) == 19  # the first replay of the segment runs it all, keeping states 4, 8, 12, 16
    for f in (frames[37], frames[25], frames[9], frames[33], frames[16]):  # in any order, blends too
        calls.clear()
        np.testing.assert_array_equal(replay(f.key, anchor, render_anchor, counting, states), f.image)
        assert len(calls) <= 4, (f.index, len(calls))  # from the kept state at most 4 paintings before
    calls.clear()  # the same anchor under another painter is another loop: not these states
    replay({**last.key, "models": {"painter": "p1"}}, anchor, render_anchor, counting, states)
    assert len(calls) == 19


def test_loop_states_are_bounded_oldest_segment_first() -> None:
    from passersby.stream.feedback import LoopStates

    states = LoopStates(every=1, max_bytes=3 * 12)  # three 2x2x3 pictures
    img = np.zeros((2, 2, 3), np.uint8)
    states.add("a", 1, None, img)
    states.add("b", 1, None, img)
    assert states.nearest("a", 5)[0] == 1  # touched: "b" is now the oldest
    states.add("c", 1, None, img)
    states.add("c", 2, None, img)
    assert states.nearest("b", 5) is None and states.nearest("a", 5) is not None and states.nbytes <= 36
