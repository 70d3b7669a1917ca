"""The control layer on a real engine: every live control shows within 2 frames (counted in
frames, not seconds), frames stay re-renderable from their keys, values are checked once and
recorded in the status, and a restart starts from the settings, not from the last knob."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from feedback_fakes import render_anchor, step
from passersby.app.controls import CONTROLS, ControlDesk, ControlError, control, parse_address
from passersby.stream.feedback import replay
from passersby.stream.ledger import SqliteLedger
from passersby.stream.sources import Steerable, Tunable, capable
from passersby.stream.walker import WalkConfig, frame_latent

from .live_fakes import LOOP, WALK, SteeredWalk, live_engine, wait_full, walk_renderer

SCREENS = ["masculine", "feminine"]


def take(engine, screen: str, n: int):
    i = SCREENS.index(screen)
    return [engine.take(i) for _ in range(n)]


def test_a_walk_tempo_change_shows_in_the_second_frame_and_keys_still_re_render(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        before = take(e, "masculine", 3)
        event = desk.apply("tempo", 4.0, "masculine", via="osc")
        assert event["screens"] == ["masculine"]
        after = take(e, "masculine", 40)
    assert "timing" not in after[0].key  # the one frame rendered ahead that may still show: at most 1
    assert after[1].key["timing"] == {"tempo": 4.0, "speed": 1.0}  # the 2nd frame after the change shows it
    assert all(f.key["timing"]["tempo"] == 4.0 for f in after[1:])
    # The walk goes on from where it was, 4x slower per frame: the position steps by 1/120 of an anchor.
    pos = [f.key["anchor_ids"][0] + f.key["t"] / WALK.tempo for f in after[1:]]
    steps = np.diff(pos)
    assert np.allclose(steps, 1 / (4.0 * WALK.fps), atol=1e-9), steps
    # No frame skipped: the frames dropped at the change were rendered again, with it (the walk can go back).
    assert [f.index for f in before + after] == list(range(before[0].index, before[0].index + 43))
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = dict(led.recent("masculine", 100))
    for f in after[1::9]:  # each re-renders from its key and the ledger's anchors alone
        z = frame_latent(np.stack([rows[i] for i in f.key["ledger_ids"]]), f.key["t"], WalkConfig.from_dict(f.key["walk"]))
        np.testing.assert_array_equal(f.image, walk_renderer(z[None])[0])


def test_walk_speed_zero_holds_the_face_and_next_still_cuts(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        desk.apply("walk/speed", 0.0, "masculine")
        held = take(e, "masculine", 6)[1:]
        assert len({f.image.tobytes() for f in held}) == 1  # speed 0: the same picture
        desk.apply("next", None, "masculine")
        cut = take(e, "masculine", 3)
    assert cut[-1].key["anchor_ids"] != held[-1].key["anchor_ids"]


def test_feedback_drift_shows_in_the_second_frame_and_replays_exactly(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        take(e, "feminine", 2)
        desk.apply("drift", 3.5, "feminine", via="midi")
        after = take(e, "feminine", 12)
    drifts = [f.key["segment"].get("drifts") for f in after]
    assert drifts[0] is None and drifts[1][-1][1] == 3.5, drifts[:3]
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        rows = dict(led.recent("feminine", 100))
    for f in after[1::4]:  # a segment whose drift changed half-way re-renders from its key
        np.testing.assert_array_equal(replay(f.key, rows.__getitem__, render_anchor, step), f.image)


def test_a_direction_offset_reaches_a_steerable_source_within_2_frames(tmp_path: Path) -> None:
    with live_engine(tmp_path, walk_cls=SteeredWalk) as e:
        desk = ControlDesk(e)
        assert isinstance(capable(e.producers[0].source, Steerable), SteeredWalk)
        e.start(pace=False)
        wait_full(e)
        desk.apply("direction/smile", 1.5, "masculine", via="osc")
        after = take(e, "masculine", 3)
        assert after[1].key["offsets"] == {"smile": 1.5}
        assert desk.report()["values"]["masculine"]["direction/smile"] == 1.5
        with pytest.raises(ControlError, match="no latent directions"):
            desk.apply("direction/smile", 1.0, "feminine")  # the feedback loop is not Steerable
        with pytest.raises(ControlError, match="-3..3"):
            desk.apply("direction/smile", 3.5, "masculine")


def test_values_are_checked_once_and_refusals_are_recorded(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        for args, why in [(("drift", 9.0, "feminine"), "0..4"), (("drift", "fast", "feminine"), "needs a number"),
                          (("drift", float("nan"), None), "needs a number"), (("next", 1.0, None), "takes no value"),
                          (("warp", 1.0, None), "unknown control"), (("drift", 1.0, "nobody"), "unknown screen"),
                          (("drift", 1.0, "masculine"), "no live 'drift'"), (("pause", None, "masculine"), "whole"),
                          (("exactingness", 0.5, None), "no taste"), (("tempo", 0.1, "feminine"), "crossfade"),
                          (("quit", None, None), "not taken from OSC"), (("capture", None, None), "names a screen")]:
            with pytest.raises(ControlError, match=why):
                desk.apply(*args, via="osc")
        report = e.status()["controls"]
        assert report["refused"] == 12 and report["changes"] == 0 and "osc:" in report["last_refusal"]
        desk.apply("drift", 1.2, via="web")  # every screen that has it: only the feedback loop
        report = e.status()["controls"]
        assert report["changes"] == 1 and report["via"] == {"web": 1}
        assert report["last"]["screens"] == ["feminine"] and report["values"]["feminine"]["drift"] == 1.2
        assert report["values"]["masculine"] == {"tempo": 1.0, "walk/speed": 1.0}
        assert report["ranges"]["drift"] == [0.0, 4.0, 0.05]


def test_the_hub_routes_the_web_through_the_desk(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.hub.control("walk/speed", 2.0, "masculine")  # what POST /api/control does
        e.hub.control("pause")
        assert desk.changes == 2 and desk.last["via"] == "web" and e.paused.is_set()
        with pytest.raises(ValueError, match="0..8"):
            e.hub.control("walk/speed", 9.0, "masculine")
        with pytest.raises(ValueError, match="unknown action"):
            e.hub.control("direction/", 1.0)
        with pytest.raises(PermissionError, match="no live 'drift'"):  # 403 on the web, as before the desk
            e.hub.control("drift", 1.0, "masculine")
        with pytest.raises(PermissionError, match="no screen here takes a press"):
            e.hub.control("press")


def test_a_restart_starts_from_the_settings_not_from_the_last_knob(tmp_path: Path) -> None:
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        files_before = {p.name for p in tmp_path.iterdir()} - {"ledger.sqlite-wal", "ledger.sqlite-shm"}
        desk.apply("tempo", 9.0, "masculine")
        desk.apply("drift", 0.1, "feminine")
        assert desk.values()["masculine"]["tempo"] == 9.0
    assert {p.name for p in tmp_path.iterdir()} <= files_before | {"ledger.sqlite-wal", "ledger.sqlite-shm"}
    assert files_before == {"ledger.sqlite"}  # nothing of the knobs was written anywhere
    with live_engine(tmp_path) as again:
        desk = ControlDesk(again)
        assert desk.values()["masculine"]["tempo"] == WALK.tempo
        assert desk.values()["feminine"]["drift"] == LOOP.drift


def test_a_storm_of_changes_never_stalls_the_screens(tmp_path: Path) -> None:
    """2,000 changes while frames are taken: each one drops the frames rendered ahead, and the
    screens go on (no frame is held back for ever, indices only go up)."""
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        stop = threading.Event()

        def storm() -> None:
            i = 0
            while not stop.is_set() and i < 2000:
                desk.apply("walk/speed", 0.5 + (i % 7) / 4, "masculine")
                desk.apply("drift", (i % 5) / 2, "feminine")
                i += 1

        t = threading.Thread(target=storm)
        t.start()
        got = take(e, "masculine", 30) + take(e, "feminine", 30)
        stop.set()
        t.join()
        dropped = e.producers[0].frames.dropped
    walk, loop = [f.index for f in got[:30]], [f.index for f in got[30:]]
    assert walk == list(range(walk[0], walk[0] + 30))  # the walk goes back: not a frame skipped
    assert loop == sorted(set(loop))  # the loop cannot go back: it skips, forward only
    assert dropped > 0


def test_the_table_documents_every_control() -> None:
    assert all(c.doc.endswith((".", ")")) for c in CONTROLS)
    assert parse_address("feminine/drift", SCREENS) == ("drift", "feminine")
    assert control("direction/a-b_1").lo == -3.0
    with pytest.raises(ControlError):
        parse_address("masculine/pause", SCREENS)


def test_sources_say_their_knobs() -> None:
    from passersby.stream.feedback import FeedbackLoop
    from passersby.stream.sources import LatentWalk

    assert isinstance(LatentWalk(WALK, None, None, "m"), Tunable)
    assert isinstance(FeedbackLoop(LOOP, None, None, None), Tunable)


def test_config_show_prints_the_running_installations_live_values(tmp_path: Path) -> None:
    """`passersby config show --home H` while an installation runs in H: the settings file, then
    the live values as comments (the file still reads back as the same settings)."""
    from typer.testing import CliRunner

    from passersby.app.inbox import Inbox
    from passersby.cli import app
    from passersby.settings import load_settings

    home = tmp_path / "home"
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        desk.apply("tempo", 7.5, "masculine", via="osc")
        desk.apply("drift", 2.25, "feminine", via="midi")
        with Inbox(home, {"controls": lambda req: desk.report()}, SCREENS):
            r = CliRunner().invoke(app, ["config", "show", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert "# masculine.tempo = 7.5" in r.output and "# feminine.drift = 2.25" in r.output
    assert "# installation.paused = false" in r.output and "changes: 2" in r.output
    assert "tempo = 6.0" in r.output  # the file's value: a restart starts from it
    out = tmp_path / "resolved.toml"
    out.write_text(r.output)
    assert load_settings(out).walk.tempo == 6.0
    r = CliRunner().invoke(app, ["config", "show", "--home", str(home)])  # nothing runs there now
    assert r.exit_code == 0 and "live values" not in r.output


def test_a_change_reaches_a_chain_of_keyframes_within_2_frames(tmp_path: Path) -> None:
    """A walk inside Keyframes (a keyframe every 3rd frame, blends between, as a lowered chain
    runs): the frames after the kept one blend toward keyframes rendered with the change, none skipped."""
    from passersby.stream.engine import Engine, ScreenPlan
    from passersby.stream.frame_queue import CALM_FRAMES
    from passersby.stream.keyframes import Keyframes
    from passersby.stream.sources import LatentWalk

    from .live_fakes import D

    plan = ScreenPlan("masculine", lambda rng: rng.standard_normal(D),
                      lambda anchors: Keyframes(LatentWalk(WALK, anchors, walk_renderer, "m0"), [((), 3)]))
    with Engine([plan], WALK.fps, tmp_path / "ledger.sqlite", D, "m0", queue_size=6, seed=5) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        for trial, speed in enumerate((2.0, 0.5, 1.5, 3.0)):
            if trial:  # a calm spell (not a storm of changes), then a change at another phase of the keyframes
                [e.take(0) for _ in range(CALM_FRAMES - 4 + trial % 3)]
            desk.apply("walk/speed", speed, "masculine")
            after = [e.take(0) for _ in range(4)]
            # From the 2nd frame on each blends toward a keyframe rendered with the change; the kept frame's
            # keyframe (shown already) stays as it was, so by the 4th (one spacing on) the frame's own is new too.
            assert all("between" not in f.key or f.key["between"]["next"]["timing"]["speed"] == speed
                       for f in after[1:]), [f.key.get("between", {}).get("next", {}).get("timing") for f in after]
            assert all(f.key.get("timing", {}).get("speed") == speed for f in after[1:] if "between" not in f.key)
            assert after[3].key["timing"]["speed"] == speed
            assert [f.index for f in after] == list(range(after[0].index, after[0].index + 4))


def test_in_a_storm_of_changes_each_shows_within_the_storm_bound(tmp_path: Path) -> None:
    """A knob swept (a change before every frame shown): no frame is skipped, and each change shows
    by the (STORM_KEEP + STORM_FRAMES)-th frame after it (its value, or a later one)."""
    from passersby.stream.frame_queue import STORM_FRAMES, STORM_KEEP

    values = [3.0 + 0.25 * k for k in range(30)]  # increasing: "this value or a later one" is >=
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        frames, applied_at = [], []
        for v in values:
            desk.apply("tempo", v, "masculine")
            applied_at.append(len(frames))
            frames.append(e.take(0))
        frames += [e.take(0) for _ in range(STORM_KEEP + STORM_FRAMES)]
        coalesced = e.producers[0].frames.coalesced
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))
    bound = STORM_KEEP + STORM_FRAMES
    shown = [f.key.get("timing", {}).get("tempo", WALK.tempo) for f in frames]
    late = [(v, shown[at + bound - 1]) for v, at in zip(values, applied_at) if shown[at + bound - 1] < v]
    assert not late, late
    assert coalesced > 0 and shown[-1] == values[-1]
