"""The peepshow, captures and prints with the shipped models, on this machine.

1. Peep: the real `passersby peep` installation (shipped generator and enhancer, kiosk server,
   one WebSocket client) pressed --presses times; time from each press to (a) the pacer
   publishing the face (what a window presents next) and (b) the kiosk client receiving it.
2. Captures: the real installation (walk screens, and feedback screens) running paced; each
   screen captured --captures times: is the re-render bit for bit the frame shown
   ("matches_shown"), how long the re-render took, what quality the capture has.
3. Print: one capture printed at A4, A2 and A3 (300 dpi): pixel sizes, seconds, file sizes;
   with --example DIR, the last print reduced to 1200 px high and its PDF's first page
   rendered by pdftoppm, and the capture itself, for people to look at.

Usage:
    python benchmarks/peep_capture.py --json docs/prints/peep-capture.json --example docs/prints
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import machine_info, write_json
from passersby.app.capture import capture_screen
from passersby.app.installation import build
from passersby.app.peep import SCREEN, PressLatency, peep_settings
from passersby.scratch import ScratchDir
from passersby.settings import load_settings


class FirstFaces:
    """A kiosk WebSocket client noting when each showing's first frame arrives."""

    def __init__(self, url: str) -> None:
        self.url, self.arrived, self.stop = url, {}, threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import aiohttp

        from passersby.web.protocol import decode_frame_message

        async with aiohttp.ClientSession() as session, session.ws_connect(f"{self.url}ws/{SCREEN}") as ws:
            while not self.stop.is_set():
                msg = await ws.receive(timeout=5)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    return
                header, _ = decode_frame_message(msg.data)
                n = header["key"].get("showing")
                if n is not None and header["key"].get("state") == "face":
                    self.arrived.setdefault(n, time.monotonic())
                await ws.send_str("ack")


def peep(presses: int, home: Path) -> dict[str, Any]:
    from passersby.web import KioskServer

    s = peep_settings(load_settings(None, {"peep.seconds": 1.0, "peep.blank": "black", "peep.debounce": 0.0},
                                    search=False), "")
    inst = build(s, home)
    source = inst.engine.producers[0].source
    latency = PressLatency(source)
    inst.engine.hub.subscribe(latency)
    server = KioskServer(inst.engine.hub, port=0)
    try:
        inst.engine.start()
        server.start()
        client = FirstFaces(server.url)
        client.thread.start()
        time.sleep(2.0)
        for _ in range(presses):
            inst.engine.hub.control("press")
            time.sleep(1.6)
        client.stop.set()
        web = [1000 * (client.arrived[n] - t) for n, t in source.press_times.items() if n in client.arrived]
    finally:
        server.stop()
        inst.close()
    return {**latency.summary(), "press_to_kiosk_client_ms_median": round(float(np.median(web)), 1) if web else None,
            "press_to_kiosk_client_ms_max": round(float(np.max(web)), 1) if web else None,
            "frame_side": int(source.black.shape[0]), "chain_start": inst.engine.info.get("chain_start")}


def captures(mode: str, n: int, home: Path) -> tuple[dict[str, Any], list]:
    s = load_settings(None, {}, search=False)
    s = dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source=mode) for sc in s.screens))
    inst = build(s, home)
    caps = []
    try:
        inst.engine.start()
        time.sleep(3.0)
        for _ in range(n):
            for screen in inst.engine.screens:
                caps.append(capture_screen(inst, screen))
            time.sleep(1.0)
    finally:
        inst.close()
    rec = [c.record for c in caps]
    return {"captures": len(rec), "matches_shown": sum(bool(r["matches_shown"]) for r in rec),
            "rerender_s_median": round(float(np.median([r["rerender_s"] for r in rec])), 3),
            "rerender_s_max": round(float(np.max([r["rerender_s"] for r in rec])), 3),
            "quality": sorted({r["quality"] for r in rec}), "shown_size": rec[0]["shown_size"], "size": rec[0]["size"],
            "runtime": inst.runtime}, caps


def prints(cap, example: Path | None, sizes: list[str], dpi: int) -> dict[str, Any]:
    from PIL import Image

    from passersby.app.chain import default_enhancer_path
    from passersby.app.print_cli import PrintJob, make_print

    out = {}
    with ScratchDir("passersby-print-") as tmp:
        for size in sizes:
            t0 = time.perf_counter()
            raster, pdf, method, pixels = make_print(cap, PrintJob(size, dpi, "gold", True, True),
                                                     Path(tmp) / size, default_enhancer_path())
            out[size] = {"pixels": list(pixels), "seconds": round(time.perf_counter() - t0, 1),
                         "png_mb": round(raster.stat().st_size / 1e6, 1), "pdf_mb": round(pdf.stat().st_size / 1e6, 1),
                         "upscaled_with": method}
            if example is not None and size == sizes[-1]:
                example.mkdir(parents=True, exist_ok=True)
                with Image.open(raster) as im:
                    small = im.convert("RGB").resize((round(im.width * 1200 / im.height), 1200), Image.LANCZOS)
                    small.save(example / f"example-{size}-reduced.jpg", quality=90)
                subprocess.run(["pdftoppm", "-r", "30", "-png", "-singlefile", "-f", "1", str(pdf),
                                str(example / f"example-{size}-pdf-page1")], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presses", type=int, default=8)
    ap.add_argument("--captures", type=int, default=3, help="captures per screen and mode")
    ap.add_argument("--modes", default="walk,feedback", help="screen sources to capture from")
    ap.add_argument("--print-sizes", default="A4,A2,A3", help="papers to print (the last one is the example)")
    ap.add_argument("--dpi", type=int, default=300)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--example", type=Path, help="folder for the example print (reduced) and its PDF's first page")
    a = ap.parse_args()
    result: dict[str, Any] = {"machine_start": machine_info(), "args": {k: str(v) for k, v in vars(a).items()}}
    with ScratchDir("passersby-bench-") as tmp:
        home = Path(tmp)
        result["peep"] = peep(a.presses, home / "peep")
        print("peep:", result["peep"])
        caps = []
        for mode in a.modes.split(","):
            result[f"capture_{mode}"], got = captures(mode, a.captures, home / mode)
            caps += got
            print(f"capture, {mode} screens:", result[f"capture_{mode}"])
        result["print"] = prints(caps[0], a.example, a.print_sizes.split(","), a.dpi)
        print("print:", result["print"])
        if a.example is not None:
            import shutil

            shutil.copy(caps[0].path.with_suffix(".json"), a.example / "example-capture.json")
            shutil.copy(caps[0].path, a.example / "example-capture.png")
    result["machine_end"] = machine_info()
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
