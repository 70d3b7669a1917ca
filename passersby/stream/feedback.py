"""The feedback loop as a frame source: each frame is the machine's reading of the previous one.

    anchor face (ledger claim, rendered) -> x[0]
    x[s+1] = step(x[s], k * drift_field(seed, s * k))     step = paint(read(warp(x, field))), injected
    frame start + t shows x[t / k]; between two loop states (k = step_every > 1), a blend

A *segment* starts from a never-used anchor face and lets the loop run: the reading (markers)
of a slightly moved picture is painted again, and the painter's interpretation errors plus the
slowly turning drift field make eyes droop, noses sink and faces melt and re-form. Every
`tempo` seconds (or at once when the loop collapses, or on "next") a new segment starts from a
new anchor and the screen crossfades into it over `crossfade` seconds, while the old segment
runs on underneath.

Reproducible: a frame depends only on its segment (anchor, start frame, seed) and, during a
crossfade, on the previous one; `replay(key, ...)` re-renders any frame from its key by
running those segments from their anchors. The drift field is a pure function of (seed, frame
within the segment); the seed comes from the anchor's bytes, so no two segments share one.

Collapse (`Vitals`): a frozen picture, a blank, noise, degenerate colours, or no face for too
long; each ends the segment. Nothing here knows a model: the application layer passes
`render_anchor`, `step` and `face_found` (passersby.app.feedback).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from passersby.stream.knobs import knob
from passersby.stream.sources import Anchors, mix
from passersby.stream.vitals import Vitals

DRIFT_PER_FRAME = 0.004  # displacement std per frame at drift 1, in normalised units (side = 2)
FIELD_CELLS = 4  # the drift field is a 4 x 4 grid of random moves, smoothly upsampled
FIELD_KEY_SECONDS = 1.5  # the field turns from one random grid to the next in this time
DRIFT_MAX = 4.0  # feedback.drift's upper bound (FeedbackKnobs), also the live knob's


@dataclass(frozen=True)
class FeedbackKnobs:
    """The loop's knobs as a person sets them: the [feedback] section of the settings (with the
    painter file, passersby/settings.FeedbackSettings), read there for the file, `config show`,
    docs/settings.md and the flags' help. Checked where a loop runs (FeedbackConfig), with the
    walk's tempo and frame rate.

    Example:
        >>> FeedbackKnobs().drift
        0.8
    """

    drift: float = knob(0.8, "feedback: how fast faces dissolve (0 = the painter alone, 1 = fast).",
                         bounds=(0, DRIFT_MAX))
    crossfade: float = knob(1.0, "feedback: seconds over which each new anchor face fades in (< walk.tempo).",
                             bounds=(0, 3600))
    max_faceless: float = knob(3.0, "feedback: seconds without a detected face before the loop re-anchors.",
                                bounds=(0, 3600))
    step_every: int = knob(0, "feedback: frames per painting (the frames between are blends); 0 = the smallest "
                              "that keeps walk.fps on this machine, measured at start.", bounds=(0, 64))


@dataclass(frozen=True)
class FeedbackConfig(FeedbackKnobs):
    """The loop's knobs (FeedbackKnobs), the walk's tempo and rate, and its collapse checks.

    Args:
        drift: how fast faces dissolve, >= 0 (0: the painter alone; 1: ~0.4 px per frame at 256).
        crossfade: seconds over which a new segment fades in.
        max_faceless: seconds without a face before the loop counts as collapsed.
        step_every: frames per loop step (1: the painter repaints every frame; k: every k-th,
            the frames between are blends of two consecutive paintings, each step moving k
            times as far): what a slower machine gives up to keep the frame rate. 0 (the
            setting's "measure it") is 1 here: a loop nobody measured paints every frame.
        tempo: seconds between anchors (a new face at least this often).
        fps: frames per second.
        face_every: seconds between face checks.
        freeze_seconds: seconds of (almost) no change before it counts as frozen.

    Example:
        >>> FeedbackConfig(tempo=4.0).frames_per_segment
        120
    """

    tempo: float = 6.0
    fps: float = 30.0
    face_every: float = 1.0
    freeze_seconds: float = 2.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"feedback {f.name} must be a finite number >= 0, got {v!r}")
        if self.tempo <= 0 or self.fps <= 0 or self.tempo * self.fps < 2:
            raise ValueError(f"feedback tempo and fps must be > 0 and give >= 2 frames per anchor, "
                             f"got tempo {self.tempo} at {self.fps} fps")
        if isinstance(self.step_every, bool) or not isinstance(self.step_every, int) or self.step_every < 0:
            raise ValueError(f"feedback step_every must be an integer >= 1, got {self.step_every!r}")
        if self.step_every == 0:  # the knob's "measured at start", built without a measurement: every frame
            object.__setattr__(self, "step_every", 1)
        if self.crossfade >= self.tempo:
            raise ValueError(f"feedback crossfade ({self.crossfade} s) must be shorter than tempo ({self.tempo} s)")

    @property
    def frames_per_segment(self) -> int:
        return max(2, round(self.tempo * self.fps))

    @property
    def crossfade_frames(self) -> int:
        return round(self.crossfade * self.fps)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeedbackConfig":
        return cls(**d)


def segment_seed(anchor: np.ndarray) -> int:
    """The drift seed of a segment: from its anchor's bytes (the ledger never repeats an anchor)."""
    return int.from_bytes(hashlib.sha256(np.asarray(anchor, np.float32).tobytes()).digest()[:8], "little")


def _upsampler(size: int) -> np.ndarray:
    """(size, FIELD_CELLS) smooth interpolation weights (normalised Gaussian bumps)."""
    pos = np.linspace(0, FIELD_CELLS - 1, size)
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(FIELD_CELLS)[None]) / 0.6) ** 2)
    return w / w.sum(1, keepdims=True)


