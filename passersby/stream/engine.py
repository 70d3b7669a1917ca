"""The installation's engine: per screen, a frame source rendered ahead of display.

    anchors (ledger) -> FrameSource -> stages (stream/sources.py) -> bounded queue
                                                                          |
                                      Pacer: one frame per screen every 1/fps -> FrameHub -> sinks

Each screen has a producer thread that owns its source (e.g. the latent walk), its ledger
connection and its stages, and renders frames ahead into a bounded queue (so a slow frame is absorbed and the
display never waits on the network or the ledger). The pacer takes one frame per screen every
1/fps seconds and publishes it; if a queue is empty the screen keeps its last frame and the
pacer counts a late frame. Offline (`render`), frames are taken straight from the queues.

Never repeating: every anchor comes from `Ledger.claim`, which records it (with the channel's
RNG state) before the source can render any frame from it. A restart starts a new walk from
fresh anchors, so nothing shown before is shown again, whether the engine stopped cleanly or
was killed. For the "drift" style the ledger records each fresh random target; every drift
anchor mixes a never-used target into the previous one.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from passersby.stream.claims import LedgerAnchors
from passersby.stream.frame_queue import FrameQueue
from passersby.stream.frames import Frame, FrameHub
from passersby.stream.health import RenderTimes, health, metrics_text
from passersby.stream.heap import HeapTrimmer
from passersby.stream.ledger import Ledger, LedgerError, LedgerSpec, as_spec
from passersby.stream.pacer import Pacer
from passersby.stream.sources import (Anchors, Describable, FrameSource, Pressable, Refreshable, Rewindable, Stage,
                                      Stateful, Steerable, Tunable, capable, run_stages)

log = logging.getLogger("passersby")



@dataclass(frozen=True)
class ScreenPlan:
    """What one screen needs, model-free: its name (= ledger channel), how to propose an anchor
    from the channel's RNG, how to build its frame source from its ledger claims (called once,
    in the engine), and the stages its frames pass through.

    Args:
        name: screen name and ledger channel.
        propose: rng -> (z_dim,) float latent; must draw all randomness from rng.
        make_source: Anchors -> FrameSource (e.g. `sources.LatentWalk(walk, anchors, renderer, hash)`).
        stages: picture-to-picture steps applied to every frame, in order (stream/sources.Stage).
        ahead: claim each next anchor in a thread of its own while this one shows (claims.py):
            for a proposer that renders candidates (a critic, the taste's re-rank).
    """

    name: str
    propose: Callable[[np.random.Generator], np.ndarray]
    make_source: Callable[[Anchors], FrameSource]
    stages: tuple[Stage, ...] = ()
    ahead: bool = False


class ScreenProducer(threading.Thread):
    """Renders one screen's frames, in order, into a bounded queue (its own thread)."""

    def __init__(self, plan: ScreenPlan, anchors: LedgerAnchors, queue_size: int) -> None:
        super().__init__(name=f"passersby-{plan.name}", daemon=True)
        self.plan, self.anchors = plan, anchors
        self.source = plan.make_source(anchors)
        self.frames = FrameQueue(queue_size)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._skip_to: int | None = None
        self._refresh = False  # a live change: the source forgets what it rendered ahead
        self._lock = threading.Lock()
        self.render_seconds: deque[float] = deque(maxlen=300)
        self.render_times = RenderTimes()  # all of them, as a histogram (metrics)

    def next_anchor(self) -> None:
        """Jump to the next anchor (a deliberate cut) and drop frames rendered ahead."""
        with self._lock:
            self._skip_to = -1
        self.frames.forget()

    def renew(self, change: Callable[[], None]) -> None:
        """Apply a live change (`change()`: a knob of the source turned) and drop the frames
        rendered ahead but the next one, so the frame after it shows the change."""
        with self._lock:  # one step for the producer: the knob, the refresh and the queue's generation
            change()
            if self.frames.renew() is not None:  # (None: a storm, the change merged: frame_queue.py)
                self._refresh = True

    def run(self) -> None:
        index = 0
        try:
            while not self.stop_event.is_set():
                with self._lock:
                    cut = self._skip_to is not None
                    if cut:
                        index = self.source.cut(index)
                        self._skip_to = None
                    if self._refresh:
                        self._refresh = False
                        if (ahead := capable(self.source, Refreshable)) is not None:
                            ahead.refresh()
                    resume = self.frames.take_resume()
                    # A live change dropped the frames after the one kept: a source that can go back
                    # renders them again, with the change (no frame skipped); others go on from here.
                    if resume is not None and not cut and resume < index and isinstance(self.source, Rewindable) \
                            and self.source.rewind(resume):  # (a cut's new face is never undone)
                        index = resume
                    # Read with the knobs, under the lock a change takes: a frame knows what it shows.
                    generation = self.frames.generation
                frame = self._render(index)
                while not self.stop_event.is_set():
                    try:
                        self.frames.put_unless_stale(frame, generation, timeout=0.1)
                        break  # put, or dropped (rendered before a live change): the next index shows it
                    except queue.Full:
                        continue
                index += 1
        except BaseException as e:  # surfaced by Engine.check()
            self.error = e
        finally:
            self.source.close()
            self.anchors.close()

    def _render(self, index: int) -> Frame:
        t0 = time.perf_counter()
        image, key = run_stages(self.plan.stages, *self.source.render(index))
        seconds = time.perf_counter() - t0
        self.render_seconds.append(seconds)
        self.render_times.observe(seconds)
        return Frame(self.plan.name, index, image, {**key, "screen": self.plan.name})


class Engine:
    """Producers for every screen, a pacer, a hub for sinks, and control actions.

    Args:
        plans: one ScreenPlan per screen, in display order.
        fps: frames per second per screen (the pacer's rate).
        ledger: the do-not-use ledger (shared by all screens, one channel each): a
            stream/ledger.LedgerSpec (SQLite file or an edition's PostgreSQL) or an SQLite path.
        z_dim: latent size.
        model_hash: identity of the rendering model (frame keys, ledger rows).
        queue_size: frames rendered ahead per screen.
        seed: seeds each channel's RNG the first time (None: OS entropy).
        info: extra status entries (model name, runtime, ...).
        exactingness: the live taste knob (an object with a settable `.value` in [0, 1], read
            by the screens' proposers), or None when the installation follows no taste.
        clock: monotonic seconds for the pacer and for health's frame ages (`Frame.shown_at`).
        pacer_sleep: the pacer's wait, in seconds of `clock`. Both are injected so that a test can
            pace the engine on a clock of its own, independent of the machine's load.

    Example:
        >>> engine = Engine(plans, 30.0, home / "ledger.sqlite", 128, "9f2c")  # a running engine  # doctest: +SKIP
        >>> engine.start(); frame = engine.hub.wait_newer("masculine", -1, 5.0)  # a running engine  # doctest: +SKIP
    """

    def __init__(self, plans: list[ScreenPlan], fps: float, ledger: LedgerSpec | Path, z_dim: int, model_hash: str,
                 queue_size: int = 12, seed: int | None = None, info: dict[str, Any] | None = None,
                 exactingness: Any = None, clock: Callable[[], float] = time.monotonic,
                 pacer_sleep: Callable[[float], None] = time.sleep) -> None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.fps = float(fps)
        self.exactingness = exactingness
        self.clock, self.pacer_sleep = clock, pacer_sleep  # (Engine.sleep is closing time)
        self.info = dict(info or {})
        self.hold_on_ledger_errors = threading.Event()  # set while paced (live): wait for the ledger
        self.producers = [
            ScreenProducer(p, LedgerAnchors(ledger, z_dim, p.name, p.propose, model_hash, seed,
                                            self.hold_on_ledger_errors, ahead=p.ahead), queue_size)
            for p in plans
        ]
        self.ledger_spec = as_spec(ledger)
        self.ledger_path = self.ledger_spec.path
        self.hub = FrameHub([p.name for p in plans], status=self.status, controls=self, health=self.health,
                            metrics=self.metrics)
        self.quit_event = threading.Event()
        self.paused = threading.Event()
        self.heartbeat: Callable[[], None] | None = None  # called by the pacer about once a second
        self.asleep = threading.Event()  # outside opening hours (stream/schedule.py); "resume" does not wake it
        self.closed_why = ""
        self.pacer: Pacer | None = None
        self.trimmer: HeapTrimmer | None = None
        self.started_at = time.time()
        # name -> a callable whose JSON-able answer goes into the status under that name
        # (the application's control desk records its live values there: app/controls.py).
        self.reporters: dict[str, Callable[[], Any]] = {}
        # Create (or check) the ledger here, once: screens opening a new file at the same
        # moment would race to create its schema.
        with self.ledger_spec.open(z_dim, seed=seed) as led:
            self._ledger_start = len(led)

    @property
    def screens(self) -> list[str]:
        return self.hub.screens

    def start(self, pace: bool = True, prefill: float = 0.5, freeze_gc: bool = True) -> None:
        """Start the producers; with `pace`, wait until each queue is `prefill` full, then pace.

        `freeze_gc`: before pacing, move everything start-up allocated (models, compiled
        graphs, caches) out of the garbage collector's sight (gc.freeze), so that a later full
        collection does not walk it all while holding the interpreter lock (a stall of the pacer).
        """
        for p in self.producers:
            p.start()
        if pace:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                    p.frames.qsize() >= max(1, int(p.frames.maxsize * prefill)) for p in self.producers):
                self.check()
                time.sleep(0.01)
            self.hold_on_ledger_errors.set()
            if freeze_gc:
                gc.collect()
                gc.freeze()
            self.pacer = Pacer(self, self.clock, self.pacer_sleep)
            self.pacer.start()
            self.trimmer = HeapTrimmer()  # RSS follows the memory in use (stream/heap.py)
            self.trimmer.start()

    def take(self, screen_index: int, timeout: float = 60.0) -> Frame:
        """Offline: the next frame of screen `screen_index` (blocks; raises on producer errors)."""
        p = self.producers[screen_index]
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                return p.frames.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"screen {p.plan.name}: no frame in {timeout} s") from None

    def check(self) -> None:
        """Raise the first producer error (e.g. a LedgerError) in the caller's thread."""
        for p in self.producers:
            if p.error is not None:
                raise p.error

    def control(self, action: str, value: float | None = None, screen: str | None = None) -> None:
        """pause / resume / next / quit / press / exactingness (FrameHub.control validates);
        `screen` narrows next / press to that screen."""
        producers = [p for p in self.producers if screen is None or p.plan.name == screen]
        if action == "exactingness":
            if self.exactingness is None:
                raise PermissionError("this installation follows no taste: set [taste] curator")
            self.exactingness.value = value
        elif action == "pause":
            self.paused.set()
        elif action == "resume":
            self.paused.clear()
        elif action == "next":
            for p in producers:
                p.next_anchor()
        elif action == "press":  # sources with a button (the peepshow): a face now, frames ahead dropped
            pressable = [p for p in producers if isinstance(p.source, Pressable)]
            if not pressable:
                raise PermissionError(f"screen {screen!r} takes no press (not a peep screen)" if screen else
                                      "no screen here takes a press: run `passersby peep`")
            for p in pressable:
                if p.source.press():
                    p.next_anchor()
        elif action == "quit":
            self.quit_event.set()
        elif action.startswith("direction/"):
            self.steer(action.partition("/")[2], value, screen)
        else:  # a live knob of the sources: drift, tempo, speed (FrameHub.control checked the name)
            self.tune(action.rpartition("/")[2], value, screen)

    def tune(self, knob: str, value: float, screen: str | None = None) -> list[str]:
        """Turn live knob `knob` of every screen's source that has it (or of `screen`'s alone);
        the change shows within 2 frames. Returns the screens changed.

        Raises:
            PermissionError: no screen here (or not `screen`) has that knob.
            ValueError: the value is out of the knob's range (the source says which).
        """
        found = [(p, src) for p in self._screens(screen) if (src := capable(p.source, Tunable)) is not None
                 and knob in src.tunings()]
        if not found:
            raise PermissionError(f"{'screen ' + repr(screen) if screen else 'no screen here'} has no live {knob!r}"
                                  f"{self._knobs_note(screen)}")
        return self._renew_each(found, lambda src: src.tune(knob, value))

    def steer(self, direction: str, amount: float, screen: str | None = None) -> list[str]:
        """Offset every screen's latent (or `screen`'s alone) along latent direction `direction`
        by `amount` std (sources.Steerable); shows within 2 frames. Returns the screens changed.

        Raises:
            PermissionError: no screen here (or not `screen`) can be steered (a feedback or peep screen).
            KeyError: a screen has no direction `direction` (the message lists its names).
            ValueError: `amount` is not a finite number.

        Example:
            >>> engine.steer("head turn", 1.5, "masculine")  # a running engine  # doctest: +SKIP
            ['masculine']
        """
        found = [(p, src) for p in self._screens(screen) if (src := capable(p.source, Steerable)) is not None]
        if not found:
            raise PermissionError(f"{'screen ' + repr(screen) if screen else 'no screen here'} has no latent "
                                  f"directions (a walk with a directions file: `passersby directions`)")
        return self._renew_each(found, lambda src: src.set_offset(direction, amount))

    def live(self) -> dict[str, dict[str, float]]:
        """Per screen, its sources' live knobs and direction offsets now (JSON-able)."""
        out: dict[str, dict[str, float]] = {}
        for p in self.producers:
            values: dict[str, float] = {}
            if (src := capable(p.source, Tunable)) is not None:
                values.update(src.tunings())
            if (src := capable(p.source, Steerable)) is not None:
                values.update({f"direction/{k}": v for k, v in src.offsets().items()})
            out[p.plan.name] = values
        return out

    @staticmethod
    def _renew_each(found: list[tuple[ScreenProducer, Any]], change: Callable[[Any], None]) -> list[str]:
        """Apply `change(source)` to each (producer, source) as a live change; their screens' names."""
        for p, src in found:
            p.renew(lambda src=src: change(src))
        return [p.plan.name for p, _ in found]

    def _screens(self, screen: str | None) -> list[ScreenProducer]:
        """Every producer, or `screen`'s alone (PermissionError naming the screens when none is)."""
        found = [p for p in self.producers if screen is None or p.plan.name == screen]
        if screen is not None and not found:
            raise PermissionError(f"no screen {screen!r}; screens are {[p.plan.name for p in self.producers]}")
        return found

    def _knobs_note(self, screen: str | None) -> str:
        have = sorted({k for p in self._screens(screen) if (src := capable(p.source, Tunable)) is not None
                       for k in src.tunings()})
        return f" (live knobs here: {', '.join(have)})" if have else " (its source has no live knobs)"

    def sleep(self, why: str) -> None:
        """Closed (opening hours): every screen goes black, nothing more is shown or claimed
        (the producers stop once their queues are full; the pacer idles) until wake()."""
        self.closed_why = why
        self.asleep.set()
        for name in self.screens:
            last = self.hub.latest(name)
            if last is not None:
                self.hub.publish(Frame(name, last.index + 1, np.zeros_like(last.image), {"state": "closed", "why": why}))

    def wake(self) -> None:
        self.asleep.clear()
        self.closed_why = ""

    def health(self) -> dict[str, Any]:
        """ok / degraded / failing and why (stream/health.py); no secrets."""
        return health(self)

    def metrics(self) -> bytes:
        """Prometheus text: frames, late frames, faces, render times, memory (stream/health.py)."""
        return metrics_text(self)

    def stop(self) -> None:
        self.quit_event.set()
        if self.trimmer is not None:
            self.trimmer.stop()
        gc.unfreeze()  # what start() froze becomes collectable again (tests run many engines)
        if self.pacer is not None:
            self.pacer.stop_event.set()
            self.pacer.join(timeout=5)
        for p in self.producers:
            p.stop_event.set()
            p.anchors.stop.set()
        for p in self.producers:
            if p.is_alive():
                p.join(timeout=10)
        self.hub.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict[str, Any]:
        claimed = sum(p.anchors.claimed for p in self.producers)
        out: dict[str, Any] = dict(self.info)
        out.update(
            screens=self.screens,
            paused=self.paused.is_set(),
            **({"closed": self.closed_why} if self.asleep.is_set() else {}),
            uptime_s=round(time.time() - self.started_at, 1),
            faces_this_run=claimed,
            ledger_size=self._ledger_start + claimed,
            nominal_fps=self.fps,
        )
        if self.exactingness is not None:
            out["exactingness"] = self.exactingness.value
        waiting = {p.plan.name: p.anchors.waiting for p in self.producers if p.anchors.waiting}
        if waiting:
            out["waiting_for_ledger"] = waiting
        if self.pacer is not None:
            out.update(self.pacer.stats())
        if self.trimmer is not None:
            out["heap_trim"] = self.trimmer.stats()
        out["render_ms"] = {p.plan.name: round(1000 * float(np.median(p.render_seconds)), 1)
                            if p.render_seconds else None for p in self.producers}
        # Sources that run a chain at a level (stream/keyframes.Keyframes) say which, and when it was lowered.
        chains = {p.plan.name: p.source.describe() for p in self.producers if isinstance(p.source, Describable)}
        if chains:
            out["chains"] = chains
        # Sources with a state of their own (the peepshow: blank or a face, presses) report it.
        states = {p.plan.name: p.source.state() for p in self.producers if isinstance(p.source, Stateful)}
        if states:
            out["screen_state"] = states
        # Screens steered along named directions: each slider's target, in std (Engine.steer).
        offsets = {p.plan.name: p.source.offsets() for p in self.producers
                   if isinstance(p.source, Steerable) and p.source.offsets()}
        if offsets:
            out["offsets"] = offsets
        for name, report in list(self.reporters.items()):
            out[name] = report()
        return out
