"""The stream benchmark runs end to end (tiny durations; it asserts no timing, only that the
figures it reports exist and are sane), so it cannot rot between releases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], timeout: float, cwd: Path = ROOT, env: dict[str, str] | None = None,
        capture_output: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """subprocess.run(..., capture_output=True, text=True) for a benchmark script, but a run past
    `timeout` fails with every thread's stack (python -X faulthandler dumps them on SIGABRT)
    instead of a bare TimeoutExpired: a hang must say where it hung (one did:
    docs/operations/claim-hang-openvino.txt)."""
    assert cmd[0] == sys.executable and capture_output and text
    p = subprocess.Popen([cmd[0], "-X", "faulthandler", *cmd[1:]], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGABRT)
        out, err = p.communicate()
        pytest.fail(f"{' '.join(cmd[1:3])} ran past {timeout} s; its threads:\n{err[-20000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_stream_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "stream.json"
    r = run([sys.executable, "benchmarks/stream.py", "--seconds", "3", "--throughput-seconds", "1",
                        "--sink", "web", "--burst", "1:1", "--raise-after", "5", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    screens = ["masculine", "feminine"]
    timeline = res["live"]["chain_timeline"]  # the chain's level twice a second, with the load burst marked
    assert [x["burst"] for x in timeline].count(True) >= 1 and not timeline[-1]["burst"]
    assert all(set(x["level"]) == set(screens) for x in timeline)
    assert all(c["raise_after"] == 5.0 for c in res["live"]["chains"].values())
    assert res["reference"]["runtime"] == "torch" and res["fast"]["runtime"] != "torch"
    for s in screens:
        assert res["reference"]["fps_per_screen"][s] > 0 and res["fast"]["fps_per_screen"][s] > 0
        assert res["speedup_per_screen"][s] > 0
        assert res["live"]["fps_per_screen"][s] > 0
        assert 0 < res["live"]["intervals_ms"][s]["p50"] <= res["live"]["intervals_ms"][s]["p99"]
        assert res["live"]["frames_received_by_web_clients"][s] > 0
        claims = res["live"]["claims"][s]  # labelled screens choose their faces: claimed ahead (model.choose)
        assert claims["ahead"] is True and claims["n"] >= 1 and claims["median_ms"] > 0
    assert "speed-up" in r.stdout and "p99" in r.stdout


@pytest.mark.parametrize("parallel", [False, True], ids=["in-turn", "parallel"])
def test_recipes_benchmark_trains_both_recipes_and_measures(tmp_path: Path, prepared_data: Path, parallel: bool) -> None:
    out, plot = tmp_path / "recipes.json", tmp_path / "recipes.png"
    r = run([sys.executable, "benchmarks/recipes.py", str(prepared_data), "--minutes", "0.03",
                        "--eval-every", "0.03", "--n", "8", "--json", str(out), "--plot", str(plot)]
                       + (["--parallel"] if parallel else []),
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert {row["recipe"] for row in res["rows"]} == {"fastgan", "projected"}
    for row in res["rows"]:
        assert row["minutes"] >= 0.03 and row["step"] >= 1 and row["kid_effnet_x1000"] == row["kid_effnet_x1000"]
        assert 0.0 <= row["face_rate"] <= 1.0
    assert res["shipped"]["kid_effnet_x1000"] > 0 and plot.stat().st_size > 1000


def test_sizes_benchmark_reports_fps_and_cost_per_width(tmp_path: Path) -> None:
    out = tmp_path / "sizes.json"
    r = run([sys.executable, "benchmarks/sizes.py", "--ngf", "8,16", "--seconds", "1", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    small, large = res["rows"]
    assert small["ngf"] == 8 and large["ngf"] == 16
    assert 0 < small["gflops_per_frame"] < large["gflops_per_frame"] and small["params"] < large["params"]
    assert all(len(row["fps_per_screen"]) == 2 and min(row["fps_per_screen"]) > 0 for row in res["rows"])
    assert res["machine"]["lscpu"]["model_name"]
    assert "GFLOPs/frame" in r.stdout


def test_feedback_soak_benchmark_reports_collapses_faces_changes_and_repeats(tmp_path: Path) -> None:
    import torch

    from passersby.checkpoint import save_model
    from passersby.config import PainterConfig
    from passersby.model.painter import Painter

    torch.manual_seed(0)
    cfg = PainterConfig(ngf=4, depth=5)  # untrained, full size: its loop collapses, which is what we count
    painter = tmp_path / "painter.safetensors"
    save_model(painter, Painter(cfg).eval(), cfg, {"step": 0})
    out, sheet, video = tmp_path / "soak.json", tmp_path / "minute.jpg", tmp_path / "loop.mp4"
    r = run([sys.executable, "benchmarks/feedback.py", "--painter", str(painter), "--frames", "70",
                        "--tempo", "1", "--crossfade", "0.2", "--gap", "1", "--video-seconds", "1", "--json", str(out), "--sheet", str(sheet),
                        "--video", str(video)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    for name in ("masculine", "feminine"):
        s = res["screens"][name]
        assert s["frames"] == 70 and s["segments"] >= 3 and sum(s["collapses"].values()) >= 1
        assert 0 <= s["keyframes_with_face"] <= 1 and s["change_median"] > 0
        assert s["never_repeat"]["keyframes"] == 3 and s["never_repeat"]["min_distance_far_pairs"] > 0
    assert res["fps_per_screen_unpaced"] > 0 and sheet.stat().st_size > 1000 and video.stat().st_size > 1000


def test_peep_capture_benchmark_reports_latency_equality_and_prints(tmp_path: Path) -> None:
    out, example = tmp_path / "pc.json", tmp_path / "example"
    r = run([sys.executable, "benchmarks/peep_capture.py", "--presses", "2", "--captures", "1",
                        "--modes", "walk", "--print-sizes", "A5", "--dpi", "72", "--json", str(out),
                        "--example", str(example)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["peep"]["presses_answered"] == 2 and res["peep"]["press_to_face_ms_median"] > 0
    assert res["capture_walk"]["captures"] == 2 and res["capture_walk"]["matches_shown"] == 2
    assert res["print"]["A5"]["pixels"] == [420, 595]
    assert (example / "example-A5-reduced.jpg").exists() and (example / "example-A5-pdf-page1.png").exists()
    assert (example / "example-capture.json").exists()


def test_memory_soak_benchmark_samples_and_fits_a_slope(tmp_path: Path) -> None:
    out, plot = tmp_path / "soak.json", tmp_path / "soak.png"
    r = run([sys.executable, "benchmarks/memory_soak.py", "--minutes", "0.12", "--every", "2",
                        "--warmup", "0", "--json", str(out), "--plot", str(plot)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert len(res["samples"]) >= 3 and all(s["rss_mb"] > 50 and s["fds"] > 3 for s in res["samples"])
    assert isinstance(res["rss_slope_mb_per_hour_after_warmup"], float) and plot.exists()
    assert all(n > 0 for n in res["frames_received_by_web_clients"].values())
    first = res["samples"][0]
    assert first["threads"] > 3 and first["arenas"] >= 1 and first["malloc_system_mb"] > 0
    assert first["cpu_s"] > 0 and first["minor_faults"] > 0 and res["cpu_cores_busy"] > 0
    assert 0.5 * first["rss_mb"] < sum(first["maps"].values()) <= 1.01 * first["rss_mb"]
    lo, hi = res["rss_slope_ci95_mb_per_hour"]
    assert lo <= res["rss_slope_mb_per_hour_after_warmup"] <= hi and res["rss_bound_mb_per_day"] >= 0
    again = tmp_path / "again.json"  # --analyze: the same samples summarized again, another warm-up
    r = run([sys.executable, "benchmarks/memory_soak.py", "--analyze", str(out), "--warmup", "0.02",
                        "--json", str(again)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res2 = json.loads(again.read_text())
    assert res2["samples"] == res["samples"] and res2["args"]["warmup"] == "0.02"


def test_memory_soak_of_the_engine_alone_with_settings(tmp_path: Path) -> None:
    out = tmp_path / "noweb.json"
    r = run([sys.executable, "benchmarks/memory_soak.py", "--minutes", "0.05", "--every", "1",
                        "--warmup", "0", "--no-web", "--setting", "enhancer.mode=off", "--setting", "walk.fps=10",
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert "frames_received_by_web_clients" not in res and len(res["samples"]) >= 2
    assert res["samples"][-1]["fps"]["masculine"] <= 11  # the setting reached the installation


def test_memory_soak_reads_settings_as_json_or_text() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import memory_soak
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert [memory_soak.setting(kv) for kv in ("walk.fps=10", "walk.tempo=0.5", "enhancer.mode=off",
                                               "model.runtime=torch", "window.fullscreen=false", "web.token=")] == [
        ("walk.fps", 10), ("walk.tempo", 0.5), ("enhancer.mode", "off"), ("model.runtime", "torch"),
        ("window.fullscreen", False), ("web.token", "")]


def test_memory_summary_finds_a_step_and_bounds_the_slope() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # 3 hours, one sample a minute: flat 600 MB with noise, a +20 MB step in the anon mappings
    # at minute 30 (a thread more), then flat again.
    rng = np.random.default_rng(0)
    samples = []
    for m in range(180):
        anon = 170.0 + (20.0 if m >= 30 else 0.0)
        samples.append({"t_s": m * 60.0, "rss_mb": 430.0 + anon + rng.normal(0, 0.3), "fds": 22,
                        "threads": 24 + (m >= 30), "maps": {"anon": anon, "[heap]": 212.0}})
    s = _memory.summarize(samples, warmup_min=40)
    assert [(st["minute"], st["threads"], st["maps"]) for st in s["steps"]] == [(30.0, [24, 25], {"anon": 20.0})]
    lo, hi = s["rss_slope_ci95_mb_per_hour"]
    assert lo < 0 < hi < 0.1  # flat after warm-up, and the interval says how flat
    assert s["rss_bound_mb_per_day"] == pytest.approx(24 * hi)
    s_early = _memory.summarize(samples, warmup_min=10)  # the step inside the fit: a clear slope
    assert s_early["rss_slope_ci95_mb_per_hour"][0] > 3
    # Faces claimed 400 an hour; a leak of 2 KB per face reads as 2 MB per 1,000 faces.
    leaky = [{**x, "faces": m * 400 // 60, "rss_mb": 600 + 0.002 * (m * 400 // 60)} for m, x in enumerate(samples)]
    s_leak = _memory.summarize(leaky, warmup_min=10)
    assert s_leak["rss_mb_per_1000_faces"] == pytest.approx(2.0, rel=0.01)
    assert s_leak["faces_per_hour"] == pytest.approx(400, rel=0.01)
    # CPU: 1.5 cores busy, 80 minor faults a second, counted from the warm-up on
    timed = [{**x, "cpu_s": 100 + 1.5 * x["t_s"], "minor_faults": 5000 + 80 * x["t_s"]} for x in samples]
    s_cpu = _memory.summarize(timed, warmup_min=10)
    assert (s_cpu["cpu_cores_busy"], s_cpu["minor_faults_per_s"]) == (1.5, 80.0)
    assert s["cpu_cores_busy"] is None  # samples from before the CPU probe



def test_edition_benchmark_reports_claims_latency_and_lease_cover(tmp_path: Path, pg_server) -> None:
    out = tmp_path / "edition.json"
    r = run([sys.executable, "benchmarks/edition.py", "--seconds", "0.5", "--consoles", "1,2", "--lease", "20",
                        "--face-every", "6", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert {(row["backend"], row["consoles"]) for row in res["rows"]} == {
        (b, n) for b in ("sqlite", "postgres", "leased", "outage") for n in (1, 2)}
    for row in res["rows"]:
        assert row["claims"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert res["lease_covers_minutes"] == 2.0 and "covers 2 minutes" in r.stdout


def test_feedback_replay_benchmark_rerenders_bit_for_bit_from_kept_states(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    r = run([sys.executable, "benchmarks/feedback_replay.py", "--seconds", "5", "--tempo", "1.5",
                        "--frames", "3", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["bit_exact"] and len(res["kept_states_s"]) == 3 and res["first_covers_segments"] == 2
    assert res["lscpu"]["model_name"] and "kept_states_median_s" in res


def test_taste_benchmark_compares_both_models_on_the_same_swipes(tmp_path: Path) -> None:
    out = tmp_path / "taste.json"
    r = run([sys.executable, "benchmarks/taste.py", "--tastes", "warm", "--anchors", "4", "--checkpoints",
                        "3", "--calibration", "20", "--prior-faces", "150", "--exactingness", "1.0",
                        "--server-ratings", "2", "--curators", "2", "--picture", "BANDWIDTH_FACTORS=0.5/1", "--rerank", "2",
                        "--head-cache", str(tmp_path / "home"),
                        "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's passersby, not an installed one
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    models = res["tastes"]["warm palette"]["models"]
    assert set(models) == {"z", "picture"} and res["head"]["samples"] > 0
    for m in models.values():
        (cell,) = m["cells"]
        assert cell["swipes"] == 3 and 0 <= cell["liked"] <= 1 and cell["diversity_pct_of_untrained"] > 0
        assert m["choose_and_refit_ms"]["median"] > 0
    # The picture model learns from the rated faces' true features, embedded as the app would.
    assert models["picture"]["embed_ms"]["median"] > 0 and models["z"]["embed_ms"] is None
    # ... and is also scored on what the calibration faces look like (the look's judgement); the z model is not.
    assert 0 <= models["picture"]["cells"][0]["model_auc_seen"] <= 1 and models["z"]["cells"][0]["model_auc_seen"] is None
    assert not (tmp_path / "home" / "cache").exists()  # the shipped model's head ships: nothing built
    assert "picture" in r.stdout and res["machine"]["cpu"]
    # --curators 2: a second curator with its own draws; the first is the run's own cells.
    for m in models.values():
        first, second = m["curators"]
        assert first[0]["liked"] == m["cells"][0]["liked"] and second[0]["swipes"] == 3
    assert "2 curators: liked" in r.stdout
    assert res["args"]["picture"] == "BANDWIDTH_FACTORS=0.5/1" and res["args"]["rerank"] == 2


def test_taste_levers_builds_a_judged_pool_and_compares_variants_over_curators(tmp_path: Path) -> None:
    out, pool = tmp_path / "levers.json", tmp_path / "pool.npz"
    r = run([sys.executable, "benchmarks/taste_levers.py", "--pool", str(pool), "--pool-size", "120",
                        "--tastes", "warm", "--variants", "shipped", "z", "BLOCK_EVIDENCE=true+explore=0.5", "Z_SCALE=0.25",
                        "rerank=3", "--curators", "2", "--swipes", "12", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    p = np.load(pool)
    assert len(p["z"]) == 120 and p["f"].shape == (120, 1280) and p["ref"].shape == (5, 1280)
    res = json.loads(out.read_text())
    rows = res["results"]["warm"]
    assert set(rows) == {"shipped", "z", "BLOCK_EVIDENCE=true+explore=0.5", "Z_SCALE=0.25", "rerank=3"}
    assert rows["rerank=3"]["auc50"] == rows["shipped"]["auc50"]  # the same model: only the stream's pick looks
    # Each variant starts from the package as shipped: the shipped Z_SCALE after another variant is the shipped model.
    assert rows["Z_SCALE=0.25"]["liked50"] == rows["shipped"]["liked50"]
    assert rows["Z_SCALE=0.25"]["auc50"] == rows["shipped"]["auc50"]
    for row in rows.values():
        assert len(row["liked50"]) == 2 and all(0 <= v <= 1 for v in row["liked50"])
    assert rows["shipped"]["liked50"] != rows["z"]["liked50"] or rows["shipped"]["auc50"] != rows["z"]["auc50"]
    bad = run([sys.executable, "benchmarks/taste_levers.py", "--pool", str(pool), "--variants", "NOPE=1",
                          "--curators", "1", "--swipes", "3", "--tastes", "warm"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode != 0 and "unknown override 'NOPE=1'" in bad.stderr


def test_steer_benchmark_reports_latency_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "steer.json"
    r = run([sys.executable, "benchmarks/steer.py", "--moves", "1", "--apart", "0.5", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's package
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    lat = res["latency_frames"]
    assert len(lat["engine_steer"]) == len(lat["set_offset_only"]) == 1
    assert all(x is not None and x >= 1 for xs in lat.values() for x in xs), lat
    assert res["summary"]["ratio_set_offset_over_steer"] > 0 and res["pacer"]["frames_shown"]["turn"] > 0
    assert res["machine_start"]["cpu"] and res["queue"] == 12
def test_osc_benchmark_reports_every_figure(tmp_path: Path) -> None:
    flood, lat = tmp_path / "flood.json", tmp_path / "latency.json"
    r = run([sys.executable, "benchmarks/osc.py", "--seconds", "1", "--rate", "500", "--trials", "3",
                        "--warmup", "1", "--json-flood", str(flood), "--json-latency", str(lat)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    f, la = json.loads(flood.read_text()), json.loads(lat.read_text())
    for name in ("reference", "flood", "after"):
        for s in ("masculine", "feminine"):
            assert f[name]["fps_per_screen"][s] > 0 and f[name]["intervals_ms"][s]["p99"] > 0
    assert f["flood"]["flood_sent"] > 0 and f["flood"]["server"]["accepted"] > 0
    assert f["flood"]["server"]["malformed"] > 0 and f["flood"]["server"]["refused"] > 0
    assert f["lscpu"]["model_name"] and f["lscpu"]["flags"]
    assert la["n"] == 3 and la["median_ms"] > 0 and la["p99_ms"] >= la["median_ms"]
    assert la["published"]["median_ms"] > 0 and sum(la["published"]["frames_published_before_changed"].values()) == 3
    assert "latency OSC -> changed frame" in r.stdout
