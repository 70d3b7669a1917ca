"""MIDI: the mapping file, learn mode and knobs driving a real engine through the control desk.

This machine (a container) has no ALSA sequencer, so no virtual MIDI port can be opened here:
the mapping and learning are tested with real mido messages from a fake port (a list), and
the virtual-port test runs only where the platform has one (it says so when skipped)."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from typer.testing import CliRunner

from passersby.app.controls import ControlDesk
from passersby.app.midi import Binding, Mapping, MidiIn, input_names, learn
from passersby.cli import app

from .live_fakes import live_engine, wait_full

SCREENS = ["masculine", "feminine"]


def cc(number: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=number, value=value, channel=channel)


def test_learn_binds_the_next_knob_or_pad_and_the_file_reads_back(tmp_path: Path) -> None:
    port = [mido.Message("clock"), cc(21, 10), cc(21, 11), cc(22, 90),  # 21 still turning: skipped for the 2nd
            mido.Message("note_on", note=36, velocity=0), mido.Message("note_on", note=36, velocity=100)]
    said: list[str] = []
    mapping = learn(iter(port), ["feminine/drift", "masculine/walk/speed", "masculine/next"], SCREENS, say=said.append)
    assert [(b.kind, b.number, b.control) for b in mapping.bindings] == [
        ("cc", 21, "feminine/drift"), ("cc", 22, "masculine/walk/speed"), ("note", 36, "masculine/next")]
    assert said[0] == "move the knob or press the pad for feminine/drift ..."
    path = tmp_path / "midi.toml"
    mapping.write(path)
    again = Mapping.read(path, SCREENS)
    assert again.bindings == mapping.bindings
    with pytest.raises(ValueError, match="port closed before masculine/next"):
        learn(iter([cc(1, 1)]), ["drift", "masculine/next"], SCREENS, say=lambda s: None)
    with pytest.raises(ValueError, match="unknown control 'warp'"):
        learn(iter([]), ["warp"], SCREENS, say=lambda s: None)
    clock = iter(range(0, 1000, 30))
    with pytest.raises(ValueError, match="nothing moved within 60 s"):
        learn(iter([None] * 10), ["drift"], SCREENS, say=lambda s: None, clock=lambda: next(clock))


def test_knobs_and_pads_drive_a_real_engine(tmp_path: Path) -> None:
    mapping = Mapping([Binding("cc", 21, "feminine/drift"), Binding("cc", 22, "masculine/tempo", lo=2.0, hi=12.0),
                       Binding("note", 36, "masculine/next"), Binding("cc", 64, "pause", channel=2)], SCREENS)
    with live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        e.start(pace=False)
        wait_full(e)
        midi = MidiIn(mapping, desk)
        midi.handle(cc(21, 127))  # full travel: the slider's top, 4
        midi.handle(cc(22, 0))
        assert desk.values()["feminine"]["drift"] == 4.0 and desk.values()["masculine"]["tempo"] == 2.0
        midi.handle(cc(21, 0))
        assert desk.values()["feminine"]["drift"] == 0.0
        midi.handle(mido.Message("note_on", note=36, velocity=90))
        midi.handle(mido.Message("note_off", note=36))  # a release: nothing
        assert desk.via["midi"] == 4 and desk.last["control"] == "next"
        midi.handle(cc(64, 127, channel=0))  # another channel: not bound
        assert not e.paused.is_set()
        midi.handle(cc(64, 127, channel=1))  # channel 2 (mido counts from 0): pause, once per press
        midi.handle(cc(64, 120, channel=1))
        assert e.paused.is_set() and desk.via["midi"] == 5
        midi.handle(mido.Message("sysex", data=[1, 2, 3]))  # anything else: nothing, no error
        frames = [e.take(1) for _ in range(3)]
    assert frames[-1].key["segment"]["drifts"][-1][1] == 0.0


@pytest.mark.parametrize("text, why", [
    ('[cc.21]\ncontrol = "masculine/warp"\n', "unknown control 'warp'"),
    ('[cc.200]\ncontrol = "drift"\n', "0..127"),
    ('[cc.1]\ncontrol = "drift"\nchannel = 17\n', "channel must be 1..16"),
    ('[cc.1]\ncontrl = "drift"\n', "needs control ="),
    ('[knob.1]\ncontrol = "drift"\n', "unknown table"),
    ('[cc.1\n', "not valid TOML"),
    ('[cc.1]\ncontrol = "masculine/pause"\n', "whole installation"),
])
def test_a_bad_mapping_file_is_one_line_naming_it(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "midi.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=why) as info:
        Mapping.read(path, SCREENS)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_midi_list_says_what_this_machine_has() -> None:
    r = CliRunner().invoke(app, ["midi", "list"])
    try:
        names = input_names()
    except ValueError as e:  # no MIDI system here (a container without ALSA's sequencer)
        assert r.exit_code == 1 and r.output.strip() == f"error: {e}"
        return
    assert r.exit_code == 0 and all(n in r.output for n in names)


def test_a_virtual_port_drives_the_engine(tmp_path: Path) -> None:
    try:
        out = mido.Backend("mido.backends.rtmidi").open_output("passersby-test-knobs", virtual=True)
    except Exception as e:  # noqa: BLE001 - the platform's MIDI system is missing
        pytest.skip(f"no virtual MIDI port on this platform ({e}); the mapping is tested with a fake port above")
    import time

    with out, live_engine(tmp_path) as e:
        desk = ControlDesk(e)
        midi = MidiIn(Mapping([Binding("cc", 21, "feminine/drift")], SCREENS), desk).open("passersby-test-knobs")
        try:
            out.send(cc(21, 127))
            deadline = time.monotonic() + 5
            while desk.changes == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert desk.values()["feminine"]["drift"] == 4.0
        finally:
            midi.close()
