"""Feedback screens: the painter and the generator wired into the stream's feedback loop.

stream/feedback.py runs the loop and knows no model; this module gives it the three functions
it needs: `render_anchor` (the generator), `step` (read a moved picture into markers and paint
them: model/markers.py + the painter) and `face_found` (dlib's detector, for the "no face"
collapse check).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from passersby.model.load import default_painter_path


def painter_path(setting: str) -> Path:
    """The painter file the settings name, checked to exist (ValueError says what to do)."""
    path = Path(setting) if setting else default_painter_path()
    if not path.is_file():
        raise ValueError(f"feedback.painter: {path} does not exist; train one with "
                         "`passersby train DATA --kind painter --out runs/painter` and set feedback.painter")
    return path


def loop_step(painter: torch.nn.Module, runtime: str = "torch", threads: int = 1) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(picture (R, R, 3) uint8, field (R, R, 2) float32) -> the painter's reading of the moved
    picture (runtime.make_loop_step: "torch" is the eager reference, "auto" compiles it).

    Example:
        >>> step = loop_step(painter, "auto")  # a trained painter  # doctest: +SKIP
        >>> nxt = step(frame, drift_field(seed, 1, 256, cfg))  # a trained painter  # doctest: +SKIP
    """
    from passersby.runtime import make_loop_step

    return make_loop_step(painter, runtime, threads)


def face_found(image: np.ndarray) -> bool:
    """Whether dlib's detector finds a face (score > 0) in a frame."""
    from passersby.data.faces import face_score

    return face_score(image) > 0.0


HEADROOM = 0.8  # share of a frame's time the loop may use on average (the queue absorbs peaks)


def choose_step_every(step: Callable[[np.ndarray, np.ndarray], np.ndarray], size: int, fps: float,
                      crossfade_share: float, setting: int,
                      clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """(frames per painting, measured seconds per painting). `setting` >= 1 is kept; 0 picks the
    smallest k whose average cost (crossfades run two loops) fits HEADROOM of each frame.

    Args:
        step: the loop step, (image, field) -> image.
        size: the painter's resolution (the step runs on a random picture of that size).
        fps: the stream's frame rate.
        crossfade_share: share of frames that run two loops (a crossfade).
        setting: `feedback.step_every`; >= 1 wins, 0 chooses.
        clock: seconds, to time the step (the median of 5 runs); tests inject one.

    Example:
        >>> choose_step_every(lambda im, f: im, 64, 30.0, 0.2, 0)[0]
        1
    """
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    field = np.zeros((size, size, 2), np.float32)
    step(image, field)  # warm-up (compilation, caches)
    times = []
    for _ in range(5):
        t0 = clock()
        step(image, field)
        times.append(clock() - t0)
    seconds = float(np.median(times))
    if setting >= 1:
        return setting, seconds
    return max(1, math.ceil(seconds * fps * (1 + crossfade_share) / HEADROOM)), seconds
