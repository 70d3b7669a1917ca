"""OSC control on this machine: the stream under an OSC flood, and OSC message -> changed frame.

One installation (the shipped model, both screens, a throwaway ledger, the kiosk web server
with one WebSocket client per screen that receives and acks every frame, as kiosk browsers do)
with its control desk and the OSC server of `passersby show` ([osc] max_rate as set, default
1,000 datagrams/s read, the rest dropped unread by the kernel), measured in one run:

1. Flood: three phases of --seconds each, paced at 30 fps: no OSC (reference), a flood of
   --rate messages/s (default 10,000) from another process on this machine, then no OSC again.
   The flood mixes valid knob changes (walk/speed and tempo, or drift in feedback mode, random
   values in range), values out of range, unknown addresses and wrong types, and bytes that are
   not OSC (a quarter each). Per phase: displayed frames/s per screen, late ticks (the pacer
   found no frame ready), p50/p99/max interval between displayed frames; and the server's
   counts (read, refused, malformed, dropped unread past max_rate).
2. Latency: --trials times, a knob change over OSC (alternating values) and the time until the
   kiosk WebSocket client receives the first frame rendered with it (its key says the value),
   and how many frames it received in between; median and p99. The same at the pacer: the
   frames it published after the message, and after the desk applied it, before the first
   changed one (0 or 1 is "within 2 frames").

The flood sender shares this machine's cores with the installation (in a real room it is
another machine): its CPU is charged to the stream here, so this is the harder case.

Usage:
    python benchmarks/osc.py                                   # 3 x 10 s flood phases, 60 trials
    python benchmarks/osc.py --mode feedback --json-flood docs/operations/osc-flood.json --json-latency docs/operations/osc-latency.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import CpuMeter, lscpu, machine_info, percentile, write_json
from passersby.app.controls import ControlDesk
from passersby.app.installation import build
from passersby.app.osc import OscServer, osc_message
from passersby.settings import load_settings

SENDER = r"""
import random, socket, sys, time
port, rate, seconds, seed = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
datagrams = [bytes.fromhex(h) for h in sys.stdin.read().split()]
rng = random.Random(seed)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.perf_counter(); sent = 0
while True:
    now = time.perf_counter() - t0
    if now >= seconds:
        break
    due = int(now * rate)
    while sent < due:
        try:
            s.sendto(datagrams[rng.randrange(len(datagrams))], ("127.0.0.1", port))
        except OSError:
            pass
        sent += 1
    time.sleep(0.001)
print(sent, time.perf_counter() - t0)
"""


def flood_datagrams(mode: str, screens: list[str], n: int = 4000, seed: int = 0) -> list[bytes]:
    """A quarter each: valid knob changes, out of range, unknown or wrongly typed, not OSC."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        screen = screens[i % len(screens)]
        kind = i % 4
        if kind == 0:
            if mode == "feedback":
                out.append(osc_message(f"/passersby/{screen}/drift", rng.uniform(0.2, 2.0)))
            elif i % 8 == 0:
                out.append(osc_message(f"/passersby/{screen}/walk/speed", rng.uniform(0.5, 1.5)))
            else:
                out.append(osc_message(f"/passersby/{screen}/tempo", rng.uniform(3.0, 9.0)))
        elif kind == 1:
            out.append(osc_message(f"/passersby/{screen}/walk/speed", rng.uniform(9.0, 1e6)))
        elif kind == 2:
            out.append(rng.choice([osc_message(f"/passersby/{screen}/warp", 1.0),
                                   osc_message(f"/passersby/{screen}/tempo", "slow"),
                                   osc_message("/elsewhere/next"), osc_message(f"/passersby/{screen}/drift", 1, 2)]))
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))))
    return out


def installation(mode: str, queue: int):
    s = load_settings(None, {"stream.queue": queue}, search=False)
    s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=mode) for sc in s.screens))
    return build(s, dry_ledger=True), s


class Kiosk:
    """One WebSocket client per screen (a kiosk browser): receives and acks every frame; keeps
    the arrival time and key of each frame of `watch` for the latency trials."""

    def __init__(self, url: str, screens: list[str], watch: str) -> None:
        self.url, self.screens, self.watch = url, screens, watch
        self.received = {s: 0 for s in screens}
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(s) for s in self.screens))

    async def _client(self, screen: str) -> None:
        import aiohttp

        from passersby.web.protocol import decode_frame_message

        async with aiohttp.ClientSession() as session, session.ws_connect(f"{self.url}ws/{screen}") as ws:
            while not self.stop.is_set():
                msg = await ws.receive(timeout=5)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    t = time.perf_counter()
                    header, _jpeg = decode_frame_message(msg.data)
                    self.received[screen] += 1
                    if screen == self.watch:
                        with self.lock:
                            self.arrivals.append((t, header["key"]))
                    await ws.send_str("ack")
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return


