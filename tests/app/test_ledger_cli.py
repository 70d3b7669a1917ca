"""`passersby ledger stats|check|export` against a real ledger in a temporary home."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
from typer.testing import CliRunner

from passersby.cli import app
from passersby.home import ledger_path, resolve_home
from passersby.stream.ledger import SqliteLedger

runner = CliRunner()


def _fill(home, n_a: int, n_b: int) -> None:
    propose = lambda rng: rng.standard_normal(16).astype(np.float32)  # noqa: E731
    with SqliteLedger(ledger_path(home), dim=16, seed=3) as led:
        for _ in range(n_a):
            led.claim("masculine", propose, "model-a")
        for _ in range(n_b):
            led.claim("feminine", propose, "model-a")


def test_home_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PASSERSBY_HOME", str(tmp_path / "env"))
    assert resolve_home() == tmp_path / "env"
    assert resolve_home(tmp_path / "flag") == tmp_path / "flag"  # the flag wins
    monkeypatch.delenv("PASSERSBY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home() == tmp_path / "xdg" / "passersby"


def test_stats_check_export(tmp_path) -> None:
    home = tmp_path / "gallery"
    home.mkdir()
    _fill(home, 5, 3)
    res = runner.invoke(app, ["ledger", "stats", "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "faces shown: 8" in res.output
    assert "masculine: 5 shown" in res.output and "feminine: 3 shown" in res.output
    res = runner.invoke(app, ["ledger", "check", "--home", str(home), "--deep"])
    assert res.exit_code == 0 and "ok: 8 faces" in res.output, res.output
    out = tmp_path / "shown.jsonl"
    res = runner.invoke(app, ["ledger", "export", str(out), "--home", str(home)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["dim"] == 16 and len(lines) == 1 + 8
    assert {json.loads(line)["state"] for line in lines[1:]} == {"shown"}  # an installation's claims all show


def test_check_reports_tampering(tmp_path) -> None:
    home = tmp_path / "g"
    home.mkdir()
    _fill(home, 4, 0)
    con = sqlite3.connect(ledger_path(home))
    con.execute("UPDATE anchors SET z = ? WHERE id = (SELECT min(id) FROM anchors)",
                (np.zeros(16, np.float32).tobytes(),))
    con.commit()
    con.close()
    res = runner.invoke(app, ["ledger", "check", "--home", str(home)])
    assert res.exit_code == 1
    assert "problem:" in res.output


def test_missing_ledger_is_a_one_line_error(tmp_path) -> None:
    res = runner.invoke(app, ["ledger", "stats", "--home", str(tmp_path / "none")])
    assert res.exit_code == 1
    assert "no ledger here" in res.output and "Traceback" not in res.output
