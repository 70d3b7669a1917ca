"""Is the installation well? A health summary for people and monitors, and Prometheus metrics.

`health(engine)` -> {"status": "ok" | "degraded" | "failing", "reasons": [...], "screens":
{name: {"last_frame_age_s", "fps"}}, "ledger_ok", "disk_free_bytes", "uptime_s", ...}: no
token, no secrets (no paths, no keys, no tokens), cheap enough to poll every second.

- failing: a screen has shown nothing for FAILING_AGE_S (while not paused), or a screen's
  producer stopped with an error (its type is said, not its message);
- degraded: a screen runs below DEGRADED_FPS_SHARE of its frame rate, or holds its last frame
  because the ledger cannot record (a full disk: it retries and resumes by itself), or the
  disk holding the ledger has less than LOW_DISK_BYTES free or fills within DISK_WARN_DAYS at
  this run's rate of faces, or the process's memory has grown by more than MEMORY_GROWN_MB
  since it was warm (stream/heap.py: measured flat within a few MB over hours, so this is a
  leak to report, not a plateau);
- ok otherwise.

`EngineCollector` exposes the engine's own counters at scrape time (no cost per frame):
frames shown and late per screen, faces claimed per screen, render time per frame as a
histogram, and (with the standard ProcessCollector) the process's memory and CPU.
"""

from __future__ import annotations

import shutil
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:  # an interface, not the engine module: engine -> health runs one way
    from passersby.stream.running import Running

