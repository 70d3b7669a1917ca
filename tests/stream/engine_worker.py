"""The engine kill test's victim: a real Engine (two screens, paced, real ledger) with a cheap
numpy renderer; every published frame is written to stdout as one line, with one write(2):

    SCREEN FRAME_INDEX LEDGER_ID,LEDGER_ID,...

(the ledger ids of the anchors the frame was rendered from). Usage:
python engine_worker.py LEDGER SEED
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.sources import LatentWalk
from passersby.stream.walker import WalkConfig

WALK = WalkConfig(tempo=0.1, fps=60.0)

DIM = 128


def fake_renderer():
    """(1, d) latent -> (1, 8, 8, 3) uint8: a pure function of z, like a generator."""
    def render(z: np.ndarray) -> np.ndarray:
        return (np.tanh(z[:, :192 // 1][:, :DIM]).repeat(2, axis=1)[:, :192].reshape(-1, 8, 8, 3) * 127 + 128).astype(np.uint8)
    return render


def plans() -> list[ScreenPlan]:
    return [ScreenPlan(name, lambda rng: rng.standard_normal(DIM),
                       lambda anchors: LatentWalk(WALK, anchors, fake_renderer(), "kill-test"))
            for name in ("left", "right")]


def main(argv: list[str]) -> None:
    path, seed = argv[1], int(argv[2])
    engine = Engine(plans(), WALK.fps, path, DIM, "kill-test", queue_size=4, seed=seed)

    def show(frame) -> None:
        ids = ",".join(str(i) for i in frame.key["ledger_ids"])
        os.write(1, f"{frame.screen} {frame.index} {ids}\n".encode())

    engine.hub.subscribe(show)
    engine.start()
    while True:
        engine.check()
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv)
