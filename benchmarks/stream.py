"""The live stream on this machine: frames/s per screen, frame intervals, speed-up over eager.

Two phases, both with the real engine (stream/engine.py: a producer thread per screen, the
ledger, the walker) on the shipped model, two screens (masculine, feminine), a throwaway ledger:

1. Throughput, unpaced: both screens render as fast as they can, at the same time (as they
   do live), for --throughput-seconds each with
      reference   eager PyTorch on the training-time Generator (runtime "torch")
      fast        the chosen runtime (default "auto": OpenVINO on the fused generator)
   The speed-up is fast / reference frames/s per screen, measured in the same run.
2. Live, paced at the walk's fps (30) for --seconds (the issue's target: 600), with the fast
   runtime and a sink consuming every frame: "web" = the kiosk server (JPEG encoding, WebSocket
   push) with one client per screen that receives and acks every frame, as the kiosk browsers
   do - on their own machines: the clients do not decode the JPEGs here (--decode makes them,
   charging a browser's decoding to the installation's two cores); "none" = no sink. Reports displayed
   frames/s per screen, p50/p99/max interval between displayed frames (nominal 33.3 ms), and
   late ticks (the pacer found no frame ready: the screen held its last frame).

Usage:
    python benchmarks/stream.py                                   # 10 min live + 2 x 20 s
    python benchmarks/stream.py --mode feedback --painter runs/painter/model.safetensors --seconds 120
    python benchmarks/stream.py --seconds 60 --sink none --json out/stream.json
    python benchmarks/stream.py --seconds 150 --burst 20:30 --raise-after 30   # down under load, and back up
    python benchmarks/stream.py --setting stream.home=/srv/h --setting taste.curator=ada --setting taste.exactingness=1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import CpuMeter, busy_note, machine_info, median, peak_gflops, setting, write_json
from passersby.settings import load_settings
from passersby.app.installation import build


MODE = {"mode": "walk", "painter": "", "enhancer": "auto", "enhancer_path": "", "raise_after": None}  # every screen's chain
SETTINGS: dict[str, Any] = {}  # --setting KEY=VALUE: e.g. a curator's taste (taste.curator, stream.home)


def _installation(runtime: str, threads: int, queue: int, pinned: bool = False):
    """The installation as a user gets it; `pinned`: every frame through the whole chain
    (feedback.step_every = enhancer.every = 1), so two runtimes compute the same work."""
    import dataclasses

    over = {"model.runtime": runtime, "model.threads": threads, "stream.queue": queue,
            "feedback.painter": MODE["painter"], "enhancer.mode": MODE["enhancer"], "enhancer.path": MODE["enhancer_path"]}
    if MODE["raise_after"] is not None:
        over["enhancer.raise_after"] = MODE["raise_after"]
    over.update(SETTINGS)
    if pinned:
        over.update({"feedback.step_every": 1, "enhancer.every": 1})
        if MODE["enhancer"] == "auto":  # the same chain for every runtime: the enhancer wherever one exists
            from passersby.app.chain import enhancer_path

            over["enhancer.mode"] = "on" if enhancer_path(MODE["enhancer_path"], "auto") else "off"
    s = load_settings(None, over, search=False)
    s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=MODE["mode"]) for sc in s.screens))
    return build(s, dry_ledger=True)


def throughput(runtime: str, seconds: float, threads: int) -> dict[str, Any]:
    """Unpaced frames/s per screen with both screens rendering at once, every frame through the
    whole chain (pinned: the same work for every runtime)."""
    inst = _installation(runtime, threads, queue=4, pinned=True)
    e = inst.engine
    counts = [0] * len(e.screens)
    try:
        e.start(pace=False)
        for k in range(len(counts)):  # warm-up: first frames compile / fill caches
            e.take(k)
        stop = time.perf_counter() + seconds
        t0 = time.perf_counter()

        def drain(k: int) -> None:
            while time.perf_counter() < stop:
                e.take(k)
                counts[k] += 1

        threads_ = [threading.Thread(target=drain, args=(k,)) for k in range(len(counts))]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        inst.close()
    st = e.status()
    return {"runtime": inst.runtime, "fps_per_screen": {n: c / wall for n, c in zip(e.screens, counts)},
            "chains": st.get("chains")}


def gflops_per_chain_frame() -> dict[str, float]:
    """GFLOPs of one frame through each part of the chain (FlopCounterMode, 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from generator import gflops_per_frame
    from passersby.app.chain import enhancer_path
    from passersby.checkpoint import load_model
    from passersby.sample import default_model_path

    g, _ = load_model(default_model_path())
    out = {"generator": gflops_per_frame(g.float().eval())}
    side = g.cfg.resolution
    if MODE["mode"] == "feedback":
        from passersby.app.feedback import painter_path
        from passersby.model.painter import LoopStep
        from passersby.model.load import load_painter

        p, _ = load_painter(painter_path(MODE["painter"]))
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            LoopStep(p)(torch.zeros(1, 3, side, side), torch.zeros(1, side, side, 2))
        out["painting"] = counter.get_total_flops() / 1e9
    path = enhancer_path(MODE["enhancer_path"], MODE["enhancer"])
    if path is not None:
        from passersby.model.load import load_enhancer

        e, _ = load_enhancer(path)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            e(torch.zeros(1, 3, side, side))
        out["enhancer"] = counter.get_total_flops() / 1e9
    return out


class WebClients:
    """One WebSocket client per screen, in a thread: receives, decodes, acks every frame."""

    def __init__(self, url: str, screens: list[str], decode: bool) -> None:
        self.url, self.screens, self.decode = url, screens, decode
        self.received = {s: 0 for s in screens}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._main())

    async def _main(self) -> None:
        import asyncio

        await asyncio.gather(*(self._client(s) for s in self.screens))

    async def _client(self, screen: str) -> None:
        import aiohttp
        import cv2

        from passersby.web.protocol import decode_frame_message

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{self.url}ws/{screen}") as ws:
                while not self.stop.is_set():
                    msg = await ws.receive(timeout=5)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        _header, jpeg = decode_frame_message(msg.data)
                        if self.decode:
                            cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                        self.received[screen] += 1
                        await ws.send_str("ack")
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return


