"""What the pacer and the health check see of a running engine: two small structural interfaces.

    engine.py --(is a)--> Running <--(reads)-- pacer.py, health.py

The pacer (stream/pacer.py) and the health summary and metrics (stream/health.py) read a few
things of the engine: its rate, its events (paused, asleep, quit), its hub, and per screen the
queue of frames rendered ahead, the producer's error and its anchors' counters. They used to
import `Engine` for that (only for type checking, but an arrow back all the same: engine ->
pacer -> engine). They now depend on these protocols, and stream/engine.py satisfies them
without naming them, so the arrows run one way: engine -> pacer, health -> running.

Example:
    >>> from types import SimpleNamespace
    >>> from passersby.stream.pacer import Pacer
    >>> Pacer(SimpleNamespace(fps=10.0, screens=["left"])).period  # anything with the attributes it reads
    0.1
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Protocol, Sequence

from passersby.stream.frames import Frame, FrameHub


class Named(Protocol):
    """A screen's plan, as far as the pacer and health read it: its name."""

    name: str


class ScreenAnchors(Protocol):
    """A screen's ledger claims as health reads them (stream/claims.LedgerAnchors): faces
    claimed this run, why it waits for the ledger ("" when it does not), and the open backend
    (an edition console's lease says `last_state` and `shared`; others have neither)."""

    claimed: int
    waiting: str
    ledger: Any


class RunningScreen(Protocol):
    """One screen's producer (stream/engine.ScreenProducer): its plan, the bounded queue of
    frames rendered ahead, the error that stopped it (None while it runs), its anchors and its
    render times (stream/health.RenderTimes)."""

    plan: Named
    frames: queue.Queue[Frame]
    error: BaseException | None
    anchors: ScreenAnchors
    render_times: Any


class Running(Protocol):
    """A running engine (stream/engine.Engine), as the pacer and the health check read it.

    `heartbeat` is read on every beat, not once: a service manager's hook is set after the
    engine started (app/service.Notifier). `pacer` and `trimmer` are None until paced."""

    fps: float
    hub: FrameHub
    producers: Sequence[RunningScreen]
    quit_event: threading.Event
    paused: threading.Event
    asleep: threading.Event
    heartbeat: Callable[[], None] | None
    started_at: float
    clock: Callable[[], float]  # monotonic seconds that stamped the frames (tests inject one)
    pacer: Any
    trimmer: Any
    ledger_spec: Any
    ledger_path: Any

    @property
    def screens(self) -> list[str]: ...