def drift_field(seed: int, frame: int, size: int, cfg: FeedbackConfig) -> np.ndarray:
    """The displacement field (size, size, 2) float32 of frame `frame` of a segment: a random
    4 x 4 grid of moves that turns smoothly (smoothstep) into the next every FIELD_KEY_SECONDS.

    Example:
        >>> drift_field(1, 0, 8, FeedbackConfig()).shape
        (8, 8, 2)
    """
    k = frame / (FIELD_KEY_SECONDS * cfg.fps)
    i, f = int(math.floor(k)), k - math.floor(k)
    w = f * f * (3 - 2 * f)
    grids = [np.random.default_rng([seed, i + j]).standard_normal((2, FIELD_CELLS, FIELD_CELLS)) for j in (0, 1)]
    coarse = ((1 - w) * grids[0] + w * grids[1]) * (cfg.drift * DRIFT_PER_FRAME)  # (2, 4, 4)
    u = _upsampler(size)
    return np.stack([u @ c @ u.T for c in coarse], -1).astype(np.float32)  # (size, size, 2): (dx, dy)


def crossfade_weight(t: int, frames: int) -> float:
    """Weight of the new segment `t` frames after it started (smoothstep over `frames`)."""
    if frames <= 0 or t >= frames:
        return 1.0
    f = (t + 1) / (frames + 1)
    return f * f * (3 - 2 * f)


