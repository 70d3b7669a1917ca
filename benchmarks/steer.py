"""A slider's latency on the live installation: how many published frames after a control moves
a direction until a screen shows it, with Engine.steer (frames queued ahead beyond the next 2
rendered again) beside the source's set_offset alone (the queue plays out first), in one run.

The real installation (shipped generator, its shipped direction file, the enhancer chain chosen
at start, a throwaway ledger), paced at walk.fps. Each of --moves moves the "head turn" slider
between -3 and +3 at a random moment; the latency is counted in frames the pacer published on
that screen from the call to the first frame whose key moved toward the new target. Also: late
frames (the pacer found no frame: the producer was re-rendering) per move.

Usage:
    python benchmarks/steer.py --moves 12 --json out/steer.json
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import cpu_line, lscpu, machine_info, median, write_json
from passersby.app.installation import build
from passersby.settings import ScreenSettings, load_settings

SCREEN, NAME, ID = "turn", "head turn", "yaw"


def shown_amount(key: dict[str, Any]) -> float:
    """The slider amount a frame shows: its own, or between two keyframes the blend of its
    keyframe's and the next one's (a change keeps the keyframe already shown, stream/keyframes)."""
    own = key.get("offsets", {}).get(ID, 0.0)
    between = key.get("between")
    if not between:
        return own
    return (1 - between["mix"]) * own + between["mix"] * between["next"].get("offsets", {}).get(ID, 0.0)


class Published:
    """The amounts of the frames the pacer publishes on SCREEN, in order (hub subscription)."""

    def __init__(self, hub) -> None:  # noqa: ANN001 - stream/frames.FrameHub
        self.amounts: list[float] = []
        self.lock = threading.Lock()
        self.unsubscribe = hub.subscribe(self._on)

    def _on(self, frame) -> None:  # noqa: ANN001 - stream/frames.Frame
        if frame.screen == SCREEN:
            with self.lock:
                self.amounts.append(shown_amount(frame.key))

    def count(self) -> int:
        with self.lock:
            return len(self.amounts)

    def since(self, start: int) -> list[float]:
        with self.lock:
            return self.amounts[start:]


def latency(pub: Published, move, target: float, timeout: float = 5.0) -> int | None:  # noqa: ANN001
    """Frames published from `move()` until one moved toward `target`; None if none in `timeout`."""
    start = pub.count()
    before = pub.since(start - 1)[0] if start else 0.0
    move()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for k, a in enumerate(pub.since(start)):
            if (target - before) * (a - before) > 0:
                return k + 1
        time.sleep(0.005)
    return None


def run(moves: int, seconds_apart: float, seed: int) -> dict[str, Any]:
    s = load_settings(None, {"stream.seed": seed}, search=False)
    s = dataclasses.replace(s, screens=(ScreenSettings(SCREEN, "feminine", 0, "walk"),))
    inst = build(s, dry_ledger=True)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"engine_steer": [], "set_offset_only": []}
    try:
        engine = inst.engine
        engine.start(pace=True)
        pub = Published(engine.hub)
        source = engine.producers[0].source
        target = 3.0
        for i in range(moves):
            time.sleep(seconds_apart * (0.5 + rng.random()))  # the queue refills between moves
            for how in ("engine_steer", "set_offset_only"):
                target = -target
                call = (lambda t=target: engine.steer(NAME, t, SCREEN)) if how == "engine_steer" else \
                    (lambda t=target: source.set_offset(NAME, t))
                out[how].append(latency(pub, call, target))
                time.sleep(seconds_apart * (0.5 + rng.random()))
        stats = engine.pacer.stats() if engine.pacer is not None else {}
        pub.unsubscribe()
    finally:
        inst.close()
    return {"latency_frames": out, "pacer": stats, "queue": s.stream.queue, "fps": s.walk.fps,
            "chain": inst.engine.info.get("chain_start")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moves", type=int, default=12, help="slider moves per way of moving it")
    ap.add_argument("--apart", type=float, default=1.0, help="seconds between moves (randomised 0.5-1.5x)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(cpu_line(lscpu()))
    result: dict[str, Any] = {"machine_start": machine_info(), "settings": vars(args) | {"json": str(args.json)}}
    result.update(run(args.moves, args.apart, args.seed))
    result["machine_end"] = machine_info()
    lat = result["latency_frames"]
    summary = {}
    for how, xs in lat.items():
        got = [x for x in xs if x is not None]
        summary[how] = {"median": median(got) if got else None, "max": max(got) if got else None,
                        "missed": len(xs) - len(got)}
    a, b = summary["set_offset_only"]["median"], summary["engine_steer"]["median"]
    summary["ratio_set_offset_over_steer"] = round(a / b, 2) if a and b else None
    result["summary"] = summary
    for how, v in summary.items():
        print(how, v)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
