"""Restart to first frame: process start -> the first frame of every screen at a kiosk client.

After a watchdog restart or a power cut the screens are black until the chain is ready. This
starts `passersby serve` as a fresh process (as systemd would), connects one WebSocket client
per screen (as the kiosk browsers would, retrying until the server answers) and times, from the
moment the process was started, the first frame each client receives. "cold" runs with an empty
compile cache (the first start after an install or an update), "warm" with the cache the cold
run left (every later start: passersby/compile_cache.py). Each kind runs `--runs` times in one
invocation, on this machine; lscpu goes into the JSON.

Usage:
    python benchmarks/first_frame.py                       # 2 cold + 3 warm starts
    python benchmarks/first_frame.py --runs 5 --json out/first-frame.json
    python benchmarks/first_frame.py --runs 3 --uncached 2   # and the reference: no cache at all
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import cpu_line, lscpu, machine_info, write_json

SCREENS = ("masculine", "feminine")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _first_frame(url: str, screen: str, t0: float, timeout: float) -> float:
    """Seconds from t0 to the first binary frame on ws/<screen> (connecting until it answers)."""
    import aiohttp

    deadline = t0 + timeout
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            try:
                async with session.ws_connect(f"{url}ws/{screen}", timeout=2) as ws:
                    while time.perf_counter() < deadline:
                        msg = await ws.receive(timeout=max(0.1, deadline - time.perf_counter()))
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            return time.perf_counter() - t0
                        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            break
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)  # not listening yet
    raise TimeoutError(f"no frame on {screen} within {timeout:.0f} s")


def one_start(home: Path, cache: Path | None, timeout: float) -> dict[str, Any]:
    """Start `passersby serve`, time each screen's first frame at a client, stop it (cache None:
    the compile cache off, every network converted at every start, as before issue 22)."""
    port = _free_port()
    env = {**os.environ, "PASSERSBY_COMPILE_CACHE": "off" if cache is None else str(cache), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "passersby.cli", "serve", "--home", str(home), "--port", str(port),
           "--screens", ",".join(SCREENS)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(home))
    try:
        async def both() -> list[float]:
            return await asyncio.gather(*(_first_frame(f"http://127.0.0.1:{port}/", s, t0, timeout) for s in SCREENS))

        seconds = asyncio.run(both())
    except TimeoutError as e:
        proc.kill()
        err = proc.communicate(timeout=30)[1].decode(errors="replace")[-2000:]
        raise SystemExit(f"error: {e}; serve said:\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"first_frame_s": dict(zip(SCREENS, seconds)), "all_screens_s": max(seconds)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="warm starts (cold: min(2, runs))")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a first frame")
    ap.add_argument("--uncached", type=int, default=0, help="also N starts with the compile cache off (the reference)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console(width=120)
    cpu = lscpu()
    console.print(cpu_line(cpu))
    console.print(f"flags: {' '.join(cpu['flags'])}", style="dim", markup=False)
    work = Path(tempfile.mkdtemp(prefix="passersby-first-frame-"))
    result: dict[str, Any] = {"machine": machine_info(), "lscpu": cpu, "args": vars(args) | {"json": str(args.json)},
                              "cold": [], "warm": [], "uncached": []}
    try:
        for i in range(min(2, args.runs)):  # each cold start: a new home and an empty cache
            (work / f"home-cold-{i}").mkdir(parents=True)
            r = one_start(work / f"home-cold-{i}", work / f"cache-cold-{i}", args.timeout)
            result["cold"].append(r)
            console.print(f"cold start {i + 1}: all screens {r['all_screens_s']:.2f} s")
        home, cache = work / "home-cold-0", work / "cache-cold-0"  # what the first cold start left
        for i in range(args.runs):
            r = one_start(home, cache, args.timeout)
            result["warm"].append(r)
            console.print(f"warm start {i + 1}: all screens {r['all_screens_s']:.2f} s")
        for i in range(args.uncached):
            r = one_start(home, None, args.timeout)
            result["uncached"].append(r)
            console.print(f"start without the cache {i + 1}: all screens {r['all_screens_s']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {k: {"median_s": statistics.median(x["all_screens_s"] for x in result[k]),
                   "max_s": max(x["all_screens_s"] for x in result[k])} for k in ("cold", "warm", "uncached")
               if result[k]}
    result["summary"] = summary
    t = Table(title="process start -> first frame of every screen at a kiosk client")
    for col in ("start", "runs", "median s", "max s"):
        t.add_column(col, justify="right")
    for k in summary:
        t.add_row(k, str(len(result[k])), f"{summary[k]['median_s']:.2f}", f"{summary[k]['max_s']:.2f}")
    console.print(t)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