def phase(e, seconds: float, sender: subprocess.Popen | None = None) -> dict[str, Any]:
    """Displayed fps, late ticks and intervals of the pacer over `seconds` (with the flood running)."""
    p = e.pacer
    shown0, late0 = dict(p.shown), dict(p.late)
    live0 = {q.plan.name: (q.frames.generation, q.frames.coalesced, q.frames.stood_in) for q in e.producers}
    n0 = {s: p.intervals[s].n for s in e.screens}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        time.sleep(0.25)
        e.check()
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": wall, "fps_per_screen": {}, "late_frames": {}, "intervals_ms": {}}
    for s in e.screens:
        ring, n1 = p.intervals[s], p.intervals[s].n
        idx = np.arange(n0[s], n1) % len(ring.data)
        iv = ring.data[idx] * 1000 if len(idx) else np.zeros(1)
        out["fps_per_screen"][s] = (p.shown[s] - shown0[s]) / wall
        out["late_frames"][s] = p.late[s] - late0[s]
        out["intervals_ms"][s] = {"p50": float(np.percentile(iv, 50)), "p99": float(np.percentile(iv, 99)),
                                  "max": float(iv.max())}
    # Live changes that dropped frames rendered ahead (renews) and those merged in a storm (coalesced).
    out["renews"] = {q.plan.name: q.frames.generation - live0[q.plan.name][0] for q in e.producers}
    out["coalesced"] = {q.plan.name: q.frames.coalesced - live0[q.plan.name][1] for q in e.producers}
    # Frames dropped at a change shown because the changed one was not ready (frame_queue.take_ready).
    out["stood_in"] = {q.plan.name: q.frames.stood_in - live0[q.plan.name][2] for q in e.producers}
    if sender is not None:
        sent, send_s = sender.stdout.read().split()
        sender.wait(timeout=30)
        out["flood_sent"], out["flood_rate_achieved"] = int(sent), int(sent) / float(send_s)
    return out


def _first_changed(arrivals: list[tuple[float, dict[str, Any]]], t0: float, mode: str,
                   value: float) -> tuple[float, int] | None:
    """(seconds after t0, frames that came after t0 before it) of the first frame showing `value`."""
    after = [(t, key) for t, key in arrivals if t >= t0]
    for k, (t, key) in enumerate(after):
        if _shows(key, mode, value):
            return t - t0, k
    return None


