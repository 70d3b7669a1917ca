"""The peepshow source: blank until pressed, a never-used face claimed before it is rendered,
shown for its seconds, then black or a fade; presses ignored or queued while it shows, bursts
debounced; in the engine, a press drops the frames rendered ahead."""

from __future__ import annotations

import time

import numpy as np
import pytest

from passersby.stream.peep import PeepConfig, PeepSource


class FakeAnchors:
    """Claims in order, logging each claim before anything else happens."""

    def __init__(self, log):
        self.claimed, self.log = 0, log

    def __call__(self):
        self.log.append(("claim", self.claimed))
        self.claimed += 1
        return np.full(4, self.claimed, np.float32)

    def ledger_ids(self, positions):
        return [100 + p for p in positions]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make(cfg, log=None):
    log = [] if log is None else log

    def render_face(z):
        log.append(("render", int(z[0, 0])))
        return np.full((8, 8, 3), 40 * int(z[0, 0]), np.uint8), [{"enhancer": "e1"}]

    clock = Clock()
    return PeepSource(cfg, FakeAnchors(log), render_face, 8, "m1", clock=clock), clock, log


def test_blank_until_pressed_then_a_face_for_its_seconds_then_a_fade():
    src, clock, log = make(PeepConfig(seconds=1.0, fps=4.0, blank="fade", fade=0.5))
    for i in range(3):
        image, key = src.render(i)
        assert not image.any() and key == {"source": "peep", "state": "blank", "frame": i}
    assert src.press() is True and log == []
    frames = [src.render(i) for i in range(3, 3 + 4 + 2 + 2)]
    assert log == [("claim", 0), ("render", 1)]  # claimed (recorded) before it was rendered
    states = [k["state"] for _, k in frames]
    assert states == ["face"] * 4 + ["fade"] * 2 + ["blank"] * 2
    assert all((im == 40).all() for im, _ in frames[:4])
    fades = [k["fade"] for _, k in frames[4:6]]
    assert fades == pytest.approx([1 / 3, 2 / 3]) and frames[4][0].mean() > frames[5][0].mean() > 0
    key = frames[0][1]
    assert key["ledger_ids"] == [100] and key["model"] == "m1" and key["stages"] == [{"enhancer": "e1"}]
    assert key["showing"] == 1 and key["start"] == 3 and src.state()["faces_shown"] == 1


def test_black_blank_and_presses_while_showing_are_ignored_or_queued():
    src, clock, log = make(PeepConfig(seconds=0.5, fps=4.0, blank="black", debounce=0.0))
    assert src.press()
    src.render(0)
    clock.t += 0.4
    assert src.state()["state"] == "face" and src.press() is False  # the viewer still sees it: ignored
    assert [src.render(i)[1]["state"] for i in range(1, 4)] == ["face", "blank", "blank"]
    assert src.state()["presses"] == {"accepted": 1, "ignored": 1, "queued": 0, "debounced": 0}
    clock.t += 0.2  # its 0.5 s are over on the screen (whatever was rendered ahead)
    assert src.state()["state"] == "blank" and src.press() is True

    src, clock, log = make(PeepConfig(seconds=0.5, fps=4.0, blank="black", during="queue", debounce=0.0))
    assert src.press()
    src.render(0)
    assert src.press() is False and src.press() is False  # queued twice
    shows = [src.render(i)[1].get("showing") for i in range(1, 7)]
    assert shows == [1, 2, 2, 3, 3, None]  # each queued press a new face, back to back
    assert [e for e in log if e[0] == "claim"] == [("claim", 0), ("claim", 1), ("claim", 2)]


def test_bursts_are_debounced():
    src, clock, _ = make(PeepConfig(seconds=0.25, fps=4.0, blank="black", debounce=0.3))
    assert src.press()
    clock.t += 0.1
    assert src.press() is False
    src.render(0)
    src.render(1)  # over
    clock.t += 0.1  # 0.2 s after the last press counted... the burst continues
    assert src.press() is False
    clock.t += 0.5
    assert src.press() is True
    assert src.state()["presses"]["debounced"] == 2


