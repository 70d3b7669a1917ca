"""The engine: frames in order from the ledger's anchors, pacing, controls, restarts, kill -9."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakeclock import SteppedClock
from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.ledger import SqliteLedger
from passersby.stream.sources import LatentWalk
from passersby.stream.walker import WalkConfig, frame_latent

D = 128
WORKER = Path(__file__).resolve().parent / "engine_worker.py"
ROOT = Path(__file__).resolve().parents[2]


def fake_renderer():
    def render(z: np.ndarray) -> np.ndarray:
        return (np.tanh(z[:, :48]).reshape(-1, 4, 4, 3) * 127 + 128).astype(np.uint8)
    return render


WALK = WalkConfig(tempo=0.2, fps=30.0)


def plans(names=("left", "right"), renderer=fake_renderer, walk=WALK, stages=()) -> list[ScreenPlan]:
    return [ScreenPlan(n, lambda rng: rng.standard_normal(D),
                       lambda anchors: LatentWalk(walk, anchors, renderer(), "hash0"), stages) for n in names]


def engine(tmp_path: Path, walk=WALK, **kw) -> Engine:
    return Engine(plans(walk=walk, **kw), walk.fps, tmp_path / "ledger.sqlite", D, "hash0", queue_size=4, seed=3)


def test_offline_frames_follow_the_walk_through_recorded_anchors(tmp_path: Path) -> None:
    walk = WalkConfig(tempo=0.2, fps=30.0)
    with engine(tmp_path, walk) as e:
        e.start(pace=False)
        frames = [e.take(0) for _ in range(20)]
        other = [e.take(1) for _ in range(20)]
    assert [f.index for f in frames] == list(range(20))
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = {i: z for i, z in led.recent("left", 100)}
        assert len(led.recent("right", 100)) >= 3
    for f in frames[::7]:
        key = f.key
        assert key["model"] == "hash0" and key["screen"] == "left"
        anchors = np.stack([rows[i] for i in key["ledger_ids"]])
        z = frame_latent(anchors, key["t"], WalkConfig.from_dict(key["walk"]))
        np.testing.assert_array_equal(f.image, fake_renderer()(z[None])[0])  # re-rendered from its key
    assert not np.array_equal(frames[0].image, other[0].image)  # two screens, two channels


def test_paced_engine_publishes_every_screen_at_fps_and_obeys_controls(tmp_path: Path) -> None:
    # The pacer runs on a clock that moves only when it sleeps, and waits for the producers
    # (tests/fakeclock.py): its intervals are exact whatever the machine's load. The real frame
    # rate on a real clock is benchmarks/stream.py's to measure.
    clock = SteppedClock()
    e = Engine(plans(), WALK.fps, tmp_path / "ledger.sqlite", D, "hash0", queue_size=4, seed=3,
               clock=clock, pacer_sleep=clock.sleep)
    clock.ready = lambda: e.quit_event.is_set() or all(p.frames.qsize() for p in e.producers)
    with e:
        e.start()
        deadline = time.monotonic() + 30
        while min(e.pacer.shown.values()) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        st = e.status()
        assert set(st["fps"]) == {"left", "right"}
        assert st["fps"] == {"left": 30.0, "right": 30.0}, st["fps"]  # one frame per screen every 1/30 s
        assert st["late_frames"] == {"left": 0, "right": 0} and min(st["frames_shown"].values()) >= 40
        for name in ("left", "right"):
            assert np.allclose(e.pacer.intervals[name].values(), 1 / 30)  # no burst, no gap
        assert st["faces_this_run"] >= 4 and st["ledger_size"] == st["faces_this_run"]
        assert set(e.pacer.worst) == {"left", "right"}
        for name, (gap, at, index) in e.pacer.worst.items():  # the longest interval, when and which frame
            assert gap == pytest.approx(max(e.pacer.intervals[name])) and at <= clock() and index >= 1
        e.hub.control("pause")
        time.sleep(0.15)
        held = e.hub.latest("left").index
        time.sleep(0.3)
        assert e.hub.latest("left").index == held and e.status()["paused"]
        e.hub.control("resume")
        assert e.hub.wait_newer("left", held, 2.0) is not None
        before = e.hub.latest("left").index
        e.hub.control("next")
        fpa = WALK.frames_per_anchor
        deadline = time.monotonic() + 3
        while e.hub.latest("left").index < (before // fpa + 1) * fpa and time.monotonic() < deadline:
            time.sleep(0.01)
        assert e.hub.latest("left").index >= (before // fpa + 1) * fpa  # jumped to the next face
        e.hub.control("quit")
        assert e.quit_event.is_set()
        with pytest.raises(ValueError, match="unknown action"):
            e.hub.control("explode")


def test_exactingness_is_a_live_knob_only_when_a_taste_is_followed(tmp_path: Path) -> None:
    class Knob:
        value = 0.5

    with engine(tmp_path) as e:
        with pytest.raises(PermissionError, match="no taste"):
            e.hub.control("exactingness", 0.3)
    knob = Knob()
    e2 = Engine(plans(), 30.0, tmp_path / "ledger.sqlite", D, "hash0", exactingness=knob)
    try:
        e2.hub.control("exactingness", 0.9)
        assert knob.value == 0.9 and e2.status()["exactingness"] == 0.9
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            e2.hub.control("exactingness", 2.0)
    finally:
        e2.stop()


def test_a_renderer_error_reaches_the_caller(tmp_path: Path) -> None:
    def broken():
        def render(z):
            raise RuntimeError("GPU on fire")
        return render

    with engine(tmp_path, renderer=broken) as e:
        e.start(pace=False)
        with pytest.raises(RuntimeError, match="on fire"):
            e.take(0, timeout=5)


def test_a_restart_continues_with_new_anchors(tmp_path: Path) -> None:
    seen = []
    for _ in range(3):
        with engine(tmp_path) as e:
            e.start(pace=False)
            seen.append({i for f in (e.take(0) for _ in range(15)) for i in f.key["ledger_ids"]})
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        z = np.stack([z for _, z in led.recent("left", 1000)])
        assert len({row.tobytes() for row in z}) == len(z)


def test_kill_9_mid_stream_never_shows_an_anchor_twice(tmp_path: Path) -> None:
    """The real engine (two paced screens, real ledger) SIGKILLed at random moments, 12 times."""
    path = tmp_path / "ledger.sqlite"
    rnd = random.Random(7)
    runs: list[dict[str, list[tuple[int, tuple[int, ...]]]]] = []
    for k in range(12):
        out = tmp_path / f"run-{k}.out"
        with open(out, "wb") as fo, open(tmp_path / f"run-{k}.err", "wb") as fe:
            p = subprocess.Popen([sys.executable, str(WORKER), str(path), "11"], stdout=fo, stderr=fe, cwd=ROOT)
            time.sleep(rnd.uniform(1.2, 2.5))  # ~1 s to import and start, then mid-stream
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL, (tmp_path / f"run-{k}.err").read_text()
        lines = out.read_bytes().decode().split("\n")
        assert lines[-1] == ""
        shown: dict[str, list[tuple[int, tuple[int, ...]]]] = {"left": [], "right": []}
        for line in lines[:-1]:
            screen, idx, ids = line.split()
            shown[screen].append((int(idx), tuple(int(i) for i in ids.split(","))))
        assert shown["left"] and shown["right"], f"run {k} showed nothing"
        runs.append(shown)

    with SqliteLedger.open_existing(path) as led:
        assert led.integrity_check() == "ok" and led.check(deep=True).ok
        rows = dict(led.recent(None, 100_000)) if False else {i: z for c in ("left", "right") for i, z in led.recent(c, 100_000)}
    assert len({z.tobytes() for z in rows.values()}) == len(rows)  # no anchor recorded twice
    per_run = []
    for shown in runs:
        ids = set()
        for screen, seq in shown.items():
            assert [i for i, _ in seq] == sorted(i for i, _ in seq)  # in order within a run
            for _, anchor_ids in seq:
                assert all(i in rows for i in anchor_ids)  # everything shown was recorded first
                ids.update(anchor_ids)
        per_run.append(ids)
    for a in range(len(per_run)):
        for b in range(a + 1, len(per_run)):
            assert not (per_run[a] & per_run[b]), f"runs {a} and {b} showed the same anchor"


class SolidSource:
    """A frame source that is not a latent walk: one solid-colour face per claimed anchor, a new
    one every 5 frames; what the engine must carry unchanged (ledger, keys, "next", stages)."""

    def __init__(self, anchors) -> None:
        self.anchors, self.faces, self.closed = anchors, {}, False

    def render(self, index: int):
        face = index // 5
        if face not in self.faces:
            self.faces = {face: self.anchors()}  # claimed before any pixel of it exists
        colour = (np.tanh(self.faces[face][:3]) * 127 + 128).astype(np.uint8)
        return np.tile(colour, (4, 4, 1)), {"source": "solid", "face": face, "ledger_ids": self.anchors.ledger_ids([face])}

    def cut(self, index: int) -> int:
        return (index // 5 + 1) * 5

    def close(self) -> None:
        self.closed = True


def double(image, key):
    return image.repeat(2, axis=0).repeat(2, axis=1), {**key, "stages": key.get("stages", []) + ["double"]}


def test_any_frame_source_and_its_stages_run_in_the_engine(tmp_path: Path) -> None:
    sources = []

    def make(anchors):
        sources.append(SolidSource(anchors))
        return sources[-1]

    plan = ScreenPlan("solo", lambda rng: rng.standard_normal(D), make, (double,))
    with Engine([plan], 30.0, tmp_path / "ledger.sqlite", D, "hash0", queue_size=2, seed=1) as e:
        e.start(pace=False)
        frames = [e.take(0) for _ in range(12)]
    assert sources[0].closed
    assert [f.key["face"] for f in frames] == [0] * 5 + [1] * 5 + [2] * 2
    assert all(f.image.shape == (8, 8, 3) and f.key["stages"] == ["double"] and f.key["screen"] == "solo"
               for f in frames)
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = dict(led.recent("solo", 10))
    for f in frames:  # every face shown is a ledger row, and the key names it
        z = rows[f.key["ledger_ids"][0]]
        np.testing.assert_array_equal(f.image[0, 0], (np.tanh(z[:3]) * 127 + 128).astype(np.uint8))
    assert len({f.key["ledger_ids"][0] for f in frames}) == 3


def test_next_jumps_to_the_sources_own_cut(tmp_path: Path) -> None:
    plan = ScreenPlan("solo", lambda rng: rng.standard_normal(D), SolidSource)
    with Engine([plan], 30.0, tmp_path / "ledger.sqlite", D, "hash0", queue_size=2, seed=1) as e:
        e.start(pace=False)
        first = e.take(0)
        e.hub.control("next")
        after = e.take(0)
        while after.index < 5:  # frames rendered before the control arrived may still come
            after = e.take(0)
    assert first.index == 0 and after.index == 5 and after.key["face"] == 1


def test_published_frames_are_new_objects_with_the_time_shown(tmp_path: Path) -> None:
    from passersby.stream.frames import Frame, FrameHub

    hub = FrameHub(["a"])
    frame = Frame("a", 0, np.zeros((2, 2, 3), np.uint8))
    hub.publish(frame)
    assert frame.shown_at == 0.0 and hub.latest("a").shown_at > 0  # frozen: never mutated


def test_the_pacers_interval_record_does_not_grow() -> None:
    """Issue 11: RSS grew ~2.4 KB/s while serving; the intervals were Python floats in a deque."""
    from passersby.stream.pacer import Ring

    r = Ring(100)
    size = r.data.nbytes
    for i in range(10_000):
        r.append(float(i))
    assert r.data.nbytes == size and len(r) == 100
    assert sorted(r.values().tolist()) == [float(i) for i in range(9_900, 10_000)]


def test_a_running_engine_holds_no_more_python_memory_as_faces_go_by(tmp_path: Path) -> None:
    """Issue 11: serve's memory grew with every face (~6 KB) and frame. Python memory allocated by
    passersby's own code (tracemalloc, by file) must not grow from one window of faces to the next."""
    import gc
    import tracemalloc

    walk = WalkConfig(tempo=0.05, fps=120.0)  # 20 faces a second per screen: hours of faces in seconds
    ours = tracemalloc.Filter(True, str(ROOT / "passersby" / "*"))

    def held(e: Engine) -> int:
        # Paused, the producers stop once their queues are full: no claim or frame half-made.
        # gc.collect() also empties CPython's free lists (freed tuples still count as traced).
        e.hub.control("pause")
        time.sleep(0.5)
        gc.collect()
        size = sum(s.size for s in tracemalloc.take_snapshot().filter_traces([ours]).statistics("filename"))
        e.hub.control("resume")
        return size

    tracemalloc.start(1)
    try:
        with engine(tmp_path, walk) as e:
            e.start()
            time.sleep(6.0)  # warm-up: queues, rings and the last-300-frames deques filled
            faces0, frames0, before = e.status()["faces_this_run"], sum(e.pacer.shown.values()), held(e)
            time.sleep(10.0)
            faces1, frames1, after = e.status()["faces_this_run"], sum(e.pacer.shown.values()), held(e)
            e.check()
    finally:
        tracemalloc.stop()
    faces, frames = faces1 - faces0, frames1 - frames0
    assert faces >= 150 and frames >= 800, f"only {faces} faces, {frames} frames: the test proved little"
    # Noise (SQLite's statement cache, deques) stays within ~20 KB; 6 KB a face would be ~1 MB
    # here. Fails from ~250 bytes a face or ~50 bytes a frame; smaller leaks: benchmarks/memory_soak.py.
    assert after - before < 48_000, f"{after - before} bytes more held after {faces} faces, {frames} frames"