def latency(desk: ControlDesk, kiosk: Kiosk, hub, port: int, mode: str, screen: str, trials: int) -> dict[str, Any]:
    """OSC message -> first frame whose key shows the new value: at the kiosk client (received
    over its WebSocket), and at the pacer (published: what "within 2 frames" counts)."""
    published: list[tuple[float, dict[str, Any]]] = []
    lock = threading.Lock()

    def on_frame(frame) -> None:
        if frame.screen == screen:
            with lock:
                published.append((time.perf_counter(), frame.key))

    unsubscribe = hub.subscribe(on_frame)
    applied: list[float] = []  # when the desk applied each change (after OSC's transport and parsing)
    desk.listeners.append(lambda event: applied.append(time.perf_counter()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rows = []
    try:
        for i in range(trials):
            value = [1.25, 0.75][i % 2] if mode == "walk" else [1.6, 0.4][i % 2]
            address = f"/passersby/{screen}/" + ("walk/speed" if mode == "walk" else "drift")
            with kiosk.lock, lock:
                start, pstart = len(kiosk.arrivals), len(published)
            napplied = len(applied)
            t0 = time.perf_counter()
            sock.sendto(osc_message(address, value), ("127.0.0.1", port))
            seen = pub = after_apply = None
            while time.perf_counter() - t0 < 5.0 and (seen is None or pub is None):
                time.sleep(0.001)
                with kiosk.lock, lock:
                    seen = _first_changed(kiosk.arrivals[start:], t0, mode, value)
                    pub = _first_changed(published[pstart:], t0, mode, value)
                    if pub is not None and len(applied) > napplied:
                        after_apply = _first_changed(published[pstart:], applied[napplied], mode, value)
            rows.append({"value": value, "ms": None if seen is None else 1000 * seen[0],
                         "frames_before": None if seen is None else seen[1],
                         "published_ms": None if pub is None else 1000 * pub[0],
                         "published_before": None if pub is None else pub[1],
                         "applied_ms": None if len(applied) <= napplied else 1000 * (applied[napplied] - t0),
                         "published_after_apply_before": None if after_apply is None else after_apply[1]})
            time.sleep(0.3 + 0.2 * random.random())  # trials apart, at no fixed phase of the pacer
    finally:
        unsubscribe()
        desk.listeners.pop()
    ms = [r["ms"] for r in rows if r["ms"] is not None]
    aa = [r["published_after_apply_before"] for r in rows if r["published_after_apply_before"] is not None]
    ams = [r["applied_ms"] for r in rows if r["applied_ms"] is not None]
    pms = [r["published_ms"] for r in rows if r["published_ms"] is not None]
    before = [r["frames_before"] for r in rows if r["frames_before"] is not None]
    pbefore = [r["published_before"] for r in rows if r["published_before"] is not None]
    return {"trials": rows, "n": len(rows), "missed": sum(r["ms"] is None for r in rows),
            "median_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
            "frames_before_changed": {str(k): before.count(k) for k in sorted(set(before))},
            "published": {"median_ms": percentile(pms, 50), "p99_ms": percentile(pms, 99),
                          "frames_published_before_changed": {str(k): pbefore.count(k) for k in sorted(set(pbefore))},
                          "applied_median_ms": percentile(ams, 50), "applied_p99_ms": percentile(ams, 99),
                          "frames_published_after_apply_before_changed": {str(k): aa.count(k) for k in sorted(set(aa))}},
            "changes_recorded": desk.report()["changes"]}


def _shows(key: dict[str, Any], mode: str, value: float) -> bool:
    if mode == "walk":  # the frame, or the keyframe it blends toward (the kept keyframe stays as shown)
        nxt = (key.get("between") or {}).get("next") or {}
        return value in ((key.get("timing") or {}).get("speed"), (nxt.get("timing") or {}).get("speed"))
    drifts = (key.get("segment") or {}).get("drifts") or []
    return bool(drifts) and drifts[-1][1] == value


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each flood phase")
    ap.add_argument("--rate", type=float, default=10_000.0, help="flood: OSC messages per second")
    ap.add_argument("--trials", type=int, default=60, help="latency trials")
    ap.add_argument("--mode", choices=("walk", "feedback"), default="walk", help="every screen's source")
    ap.add_argument("--queue", type=int, default=12, help="frames rendered ahead per screen")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds paced before measuring (compiled graphs, "
                                                               "the chain settling on its level)")
    ap.add_argument("--sender-nice", type=int, default=0, help="run the flood's sender at this niceness (19: it "
                    "yields the cores, as a sender on another machine would; default 0: it competes)")
    ap.add_argument("--max-rate", type=int, default=None, help="[osc] max_rate (default: the setting's)")
    ap.add_argument("--json-flood", type=Path, default=None)
    ap.add_argument("--json-latency", type=Path, default=None)
    args = ap.parse_args(argv)
    console = Console(width=max(120, Console().width))
    machine = machine_info()
    console.print(f"machine: {machine.get('cpu')}; building the installation ({args.mode}) ...")
    inst, settings = installation(args.mode, args.queue)
    e = inst.engine
    desk = ControlDesk(e)
    max_rate = args.max_rate or settings.osc.max_rate
    server = OscServer(desk, "127.0.0.1", 0, max_rate).start()
    from passersby.web.server import KioskServer

    kiosk_server = KioskServer(e.hub, port=0)
    flood: dict[str, Any] = {"machine_start": machine, "lscpu": lscpu(), "args": {k: str(v) for k, v in vars(args).items()},
                             "osc_max_rate": max_rate}
    try:
        e.start()
        kiosk_server.start()
        kiosk = Kiosk(kiosk_server.url, e.screens, e.screens[0])
        kiosk.thread.start()
        time.sleep(args.warmup)  # warm: compiled graphs, first faces, the chain's level, clients connected
        cpu = CpuMeter()
        console.print(f"flood phases: none / {args.rate:.0f} msg/s / none, {args.seconds:.0f} s each ...")
        flood["reference"] = phase(e, args.seconds)
        data = flood_datagrams(args.mode, e.screens)
        stats0 = server.stats()
        # --sender-nice: the sender yields the cores (in a room it runs on another machine).
        nice = ["nice", "-n", str(args.sender_nice)] if args.sender_nice else []
        sender = subprocess.Popen([*nice, sys.executable, "-c", SENDER, str(server.port), str(args.rate), str(args.seconds), "1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        sender.stdin.write(" ".join(d.hex() for d in data))
        sender.stdin.close()
        flood["flood"] = phase(e, args.seconds, sender)
        time.sleep(0.5)
        stats1 = server.stats()
        flood["flood"]["server"] = {k: (stats1[k] or 0) - (stats0[k] or 0) for k in stats1 if k != "port"}
        flood["after"] = phase(e, args.seconds)
        flood["cpu"] = cpu.stop()
        flood["desk"] = {k: v for k, v in desk.report().items() if k in ("changes", "refused", "via")}
        flood["frames_dropped_for_changes"] = {p.plan.name: p.frames.dropped for p in e.producers}
        flood["frames_received_by_kiosk_clients"] = dict(kiosk.received)
        flood["chains"] = e.status().get("chains")
        flood["machine_end"] = machine_info()
        write_json(args.json_flood, flood)
        console.print(f"latency: {args.trials} trials, OSC -> first changed frame at the kiosk client ...")
        late0, stood0 = e.pacer.late[e.screens[0]], e.producers[0].frames.stood_in
        lat = latency(desk, kiosk, e.hub, server.port, args.mode, e.screens[0], args.trials)
        # Calm changes, one at a time: ticks lost (late) and frames dropped at a change shown in their stead.
        lat.update(late_ticks=e.pacer.late[e.screens[0]] - late0, stood_in=e.producers[0].frames.stood_in - stood0)
        lat.update(machine=machine_info(), args=flood["args"], chains=e.status().get("chains"))
        write_json(args.json_latency, lat)
        kiosk.stop.set()
    finally:
        server.stop()
        kiosk_server.stop()
        inst.close()
    t = Table(title=f"stream under OSC ({args.mode}): {args.rate:.0f} msg/s for {args.seconds:.0f} s, max_rate {max_rate}")
    for col in ("phase", "screen", "fps", "late ticks", "p50 ms", "p99 ms", "max ms"):
        t.add_column(col, justify="right")
    for name in ("reference", "flood", "after"):
        ph = flood[name]
        for s in e.screens:
            iv = ph["intervals_ms"][s]
            t.add_row(name, s, f"{ph['fps_per_screen'][s]:.2f}", str(ph["late_frames"][s]), f"{iv['p50']:.1f}",
                      f"{iv['p99']:.1f}", f"{iv['max']:.1f}")
    console.print(t)
    console.print(f"changes that dropped frames / merged in a storm / dropped frames shown in a late one's stead: "
                  f"{flood['flood']['renews']} / {flood['flood']['coalesced']} / {flood['flood']['stood_in']}; "
                  f"latency trials: {lat['late_ticks']} late ticks, {lat['stood_in']} stood in")
    console.print(f"flood: sent {flood['flood'].get('flood_sent')} ({flood['flood'].get('flood_rate_achieved', 0):.0f}/s); "
                  f"server: {flood['flood']['server']}; desk: {flood['desk']}")
    console.print(f"latency OSC -> changed frame at the kiosk client: median {lat['median_ms']:.1f} ms, p99 "
                  f"{lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms over {lat['n'] - lat['missed']} trials "
                  f"({lat['missed']} missed); frames received before it: {lat['frames_before_changed']}")
    pub = lat["published"]
    console.print(f"at the pacer: published median {pub['median_ms']:.1f} ms, p99 {pub['p99_ms']:.1f} ms; frames "
                  f"published after the message before the changed one: {pub['frames_published_before_changed']}; "
                  f"the desk applied it {pub['applied_median_ms']:.1f} ms (p99 {pub['applied_p99_ms']:.1f} ms) after "
                  f"the send; frames published after that before the changed one: "
                  f"{pub['frames_published_after_apply_before_changed']} (0 or 1: within 2 frames)")
    console.print(f"machine: {flood['lscpu']['model_name']}, {machine.get('cpu_count')} CPUs, flags "
                  f"{' '.join(machine.get('simd_flags', []))} (all lscpu flags in the JSON)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
