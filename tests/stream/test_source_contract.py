"""One contract for every frame source (stream/sources.FrameSource): the latent walk, the
feedback loop, the peepshow and the keyframe wrapper, each built with model-free fakes.

Every source: yields (H, W, 3) uint8 frames of one size and JSON-able keys naming their frame;
`cut` jumps forward, never back; the same anchors give the same frames (what lets a key
re-render its frame); each key re-renders its frame from the ledger's anchors alone; and the
capabilities it declares (Pressable, Describable, Stateful) are exactly the ones it has, and
work (the engine relies on isinstance, stream/engine.py)."""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np
import pytest
from feedback_fakes import R, render_anchor, step

from passersby.stream.feedback import FeedbackConfig, FeedbackLoop, replay
from passersby.stream.keyframes import Keyframes, blend, chain
from passersby.stream.offsets import DirectionSteps, Offsets, apply_offsets
from passersby.stream.peep import PeepConfig, PeepSource
from passersby.stream.sources import (Describable, FrameSource, LatentWalk, Pressable, Refreshable, Rewindable,
                                      Stateful, Steerable, Tunable)
from passersby.stream.walker import WalkConfig, frame_latent

D = 8
FRAMES = 24


class FakeAnchors:
    """A screen's ledger claims without a ledger: claim k is latent k of a seeded RNG, ledger id 100 + k."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = np.random.default_rng(seed)
        self.z: list[np.ndarray] = []
        self.claimed = 0

    def __call__(self) -> np.ndarray:
        self.z.append(self.rng.standard_normal(D).astype(np.float32))
        self.claimed += 1
        return self.z[-1]

    def ledger_ids(self, positions: list[int]) -> list[int]:
        return [100 + p for p in positions]

    def latent(self, ledger_id: int) -> np.ndarray:
        return self.z[ledger_id - 100]


def walk_renderer(z: np.ndarray) -> np.ndarray:
    """(1, D) -> (1, R, R, 3): a picture that is a pure function of the latent."""
    return render_anchor(z)


class Tint:
    """A stage (stream/sources.Stage): darkens the picture and records itself in the key."""

    name = "tint"

    def __call__(self, image, key):
        return (image // 2).astype(np.uint8), {**key, "stages": key.get("stages", []) + ["tint"]}


WALK = WalkConfig(tempo=0.5, fps=8.0)
LOOP = FeedbackConfig(tempo=1.0, fps=8.0, drift=1.0, crossfade=0.25, face_every=0.25, max_faceless=1.0,
                      freeze_seconds=0.5, step_every=2)
PEEP = PeepConfig(seconds=0.5, fps=8.0, blank="fade", fade=0.25, debounce=0.0)


# Two directions in the fakes' latent space; the steered walk starts at "turn" = 1.5 and is
# moved while it runs (steered()), so its keys carry ramping amounts.
STEPS = DirectionSteps(("pca-0", "yaw"), ("light", "turn"), np.eye(D, dtype=np.float32)[:2] * 0.9)


def rerender_walk(key: dict[str, Any], anchors: FakeAnchors) -> np.ndarray:
    zs = np.stack([anchors.latent(i) for i in key["ledger_ids"]])
    z = frame_latent(zs, key["t"], WalkConfig.from_dict(key["walk"]))
    if key.get("offsets"):
        assert key["directions"] == STEPS.digest
        z = apply_offsets(z, STEPS.steps, key["offsets"])
    return walk_renderer(z[None])[0]


class SteeredWalk(LatentWalk):
    """The latent walk with sliders moved at frames 4 and 10 (as a control thread would)."""

    def render(self, index):
        if index == 4:
            self.set_offset("light", -2.0)
        if index == 10:
            self.set_offset("turn", 0.0)
        return super().render(index)


def rerender_feedback(key: dict[str, Any], anchors: FakeAnchors) -> np.ndarray:
    return replay(key, anchors.latent, render_anchor, step)


def rerender_peep(key: dict[str, Any], anchors: FakeAnchors) -> np.ndarray:
    if key["state"] == "blank":
        return np.zeros((R, R, 3), np.uint8)
    face = walk_renderer(anchors.latent(key["ledger_ids"][0])[None])[0]
    return face if key["fade"] == 0.0 else blend(face, np.zeros_like(face), key["fade"])


def rerender_keyframes(key: dict[str, Any], anchors: FakeAnchors) -> np.ndarray:
    def keyframe(k: dict[str, Any]) -> np.ndarray:
        return Tint()(rerender_walk(k, anchors), k)[0]

    if "between" not in key:
        return keyframe(key)
    first = {**key, "frame": key["between"]["from"], "ledger_ids": key["between"]["from_ledger_ids"]}
    return blend(keyframe(first), keyframe(key["between"]["next"]), key["between"]["mix"])


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def peep(anchors: FakeAnchors) -> PeepSource:
    src = PeepSource(PEEP, anchors, lambda z: (walk_renderer(z)[0], []), R, "m0", clock=Clock())
    assert src.press()  # a face at once, then blank: both kinds of frame pass the contract
    return src


# name -> (build from anchors, re-render a frame from its key and the anchors, capabilities it has)
SOURCES: dict[str, tuple[Callable[[FakeAnchors], Any], Callable, set[type]]] = {
    "walk": (lambda a: LatentWalk(WALK, a, walk_renderer, "m0"), rerender_walk, {Steerable, Rewindable, Tunable}),
    "steered-walk": (lambda a: SteeredWalk(WALK, a, walk_renderer, "m0", Offsets(STEPS, {"turn": 1.5})),
                     rerender_walk, {Steerable, Rewindable, Tunable}),
    "feedback": (lambda a: FeedbackLoop(LOOP, a, render_anchor, step, None, {"generator": "m0"}),
                 rerender_feedback, {Tunable}),
    "peep": (peep, rerender_peep, {Pressable, Stateful}),
    "keyframes": (lambda a: chain(LatentWalk(WALK, a, walk_renderer, "m0"), [((Tint(),), 3), ((), 1)]),
                  rerender_keyframes, {Describable, Steerable, Refreshable, Rewindable}),
    "steered-keyframes": (lambda a: chain(SteeredWalk(WALK, a, walk_renderer, "m0", Offsets(STEPS, {"turn": 1.5})),
                                          [((Tint(),), 3), ((), 1)]), rerender_keyframes,
                          {Describable, Steerable, Refreshable, Rewindable}),
    "keyframes-feedback": (lambda a: chain(FeedbackLoop(LOOP, a, render_anchor, step, None, {"generator": "m0"}),
                                           [((), 2)]), None, {Describable, Refreshable, Rewindable}),
}
# Keyframes can go back only when the source inside can: around the feedback loop (forward only)
# its rewind says no.
FORWARD_ONLY = {"keyframes-feedback"}
CAPABILITIES = {Pressable: "press", Describable: "describe", Stateful: "state", Steerable: "offsets",
                Tunable: "tunings", Refreshable: "refresh", Rewindable: "rewind"}


def frames(name: str, n: int = FRAMES) -> tuple[Any, FakeAnchors, list[tuple[np.ndarray, dict[str, Any]]]]:
    build = SOURCES[name][0]
    anchors = FakeAnchors()
    src = build(anchors)
    return src, anchors, [src.render(i) for i in range(n)]


@pytest.mark.parametrize("name", list(SOURCES))
def test_frames_have_the_promised_shape_and_keys_name_them(name):
    src, _, out = frames(name)
    assert isinstance(src, FrameSource)
    shapes = {im.shape for im, _ in out}
    assert len(shapes) == 1 and next(iter(shapes))[2] == 3, shapes
    assert all(isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 for im, _ in out)
    for i, (_, key) in enumerate(out):
        assert json.loads(json.dumps(key)) == key  # JSON-able: it goes into captures and the wire format
        assert key["frame"] == i and isinstance(key.get("ledger_ids", []), list)
    assert len({float(im.astype(np.float32).std()) for im, _ in out}) > 1  # not one still picture
    src.close()


@pytest.mark.parametrize("name", list(SOURCES))
def test_cut_jumps_forward_and_rendering_goes_on_from_there(name):
    src, _, out = frames(name, 5)
    after = src.cut(5)
    assert isinstance(after, int) and after >= 5
    image, key = src.render(after)
    assert image.shape == out[0][0].shape and key["frame"] == after


@pytest.mark.parametrize("name", list(SOURCES))
def test_the_same_anchors_give_the_same_frames(name):
    (_, _, a), (_, _, b) = frames(name), frames(name)
    for (ia, ka), (ib, kb) in zip(a, b, strict=True):
        assert ka == kb and np.array_equal(ia, ib)


@pytest.mark.parametrize("name", [n for n in SOURCES if SOURCES[n][1] is not None])
def test_each_key_re_renders_its_frame_from_the_ledgers_anchors(name):
    _, anchors, out = frames(name)
    rerender = SOURCES[name][1]
    for image, key in out:
        assert np.array_equal(rerender(key, anchors), image), key["frame"]


@pytest.mark.parametrize("name", list(SOURCES))
def test_capabilities_declared_are_the_ones_it_has_and_they_work(name):
    src, _, _ = frames(name, 3)
    has = {cap for cap in CAPABILITIES if isinstance(src, cap)}
    assert has == SOURCES[name][2]
    for cap, method in CAPABILITIES.items():
        assert (cap in has) == callable(getattr(src, method, None))
    if Pressable in has:
        assert isinstance(src.press(), bool)
    if Refreshable in has:
        src.refresh()
        assert src.render(3)[0].shape == src.render(4)[0].shape
    if Rewindable in has and name in FORWARD_ONLY:
        assert not src.rewind(1)
    elif Rewindable in has:  # back to a recent frame: the same frames again, bit for bit
        again = [src.render(i) for i in range(1, 4)] if src.rewind(1) else None  # 0, 1, 2 were rendered
        assert again is not None
        _, _, first = frames(name, 4)
        for (ia, ka), (ib, kb) in zip(again, first[1:4], strict=True):
            assert np.array_equal(ia, ib) and ka == kb
        assert not src.rewind(10_000)  # never rendered: it cannot go there
    for cap in has - {Pressable, Refreshable, Rewindable, Steerable}:
        report = getattr(src, CAPABILITIES[cap])()
        assert isinstance(report, dict) and report and json.loads(json.dumps(report)) == report
    if Steerable in has:  # the sliders: a name it has is set and read back; an unknown name is refused
        names = list(src.offsets())
        for name in names:
            src.set_offset(name, 9.0)
        assert src.offsets() == {n: 3.0 for n in names}  # clamped to [-3, 3]
        with pytest.raises(KeyError, match="no direction named 'nope'"):
            src.set_offset("nope", 1.0)


@pytest.mark.parametrize("name", [n for n in SOURCES if Rewindable in SOURCES[n][2] and n not in FORWARD_ONLY])
def test_a_rewound_source_renders_again_frames_that_re_render_from_their_keys(name):
    src, anchors, out = frames(name, 16)
    assert src.rewind(13) and src.rewind(12)  # a few frames back: the anchors are still held
    again = [src.render(i) for i in range(12, 20)]
    assert [k["frame"] for _, k in again] == list(range(12, 20))
    for image, key in again:
        assert np.array_equal(SOURCES[name][1](key, anchors), image), key["frame"]
    assert not src.rewind(0)  # anchor 0 is gone: no way back, and it says so


# A live knob of each tunable source, and a value it takes (app/controls.py sends these).
TUNINGS = {"walk": [("tempo", 0.25), ("speed", 2.5), ("speed", 0.0)], "feedback": [("drift", 3.0), ("tempo", 0.75)]}


@pytest.mark.parametrize("name", list(TUNINGS))
def test_live_knobs_change_the_frames_and_every_key_still_re_renders_its_frame(name):
    """Knobs turned while the source runs (from another thread, between frames): the frames after
    differ from an untouched run's, and every key re-renders its frame from the anchors alone."""
    build, rerender = SOURCES[name][0], SOURCES[name][1]
    anchors, plain = FakeAnchors(), FakeAnchors()
    src, ref = build(anchors), build(plain)
    out, untouched = [], [ref.render(i) for i in range(FRAMES)]
    for i in range(FRAMES):
        if i in (5, 12, 13):
            knob, value = TUNINGS[name][min((5, 12, 13).index(i), len(TUNINGS[name]) - 1)]
            src.tune(knob, value)
            assert src.tunings()[knob] == value
        out.append(src.render(i))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(out[6:], untouched[6:]))
    for image, key in out:
        assert json.loads(json.dumps(key)) == key
        assert np.array_equal(rerender(key, anchors), image), key["frame"]
    with pytest.raises(ValueError):
        src.tune("warp", 1.0)
    with pytest.raises(ValueError):
        src.tune(TUNINGS[name][0][0], 1e9)


