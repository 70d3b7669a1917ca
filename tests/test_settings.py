"""Settings: TOML file + flags, strict validation, `config show`, and the documented table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from passersby.cli import app
from passersby.settings import SettingsError, load_settings, settings_table, to_toml

ROOT = Path(__file__).resolve().parents[1]


def test_file_then_flags_then_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "passersby.toml"
    cfg.write_text('[walk]\nstyle = "drift"\ntempo = 8\n\n[[screens]]\nname = "solo"\nlabel = "feminine"\n')
    s = load_settings(cfg, {"walk.tempo": 4.5, "model.runtime": None})
    assert s.walk.style == "drift" and s.walk.tempo == 4.5 and s.walk.fps == 30.0
    assert [sc.name for sc in s.screens] == ["solo"] and s.screens[0].monitor == 0
    assert s.model.runtime == "auto" and s.source == str(cfg)


def test_config_is_found_in_the_working_directory_then_home(tmp_path: Path, monkeypatch) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    (home / "passersby.toml").write_text("[walk]\ntempo = 3.0\n")
    assert load_settings(None, home=home).walk.tempo == 3.0
    (cwd / "passersby.toml").write_text("[walk]\ntempo = 5.0\n")
    assert load_settings(None, home=home).walk.tempo == 5.0


@pytest.mark.parametrize("text, message", [
    ("[walk]\ntempoo = 3\n", r"walk: unknown key\(s\) \['tempoo'\]"),
    ("[wlak]\n", r"unknown section\(s\) \['wlak'\]"),
    ("[walk]\ntempo = \"fast\"\n", r"walk.tempo: expected float, got str"),
    ("[walk]\ntempo = -1\n", r"walk: tempo must be a positive"),
    ("[web]\nport = 70000\n", r"web.port: must be in 0..65535"),
    ("[model]\nruntime = \"tensorrt\"\n", r"model.runtime: 'tensorrt' is not one of"),
    ("[window]\nfullscreen = 1\n", r"window.fullscreen: expected bool, got int"),
    ("[[screens]]\nname = \"a\"\n[[screens]]\nname = \"a\"\n", r"screens: names must differ"),
    ("[[screens]]\nname = \"a b\"\n", r"screens.name: 'a b' must be"),
    ("[[screens]]\nname = \"a\"\nlabel = \"other\"\n", r"screens.label: 'other'"),
    ("[taste]\nmodel = \"pixels\"\n", r"taste.model: must be 'picture' or 'z'"),
    ("[walk\n", r"not valid TOML"),
])
def test_bad_settings_get_one_clear_line_naming_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message) as e:
        load_settings(cfg)
    assert str(cfg) in str(e.value) and "\n" not in str(e.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such config file"):
        load_settings(tmp_path / "nope.toml")


def test_config_show_prints_a_file_that_reads_back_the_same(tmp_path: Path) -> None:
    cfg = tmp_path / "in.toml"
    cfg.write_text('[walk]\nstyle = "slerp"\n[web]\nport = 9001\n')
    r = CliRunner().invoke(app, ["config", "show", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert 'style = "slerp"' in r.output and "port = 9001" in r.output and "[[screens]]" in r.output
    out = tmp_path / "resolved.toml"
    out.write_text(r.output)
    a, b = load_settings(cfg), load_settings(out)
    assert (a.model, a.walk, a.stream, a.window, a.web, a.feedback, a.screens) == (b.model, b.walk, b.stream, b.window, b.web, b.feedback, b.screens)
    bad = CliRunner().invoke(app, ["config", "show", "--config", str(tmp_path / "missing.toml")])
    assert bad.exit_code == 1 and "no such config file" in bad.output


def test_docs_settings_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    documented = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \| `([^`]*)` \| ([^|]*?) ?\| (.*) \|$", text, re.M)
    assert documented == [tuple(r) for r in settings_table()], "regenerate docs/settings.md from settings_table()"
    assert to_toml(load_settings(None, search=False)).count("[[screens]]") == 2


NUMERIC_SETTINGS = [key for key, typ, *_ in settings_table() if typ in ("int", "float")]


def test_every_numeric_setting_declares_a_range_that_admits_its_default() -> None:
    rows = {key: (typ, allowed) for key, typ, _, allowed, _ in settings_table()}
    assert len(NUMERIC_SETTINGS) >= 20
    assert [k for k in NUMERIC_SETTINGS if not rows[k][1]] == []  # a new number needs its bounds too
    load_settings(None, search=False)  # the defaults load: each inside its own bounds


@pytest.mark.parametrize("text, message", [
    # The two: 1e308 overflowed `round(3 * fps)` in render; 100000 rendered forever.
    ("[walk]\nfps = 1e308\n", r"walk\.fps: must be in 1\.\.120, got 1e\+308$"),
    ("[walk]\nfps = 100000\n", r"walk\.fps: must be in 1\.\.120, got 100000\.0$"),
    ("[walk]\ntempo = 1e9\n", r"walk\.tempo: must be in 0\.01\.\.3600, got 1000000000\.0$"),
    ("[walk]\ndrift_speed = 0\n", r"walk: drift_speed must be a positive"),  # the walk's own check first
    ("[stream]\nqueue = 1000000\n", r"stream\.queue: must be in 1\.\.600, got 1000000$"),
    ("[model]\nthreads = 0\n", r"model\.threads: must be in 1\.\.256, got 0$"),
    ("[feedback]\ndrift = 100.0\n", r"feedback\.drift: must be in 0\.\.4, got 100\.0$"),
    ("[peep]\nseconds = 1e12\n", r"peep\.seconds: must be in 0\.\.3600, got 1000000000000\.0$"),
    ("[ledger]\nlease = 0\n", r"ledger\.lease: must be in 1\.\.100000, got 0$"),
    ("[[screens]]\nname = \"a\"\nmonitor = -1\n", r"screens\.monitor: must be in 0\.\.63, got -1$"),
])
def test_a_number_outside_its_range_is_one_line_naming_file_key_value_and_range(
        tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "passersby.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message) as e:
        load_settings(cfg)
    assert str(e.value).startswith(f"{cfg}: ") and "\n" not in str(e.value)


def test_config_show_and_render_refuse_an_absurd_rate_with_one_error_line(tmp_path: Path) -> None:
    """`config show` passed walk.fps = 1e308 and `render` then died of OverflowError; both now stop
    at load with the one line (render fails before it loads a model, so this is quick)."""
    cfg = tmp_path / "passersby.toml"
    cfg.write_text("[walk]\nfps = 1e308\n")
    for args in (["config", "show"], ["render", "--seconds", "1", "--out", str(tmp_path / "o.mp4")]):
        r = CliRunner().invoke(app, [*args, "--config", str(cfg)])
        assert r.exit_code == 1, (args, r.output)
        assert r.output.strip().splitlines() == [f"error: {cfg}: walk.fps: must be in 1..120, got 1e+308"], args
    assert not (tmp_path / "o.mp4").exists()
    cfg.write_text("[walk]\nfps = 120\n")  # the top of the range is allowed, and `config show` says the range
    shown = CliRunner().invoke(app, ["config", "show", "--config", str(cfg)])
    assert shown.exit_code == 0 and "fps = 120.0  # Frames per second of every screen. Allowed: 1..120." in shown.output


def test_feedback_knobs_are_checked_only_where_a_loop_runs(tmp_path: Path) -> None:
    assert load_settings(None, {"walk.tempo": 0.2}, search=False).walk.tempo == 0.2  # walk screens: no crossfade
    cfg = tmp_path / "loop.toml"
    cfg.write_text('[walk]\ntempo = 0.5\n[[screens]]\nname = "a"\nsource = "feedback"\n')
    with pytest.raises(SettingsError, match=r"crossfade \(1.0 s\) must be shorter than tempo \(0.5 s\)"):
        load_settings(cfg)
    cfg.write_text('[walk]\ntempo = 0.5\n[feedback]\ncrossfade = 0.2\n[[screens]]\nname = "a"\nsource = "feedback"\n')
    s = load_settings(cfg)
    assert s.screens[0].source == "feedback" and s.feedback.crossfade == 0.2


def test_each_knob_is_declared_once_and_documented() -> None:
    """[walk], [peep] and the loop's [feedback] knobs are the stream's own declarations: the
    settings, docs/settings.md and the flags' help read their docs and defaults from there."""
    import dataclasses

    from passersby.settings import FeedbackSettings, Settings, flag_help
    from passersby.stream.feedback import FeedbackConfig, FeedbackKnobs
    from passersby.stream.knobs import doc_of
    from passersby.stream.peep import PeepConfig, PeepKnobs
    from passersby.stream.walker import WalkConfig

    rows = {key: (default, doc) for key, _, default, _, doc in settings_table()}
    assert all(doc for _, doc in rows.values()), [k for k, (_, doc) in rows.items() if not doc]
    for section, cls in (("walk", WalkConfig), ("peep", PeepKnobs), ("feedback", FeedbackKnobs)):
        for f in dataclasses.fields(cls):
            assert rows[f"{section}.{f.name}"][1] == doc_of(cls, f.name) == f.metadata["doc"]
            assert flag_help(f"{section}.{f.name}").startswith(doc_of(cls, f.name))
    assert type(Settings().peep) is PeepKnobs and isinstance(Settings().feedback, FeedbackKnobs)
    assert {f.name for f in dataclasses.fields(FeedbackSettings)} - {f.name for f in dataclasses.fields(FeedbackKnobs)} == {"painter"}
    # The runtime configs extend the knobs: same defaults, plus what they take from [walk].
    assert PeepConfig().seconds == PeepKnobs().seconds and FeedbackConfig().drift == FeedbackKnobs().drift
    assert FeedbackKnobs().step_every == 0 and FeedbackConfig().step_every == 1  # 0 = measured; unmeasured: 1
    with pytest.raises(KeyError):
        flag_help("walk.tempoo")