def test_config_is_checked():
    with pytest.raises(ValueError, match="peep blank must be one of"):
        PeepConfig(blank="grey")
    with pytest.raises(ValueError, match="peep during"):
        PeepConfig(during="later")
    with pytest.raises(ValueError, match="peep seconds and fps must be > 0"):
        PeepConfig(seconds=0)


def test_in_the_engine_a_press_shows_a_face_within_frames(tmp_path):
    from passersby.stream.engine import Engine, ScreenPlan

    def render_face(z):
        return np.full((16, 16, 3), 200, np.uint8), []

    def source(anchors):
        return PeepSource(PeepConfig(seconds=0.5, fps=30.0, blank="black", debounce=0.0), anchors, render_face, 16, "m")

    plan = ScreenPlan("peep", lambda rng: rng.standard_normal(8).astype(np.float32), source)
    queued = 12
    with Engine([plan], 30.0, tmp_path / "ledger.sqlite", 8, "m", queue_size=queued, seed=1) as e:
        # Offline (unpaced), so "within frames" is counted in frames, not read off a clock.
        e.start(pace=False)
        assert [e.take(0).key["state"] for _ in range(3)] == ["blank"] * 3
        producer = e.producers[0]
        deadline = time.monotonic() + 30
        while not producer.frames.full() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert producer.frames.full()  # 12 blank frames rendered ahead
        e.hub.control("press")
        before = []  # frames taken after the press, before the face
        while (frame := e.take(0)).key.get("state") != "face":
            before.append(frame.key["state"])
            assert len(before) < queued, "the press waited behind the frames rendered ahead"
        # The frames queued ahead were dropped: at most the one frame the producer held, rendered
        # before the press, comes before the face.
        assert before in ([], ["blank"])
        assert e.status()["screen_state"]["peep"]["faces_shown"] == 1
    from passersby.stream.ledger import SqliteLedger

    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        assert [i for i, _ in led.recent("peep", 10)] == frame.key["ledger_ids"]
    with Engine([ScreenPlan("w", plan.propose, lambda a: _Still())], 30.0, tmp_path / "l2.sqlite", 8, "m") as e:
        with pytest.raises(PermissionError, match="no screen here takes a press"):
            e.hub.control("press")


def test_two_peepholes_each_answer_their_own_button(tmp_path):
    from passersby.stream.engine import Engine, ScreenPlan

    def source(anchors):
        return PeepSource(PeepConfig(seconds=5.0, fps=30.0, blank="black", debounce=0.0), anchors,
                          lambda z: (np.full((16, 16, 3), 200, np.uint8), []), 16, "m")

    propose = lambda rng: rng.standard_normal(8).astype(np.float32)  # noqa: E731
    plans = [ScreenPlan("left", propose, source), ScreenPlan("right", propose, source)]
    with Engine(plans, 30.0, tmp_path / "ledger.sqlite", 8, "m", queue_size=4, seed=1) as e:
        e.start()
        e.hub.control("press", screen="right")
        deadline = time.monotonic() + 5
        while e.hub.latest("right") is None or e.hub.latest("right").key.get("state") != "face":
            assert time.monotonic() < deadline, "the pressed peephole showed no face"
            time.sleep(0.01)
        states = e.status()["screen_state"]
        assert states["left"]["faces_shown"] == 0 and states["left"]["presses"]["accepted"] == 0
        assert states["right"]["faces_shown"] == 1
        with pytest.raises(ValueError, match="unknown screen 'middle'"):
            e.hub.control("press", screen="middle")
        with pytest.raises(ValueError, match="'pause' takes no screen"):
            e.hub.control("pause", screen="left")
        e.hub.control("press")  # no screen named: every peephole (the kiosk's overview, `peep --press`)
        deadline = time.monotonic() + 5
        while e.status()["screen_state"]["left"]["faces_shown"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)


class _Still:
    def render(self, index):
        return np.zeros((4, 4, 3), np.uint8), {"frame": index}

    def cut(self, index):
        return index

    def close(self):
        pass