class Burst:
    """A passing load: one busy process per core from `start` to `start + length` seconds (a backup,
    an update, a CI run beside the installation)."""

    def __init__(self, spec: str | None) -> None:
        self.start, self.length = (float(x) for x in spec.split(":")) if spec else (None, 0.0)
        self.procs: list[subprocess.Popen] = []

    def tick(self, t: float) -> None:
        if self.start is None:
            return
        if self.start <= t < self.start + self.length and not self.procs:
            self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
        elif t >= self.start + self.length:
            self.stop()

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


def live(runtime: str, seconds: float, threads: int, sink: str, queue: int, decode: bool,
         freeze_gc: bool = True, burst: str | None = None) -> dict[str, Any]:
    inst = _installation(runtime, threads, queue)
    load, timeline = Burst(burst), []
    e = inst.engine
    server = clients = None
    try:
        e.start(freeze_gc=freeze_gc)
        if sink == "web":
            from passersby.web.server import KioskServer

            server = KioskServer(e.hub, port=0)
            server.start()
            clients = WebClients(server.url, e.screens, decode)
            clients.thread.start()
        e.pacer.intervals = {n: type(v)(len(v.data)) for n, v in e.pacer.intervals.items()}  # from now on
        e.pacer.worst = {}
        shown0 = dict(e.pacer.shown)
        t0, m0 = time.perf_counter(), time.monotonic()
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.5)
            e.check()
            now = time.perf_counter() - t0
            load.tick(now)
            chains = e.status().get("chains") or {}
            timeline.append({"s": round(now, 1), "burst": bool(load.procs),
                             "level": {n: c.get("level") for n, c in chains.items()},
                             "shown": dict(e.pacer.shown)})
        wall = time.perf_counter() - t0
        st = e.status()
        pct = e.pacer.interval_percentiles((50, 99))
        worst = {n: {"ms": 1000 * w[0], "ended_s_after_start": w[1] - m0, "frame": w[2]} for n, w in e.pacer.worst.items()}
        # How long a claim took (the proposal: with a taste's look it renders candidates) and where it ran.
        claims = {p.plan.name: {"ahead": p.anchors.ahead, "n": len(p.anchors.claim_seconds),
                                "median_ms": 1000 * median(list(p.anchors.claim_seconds)) if p.anchors.claim_seconds else None,
                                "max_ms": 1000 * max(p.anchors.claim_seconds, default=float("nan"))}
                  for p in e.producers}
        last = e.hub.latest(e.screens[0])
        side = None if last is None else int(last.image.shape[0])
    finally:
        load.stop()
        if clients:
            clients.stop.set()
        if server:
            server.stop()
        inst.close()
    return {
        "runtime": inst.runtime, "sink": sink, "seconds": wall,
        "fps_per_screen": {n: (st["frames_shown"][n] - shown0[n]) / wall for n in e.screens},
        "intervals_ms": {n: {k: v * 1000 for k, v in p.items()} for n, p in pct.items()},
        "worst_interval": worst,
        "late_frames": st["late_frames"], "render_ms_median": st["render_ms"],
        "frames_received_by_web_clients": None if clients is None else dict(clients.received),
        "faces": st["faces_this_run"], "claims": claims, "frame_side": side, "chains": st.get("chains"), "chain_start": st.get("chain_start"),
        "burst": burst, "chain_timeline": timeline,
    }


def frame_gflops(parts: dict[str, float], chain: dict[str, Any] | None) -> float:
    """GFLOPs of one displayed frame of a chain: its source (a painting for feedback screens,
    else a generator frame) plus the enhancer when the chain runs it, over the keyframe spacing."""
    source = parts["painting"] if "painting" in parts else parts["generator"]
    enhanced = bool(chain) and "enhancer" in chain.get("stages", "")
    return (source + (parts.get("enhancer", 0.0) if enhanced else 0.0)) / ((chain or {}).get("every") or 1)


