"""The kill test's victim: claims anchors forever, "showing" each one only after claim returns.

Usage: python ledger_worker.py LEDGER CHANNEL SEED

Each claimed anchor is shown by writing "ID SHA\\n" to stdout with one write(2) (SHA: the first
16 hex digits of the SHA-256 of its float32 bytes), so a SIGKILL leaves whole lines only. The
test kills this process at random moments and restarts it on the same ledger.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

import numpy as np

from passersby.stream.ledger import SqliteLedger

DIM = 128


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(DIM, dtype=np.float32)


def main(argv: list[str]) -> None:
    path, channel, seed = argv[1], argv[2], int(argv[3])
    with SqliteLedger(path, DIM, seed=seed) as ledger:
        while True:
            anchor_id, z = ledger.claim(channel, propose, "kill-test")
            sha = hashlib.sha256(z.tobytes()).hexdigest()[:16]
            os.write(1, f"{anchor_id} {sha}\n".encode())  # unbuffered: shown means written
            # A real screen claims every few seconds; without a pause, a worker that just
            # committed retakes the write lock at once and starves the other one.
            time.sleep(0.002)


if __name__ == "__main__":
    main(sys.argv)
