"""benchmarks/quality.py and benchmarks/separation.py run end to end on tiny inputs (they
assert no figure's value, only that every figure is reported), so they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PORTRAITS

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_quality_benchmark_on_a_conditional_model(tmp_path, tiny_model_file):
    out = tmp_path / "q.json"
    r = _run("benchmarks/quality.py", str(tiny_model_file), "--data", str(PORTRAITS), "--n", "12",
             "--json", str(out), "--sheet", str(tmp_path / "sheet.jpg"), "--pairs", str(tmp_path / "pairs.jpg"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["model"]["samples_per_class"] == {"feminine": 6, "masculine": 6}  # balanced classes
    assert res["reference"]["kind"] == "folder" and res["n_real"] == 12
    for key in ("face_rate", "face_descriptor", "effnet"):
        assert key in res
    assert {"precision", "recall"} <= set(res["effnet"]["precision_recall"])
    assert res["lscpu"]["flags"] and "CPU (lscpu)" in r.stdout and "flags:" in r.stdout
    assert (tmp_path / "sheet.jpg").stat().st_size > 0 and (tmp_path / "pairs.jpg").stat().st_size > 0


def test_quality_benchmark_says_error_in_one_line(tmp_path):
    r = _run("benchmarks/quality.py", str(tmp_path / "missing.safetensors"), "--data", str(PORTRAITS), "--n", "8")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow
def test_separation_benchmark_on_a_conditional_model(tmp_path, tiny_model_file):
    out = tmp_path / "s.json"
    r = _run("benchmarks/separation.py", "--model", str(tiny_model_file), "--anchors", "2", "--fps", "2",
             "--every", "3", "--runtime", "torch", "--json", str(out), "--sheet", str(tmp_path / "s.jpg"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["model"]["conditional"] and set(res["screens"]) == {"masculine", "feminine"}
    assert res["frames_per_screen"] == 24 and res["screens"]["masculine"]["frames"] == 8
    assert res["screens"]["feminine"]["anchors_passed"] == 2
    assert res["screens"]["feminine"]["anchor_frames"]["frames"] == 2
    assert {"p_male_given_masculine", "p_female_given_feminine", "separation"} <= set(res["headline"])


@pytest.mark.slow
def test_separation_benchmark_on_the_shipped_model_with_its_direction(tmp_path):
    out = tmp_path / "s.json"
    r = _run("benchmarks/separation.py", "--anchors", "1", "--fps", "1", "--every", "2", "--runtime", "torch",
             "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert not res["model"]["conditional"] and res["model"]["screens_by"] == "latent direction"
    assert set(res["screens"]) == {"masculine", "feminine", "unsteered"}
    assert "separation =" in r.stdout


def test_a_lower_walk_fps_renders_a_subset_of_the_same_frames(tiny_model_file):
    """What separation.py --fps relies on: the walk is a function of time, so the stream at
    fps/3 shows exactly every 3rd frame of the stream at fps (same seed, same anchors)."""
    import dataclasses

    import numpy as np

    from passersby.settings import ScreenSettings, load_settings
    from passersby.app.installation import build

    def frames(fps: float, n: int) -> list[np.ndarray]:
        base = load_settings(None, {"stream.seed": 3, "model.path": str(tiny_model_file), "walk.fps": fps,
                                    "walk.tempo": 2.0, "model.runtime": "torch"}, search=False)
        inst = build(dataclasses.replace(base, screens=(ScreenSettings("feminine", "feminine", 0),)), dry_ledger=True)
        try:
            inst.engine.start(pace=False)
            return [inst.engine.take(0).image for _ in range(n)]
        finally:
            inst.close()

    fast, slow = frames(6.0, 3 * 8), frames(2.0, 8)  # 2 anchors at 12 and 4 frames per anchor
    for k in range(8):
        assert np.abs(fast[3 * k].astype(int) - slow[k].astype(int)).max() <= 1
    assert max(np.abs(fast[3 * k + 1].astype(int) - slow[k].astype(int)).max() for k in range(8)) > 1  # frames move


def test_blind_benchmark_makes_a_sheet_and_scores_judges(tmp_path, tiny_model_file):
    out = tmp_path / "blind"
    r = _run("benchmarks/blind.py", "make", str(tiny_model_file), "--real", str(PORTRAITS), "--seed", "5",
             "--out", str(out), "--n", "6", "--size", "48")
    assert r.returncode == 0, r.stdout + r.stderr
    key = json.loads((out / "key-5.json").read_text())
    from PIL import Image

    with Image.open(out / "sheet-5.jpg") as im:  # 12 faces of 48 px in 8 columns: 2 rows
        assert im.size[0] > 8 * 48 and im.size[1] > 2 * 48
        with Image.open(out / "sheet-5.png") as png:  # for a viewer that shows PNG only: the same pixels
            assert png.format == "PNG" and np.array_equal(np.asarray(png), np.asarray(im))
    gen = key["generated"]
    assert len(gen) == 6 and len(key["real"]) == 6 and set(gen).isdisjoint(int(k) for k in key["real"])
    assert sorted(gen + [int(k) for k in key["real"]]) == list(range(1, 13))
    real = sorted(int(k) for k in key["real"])
    scores = []
    for name, answer, expected in (("right", gen, 1.0), ("wrong", real, 0.0), ("half", gen[:3] + real[:3], 0.5)):
        s = tmp_path / f"{name}.json"
        r = _run("benchmarks/blind.py", "score", str(out / "key-5.json"), "--answer", ", ".join(map(str, answer)),
                 "--json", str(s))
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(s.read_text())["accuracy"] == expected
        scores.append(str(s))
    r = _run("benchmarks/blind.py", "summary", *scores, "--json", str(tmp_path / "sum.json"))
    assert json.loads((tmp_path / "sum.json").read_text())["mean_accuracy"] == 0.5
    r = _run("benchmarks/blind.py", "score", str(out / "key-5.json"), "--answer", "3 99")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "99" in r.stderr.strip().splitlines()[-1]
    # the same seed gives the same sheet: the key re-makes it
    r = _run("benchmarks/blind.py", "make", str(tiny_model_file), "--real", str(PORTRAITS), "--seed", "5",
             "--out", str(tmp_path / "again"), "--n", "6", "--size", "48")
    assert json.loads((tmp_path / "again" / "key-5.json").read_text())["generated"] == gen
