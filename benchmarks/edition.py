"""An edition's ledger: claims per second and claim latency with 1, 2 and 3 consoles, SQLite vs
PostgreSQL (direct, and through leases), and how long a lease covers a database outage.

Each console is a process claiming as fast as it can for --seconds (one screen each, 128-d
anchors, the shipped ledger's threshold and search keys). Backends:
- sqlite: one ledger file shared by the processes (what one machine can do; consoles on
  several machines cannot share it);
- postgres: claims straight in the shared PostgreSQL ledger (a throwaway local server on a unix
  socket: tests/pgserver.py; the network would add its round trips);
- leased: claims from the console's lease in local SQLite, one every 20 ms (300 times a screen's
  rate), while the console's lease worker leases the next ones from PostgreSQL in the background;
- outage: claims from the lease alone, the shared ledger away (until the lease is used up).
A lease of L anchors covers L x (seconds per face) of outage per screen; the face rate is
measured by the memory soak of the default installation (--soak JSON), or given.

Usage:
    python benchmarks/edition.py --seconds 10 --json docs/operations/edition.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine_info, write_json

ROOT = Path(__file__).resolve().parents[1]
DIM = 128
PACE_S = 0.02  # leased: a claim every 20 ms per console (a screen claims one every ~6 s)


def propose(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(DIM, dtype=np.float32)


def worker(backend: str, where: str, url: str, console: str, seconds: float, lease: int) -> None:
    """Claim for `seconds`; print one JSON line: the latencies in ms (leased: after filling the lease)."""
    from passersby.stream.ledger import LedgerSpec

    path = Path(where) if backend == "sqlite" else Path(where) / console / "ledger.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = "" if backend == "sqlite" else url
    spec = LedgerSpec(path, url, console, lease if backend in ("leased", "outage") else 0)
    lat = []
    # one channel per console, as in an edition (a leased ledger adds the console itself)
    channel = "screen" if spec.lease else f"{console}/screen"
    with spec.open(DIM, channel, seed=None) as led:
        led.claim(None, propose, "bench")  # connect, create: not counted
        if backend in ("leased", "outage"):
            led.fill("screen", propose, "bench")  # steady state: each claim takes one and leases one
        if backend == "outage":  # the shared ledger goes away: every claim comes from the lease
            led._went_down(RuntimeError("benchmark: offline"))
            led._retry_at = float("inf")
        end = time.perf_counter() + seconds
        while (t := time.perf_counter()) < end:
            try:
                led.claim(None, propose, "bench")
            except Exception:  # noqa: BLE001 - outage: the lease is used up, the run is over
                if backend != "outage":
                    raise
                break
            lat.append((time.perf_counter() - t) * 1000)
            if backend == "leased":
                time.sleep(PACE_S)  # a brisk but sustainable pace: the worker keeps the lease filled
    print(json.dumps(lat))


def run(backend: str, consoles: int, seconds: float, where: str, url: str, lease: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", backend, "--where", where, "--url", url,
            "--seconds", str(seconds), "--lease", str(lease)]
    procs = [subprocess.Popen(argv + ["--console", f"c{i}"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(consoles)]
    lats = [json.loads(p.communicate(timeout=seconds * 10 + 120)[0].strip().splitlines()[-1]) for p in procs]
    allv = np.array([x for lat in lats for x in lat])
    busy = max(sum(lat) for lat in lats) / 1000  # outage runs stop when the lease is used up
    row = {"backend": backend, "consoles": consoles, "claims": int(allv.size),
           "claims_per_s": round(allv.size / (min(seconds, busy) if backend == "outage" else seconds), 1),
           "p50_ms": round(float(np.percentile(allv, 50)), 2), "p99_ms": round(float(np.percentile(allv, 99)), 2),
           "max_ms": round(float(allv.max()), 2)}  # same rounding as p99: 0.84 > 0.8 failed a run
    print(row, flush=True)
    return row


def face_every_s(soak: Path | None, given: float | None) -> tuple[float, str]:
    if given:
        return given, "given"
    if soak and soak.exists():
        s = json.loads(soak.read_text())["samples"]
        screens = len(s[-1]["fps"])
        return (s[-1]["t_s"] - s[0]["t_s"]) * screens / (s[-1]["faces"] - s[0]["faces"]), str(soak)
    return 6.0, "assumed"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--consoles", default="1,2,3")
    ap.add_argument("--backends", default="sqlite,postgres,leased,outage")
    ap.add_argument("--lease", type=int, default=900)
    ap.add_argument("--soak", type=Path, default=ROOT / "docs" / "operations" / "memory-soak.json")
    ap.add_argument("--face-every", type=float, help="seconds per face per screen (default: from --soak)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker")
    ap.add_argument("--where", default="")
    ap.add_argument("--url", default="")
    ap.add_argument("--console", default="c0")
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker, a.where, a.url, a.console, a.seconds, a.lease)
        return 0

    sys.path.insert(0, str(ROOT / "tests"))
    from pgserver import PgServer

    from passersby.scratch import ScratchDir

    result: dict[str, Any] = {"machine_start": machine_info(), "args": {k: str(v) for k, v in vars(a).items()}}
    server = PgServer()
    rows = []
    try:
        with ScratchDir("passersby-edition-") as tmp:
            for backend in a.backends.split(","):
                for n in (int(x) for x in a.consoles.split(",")):
                    db = f"bench_{backend}_{n}"
                    url = server.create_database(db)
                    where = str(Path(tmp) / db / ("ledger.sqlite" if backend == "sqlite" else ""))
                    Path(where if backend != "sqlite" else Path(where).parent).mkdir(parents=True, exist_ok=True)
                    rows.append(run(backend, n, a.seconds, where, url, a.lease))
    finally:
        server.destroy()
    every, source = face_every_s(a.soak, a.face_every)
    result.update(rows=rows, lease=a.lease, seconds_per_face_per_screen=round(every, 2), face_rate_source=source,
                  lease_covers_minutes=round(a.lease * every / 60, 1), machine_end=machine_info())
    print(f"a lease of {a.lease} anchors per screen covers {a.lease * every / 60:.0f} minutes of outage "
          f"(a face every {every:.1f} s per screen, {source})")
    write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