FAILING_AGE_S = 5.0
DEGRADED_FPS_SHARE = 0.9
LOW_DISK_BYTES = 2 * 1024 ** 3
DISK_WARN_DAYS = 30
MEMORY_GROWN_MB = 256.0
LEDGER_BYTES_PER_FACE = 820  # measured (stream/ledger/ docstring): z, hash, 8 keys, 9 indexes
RENDER_BUCKETS = (0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def health(engine: "Running") -> dict[str, Any]:
    """The engine's health (see the module docstring).

    Example:
        >>> health(engine)["status"]  # a running engine  # doctest: +SKIP
        'ok'
    """
    # Frame ages on the clock that stamped the frames (the engine's; tests may inject one).
    now, reasons, level = engine.clock(), [], 0
    paused = engine.paused.is_set() or engine.asleep.is_set()  # asleep: outside opening hours
    fps = engine.pacer.stats()["fps"] if engine.pacer is not None else {}
    screens = {}
    for p in engine.producers:
        name = p.plan.name
        frame = engine.hub.latest(name)
        age = None if frame is None else round(now - frame.shown_at, 2)
        screens[name] = {"last_frame_age_s": age, "fps": fps.get(name)}
        if p.error is not None:
            level = max(level, 2)
            reasons.append(f"screen {name} stopped ({type(p.error).__name__})")
        elif p.anchors.waiting:  # holding its last frame until the ledger records again: not hung
            level = max(level, 1)
            reasons.append(f"screen {name} shows no new face: the ledger cannot record (waiting, retrying)")
        elif getattr(p.anchors, "resuming", False) and (age is None or age > FAILING_AGE_S):
            level = max(level, 1)  # the ledger records again; the source claims and renders its next face
            reasons.append(f"screen {name} resumes: the ledger records again")
        elif engine.pacer is not None and not paused and (age > FAILING_AGE_S if age is not None
                                                          else now - engine.pacer.started > FAILING_AGE_S):
            # (nothing shown yet: failing only once the pacer has run FAILING_AGE_S without a frame)
            level = max(level, 2)
            reasons.append(f"screen {name} has shown nothing for {FAILING_AGE_S:.0f} s")
        elif engine.pacer is not None and not paused and fps.get(name, 0) < DEGRADED_FPS_SHARE * engine.fps \
                and now - engine.pacer.started > 5:
            level = max(level, 1)
            reasons.append(f"screen {name} at {fps.get(name, 0):.1f} of {engine.fps:.0f} fps")
        lease = getattr(p.anchors.ledger, "last_state", None)  # an edition console (stream/ledger/leased.py)
        if lease is not None:
            screens[name]["leases_left"] = lease["leases_left"]
            if not getattr(p.anchors.ledger, "shared", True):  # live, from the lease worker
                level = max(level, 1)
                reasons.append(f"screen {name}: the shared ledger is unreachable; playing from the lease "
                               f"({lease['leases_left']} faces left)")
    try:
        free = shutil.disk_usage(engine.ledger_path.parent).free
    except OSError:
        free = None
    if free is not None and free < LOW_DISK_BYTES:
        level = max(level, 1)
        reasons.append(f"{free / 1024 ** 3:.1f} GiB free on the ledger's disk")
    days = days_of_disk_left(engine, free)
    if days is not None and days < DISK_WARN_DAYS:
        level = max(level, 1)
        reasons.append(f"the ledger's disk is full in ~{days:.0f} days at this rate")
    memory = engine.trimmer.stats() if engine.trimmer is not None else {}
    if (memory.get("grown_mb") or 0) > MEMORY_GROWN_MB:
        level = max(level, 1)
        reasons.append(f"memory grew by {memory['grown_mb']:.0f} MB since the engine was warm "
                       f"({memory['warm_rss_mb']:.0f} -> {memory['rss_mb']:.0f} MB): restart it at a quiet hour "
                       "and report it")
    ledger_ok = engine.ledger_spec.exists() and not any(
        type(p.error).__name__ == "LedgerError" for p in engine.producers)
    return {"status": ("ok", "degraded", "failing")[level], "reasons": reasons, "paused": paused,
            "screens": screens, "ledger_ok": ledger_ok, "disk_free_bytes": free, "disk_days_left": days,
            "uptime_s": round(time.time() - engine.started_at, 1),
            "memory": {k: memory.get(k) for k in ("rss_mb", "warm_rss_mb", "grown_mb")}}


def days_of_disk_left(engine: "Running", free: int | None) -> float | None:
    """Days until the ledger fills the free disk at this run's rate of faces (LEDGER_BYTES_PER_FACE
    each), or None before there is a rate (the first minute) or without a free-space figure."""
    seconds = time.time() - engine.started_at
    faces = sum(p.anchors.claimed for p in engine.producers)
    if free is None or seconds < 60 or faces == 0:
        return None
    per_day = faces / seconds * 86_400 * LEDGER_BYTES_PER_FACE
    return round(free / per_day, 1)


class RenderTimes:
    """A fixed-size histogram of render seconds (cumulative buckets as Prometheus wants them)."""

    def __init__(self, buckets: tuple[float, ...] = RENDER_BUCKETS) -> None:
        self.bounds = np.asarray(buckets)
        self.counts = np.zeros(len(buckets) + 1, np.int64)  # the last: above every bound
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[int(np.searchsorted(self.bounds, seconds))] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        c = np.cumsum(self.counts)
        return [(repr(float(b)), int(n)) for b, n in zip(self.bounds, c[:-1])] + [("+Inf", int(c[-1]))]


class EngineCollector:
    """A prometheus_client collector reading the engine's counters when scraped."""

    def __init__(self, engine: "Running") -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        e = self.engine
        shown = CounterMetricFamily("passersby_frames_shown", "Frames shown per screen", labels=["screen"])
        late = CounterMetricFamily("passersby_late_frames", "Pacer ticks with no frame ready", labels=["screen"])
        faces = CounterMetricFamily("passersby_faces_claimed", "Faces claimed in the ledger this run", labels=["screen"])
        render = HistogramMetricFamily("passersby_render_seconds", "Seconds to render one frame", labels=["screen"])
        age = GaugeMetricFamily("passersby_last_frame_age_seconds", "Seconds since the screen's last frame",
                                labels=["screen"])
        now = e.clock()  # the clock that stamped the frames
        for p in e.producers:
            name = p.plan.name
            pacer = e.pacer
            shown.add_metric([name], pacer.shown[name] if pacer else 0)
            late.add_metric([name], pacer.late[name] if pacer else 0)
            faces.add_metric([name], p.anchors.claimed)
            render.add_metric([name], p.render_times.cumulative(), p.render_times.total)
            frame = e.hub.latest(name)
            if frame is not None:
                age.add_metric([name], now - frame.shown_at)
        yield from (shown, late, faces, render, age)


def metrics_text(engine: "Running") -> bytes:
    """The Prometheus text exposition of the engine's metrics and the process's (memory, CPU)."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = _REGISTRIES.get(engine)
    if registry is None:  # built on the first scrape, kept as long as the engine lives
        registry = CollectorRegistry()
        registry.register(EngineCollector(engine))
        ProcessCollector(registry=registry)
        _REGISTRIES[engine] = registry
    return generate_latest(registry)


# One registry per engine, here rather than on the engine object: health writes nothing into it.
_REGISTRIES: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