@dataclass
class Segment:
    """One run of the loop from an anchor: where it started and its two latest loop states.

    Loop state 0 is the anchor face; state s + 1 = step(state s, field of frame s * k, times k)
    with k = step_every; frame `start + t` shows state t / k, or between two states a blend.
    """

    position: int  # claim position of its anchor (Anchors.ledger_ids maps it to a ledger row)
    start: int  # frame index of its first frame (the anchor face itself)
    seed: int
    image: np.ndarray  # (R, R, 3) uint8: loop state `state`
    state: int = 0
    before: np.ndarray | None = None  # loop state `state - 1`
    record: Callable[[int, np.ndarray | None, np.ndarray], None] | None = None  # (state, before, image) after each step
    # Live drift (FeedbackLoop.tune): [state, drift] pairs, increasing states; the steps from a
    # pair's state on move by its drift (before the first pair: cfg.drift). In the key, so replay follows.
    drifts: list[list[float]] = dataclasses.field(default_factory=list)

    def describe(self, anchors: Anchors) -> dict[str, Any]:
        out = {"anchor_position": self.position, "ledger_id": anchors.ledger_ids([self.position])[0],
               "start": self.start, "seed": self.seed}
        if self.drifts:
            out["drifts"] = [list(d) for d in self.drifts]
        return out

    def set_drift(self, drift: float) -> None:
        """From the next step on, move by `drift` (a live knob turned while the segment runs)."""
        if self.drifts and self.drifts[-1][0] == self.state:
            self.drifts[-1] = [self.state, drift]
        else:
            self.drifts.append([self.state, drift])

    def _cfg_at(self, state: int, cfg: FeedbackConfig) -> FeedbackConfig:
        drift = next((d for s, d in reversed(self.drifts) if s <= state), None)
        return cfg if drift is None or drift == cfg.drift else dataclasses.replace(cfg, drift=drift)

    def picture(self, index: int, step: Callable, cfg: FeedbackConfig) -> np.ndarray:
        """The segment's picture at frame `index` (>= the last one asked), running the loop on."""
        k = cfg.step_every
        s, r = divmod(index - self.start, k)
        target = s + (r > 0)  # between states s and s + 1 both are needed
        while self.state < target:
            field = drift_field(self.seed, self.state * k, self.image.shape[0], self._cfg_at(self.state, cfg)) * k
            self.before, self.image = self.image, step(self.image, field)
            self.state += 1
            if self.record is not None:
                self.record(self.state, self.before, self.image)
        return self.image if r == 0 else mix(self.before, self.image, r / k)