def test_the_loops_get_the_walks_rate_and_the_knobs_from_the_file(tmp_path: Path) -> None:
    from passersby.settings import feedback_config, peep_config

    cfg = tmp_path / "p.toml"
    cfg.write_text('[walk]\ntempo = 4.0\nfps = 24.0\n[peep]\nseconds = 2.0\nblank = "black"\n'
                   '[feedback]\ndrift = 0.5\nstep_every = 0\npainter = "p.safetensors"\n')
    s = load_settings(cfg)
    p = peep_config(s)
    assert (p.seconds, p.blank, p.fade, p.fps) == (2.0, "black", 1.5, 24.0)
    f = feedback_config(s)
    assert (f.drift, f.tempo, f.fps, f.step_every, f.crossfade) == (0.5, 4.0, 24.0, 1, 1.0)
    assert feedback_config(s, 3).step_every == 3 and "painter" not in f.to_dict()  # keys carry no file path
    cfg.write_text("[peep]\nfps = 10.0\n")  # the rate is walk.fps, not a [peep] key
    with pytest.raises(SettingsError, match=r"peep: unknown key\(s\) \['fps'\]"):
        load_settings(cfg)
    cfg.write_text('[peep]\nblank = "grey"\n')
    with pytest.raises(SettingsError, match=r"peep.blank must be one of"):
        load_settings(cfg)
