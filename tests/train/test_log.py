"""Resuming truncates the log to the checkpoint's step, so no step is logged twice."""

from __future__ import annotations

import json

from passersby.train.run import truncate_log


def test_truncate_log_drops_rows_after_the_step(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss_d": 1.0}) + "\n" for s in (50, 100, 150, 200)))
    truncate_log(log, 100)
    assert [json.loads(l)["step"] for l in log.read_text().splitlines()] == [50, 100]
    truncate_log(tmp_path / "missing.jsonl", 10)  # no log yet: nothing to do, no error
    assert not (tmp_path / "missing.jsonl").exists()
