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
