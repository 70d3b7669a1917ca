"""A screen's chain: its source, then (where this machine keeps the frame rate) the enhancer.

The stream core runs chains at levels (stream/keyframes.py) and knows no model; this module
measures what the models cost here and builds the levels, largest first:

    walk screens:      enhancer every frame, every 2nd, every 3rd (blends between), then
                       no enhancer every frame, 2nd, 3rd
    feedback screens:  enhancer every frame, then none (the loop paints at its own pace,
                       feedback.step_every; its frames are not re-sampled again)
    peep screens:      the enhancer on each face shown (a still per press costs nothing per frame)

The first level whose measured cost per displayed frame fits HEADROOM of the frame's time is
where the screen starts (a measurement is remembered between starts of the same models on the
same CPU: app/chain_costs.py); `Keyframes` lowers it if the screen later falls behind. `mode` "off"
drops the enhancer levels, "on" drops the levels without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from passersby.model.load import default_enhancer_path

HEADROOM = 0.8  # share of a frame's time a chain may use on average (the queue absorbs peaks)
MAX_EVERY = 3  # keyframes at least 10 times a second at 30 fps


class EnhanceStage:
    """The enhancer as a stream stage: picture (R, R, 3) -> (s R, s R, 3), recorded in the key.

    Example:
        >>> st = EnhanceStage(lambda im: im.repeat(2, 0).repeat(2, 1), "ab12")
        >>> im, key = st(np.zeros((2, 2, 3), np.uint8), {})
        >>> im.shape, key["stages"]
        ((4, 4, 3), [{'enhancer': 'ab12'}])
    """

    name = "enhancer"

    def __init__(self, upscale: Callable[[np.ndarray], np.ndarray], model_hash: str) -> None:
        self.upscale, self.model_hash = upscale, model_hash

    def __call__(self, image: np.ndarray, key: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        return self.upscale(image), {**key, "stages": list(key.get("stages", [])) + [{"enhancer": self.model_hash}]}


def enhancer_path(setting: str, mode: str) -> Path | None:
    """The enhancer file to use, or None (mode "off", or no file shipped and none set in "auto").

    Raises:
        ValueError: a set path that does not exist, or mode "on" without any enhancer.
    """
    if mode == "off":
        return None
    path = Path(setting) if setting else default_enhancer_path()
    if path.is_file():
        return path
    if setting or mode == "on":
        raise ValueError(f"enhancer.path: {path} does not exist; train one with `passersby train DATA "
                         "--kind enhancer --out runs/enhancer` and set enhancer.path, or set enhancer.mode = \"off\"")
    return None


def seconds_per_call(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of fn() after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@dataclass(frozen=True)
class Level:
    """One level of a chain: enhancer on or off, a keyframe every `every` frames, and the
    measured cost per displayed frame (seconds)."""

    enhance: bool
    every: int
    cost: float


def levels_for(source_s: float, enhance_s: float | None, fps: float, mode: str, keyframes: bool,
               every: int = 0) -> tuple[list[Level], int]:
    """(levels largest first, index of the first that fits the frame budget; the last if none).

    Args:
        source_s: seconds per frame of the source alone (walk: one render; feedback: its own
            average per displayed frame).
        enhance_s: seconds per enhanced frame, None without an enhancer.
        fps: the screen's frame rate.
        mode: enhancer.mode (auto, on, off).
        keyframes: whether the source may be asked only for every k-th frame (walk: yes).
        every: > 0 pins the keyframe spacing (enhancer.every), 0 tries 1..MAX_EVERY.

    Example:
        >>> lv, start = levels_for(0.030, 0.015, 30.0, "auto", True)
        >>> [(l.enhance, l.every) for l in lv][start]
        (True, 2)
    """
    everys = ((every,) if every else range(1, MAX_EVERY + 1)) if keyframes else (1,)
    levels = []
    if enhance_s is not None and mode != "off":
        levels += [Level(True, k, (source_s + enhance_s) / k) for k in everys]
    if mode != "on" or enhance_s is None:
        levels += [Level(False, k, source_s / k) for k in everys]
    budget = HEADROOM / fps
    start = next((i for i, lv in enumerate(levels) if lv.cost <= budget), len(levels) - 1)
    return levels, start


def describe_levels(levels: list[Level], start: int, fps: float) -> str:
    """One log line: what the screen starts with, and why."""
    lv = levels[start]
    what = ("enhancer on" if lv.enhance else "enhancer off") + (f", a keyframe every {lv.every} frames" if lv.every > 1 else "")
    return f"{what}: {1000 * lv.cost:.1f} ms per frame against {1000 * HEADROOM / fps:.1f} ms"


@dataclass(frozen=True)
class ChainPlan:
    """What every screen's chain is built from: the enhancer (or None), the side of the frames
    it upscales, and {source kind: (levels, start index)} measured on this machine."""

    enhancer: Any
    enhancer_hash: str | None
    side: int
    levels: dict[str, tuple[list[Level], int]]
    realtime: bool = True  # False: never lowered (offline rendering)

    @property
    def summary(self) -> dict[str, str]:
        return {kind: _short(lv[start]) for kind, (lv, start) in self.levels.items()}


def _short(lv: Level) -> str:
    return f"{'enhancer' if lv.enhance else 'no enhancer'}, keyframe every {lv.every}, {1000 * lv.cost:.1f} ms/frame"


def plan_chains(settings, g, info, painter, realtime: bool = True) -> ChainPlan:
    """Load the enhancer (settings.enhancer) and measure each kind of screen's levels.

    Args:
        settings: the installation's Settings.
        g: the generator (fp32, eval); info: its ModelInfo.
        painter: app.installation._painter's (net, info, k, seconds per painting) or None.
        realtime: False (offline rendering): nothing is measured, every screen runs its largest
            chain, the same on any machine (a rendered video does not depend on the CPU).
    """
    import logging
    import os

    from passersby.app.chain_costs import remembered
    from passersby.runtime import make_renderer, make_upscaler, resolve

    s, m = settings.enhancer, settings.model
    side = info.config.resolution
    path = enhancer_path(s.path, s.mode)
    net = ehash = None
    enhance_s = None
    if path is not None:
        from passersby.model.load import load_enhancer

        net, einfo = load_enhancer(path)
        ehash = einfo.hash
        enhance_s = 0.0
        if realtime:
            def measure_enhancer() -> float:
                up = make_upscaler(net, m.runtime, m.threads, side)
                frame = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
                return seconds_per_call(lambda: up(frame))

            enhance_s, _ = remembered({"enhancer": ehash, "runtime": resolve(m.runtime), "threads": m.threads,
                                       "side": side}, measure_enhancer)
    # Screens render side by side; with fewer cores than their threads, each gets a share.
    share = max(1.0, len(settings.screens) * m.threads / (os.cpu_count() or 1))
    kinds = {sc.source for sc in settings.screens}
    levels = {}
    log = logging.getLogger("passersby")
    for kind in sorted(kinds):
        if not realtime:
            source_s = 0.0
        elif kind == "peep":  # a still per press: nothing to keep up with
            source_s = 0.0
        elif kind == "walk":
            def measure_walk() -> float:
                render = make_renderer(g, m.runtime, m.threads, -1 if info.config.n_classes else None)
                z = np.zeros((1, info.config.z_dim), np.float32)
                return seconds_per_call(lambda: render(z))

            source_s, _ = remembered({"generator": info.hash, "runtime": resolve(m.runtime), "threads": m.threads},
                                     measure_walk)
        else:  # feedback: a painting every k frames, two loops during crossfades
            _, _, k, paint_s = painter
            source_s = paint_s / k * (1 + settings.feedback.crossfade / settings.walk.tempo)
        lv, start = levels_for(source_s * share, None if enhance_s is None else enhance_s * share,
                               settings.walk.fps, s.mode, keyframes=kind == "walk", every=s.every)
        levels[kind] = (lv, start)
        log.info("chain for %s screens: %s", kind, describe_levels(lv, start, settings.walk.fps))
    return ChainPlan(net, ehash, side, levels, realtime)
