"""Chain costs remembered between starts (app/chain_costs.py): reused for the same models on the
same CPU, measured again for another CPU, after a week, or when the file is damaged."""

from __future__ import annotations

import logging
from pathlib import Path

from passersby.app import chain_costs
from passersby.app.chain_costs import remembered


def test_reused_for_the_same_parts_and_measured_for_others(tmp_path):
    calls = []

    def measure(v):
        return lambda: calls.append(v) or v

    assert remembered({"generator": "a"}, measure(0.01), root=tmp_path) == (0.01, False)
    assert remembered({"generator": "a"}, measure(0.5), root=tmp_path) == (0.01, True)
    assert remembered({"generator": "b"}, measure(0.02), root=tmp_path) == (0.02, False)
    assert remembered({"generator": "a", "threads": 2}, measure(0.03), root=tmp_path) == (0.03, False)
    assert calls == [0.01, 0.02, 0.03]


def test_another_cpu_or_a_week_later_measures_again(tmp_path, monkeypatch):
    t = [1000.0]
    assert remembered({"m": 1}, lambda: 0.1, root=tmp_path, now=lambda: t[0]) == (0.1, False)
    t[0] += chain_costs.MAX_AGE_S - 1
    assert remembered({"m": 1}, lambda: 0.2, root=tmp_path, now=lambda: t[0]) == (0.1, True)
    t[0] += 2
    assert remembered({"m": 1}, lambda: 0.2, root=tmp_path, now=lambda: t[0]) == (0.2, False)
    monkeypatch.setattr(chain_costs, "cpu_identity", lambda: "another cpu|x|2")
    assert remembered({"m": 1}, lambda: 0.3, root=tmp_path, now=lambda: t[0]) == (0.3, False)


def test_a_damaged_or_unwritable_file_only_costs_a_measurement(tmp_path, caplog):
    (tmp_path / chain_costs.FILE).write_text("{not json")
    assert remembered({"m": 1}, lambda: 0.1, root=tmp_path) == (0.1, False)
    import json

    table = json.loads((tmp_path / chain_costs.FILE).read_text())
    table["other"] = {"seconds": 0.3, "at": "yesterday"}  # a damaged entry beside a good one
    table[next(iter(table))]["seconds"] = "fast"
    (tmp_path / chain_costs.FILE).write_text(json.dumps(table))
    assert remembered({"m": 1}, lambda: 0.1, root=tmp_path) == (0.1, False)  # measured, not a crash
    assert "other" not in json.loads((tmp_path / chain_costs.FILE).read_text())
    assert remembered({"m": 1}, lambda: 0.2, root=tmp_path) == (0.1, True)  # rewritten whole
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="passersby"):
        assert remembered({"m": 1}, lambda: 0.4, root=blocker / "sub") == (0.4, False)
    assert any("cannot remember" in r.message for r in caplog.records)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_the_second_installation_start_measures_nothing(tmp_path: Path, tiny_model_file, tiny_enhancer_file,
                                                         monkeypatch):
    import dataclasses

    import passersby.app.chain as chain
    from passersby.app.installation import build
    from passersby.settings import ScreenSettings, load_settings

    monkeypatch.setenv("PASSERSBY_COMPILE_CACHE", str(tmp_path / "cache"))
    timed = []
    real = chain.seconds_per_call
    monkeypatch.setattr(chain, "seconds_per_call", lambda fn, repeats=5: timed.append(fn) or real(fn, repeats))
    s = load_settings(None, {"model.path": str(tiny_model_file), "enhancer.path": str(tiny_enhancer_file),
                             "enhancer.mode": "auto", "stream.seed": 1}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("solo", "", 0),))
    for home in ("a", "b"):
        inst = build(s, tmp_path / home, dry_ledger=True)
        first_plan = inst.engine.status().get("chain_start")
        inst.close()
        if home == "a":
            assert len(timed) == 2  # the generator and the enhancer, measured once
            plan_a = first_plan
    assert len(timed) == 2 and first_plan == plan_a  # remembered: the same start level
