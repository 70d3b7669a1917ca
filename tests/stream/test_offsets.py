"""Sliders on the latent walk (stream/offsets.py, sources.Steerable): the ramp, the clamp, the
frame key that re-renders a steered frame, and the never-repeat ledger with offsets in play
(a real SQLite ledger, 128-d latents as the installation's)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from passersby.stream.claims import LedgerAnchors
from passersby.stream.frame_queue import CALM_FRAMES
from passersby.stream.ledger import LedgerError, LedgerSpec
from passersby.stream.offsets import DirectionSteps, Offsets, apply_offsets, clamp
from passersby.stream.sources import LatentWalk, Steerable
from passersby.stream.walker import WalkConfig, frame_latent

D = 128
WALK = WalkConfig(tempo=0.5, fps=8.0)  # 4 frames per face
STEPS = DirectionSteps(("yaw", "pca-0"), ("head turn", "light"), np.eye(D, dtype=np.float32)[:2] * 1.01)


def render(z: np.ndarray) -> np.ndarray:
    """(1, D) -> (1, 4, 4, 3) uint8: a picture that changes with every coordinate of the latent."""
    v = np.tanh(np.asarray(z, np.float64)[0, :48]) * 127.5 + 127.5
    return np.round(v).astype(np.uint8).reshape(1, 4, 4, 3)


class Seeded:
    """Anchors without a ledger: claim k is latent k of a seeded RNG, ledger id 100 + k."""

    def __init__(self) -> None:
        self.rng, self.z, self.claimed = np.random.default_rng(5), [], 0

    def __call__(self) -> np.ndarray:
        self.z.append(self.rng.standard_normal(D).astype(np.float32))
        self.claimed += 1
        return self.z[-1]

    def ledger_ids(self, positions):
        return [100 + p for p in positions]


def test_a_change_starts_at_the_next_frame_ramps_and_is_clamped():
    o = Offsets(STEPS)
    assert o.advance(0) == {}
    o.set("head turn", 7.0)  # clamped to 3
    got = [o.advance(i)["yaw"] for i in range(1, 8)]
    assert got == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    o.set("head turn", 2.5)
    assert o.advance(8) == {"yaw": 2.5}  # within one frame's ramp: there at once
    o.set("yaw", 0.0)  # by id too
    assert o.advance(20) == {}  # 12 frames later: all the way back, and zeros leave the key
    assert o.targets() == {"head turn": 0.0, "light": 0.0}


def test_bad_amounts_and_names_are_refused_with_what_is_known():
    o = Offsets(STEPS)
    with pytest.raises(ValueError, match="finite"):
        o.set("light", float("nan"))
    with pytest.raises(ValueError, match="number"):
        o.set("light", "1")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known: head turn, light"):
        o.set("tilt", 1.0)
    assert clamp(-4) == -3.0


def test_an_address_without_spaces_names_a_direction_with_them():
    """OSC addresses and MIDI files cannot hold a space: head-turn, head_turn, Head_Turn are "head turn"."""
    o = Offsets(STEPS)
    for name, amount in (("head-turn", 1.0), ("head_turn", 2.0), ("Head_Turn", -1.5)):
        o.set(name, amount)
        assert o.targets()["head turn"] == amount
    with pytest.raises(KeyError):
        o.set("headturn", 1.0)  # words are kept apart: no guessing beyond separators and case


def test_settings_offsets_apply_from_the_first_frame():
    o = Offsets(STEPS, {"light": -1.25})
    assert o.advance(0) == {"pca-0": -1.25}
    walk = LatentWalk(WALK, Seeded(), render, "m0", Offsets(STEPS, {"light": -1.25}))
    _, key = walk.render(0)
    assert key["offsets"] == {"pca-0": -1.25} and key["directions"] == STEPS.digest


def test_a_steered_frame_is_the_walk_latent_moved_and_its_key_re_renders_it():
    anchors = Seeded()
    walk = LatentWalk(WALK, anchors, render, "m0", Offsets(STEPS))
    plain, key0 = walk.render(0)
    assert "offsets" not in key0  # unsteered keys are as before
    assert isinstance(walk, Steerable)
    walk.set_offset("head turn", 1.0)
    walk.set_offset("light", -3.0)
    for i in range(1, 9):
        image, key = walk.render(i)
        z = frame_latent(np.stack([anchors.z[j - 100] for j in key["ledger_ids"]]), key["t"], WALK)
        want = apply_offsets(z, STEPS.steps, key["offsets"])
        assert np.array_equal(render(want[None])[0], image)
        unsteered = render(z[None])[0]
        assert not np.array_equal(unsteered, image)
    assert key["offsets"] == {"pca-0": -3.0, "yaw": 1.0}
    assert walk.offsets() == {"head turn": 1.0, "light": -3.0}


def test_sliders_set_from_another_thread_while_rendering():
    walk = LatentWalk(WALK, Seeded(), render, "m0", Offsets(STEPS))
    stop = threading.Event()

    def knob():
        a = -3.0
        while not stop.is_set():
            walk.set_offset("head turn", a)
            a = -a

    t = threading.Thread(target=knob)
    t.start()
    try:
        keys = [walk.render(i)[1] for i in range(40)]
    finally:
        stop.set()
        t.join()
    amounts = [k.get("offsets", {}).get("yaw", 0.0) for k in keys]
    assert all(abs(b - a) <= 0.5 + 1e-12 for a, b in zip(amounts, amounts[1:]))  # never a jump


def _anchors(path, propose, channel="s") -> LedgerAnchors:
    return LedgerAnchors(LedgerSpec(path), D, channel, propose, "m0", seed=0)


def test_steered_faces_pass_the_ledger_and_a_face_seen_before_is_refused_whatever_the_sliders(tmp_path):
    """The ledger's claim is on the anchor (the face), the sliders move what is rendered of it:
    a steered walk still claims every face before it is shown, and a new anchor that is a face
    shown before moved by a slider (up to 3 std) is refused, so no slider setting can bring back
    a face the ledger holds."""
    path = tmp_path / "ledger.sqlite"
    anchors = _anchors(path, lambda rng: rng.standard_normal(D))
    walk = LatentWalk(WALK, anchors, render, "m0", Offsets(STEPS, {"head turn": 2.0}))
    keys = [walk.render(i)[1] for i in range(12)]
    anchors.close()
    with LedgerSpec(path).open_existing() as led:
        shown = {i: led.anchor(i) for k in keys for i in k["ledger_ids"]}
    assert len(shown) >= 4 and all(k["offsets"] == {"yaw": 2.0} for k in keys)
    first = next(iter(shown.values()))
    step = STEPS.steps["yaw"]
    for moved in (first, first + 2.0 * step, first - 3.0 * step, first + 3.0 * STEPS.steps["pca-0"]):
        with pytest.raises(LedgerError, match="within 6.0 of recorded anchors"):
            with LedgerSpec(path).open(D, "other", 0) as led:
                led.claim("other", lambda rng, m=moved: m.astype(np.float32), "m0", max_tries=3)
    # An honest draw on a steered screen is claimed as before.
    fresh = _anchors(path, lambda rng: rng.standard_normal(D), channel="other")
    assert fresh().shape == (D,)
    fresh.close()


def test_a_rewind_ramps_on_from_the_frame_before_it():
    o = Offsets(STEPS, {"light": 1.0})
    o.set("head turn", 3.0)
    assert [o.advance(i).get("yaw") for i in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    o.rewind(2)
    assert o.advance(2)["yaw"] == 1.5  # frame 1 showed 1.0: one step on, as the first time
    o.rewind(0)
    assert o.advance(0) == {"pca-0": 1.0, "yaw": 0.5}  # from the start: the settings' offsets


def _engine(tmp_path, queue=12):
    from passersby.stream.engine import Engine, ScreenPlan

    plan = ScreenPlan("s", lambda rng: rng.standard_normal(D),
                      lambda anchors: LatentWalk(WalkConfig(tempo=6.0, fps=30.0), anchors, render, "m0", Offsets(STEPS)))
    return Engine([plan], 30.0, tmp_path / "ledger.sqlite", D, "m0", queue, seed=3)


def test_a_moved_slider_shows_within_2_frames_with_no_jump_in_the_walk(tmp_path):
    """Engine.steer: the frames rendered ahead beyond the next one are rendered again, steered;
    the walk goes on frame by frame (no index skipped or repeated) and every key re-renders."""
    engine = _engine(tmp_path)
    try:
        engine.start(pace=False)
        p = engine.producers[0]
        while p.frames.qsize() < 12:  # the queue is full: 12 frames rendered ahead, unsteered
            engine.check()
            threading.Event().wait(0.01)
        engine.steer("head turn", 3.0, "s")
        # The queue keeps the frame shown next; the producer renders the rest again, steered.
        while not any("offsets" in f.key for f in list(p.frames.queue)):
            engine.check()
            threading.Event().wait(0.005)
        frames = [engine.take(0) for _ in range(20)]
    finally:
        engine.stop()
    assert [f.index for f in frames] == list(range(20))
    amounts = [f.key.get("offsets", {}).get("yaw", 0.0) for f in frames]
    assert amounts[0] == 0.0 and amounts[1] == 0.5  # the 2nd frame shown is steered
    assert amounts[1:8] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0] and amounts[-1] == 3.0
    with LedgerSpec(tmp_path / "ledger.sqlite").open_existing() as led:
        for f in frames:
            z = frame_latent(np.stack([led.anchor(i) for i in f.key["ledger_ids"]]), f.key["t"], WalkConfig(tempo=6.0, fps=30.0))
            assert np.array_equal(render(apply_offsets(z, STEPS.steps, f.key.get("offsets", {}))[None])[0], f.image)


def test_a_knob_turned_all_the_time_never_starves_the_screen_nor_jumps(tmp_path):
    engine = _engine(tmp_path, queue=6)
    stop = threading.Event()

    def knob():
        a = 0.0
        while not stop.is_set():
            a = -a if abs(a) >= 3 else a + 0.25
            engine.steer("head turn", a if a else 0.1, "s")
            stop.wait(0.002)

    try:
        engine.start(pace=False)
        t = threading.Thread(target=knob)
        t.start()
        frames = [engine.take(0, timeout=10) for _ in range(150)]
        # On a loaded machine the knob's thread can lag the unpaced screen: keep taking (and give
        # the knob the GIL between frames) until its turns have shown, at most 3,000 frames.
        while len({f.key.get("offsets", {}).get("yaw", 0.0) for f in frames}) <= 5 and len(frames) < 3000:
            stop.wait(0.002)
            frames.append(engine.take(0, timeout=10))
    finally:
        stop.set()
        t.join()
        engine.stop()
    assert [f.index for f in frames] == list(range(len(frames)))  # never starved: every frame, in order
    amounts = [f.key.get("offsets", {}).get("yaw", 0.0) for f in frames]
    assert all(abs(b - a) <= 0.5 + 1e-9 for a, b in zip(amounts, amounts[1:])), amounts  # smooth
    assert len(set(amounts)) > 5  # the knob's turns reach the screen


def test_steering_a_screen_that_cannot_be_steered_is_refused(tmp_path):
    engine = _engine(tmp_path)
    try:
        with pytest.raises(PermissionError, match="no screen 'x'"):
            engine.steer("head turn", 1.0, "x")
        with pytest.raises(KeyError, match="no direction named 'tilt'"):
            engine.steer("tilt", 1.0, "s")
    finally:
        engine.stop()


def test_frames_rendered_again_ramp_on_from_the_frame_shown_before_them(tmp_path):
    engine = _engine(tmp_path)
    try:
        engine.start(pace=False)
        p = engine.producers[0]

        def queued_amounts():
            return [f.key.get("offsets", {}).get("yaw", 0.0) for f in list(p.frames.queue)]

        def wait_for(ok):
            while not ok():
                engine.check()
                threading.Event().wait(0.005)

        wait_for(lambda: p.frames.qsize() == 12)
        engine.steer("head turn", 3.0, "s")
        wait_for(lambda: p.frames.qsize() == 12 and queued_amounts()[-1] == 3.0)
        # 0 .. 7 (0.0, 0.5 ... 3.0): CALM_FRAMES shown, so the next change is not a storm and keeps 1
        shown = [engine.take(0) for _ in range(CALM_FRAMES)]
        wait_for(lambda: p.frames.qsize() == 12)
        engine.steer("head turn", -1.0, "s")  # 8 stays (3.0); 9 on are rendered again from 8's 3.0
        wait_for(lambda: len(q := queued_amounts()) > 1 and q[1] != 3.0)
        shown += [engine.take(0) for _ in range(14)]
    finally:
        engine.stop()
    assert [f.index for f in shown] == list(range(CALM_FRAMES + 14))
    amounts = [f.key.get("offsets", {}).get("yaw", 0.0) for f in shown]
    assert amounts[:CALM_FRAMES + 3] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0, 2.5, 2.0], amounts
    assert amounts[-1] == -1.0, amounts
    assert all(abs(b - a) <= 0.5 + 1e-9 for a, b in zip(amounts, amounts[1:])), amounts