class FeedbackLoop:
    """The feedback loop as a frame source (stream/sources.FrameSource).

    Args:
        cfg: the loop's knobs.
        anchors: the screen's ledger claims; each segment claims one before rendering it.
        render_anchor: (1, z_dim) float32 -> (1, R, R, 3) uint8, the generator.
        step: (picture (R, R, 3) uint8, field (R, R, 2) float32) -> next picture: read the
            moved picture into markers and paint them (passersby.app.feedback.loop_step).
        face_found: picture -> bool for the "no face" check; None skips it.
        models: identities written in every key, e.g. {"generator": hash, "painter": hash}.

    Example:
        >>> src = FeedbackLoop(FeedbackConfig(), anchors, render, step, None, {"painter": "ab12"})  # a trained painter  # doctest: +SKIP
        >>> image, key = src.render(0)  # a trained painter  # doctest: +SKIP
    """

    def __init__(self, cfg: FeedbackConfig, anchors: Anchors, render_anchor: Callable[[np.ndarray], np.ndarray],
                 step: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 face_found: Callable[[np.ndarray], bool] | None = None, models: dict[str, str] | None = None) -> None:
        self.cfg, self.anchors, self.render_anchor, self.step = cfg, anchors, render_anchor, step
        self.models = dict(models or {})
        self.vitals = Vitals(cfg.fps, face_found, cfg.face_every, cfg.max_faceless, cfg.freeze_seconds)
        self.current: Segment | None = None
        self.previous: Segment | None = None
        self.pending_cut = False
        self.collapses: dict[str, int] = {}
        self.segments = 0
        self.drift = cfg.drift  # live (tune); cfg keeps the settings' value, which keys record
        self._pending: dict[str, Any] = {}  # set by tune (any thread), applied by render

    def tune(self, name: str, value: float) -> None:
        """Set live knob "drift" (how fast faces dissolve, 0..4) or "tempo" (seconds per anchor
        face, more than the crossfade) from the next frame on (sources.Tunable).

        Example:
            >>> loop = FeedbackLoop(FeedbackConfig(), None, None, None)
            >>> loop.tune("drift", 2.0); loop.tunings()
            {'drift': 2.0, 'tempo': 6.0}
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"feedback {name} must be a number, got {value!r}")
        if name == "drift":
            if not 0 <= value <= DRIFT_MAX:
                raise ValueError(f"feedback drift must be in 0..{DRIFT_MAX:g}, got {value!r}")
            self._pending["drift"] = float(value)
        elif name == "tempo":
            cfg = dataclasses.replace(self.cfg, tempo=float(value))  # checks tempo > crossfade, >= 2 frames
            self._pending["cfg"] = cfg
        else:
            raise ValueError(f"the feedback loop has no live knob {name!r}; it has ['drift', 'tempo']")

    def tunings(self) -> dict[str, float]:
        cfg = self._pending.get("cfg", self.cfg)
        return {"drift": self._pending.get("drift", self.drift), "tempo": cfg.tempo}

    def _apply(self) -> None:
        pending, self._pending = self._pending, {}
        if "cfg" in pending:
            self.cfg = pending["cfg"]
        if "drift" in pending:
            self.drift = pending["drift"]
            for seg in (self.current, self.previous):
                if seg is not None:
                    seg.set_drift(self.drift)

    def _new_segment(self, index: int) -> None:
        z = np.asarray(self.anchors(), np.float32)  # recorded in the ledger before any pixel of it
        image = self.render_anchor(z[None])[0]
        self.previous, self.current = self.current, Segment(self.anchors.claimed - 1, index, segment_seed(z), image)
        if self.drift != self.cfg.drift:
            self.current.drifts.append([0, self.drift])
        self.vitals.reset()
        self.segments += 1

    def render(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        if self._pending:
            self._apply()
        cur = self.current
        if cur is None or self.pending_cut or index - cur.start >= self.cfg.frames_per_segment:
            self.pending_cut = False
            self._new_segment(index)
            cur = self.current
        shown = cur.picture(index, self.step, self.cfg)
        w, prev = 1.0, self.previous
        if prev is not None:
            w = crossfade_weight(index - cur.start, self.cfg.crossfade_frames)
            if w >= 1.0:
                self.previous = prev = None
        image = shown if prev is None else mix(prev.picture(index, self.step, self.cfg), shown, w)
        reason = self.vitals.update(shown)
        if reason is not None:  # re-anchor at the next frame
            self.collapses[reason] = self.collapses.get(reason, 0) + 1
            self.pending_cut = True
        segs = [cur] if prev is None else [prev, cur]
        key = {"source": "feedback", "frame": int(index), "models": self.models, "feedback": self.cfg.to_dict(),
               "segment": cur.describe(self.anchors), "previous": None if prev is None else prev.describe(self.anchors),
               "mix": w, "ledger_ids": [self.anchors.ledger_ids([s.position])[0] for s in segs]}
        if reason is not None:
            key["collapse"] = reason
        return image, key

    def cut(self, index: int) -> int:
        """"next": a new anchor at the very next frame (no frames skipped)."""
        self.pending_cut = True
        return index

    def close(self) -> None:
        pass


class LoopStates:
    """Loop states kept per segment, so a frame late in a segment re-renders from a stored state
    instead of the anchor (a feedback segment runs up to `tempo` seconds of paintings; a gallery
    page or a capture re-renders many frames of the same segments). Every `every`-th state is kept
    with the state before it (a blend needs both), exactly as the loop made them (uint8): the
    loop run on from there gives the same bytes. Bounded: at most `max_bytes`, oldest segments
    dropped first.

    Args:
        every: keep loop states every this many steps (4: at most 3 paintings to the frame,
            ~0.25 s with the shipped painter on a 2-core machine).
        max_bytes: memory bound of everything kept.

    Example:
        >>> states = LoopStates(every=2)
        >>> states.add("seg", 2, None, np.zeros((2, 2, 3), np.uint8))
        >>> states.nearest("seg", 5)[0], states.nearest("seg", 1)
        (2, None)
    """

    def __init__(self, every: int = 4, max_bytes: int = 256 * 2 ** 20) -> None:
        from collections import OrderedDict

        self.every, self.max_bytes = int(every), int(max_bytes)
        self._segments: OrderedDict[str, dict[int, tuple[np.ndarray | None, np.ndarray]]] = OrderedDict()
        self.nbytes = 0

    def add(self, segment: str, state: int, before: np.ndarray | None, image: np.ndarray) -> None:
        if state % self.every:
            return
        kept = self._segments.setdefault(segment, {})
        self._segments.move_to_end(segment)
        if state not in kept:
            kept[state] = (None if before is None else before.copy(), image.copy())
            self.nbytes += image.nbytes + (0 if before is None else before.nbytes)
        while self.nbytes > self.max_bytes and len(self._segments) > 1:
            _, dropped = self._segments.popitem(last=False)
            self.nbytes -= sum(i.nbytes + (0 if b is None else b.nbytes) for b, i in dropped.values())

    def nearest(self, segment: str, state: int) -> tuple[int, np.ndarray | None, np.ndarray] | None:
        """The latest kept state <= `state` of `segment`: (state, before, image), or None."""
        kept = self._segments.get(segment)
        best = max((s for s in (kept or {}) if s <= state), default=None)
        if best is None:
            return None
        self._segments.move_to_end(segment)
        before, image = kept[best]
        return best, before, image


def replay(key: dict[str, Any], anchor_of: Callable[[int], np.ndarray], render_anchor: Callable[[np.ndarray], np.ndarray],
           step: Callable[[np.ndarray, np.ndarray], np.ndarray], states: LoopStates | None = None) -> np.ndarray:
    """Re-render a feedback frame from its key by running its segment(s) from their anchors.

    Args:
        key: the frame's key (FeedbackLoop.render).
        anchor_of: ledger id -> the anchor's latent (e.g. from the ledger).
        render_anchor, step: the same functions (same model files: check key["models"]).

    Example:
        >>> image = replay(frame.key, lambda i: ledger_z[i], render, step)  # a trained painter  # doctest: +SKIP
    """
    cfg = FeedbackConfig.from_dict(key["feedback"])

    def run(seg: dict[str, Any]) -> np.ndarray:
        z = np.asarray(anchor_of(seg["ledger_id"]), np.float32)
        if segment_seed(z) != seg["seed"]:
            raise ValueError(f"ledger row {seg['ledger_id']} is not this frame's anchor (seed differs)")
        drifts = [list(d) for d in seg.get("drifts", [])]  # live drift changes (FeedbackLoop.tune)
        if states is None:
            return Segment(0, seg["start"], seg["seed"], render_anchor(z[None])[0],
                           drifts=drifts).picture(key["frame"], step, cfg)
        # Everything the segment's states depend on (the models and knobs too: same anchor, other loop).
        name = json.dumps([seg["ledger_id"], seg["seed"], seg["start"], key.get("models"), key["feedback"], drifts],
                          sort_keys=True)
        s = (key["frame"] - seg["start"]) // cfg.step_every
        found = states.nearest(name, s)  # <= s: a blend of s and s + 1 then steps once at least
        if found is None:
            segment = Segment(0, seg["start"], seg["seed"], render_anchor(z[None])[0], drifts=drifts)
        else:
            segment = Segment(0, seg["start"], seg["seed"], found[2], found[0], found[1], drifts=drifts)
        segment.record = lambda state, before, image: states.add(name, state, before, image)
        return segment.picture(key["frame"], step, cfg)

    current = run(key["segment"])
    return current if key["previous"] is None else mix(run(key["previous"]), current, key["mix"])
