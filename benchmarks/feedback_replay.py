"""Feedback frames re-rendered from their keys: from the anchor, and from kept loop states.

A capture or a gallery page re-renders feedback frames by replaying their segment
(stream/feedback.replay). This runs a feedback screen of the shipped models for `--seconds`,
then re-renders frames of its last full segment with a fresh installation's Rerenderer: the
first one from the anchor, the others from the loop states that replay kept
(stream/feedback.LoopStates), checking every one against the frame as shown (bit for bit).

Usage:
    python benchmarks/feedback_replay.py --seconds 14 --tempo 4 --json out/feedback-replay.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from _common import cpu_line, lscpu, machine_info, write_json
from passersby.app.installation import build
from passersby.settings import ScreenSettings, load_settings


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=14.0, help="seconds of the feedback screen (>= 3 tempo)")
    ap.add_argument("--tempo", type=float, default=6.0, help="seconds per segment")
    ap.add_argument("--frames", type=int, default=8, help="frames of one segment re-rendered after the first")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console(width=120)
    cpu = lscpu()
    console.print(cpu_line(cpu))
    home = Path(tempfile.mkdtemp(prefix="passersby-replay-"))
    from passersby.settings import SettingsError

    s = load_settings(None, {"walk.tempo": args.tempo, "enhancer.mode": "off", "stream.seed": 7}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("loop", "", 0, source="feedback"),))
    try:
        inst = build(s, home)
    except (SettingsError, ValueError) as e:
        console.print(f"error: {e}", markup=False, highlight=False)
        return 2
    try:
        inst.engine.start(pace=False)
        frames = [inst.engine.take(0) for _ in range(round(args.seconds * s.walk.fps))]
    finally:
        inst.close()
    starts = sorted({f.key["segment"]["start"] for f in frames})
    seg = [f for f in frames if f.key["segment"]["start"] == starts[-2]]  # the last whole segment
    before = [f for f in frames if f.key["segment"]["start"] == starts[-3]] if len(starts) > 2 else []
    rng = np.random.default_rng(0)
    late = seg[-1]
    others = [seg[i] for i in rng.choice(len(seg) - 1, min(args.frames, len(seg) - 1), replace=False)]
    fresh = build(s, home)  # another process's view: the ledger on disk, nothing kept yet
    try:
        rr = fresh.rerenderer()
        t0 = time.perf_counter()
        first_ok = np.array_equal(rr.shown(late.key), late.image)
        if before:  # the segment before: its crossfade into this one needs it too
            first_ok = first_ok and np.array_equal(rr.shown(before[-1].key), before[-1].image)
        first_s = time.perf_counter() - t0
        times, ok = [], [first_ok]
        for f in others:
            t0 = time.perf_counter()
            ok.append(np.array_equal(rr.shown(f.key), f.image))
            times.append(time.perf_counter() - t0)
    finally:
        fresh.close()
    result: dict[str, Any] = {
        "machine": machine_info(), "lscpu": cpu, "args": {k: str(v) for k, v in vars(args).items()},
        "segment_frames": len(seg), "step_every": frames[0].key["feedback"]["step_every"],
        "first_from_anchors_s": first_s, "first_covers_segments": 1 + bool(before), "kept_states_s": times, "kept_states_median_s": statistics.median(times),
        "kept_states_max_s": max(times), "bit_exact": all(ok)}
    console.print(f"segment of {len(seg)} frames (a painting every {result['step_every']}): first re-renders "
                  f"{first_s:.2f} s from the anchors ({result['first_covers_segments']} segments); then {len(times)} frames: median "
                  f"{result['kept_states_median_s']:.3f} s, max {result['kept_states_max_s']:.3f} s; "
                  f"bit-exact: {result['bit_exact']}")
    write_json(args.json, result)
    return 0 if result["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
