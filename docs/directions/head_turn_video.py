"""Make docs/directions/head-turn.mp4: a face turned by the "head turn" slider moving -3 -> +3.

The real render path of `passersby render`: settings -> app/installation.build (the shipped model,
its shipped direction file, the enhancer chain, a throwaway ledger) -> Engine.take -> VideoWriter.
The screen starts at "head turn=-3" (screens.offsets) and the script moves the slider as a MIDI
knob would (Engine.steer -> the source's Steerable.set_offset), a little further each frame; the walk is slowed (walk.tempo
60 s) so the turn, not the next face, is what moves. Each frame's key (with its offsets) goes in
head-turn.keys.jsonl beside the video.

    .venv/bin/python docs/directions/head_turn_video.py           # writes the video (a minute)
    .venv/bin/python docs/directions/head_turn_video.py --check   # decodes it, measures the turn
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VIDEO, KEYS = HERE / "head-turn.mp4", HERE / "head-turn.keys.jsonl"
SECONDS, FPS = 4.0, 30.0


def make() -> None:
    from passersby.app.installation import build
    from passersby.outputs.video import VideoWriter
    from passersby.settings import ScreenSettings, load_settings

    s = load_settings(None, {"stream.seed": 11, "walk.tempo": 60.0, "walk.fps": FPS,
                             "enhancer.mode": "on", "enhancer.every": 1}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings("turn", "feminine", 0, "walk", "head turn=-3"),))
    inst = build(s, dry_ledger=True, realtime=False)
    n = int(SECONDS * FPS)
    try:
        inst.engine.start(pace=False)
        frame = inst.engine.take(0)
        keys = []
        with VideoWriter(VIDEO, frame.image.shape[1], frame.image.shape[0], FPS, crf=23) as video:
            for i in range(n):
                video.write(frame.image)
                keys.append(frame.key)
                inst.engine.steer("head turn", -3.0 + 6.0 * min(1.0, (i + 1) / (n - 24)), "turn")
                frame = inst.engine.take(0)
    finally:
        inst.close()
    KEYS.write_text("".join(json.dumps(k, sort_keys=True) + "\n" for k in keys))
    print(f"wrote {VIDEO} ({VIDEO.stat().st_size // 1024} KiB, {n} frames) and {KEYS}")


def check() -> dict:
    """Decode the video: frame count, size, the slider's amounts from the keys, and the head turn
    measured (model/yaw.measure_yaw) on the first and last frames; raises AssertionError if wrong."""
    import av

    from passersby.model.yaw import measure_yaw

    with av.open(str(VIDEO)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    keys = [json.loads(line) for line in KEYS.read_text().splitlines()]
    amounts = [k.get("offsets", {}).get("yaw", 0.0) for k in keys]
    first = float(np.mean([measure_yaw(f) for f in frames[:3]]))
    last = float(np.mean([measure_yaw(f) for f in frames[-3:]]))
    out = {"frames": len(frames), "bytes": VIDEO.stat().st_size, "side": frames[0].shape[0],
           "amounts": [amounts[0], amounts[-1]], "yaw": [round(first, 3), round(last, 3)]}
    assert len(frames) == len(keys) == int(SECONDS * FPS), out
    assert out["bytes"] < 2_000_000 and amounts[0] == -3.0 and amounts[-1] == 3.0, out
    assert all(b >= a for a, b in zip(amounts, amounts[1:])), "the slider only moves one way"
    assert last - first > 0.05, out  # the nose moved from the left of the eyes' middle to the right
    return out


if __name__ == "__main__":
    if "--check" not in sys.argv:
        make()
    print(check())
