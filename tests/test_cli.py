"""The `passersby` command line: help texts with examples, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from passersby.cli import app

runner = CliRunner()
SUBCOMMANDS = sorted(c.name for c in app.registered_commands)


def _invoke(*args: str):
    return runner.invoke(app, list(args), prog_name="passersby")


def test_the_documented_subcommands_exist():
    assert {"sample", "prepare", "train", "direction"} <= set(SUBCOMMANDS)


def test_top_level_help_has_examples():
    res = _invoke("--help")
    assert res.exit_code == 0, res.output
    assert "Example" in res.output


def test_top_level_help_lists_every_subcommand():
    res = _invoke("--help")
    assert res.exit_code == 0, res.output
    for name in SUBCOMMANDS:
        assert name in res.output


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_has_examples(name):
    res = _invoke(name, "--help")
    assert res.exit_code == 0, res.output
    assert "Example" in res.output
    assert f"passersby {name}" in res.output  # the examples show real command lines


def test_train_on_a_missing_dataset_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-such-data"
    res = _invoke("train", str(missing), "--out", str(tmp_path / "run"))
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)
    out = res.output.strip()
    assert out.startswith("error: ") and "\n" not in out and str(missing) in out, out
    assert not (tmp_path / "run").exists()


def test_train_with_bad_options_is_a_one_line_error(tmp_path, prepared_data):
    for args, word in ((["--sample-every", "0"], "sample_every"), (["--resolution", "100"], "resolution"),
                       (["--resolution", "128"], "128")):
        res = _invoke("train", str(prepared_data), "--out", str(tmp_path / "run"), *args)
        assert res.exit_code == 1, res.output
        out = res.output.strip()
        assert out.startswith("error: ") and "\n" not in out and word in out, out


def test_train_cli_runs_and_resumes(tmp_path, prepared_data):
    out = tmp_path / "run"
    common = ["train", str(prepared_data), "--out", str(out), "--resolution", "64", "--ngf", "8", "--ndf", "8",
              "--z-dim", "16", "--batch-size", "2", "--no-metrics", "--device", "cpu", "--unconditional"]
    res = _invoke(*common, "--steps", "1")
    assert res.exit_code == 0, res.output
    assert "done at step 1" in res.output and (out / "model.safetensors").is_file()
    res = _invoke(*common, "--steps", "2")  # forgot --resume
    assert res.exit_code == 1 and "--resume" in res.output, res.output
    res = _invoke(*common, "--steps", "2", "--resume")
    assert res.exit_code == 0, res.output
    assert "done at step 2" in res.output


def test_train_recipes_from_the_cli(tmp_path, prepared_data):
    common = ["train", str(prepared_data), "--resolution", "64", "--ngf", "8", "--ndf", "8", "--z-dim", "16",
              "--batch-size", "2", "--no-metrics", "--device", "cpu", "--steps", "1"]
    res = _invoke(*common, "--out", str(tmp_path / "bad"), "--recipe", "stylegan")
    out = res.output.strip()
    assert res.exit_code == 1 and out.startswith("error: --recipe") and "projected" in out and "\n" not in out, out
    for recipe in ("fastgan", "projected"):
        run = tmp_path / recipe
        res = _invoke(*common, "--out", str(run), "--recipe", recipe)
        assert res.exit_code == 0, res.output
        cfg = json.loads((run / "train_config.json").read_text())
        assert cfg["model"]["discriminator"] == recipe
        assert (cfg["beta1"], cfg["model"]["ngf"]) == ((0.0 if recipe == "projected" else 0.5), 8)


def test_module_entry_point():
    res = subprocess.run([sys.executable, "-m", "passersby.cli", "train", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Example" in res.stdout and res.stderr == ""


def test_a_full_disk_while_rendering_is_one_error_line(tmp_path, tiny_model_file, monkeypatch):
    """Issue 11: a ledger that cannot record (disk full) ended `render`/`serve` with a traceback."""
    from passersby.stream.ledger import LedgerError, SqliteLedger

    def full(self, *a, **k):
        raise LedgerError(f"{self.path}: cannot record the face (database or disk is full); free disk space")

    monkeypatch.setattr(SqliteLedger, "claim", full)
    res = _invoke("render", "--seconds", "0.2", "--out", str(tmp_path / "x.mp4"), "--home", str(tmp_path / "home"),
                  "--model", str(tiny_model_file), "--runtime", "torch", "--enhancer", "off")
    assert res.exit_code == 1, res.output
    assert res.output.strip().startswith("error: ") and "disk is full" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_taste_and_ledger_read_the_same_settings_as_show(tmp_path, tiny_model_file):
    """Issue 11: `taste` and `ledger` ignored passersby.toml, so the swipe app could rate another
    model than the stream shows and `ledger stats` look in another home."""
    home = tmp_path / "gallery"
    cfg = tmp_path / "passersby.toml"
    cfg.write_text(f'[stream]\nhome = "{home}"\n[model]\npath = "{tmp_path / "missing.safetensors"}"\n'
                   'runtime = "torch"\n')
    res = _invoke("ledger", "stats", "--config", str(cfg))
    assert res.exit_code == 1 and str(home / "ledger.sqlite") in res.output  # looked in the settings' home
    res = _invoke("taste", "--curator", "ada", "--config", str(cfg), "--port", "0")
    assert res.exit_code == 1 and "missing.safetensors" in res.output  # the settings' model, not the shipped one
    res = _invoke("taste", "curators", "--config", str(cfg))
    assert str(home) in res.output
    cfg.write_text("[stream]\nhomes = 1\n")
    res = _invoke("ledger", "stats", "--config", str(cfg))
    assert res.exit_code == 1 and res.output.startswith("error: ") and "homes" in res.output


def test_train_coverage_and_parts_flags_reach_the_config(tmp_path, prepared_data):
    run = tmp_path / "cov"
    res = _invoke("train", str(prepared_data), "--resolution", "64", "--ngf", "8", "--ndf", "8", "--z-dim", "16",
                  "--batch-size", "2", "--no-metrics", "--device", "cpu", "--steps", "1", "--out", str(run),
                  "--recipe", "projected", "--parts-weight", "0.25", "--cov-weight", "3", "--cov-pool", "6",
                  "--cov-every", "7", "--cov-batch", "2")
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "train_config.json").read_text())
    assert (cfg["parts_weight"], cfg["cov_weight"], cfg["cov_pool"], cfg["cov_every"], cfg["cov_batch"]) == (
        0.25, 3.0, 6, 7, 2)
