"""An edition's shared ledger from the command line: settings, stats, check, migrate both ways, return."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from passersby.app.migrate import migrate
from passersby.cli import app
from passersby.home import ledger_path
from passersby.stream.ledger import LeasedLedger, LedgerError, PgLedger, SqliteLedger

runner = CliRunner()
D = 16


def propose(rng):
    return rng.standard_normal(D).astype(np.float32)


def _home(tmp_path, url: str, console: str = "g1"):
    home = tmp_path / console
    home.mkdir()
    (home / "passersby.toml").write_text(f'[ledger]\nurl = "{url}"\nconsole = "{console}"\nlease = 4\n')
    return home


def test_migrate_sqlite_to_postgres_and_back_loses_nothing(pg_url, tmp_path) -> None:
    src = ledger_path(tmp_path)
    with SqliteLedger(src, D, seed=3) as led:
        for ch in ("masculine", "feminine"):
            for _ in range(30):
                led.claim(ch, propose, "m1")
    res = runner.invoke(app, ["ledger", "migrate", str(src), pg_url, "--console", "g1", "--home", str(tmp_path)])
    assert res.exit_code == 0 and "copied 60 faces and 2 channels (console g1)" in res.output, res.output
    with PgLedger.open_existing(pg_url) as pg:
        assert set(pg.stats().channels) == {"g1/masculine", "g1/feminine"} and pg.check(deep=True).ok
        # the console goes on where its SQLite ledger stopped: same RNG, new ids after the copied ones
        i, z = pg.claim("g1/masculine", propose, "m1")
    with SqliteLedger(src, D) as led:
        j, z2 = led.claim("masculine", propose, "m1")
    assert i == j == 61 and np.array_equal(z, z2)

    back = tmp_path / "back.sqlite"
    assert migrate(pg_url, str(back), "g1").anchors == 61
    with SqliteLedger.open_existing(back) as b, SqliteLedger.open_existing(src) as a:
        # equal but for the times of claim 61, made separately in each
        assert {c: v[:4] for c, v in b.rng_states().items()} == {c: v[:4] for c, v in a.rng_states().items()}
        rows_b, rows_a = ([r for batch in x.rows_for_copy() for r in batch] for x in (b, a))
        assert [r[:-1] for r in rows_b] == [r[:-1] for r in rows_a] and rows_b[:60] == rows_a[:60]
        assert b.check(deep=True).ok
    again = runner.invoke(app, ["ledger", "migrate", str(src), pg_url, "--console", "g1", "--home", str(tmp_path)])
    assert again.exit_code == 1 and again.output.startswith("error:") and "already holds anchors" in again.output


def test_migrate_refuses_same_kind_and_existing_files(pg_url, tmp_path) -> None:
    import pytest

    with SqliteLedger(tmp_path / "a.sqlite", D, seed=1) as led:
        led.claim("x", propose, "m")
    with pytest.raises(LedgerError, match="between SQLite and PostgreSQL"):
        migrate(str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite"), "g1")
    migrate(str(tmp_path / "a.sqlite"), pg_url, "g1")
    with pytest.raises(LedgerError, match="exists already; migrate into a new file"):
        migrate(pg_url, str(tmp_path / "a.sqlite"), "g1")


def test_stats_check_and_return_read_the_settings(pg_url, tmp_path) -> None:
    home = _home(tmp_path, pg_url)
    with LeasedLedger(pg_url, home / "lease.sqlite", D, "g1", 4, seed=1) as led:
        for _ in range(3):
            led.claim("masculine", propose, "m1")
        led.fill("masculine", propose, "m1")
    res = runner.invoke(app, ["ledger", "stats", "--home", str(home)])
    assert res.exit_code == 0, res.output
    # Claimed centrally: 7 = 3 shown + 4 leased ahead; it said "7 shown" (issue 22).
    assert "g1/masculine: 3 shown, 4 leased ahead, " in res.output, res.output
    assert "faces shown: 3, 4 leased ahead (not shown yet)" in res.output
    assert "this console's leases: 4 unused, 3 shown, 0 returned" in res.output
    assert "console g1: 4 leased, 3 shown, 0 returned" in res.output
    res = runner.invoke(app, ["ledger", "check", "--home", str(home), "--deep"])
    assert res.exit_code == 0 and "ok: 7 faces" in res.output, res.output
    res = runner.invoke(app, ["ledger", "return", "--home", str(home)])
    assert res.exit_code == 0 and "returned 4 unused leases" in res.output, res.output
    with PgLedger.open_existing(pg_url) as pg:
        assert pg.leases()["g1"] == {"leased": 0, "shown": 3, "returned": 4}
    res = runner.invoke(app, ["ledger", "stats", "--home", str(home)])
    assert "g1/masculine: 3 shown, 4 returned, " in res.output, res.output
    out = tmp_path / "x.jsonl"
    assert runner.invoke(app, ["ledger", "export", str(out), "--home", str(home)]).exit_code == 0
    assert json.loads(out.read_text().splitlines()[1])["channel"] == "g1/masculine"
    states = [json.loads(line)["state"] for line in out.read_text().splitlines()[1:]]
    assert sorted(states) == ["returned"] * 4 + ["shown"] * 3  # the export says which were shown


def test_bad_ledger_settings_and_unreachable_database_are_one_line_errors(tmp_path) -> None:
    home = _home(tmp_path, "mysql://nope")
    res = runner.invoke(app, ["ledger", "stats", "--home", str(home)])
    assert res.exit_code == 1 and "ledger.url: must be empty" in res.output and "Traceback" not in res.output
    home2 = _home(tmp_path, f"postgresql:///x?host={tmp_path}", "g2")
    res = runner.invoke(app, ["ledger", "stats", "--home", str(home2)])
    assert res.exit_code == 1 and "error:" in res.output and "cannot reach the ledger database" in res.output
    assert "Traceback" not in res.output


def test_render_on_an_edition_claims_in_postgres_and_capture_reads_it_back(pg_url, tmp_path) -> None:
    from passersby.app.installation import build
    from passersby.settings import load_settings

    home = _home(tmp_path, pg_url, "g5")
    r = runner.invoke(app, ["render", "--seconds", "0.5", "--out", str(tmp_path / "x.mp4"), "--home", str(home),
                            "--seed", "4", "--config", str(home / "passersby.toml")])
    assert r.exit_code == 0, r.output
    assert not (home / "ledger.sqlite").exists() and (home / "lease.sqlite").exists()
    with PgLedger.open_existing(pg_url) as pg:
        channels = pg.stats().channels
        last = pg.latest(1)[0]
    assert set(channels) == {"g5/masculine", "g5/feminine"}
    inst = build(load_settings(home / "passersby.toml"), home)
    try:  # a face shown earlier, re-rendered from the shared ledger's anchor (the gallery's "recent")
        key = {"source": "anchor", "model": last["model_hash"], "ledger_ids": [last["id"]],
               "screen": last["channel"].split("/")[1], "frame": 0}
        assert inst.rerenderer().shown(key).shape[-1] == 3
    finally:
        inst.close()