class CountingWalk(LatentWalk):
    """The latent walk, recording which indices it renders (each one is a keyframe in Keyframes)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.calls: list[int] = []

    def render(self, index):
        self.calls.append(index)
        return super().render(index)


def test_a_live_change_between_keyframes_renders_only_the_next_keyframe_again():
    """Frame 4 is kept (shown next) when a change comes; it blended from keyframe 3, which the
    screen shows already: that one stays as rendered and only keyframes 6, 9, ... are rendered
    again, with the change taking effect at 3 (the walk's place there, the sliders' ramp from there)."""
    anchors = FakeAnchors()
    walk = CountingWalk(WALK, anchors, walk_renderer, "m0", Offsets(STEPS))
    src = Keyframes(walk, [((Tint(),), 3)])
    shown = [src.render(i) for i in range(12)]  # rendered ahead to frame 11: keyframes 0 ... 12
    assert walk.calls == [0, 3, 6, 9, 12]
    place3 = walk._recent[3]
    walk.tune("speed", 2.0)  # what ScreenProducer.renew does: the knobs, then refresh, then rewind
    walk.set_offset("turn", 2.0)
    src.refresh()
    assert src.rewind(5)
    again = [src.render(i) for i in range(5, 12)]
    assert walk.calls[5:] == [6, 9, 12]  # keyframe 3 is not rendered again
    (image5, key5), (image6, key6) = again[0], again[1]
    assert key5["between"]["from"] == 3 and "timing" not in key5  # blends from keyframe 3 as frame 4 did
    assert key5["between"]["next"]["timing"] == {"tempo": WALK.tempo, "speed": 2.0}
    assert np.array_equal(image5, blend(shown[3][0], image6, 2 / 3))
    assert not np.array_equal(image5, shown[5][0])  # the 2nd frame after the change shows it
    # The walk moves at the new rate from keyframe 3's place; the slider ramps from keyframe 3's 0.
    assert walk._recent[6] - place3 == pytest.approx(3 * 2.0 / (WALK.tempo * WALK.fps))
    assert key6["offsets"] == {"yaw": 1.5}
    for image, key in again:
        assert np.array_equal(rerender_keyframes(key, anchors), image), key["frame"]


def test_a_live_change_before_a_keyframe_or_long_after_renders_both_again():
    """When the frame after the kept one is a keyframe there is nothing to keep; when the kept
    keyframe is no longer remembered, both keyframes around the next frame are rendered again."""
    anchors = FakeAnchors()
    walk = CountingWalk(WALK, anchors, walk_renderer, "m0")
    src = Keyframes(walk, [((Tint(),), 3)])
    for i in range(12):
        src.render(i)
    walk.tune("speed", 0.5)
    src.refresh()
    assert src.rewind(6)
    [src.render(i) for i in range(6, 10)]
    assert walk.calls[5:] == [6, 9]
    src.rendered.pop(6)  # as if rendered too long ago to be remembered
    walk.tune("speed", 1.5)
    src.refresh()
    assert src.rewind(7)
    key7 = src.render(7)[1]
    assert walk.calls[7:] == [6, 9] and key7["timing"]["speed"] == 1.5
