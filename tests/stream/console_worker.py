"""The edition kill test's console: two screens claiming from leases of a shared PostgreSQL ledger.

Usage: python console_worker.py URL HOME CONSOLE SEED LEASE

Each anchor is "shown" after claim returns by writing "ID SHA SHARED\\n" with one write(2)
(SHA: 16 hex digits of the SHA-256 of its float32 bytes; SHARED: 1 if the shared ledger answered
at that claim, 0 if it was played from the lease during an outage). When there is nothing to
show (lease used up, database away) it waits and retries, as the engine holds its last frame.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from passersby.stream.ledger import LeasedLedger, LedgerError

DIM = 128


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(DIM, dtype=np.float32)


def main(argv: list[str]) -> None:
    url, home, console, seed, lease = argv[1], Path(argv[2]), argv[3], int(argv[4]), int(argv[5])
    while True:
        try:
            led = LeasedLedger(url, home / "lease.sqlite", DIM, console, lease, seed=seed, connect_timeout=1)
            break
        except LedgerError:
            time.sleep(0.1)  # a new console needs the database once
    screen = 0
    while True:
        try:
            anchor_id, z = led.claim(("a", "b")[screen], propose, "kill-test")
        except LedgerError:
            time.sleep(0.05)
            continue
        sha = hashlib.sha256(z.tobytes()).hexdigest()[:16]
        os.write(1, f"{anchor_id} {sha} {int(led.last_state['shared'])}\n".encode())  # shown means written
        screen = 1 - screen
        time.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv)