def derive(result: dict[str, Any]) -> None:
    """Per screen: GFLOPs per frame of the chain the unpaced fast run used, and the GFLOP/s it achieved."""
    parts, fast = result["gflops_per_chain_frame"], result["fast"]
    chains = fast.get("chains") or {}
    result["gflops_per_frame"] = {n: frame_gflops(parts, chains.get(n)) for n in fast["fps_per_screen"]}
    result["achieved_gflop_per_s"] = {n: result["gflops_per_frame"][n] * fast["fps_per_screen"][n]
                                      for n in fast["fps_per_screen"]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="live phase length")
    ap.add_argument("--throughput-seconds", type=float, default=20.0)
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="threads per screen's renderer")
    ap.add_argument("--queue", type=int, default=12, help="frames rendered ahead per screen")
    ap.add_argument("--sink", choices=("web", "none"), default="web")
    ap.add_argument("--decode", action="store_true", help="web clients decode every JPEG (in this process)")
    ap.add_argument("--mode", choices=("walk", "feedback"), default="walk", help="every screen's source")
    ap.add_argument("--painter", default="", help="feedback: painter file (default: the shipped one)")
    ap.add_argument("--enhancer", choices=("auto", "on", "off"), default="auto", help="the learned upscaler")
    ap.add_argument("--enhancer-path", default="", help="enhancer file (default: the shipped one)")
    ap.add_argument("--no-gc-freeze", action="store_true", help="live phase without gc.freeze at start (A/B)")
    ap.add_argument("--burst", default=None, metavar="START:SECONDS",
                    help="live phase: one busy process per core from START for SECONDS (a passing load)")
    ap.add_argument("--raise-after", type=float, default=None,
                    help="[enhancer] raise_after for this run (seconds of headroom before a chain steps back up)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a passersby setting for every phase, e.g. taste.curator=ada (repeatable)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    MODE.update(mode=args.mode, painter=args.painter, enhancer=args.enhancer, enhancer_path=args.enhancer_path,
                raise_after=args.raise_after)
    SETTINGS.update(setting(kv) for kv in args.setting)
    console = Console(width=max(140, Console().width))  # the table is wide; logs are not ttys
    result: dict[str, Any] = {"machine_start": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    console.print("roofline: one thread's measured peak ...")
    result["peak_gflop_per_s_one_thread"] = peak = peak_gflops()
    result["gflops_per_chain_frame"] = parts = gflops_per_chain_frame()
    cpu = CpuMeter()
    console.print("throughput, both screens unpaced, every frame through the whole chain: reference (eager PyTorch) ...")
    ref = throughput("torch", args.throughput_seconds, args.threads)
    console.print(f"throughput: {args.runtime} ...")
    fast = throughput(args.runtime, args.throughput_seconds, args.threads)
    console.print(f"live, paced at 30 fps, sink {args.sink}, {args.seconds:.0f} s ...")
    lv = live(args.runtime, args.seconds, args.threads, args.sink, args.queue, args.decode, not args.no_gc_freeze,
              args.burst)
    result.update(reference=ref, fast=fast, live=lv, cpu=cpu.stop(), machine_end=machine_info())
    result["speedup_per_screen"] = {n: fast["fps_per_screen"][n] / ref["fps_per_screen"][n] for n in ref["fps_per_screen"]}

    roof = max(peak.values())
    derive(result)
    t = Table(title=f"stream ({args.mode}, enhancer {args.enhancer}): {fast['runtime']} vs eager PyTorch, "
                    f"live {lv['seconds']:.0f} s with sink {args.sink}")
    for col in ("screen", "GFLOPs/frame", "eager fps", f"{fast['runtime']} fps", "speed-up", "GFLOP/s (% of roof)",
                "live fps", "p50 ms", "p99 ms", "max ms", "late ticks", "live chain"):
        t.add_column(col, justify="right")
    for n in ref["fps_per_screen"]:
        iv = lv["intervals_ms"][n]
        ach = result["achieved_gflop_per_s"][n]
        per_frame = result["gflops_per_frame"][n]
        ch = (lv.get("chains") or {}).get(n, {})
        t.add_row(n, f"{per_frame:.2f}", f"{ref['fps_per_screen'][n]:.1f}", f"{fast['fps_per_screen'][n]:.1f}",
                  f"{result['speedup_per_screen'][n]:.2f}x", f"{ach:.0f} ({100 * ach / roof:.0f} %)",
                  f"{lv['fps_per_screen'][n]:.2f}", f"{iv['p50']:.1f}", f"{iv['p99']:.1f}", f"{iv['max']:.1f}",
                  str(lv["late_frames"][n]), f"{ch.get('stages', '-')}, every {ch.get('every', '-')}")
    console.print(t)
    console.print("unpaced columns: every frame through the whole chain (feedback.step_every = enhancer.every = 1) "
                  "on both runtimes; GFLOPs per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    console.print("roof (one thread, measured now): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    console.print("p99 target: <= 1.5 x 33.3 ms = 50 ms; fps target: >= 30 per screen")
    note = busy_note(result["cpu"])
    if note:
        console.print(f"[yellow]{note}[/yellow]")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
