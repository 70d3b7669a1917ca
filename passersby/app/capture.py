"""Capture the frame a screen shows now: re-rendered from its key at the best quality the
chain offers (app/rerender.py), not screenshotted, and kept under <home>/captures.

A capture also re-renders the frame exactly as shown and compares it with the pixels on the
screen; the record says whether they match ("matches_shown"), so every capture proves that its
key re-renders what people saw. It never claims or un-claims a face: the ledger is only read.

The re-rendering runs in the caller's thread at a lower CPU priority (Linux: a thread's own
nice value), so that a capture on a busy machine delays the capture, not the screens.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator

import numpy as np

from passersby.app.captures import Capture, save_capture
from passersby.app.installation import Installation

_lock = threading.Lock()  # one capture at a time: each re-render may take seconds of a core


@contextlib.contextmanager
def _background_priority(nice: int = 10) -> Iterator[None]:
    """Lower this thread's CPU priority for the block (Linux threads have their own nice)."""
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, before + nice))
    except (AttributeError, OSError):  # not Linux, or not allowed: run as is
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # raising it back needs privileges; the thread ends anyway
            os.setpriority(os.PRIO_PROCESS, tid, before)


def capture_screen(inst: Installation, screen: str) -> Capture:
    """Capture what `screen` shows now.

    Raises:
        ValueError: unknown screen, or nothing shown yet; RerenderError: a key this
            installation cannot re-render.

    Example:
        >>> cap = capture_screen(inst, "feminine")  # a running installation  # doctest: +SKIP
        >>> cap.record["matches_shown"], cap.record["quality"]  # a running installation  # doctest: +SKIP
        (True, 'enhancer bcec62cc58eda126')
    """
    hub = inst.engine.hub
    if screen not in hub.screens:
        raise ValueError(f"no screen {screen!r}; screens are {', '.join(hub.screens)}")
    frame = hub.latest(screen)
    if frame is None:
        raise ValueError(f"screen {screen!r} has shown nothing yet")
    wall = time.time()
    with _lock, _background_priority():
        rr = inst.rerenderer()
        t0 = time.perf_counter()
        shown = rr.shown(frame.key)
        best, quality = rr.best(frame.key)
        seconds = time.perf_counter() - t0
    same = shown.shape == frame.image.shape and bool(np.array_equal(shown, frame.image))
    return save_capture(inst.home, screen, best, frame.key, shown_at=wall, quality=quality, matches_shown=same,
                        shown_size=[int(frame.image.shape[1]), int(frame.image.shape[0])],
                        rerender_s=round(seconds, 3))


def capture_summary(inst: Installation, screen: str) -> dict:
    """capture_screen as the web API and the inbox report it: id, file, quality, match.

    Raises:
        ValueError: anything the caller should be told (the message says what).
    """
    from passersby.stream.ledger import LedgerError

    try:
        cap = capture_screen(inst, screen)
    except LedgerError as e:
        raise ValueError(str(e)) from e
    r = cap.record
    return {"id": cap.id, "path": str(cap.path), "screen": screen, "quality": r["quality"],
            "matches_shown": r["matches_shown"], "anchor_id": r["anchor_id"], "anchors": r.get("anchors"),
            "size": r["size"]}
