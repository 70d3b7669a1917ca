"""Chains at levels (stream/keyframes.py): keyframes through the stages, blends between, keys
that re-render, "next" on a keyframe, and lowering the level when a screen falls behind."""

from __future__ import annotations

import numpy as np
import pytest

from passersby.stream.keyframes import Keyframes, blend


class Counting:
    """A fake source: frame i is a flat picture of grey level i (mod 256), key {"i": i}."""

    def __init__(self, side: int = 4, cut_every: int = 10) -> None:
        self.side, self.cut_every, self.asked, self.closed = side, cut_every, [], False

    def render(self, index):
        self.asked.append(index)
        return np.full((self.side, self.side, 3), index % 256, np.uint8), {"i": index, "ledger_ids": [index // 10]}

    def cut(self, index):
        return (index // self.cut_every + 1) * self.cut_every

    def close(self):
        self.closed = True


class Double:
    name = "double"

    def __call__(self, image, key):
        return image.repeat(2, 0).repeat(2, 1), {**key, "stages": key.get("stages", []) + ["double"]}


def test_keyframes_pass_the_stages_and_frames_between_are_blends():
    src = Counting()
    kf = Keyframes(src, [((Double(),), 3)])
    frames = [kf.render(i) for i in range(7)]
    assert src.asked == [0, 3, 6]  # only keyframes are rendered, in order
    assert all(im.shape == (8, 8, 3) for im, _ in frames)
    assert [int(im[0, 0, 0]) for im, _ in frames] == [0, 1, 2, 3, 4, 5, 6]  # linear blends of 0, 3, 6
    key = frames[4][1]
    assert key["i"] == 3 and key["frame"] == 4 and key["between"]["next"]["i"] == 6
    assert key["between"]["mix"] == pytest.approx(1 / 3) and key["stages"] == ["double"]
    assert frames[3][1]["chain"] == {"level": 0, "every": 3} and "between" not in frames[3][1]
    # The key re-renders the frame: blend the two keyframes it names.
    a, b = Keyframes(Counting(), [((Double(),), 3)]), None
    ka, kb = a.render(key["i"])[0], a.render(key["between"]["next"]["i"])[0]
    assert np.array_equal(blend(ka, kb, key["between"]["mix"]), frames[4][0])


def test_cut_lands_on_a_keyframe_and_every_1_is_the_plain_source():
    kf = Keyframes(Counting(cut_every=10), [((), 4)])
    assert kf.cut(3) == 12  # the source's next face at 10, on the next keyframe
    plain = Keyframes(Counting(), [((), 1)])
    im, key = plain.render(5)
    assert int(im[0, 0, 0]) == 5 and key["i"] == 5 and "between" not in key
    plain.close()
    assert plain.source.closed


def test_a_screen_that_falls_behind_is_lowered_and_says_so():
    t = [0.0]
    slow = {"on": True}

    class Slow(Double):
        def __call__(self, image, key):
            t[0] += 0.05 if slow["on"] else 0.001  # 50 ms per keyframe with the stage
            return super().__call__(image, key)

    src = Counting()
    kf = Keyframes(src, [((Slow(),), 1), ((Slow(),), 2), ((), 1)], budget=0.02, patience=6, clock=lambda: t[0])
    shapes = [kf.render(i)[0].shape for i in range(40)]
    d = kf.describe()
    # 50 ms per frame > 20 ms: level 1 (a keyframe every 2: 25 ms per frame, still over), then level 2.
    assert d["level"] == 2 and [x["level"] for x in d["lowered"]] == [1, 2] and d["stages"] == "no stages"
    assert shapes[0] == (8, 8, 3) and shapes[-1] == (4, 4, 3)
    assert d["lowered"][0]["ms_per_frame"] == pytest.approx(50.0)
    # A key always says at which level its frame was made.
    assert kf.render(40)[1]["chain"] == {"level": 2, "every": 1}


def test_within_budget_the_level_stays_and_no_budget_never_lowers():
    t = [0.0]

    class Fast(Double):
        def __call__(self, image, key):
            t[0] += 0.01
            return super().__call__(image, key)

    kf = Keyframes(Counting(), [((Fast(),), 1), ((), 1)], budget=0.02, patience=5, clock=lambda: t[0])
    for i in range(30):
        kf.render(i)
    assert kf.describe()["level"] == 0 and not kf.describe()["lowered"]
    kf2 = Keyframes(Counting(), [((Fast(),), 1), ((), 1)], budget=None, clock=lambda: t[0] + 1e9)
    for i in range(30):
        kf2.render(i)
    assert kf2.level == 0
    with pytest.raises(ValueError, match="levels"):
        Keyframes(Counting(), [])


def test_lowering_to_sparser_keyframes_of_the_same_stages_keeps_what_was_rendered():
    t = [0.0]

    class Slow(Double):
        def __call__(self, image, key):
            t[0] += 0.05
            return super().__call__(image, key)

    src = Counting()
    stage = Slow()
    kf = Keyframes(src, [((stage,), 1), ((stage,), 4)], budget=0.02, patience=4, clock=lambda: t[0])
    for i in range(12):
        kf.render(i)
    lowered = kf.describe()["lowered"][0]["frame"]
    # Every index up to the switch once, then only multiples of 4: nothing rendered twice.
    assert len(src.asked) == len(set(src.asked)) and all(i % 4 == 0 for i in src.asked if i > lowered)


class Loaded:
    """A machine under a load factor `m`: the source costs 2 ms x m per keyframe, the stage 8 ms x m,
    on a fake clock that also moves 1/30 s between displayed frames (the pacer's wait)."""

    def __init__(self) -> None:
        self.t, self.m = 0.0, 1.0
        loaded = self

        class Source(Counting):
            def render(self, index):
                loaded.t += 0.002 * loaded.m
                return super().render(index)

        class Stage(Double):
            def __call__(self, image, key):
                loaded.t += 0.008 * loaded.m
                return super().__call__(image, key)

        self.source, self.stage = Source(), Stage()

    def chain(self, **kw) -> Keyframes:
        levels = [((self.stage,), 1), ((self.stage,), 2), ((), 1)]
        return Keyframes(self.source, levels, budget=0.02, patience=6, clock=lambda: self.t, **kw)

    def run(self, kf: Keyframes, start: int, seconds: float) -> int:
        """Display `seconds` of frames from index `start`; returns the next index."""
        i = start
        for i in range(start, start + round(30 * seconds)):
            kf.render(i)
            self.t += 1 / 30
        return i + 1


def test_after_a_load_burst_the_chain_steps_back_up_one_level_at_a_time():
    box = Loaded()
    kf = box.chain(raise_after=10.0)
    i = box.run(kf, 0, 2)
    assert kf.level == 0  # 10 ms per frame against 20
    box.m = 6.0  # a backup starts: 60 ms per frame with the stage
    i = box.run(kf, i, 3)
    assert kf.level == 2 and [x["level"] for x in kf.lowered] == [1, 2]
    i = box.run(kf, i, 30)  # the load stays: no step up, however long
    assert kf.level == 2 and not kf.raised
    box.m = 1.0  # the backup ends
    i = box.run(kf, i, 9)
    assert kf.level == 2  # not before raise_after seconds of headroom
    i = box.run(kf, i, 3)
    assert kf.level == 1 and [x["level"] for x in kf.raised] == [1]
    assert kf.raised[0]["predicted_ms_per_frame"] == pytest.approx(5.0, rel=0.05)  # (8+2) ms / 2
    i = box.run(kf, i, 12)
    assert kf.level == 0 and [x["level"] for x in kf.raised] == [1, 0]
    assert kf.raised[1]["predicted_ms_per_frame"] == pytest.approx(10.0, rel=0.05)  # its own cost at rest
    assert kf.describe()["raised"] == kf.raised and kf.describe()["stages"] == "double"
    image, key = kf.render(i)
    assert key["chain"] == {"level": 0, "every": 1} and image.shape == (8, 8, 3)
    box.run(kf, i + 1, 60)
    assert kf.level == 0 and len(kf.raised) == 2 and len(kf.lowered) == 2  # no flapping at rest


def test_no_step_up_without_headroom_above_the_start_level_or_when_off():
    box = Loaded()
    kf = box.chain(raise_after=5.0)
    box.m = 6.0
    i = box.run(kf, 0, 3)
    assert kf.level == 2
    box.m = 1.7  # level 1 predicted 8.5 ms of 20 (fits 75 %), level 0 17 ms (fits, but not 75 %)
    i = box.run(kf, i, 20)
    assert kf.level == 1
    box.run(kf, i, 60)
    assert kf.level == 1 and [x["level"] for x in kf.raised] == [1]
    started_low = Loaded()
    kf2 = started_low.chain(raise_after=5.0, start_level=1)
    started_low.run(kf2, 0, 30)
    assert kf2.level == 1 and not kf2.raised  # never above what the start measurement chose
    off = Loaded()
    kf3 = off.chain(raise_after=None)
    off.m = 6.0
    i = off.run(kf3, 0, 3)
    off.m = 1.0
    off.run(kf3, i, 60)
    assert kf3.level == 2 and not kf3.raised


def test_a_level_that_falls_behind_again_soon_after_a_step_up_waits_twice_as_long():
    box = Loaded()
    kf = box.chain(raise_after=5.0)
    box.m = 6.0
    i = box.run(kf, 0, 3)
    box.m = 1.0
    i = box.run(kf, i, 7)
    assert kf.level == 1  # up after 5 s
    box.m = 6.0  # the load comes back at once
    i = box.run(kf, i, 2)
    assert kf.level == 2 and len(kf.lowered) == 3
    box.m = 1.0
    i = box.run(kf, i, 7)
    assert kf.level == 2  # 5 s are not enough any more
    i = box.run(kf, i, 5)
    assert kf.level == 1 and len(kf.raised) == 2  # 10 s were
