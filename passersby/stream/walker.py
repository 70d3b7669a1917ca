"""The path through latent space that the stream shows, frame by frame.

A new *anchor* latent (a face) arrives every `tempo` seconds; anchor i is reached at
t = i * tempo. Between anchors the stream renders `fps` frames a second along a smooth path, so
each face dissolves into the next with no seam at an anchor and no freeze. Choosing the anchors
(RNG, never-repeat ledger) and rendering are someone else's job: this module only maps
(anchors, time) to a latent, as a pure function (`frame_latent`) and as a bounded-memory,
restartable iterator over frame indices (`Walker`).

Styles (`WalkConfig.style`):
    spline  C2 quintic Hermite through the anchors, then put back on the typical shell.
    slerp   great-circle arcs between consecutive anchors with smoothstep easing: C1 in time
            because it rests (zero velocity) at each anchor; the direction turns there.
    drift   a slow random walk: each anchor is the previous one stepped toward a fresh random
            target (`drift_anchor`), then `spline` through them.

Everything is float64 inside and float32 out. No randomness is drawn here except the drift
targets, from a `np.random.Generator` the caller passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from passersby.stream.knobs import Bounds, knob

STYLES = ("spline", "slerp", "drift")
STATE_VERSION = 1
_SNAP = 1e-9  # anchor positions this close to an integer are the anchor: exact frames there


@dataclass(frozen=True)
class WalkConfig:
    """How the stream walks through latent space.

    Args:
        style: "spline", "slerp" or "drift" (see the module docstring).
        tempo: seconds from one anchor to the next.
        fps: frames per second.
        drift_speed: for "drift", the weight of the fresh random target in each new anchor,
            in (0, 1]: anchor' = sqrt(1 - s^2) anchor + s target, so consecutive anchors have
            correlation sqrt(1 - s^2) (0.3 -> 0.95, a slow morph; 1 -> independent faces).
        tangent_scale: spline tangent at anchor i is tangent_scale * (a[i+1] - a[i-1]) / 2.
            1 is Catmull-Rom; in high dimensions it slows to ~0.4x the median speed at every
            anchor, because arcs between random faces are longer than the chords; 1.75 evens
            the speed (~0.65x) and stays monotone on collinear anchors (which needs <= 2).

    Example:
        >>> WalkConfig(tempo=4.0).frames_per_anchor
        120.0
    """

    style: str = knob("spline", "spline (C2 through anchors), slerp (arcs, rests at anchors) or drift (slow random walk).")
    tempo: float = knob(6.0, "Seconds from one anchor face to the next.", bounds=(0.01, 3600))
    fps: float = knob(30.0, "Frames per second of every screen.", bounds=(1, 120))
    drift_speed: float = knob(0.3, "drift only: weight of the fresh face in each new anchor.",
                               bounds=Bounds(0, 1, lo_open=True))
    tangent_scale: float = knob(1.75, "spline only: tangent length at anchors (1.75 evens the speed).",
                                  bounds=Bounds(0, 2, lo_open=True))

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        for name in ("tempo", "fps", "drift_speed", "tangent_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if self.tempo * self.fps < 1:
            raise ValueError(f"tempo must last at least one frame (tempo * fps >= 1), "
                             f"got {self.tempo} s at {self.fps} fps")
        if self.drift_speed > 1:
            raise ValueError(f"drift_speed must be in (0, 1], got {self.drift_speed}")
        if self.tangent_scale > 2:
            raise ValueError(f"tangent_scale must be in (0, 2] (more reverses on collinear anchors), "
                             f"got {self.tangent_scale}")

    @property
    def frames_per_anchor(self) -> float:
        return self.tempo * self.fps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WalkConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown walk config fields {sorted(unknown)}: newer passersby?")
        return cls(**d)


def frame_latent(anchors: np.ndarray, t: float, cfg: WalkConfig) -> np.ndarray:
    """The latent shown at time t (seconds) of the walk through `anchors`.

    Anchor i is reached at t = i * cfg.tempo, exactly (bit for bit in float32). A spline
    segment also looks at one anchor before and after it; at the ends of `anchors` missing
    neighbours are mirrored (a[-1] = 2 a[0] - a[1]), which is what the stream's first anchor sees.

    Args:
        anchors: (k, d) latents, k >= 2, each finite and non-zero.
        t: seconds since anchor 0, in [0, (k - 1) * tempo].
        cfg: the walk; "drift" interpolates like "spline" (the drift is in the anchors).

    Returns:
        (d,) float32.

    Example:
        >>> a = np.random.default_rng(0).standard_normal((4, 128))
        >>> bool(np.all(frame_latent(a, 6.0, WalkConfig()) == a[1].astype(np.float32)))
        True
    """
    a = _check_anchors(anchors)
    i, s = _segment(t, len(a), cfg.tempo)
    if s == 0.0:
        return a[i].astype(np.float32)
    log_r = np.log(np.linalg.norm(a, axis=1))  # (k,): radii are interpolated in log space, so > 0
    if cfg.style == "slerp":
        z = _slerp(a[i], a[i + 1], log_r[i : i + 2], _smoothstep(s))
    else:
        z = _spline(_neighbours(a, i), _neighbours(log_r, i), s, cfg.tangent_scale)
    return z.astype(np.float32)


def anchor_ids(frame_index: int, cfg: WalkConfig) -> tuple[int, ...]:
    """Ids (positions in the walk, from 0) of the anchors that frame `frame_index` depends on.

    Example:
        >>> anchor_ids(200, WalkConfig())  # 200 frames = 6.67 s: between anchors 1 and 2
        (0, 1, 2, 3)
    """
    return _ids_at(_position(frame_index, cfg), cfg.style)


def _ids_at(u: float, style: str) -> tuple[int, ...]:
    """Ids of the anchors the latent at position `u` (anchor i at i.0) depends on."""
    i = math.floor(u)
    if style == "slerp":
        return (i, i + 1)
    return tuple(range(max(i - 1, 0), i + 3))


def drift_anchor(prev: np.ndarray, target: np.ndarray, speed: float) -> np.ndarray:
    """The next drift anchor: `prev` stepped toward the fresh random `target` ~ N(0, I).

    sqrt(1 - speed^2) prev + speed target. In high dimensions target is almost orthogonal to prev
    and about as long, so this is a rotation of prev by asin(speed) toward target. Unlike the
    plain step prev + speed (target - prev), it keeps N(0, I) stationary (an AR(1) process): over
    years of steps the walk neither shrinks toward the origin nor leaves the typical shell.

    Example:
        >>> drift_anchor(np.ones(2), np.zeros(2), 0.6)
        array([0.8, 0.8])
    """
    return math.sqrt(1.0 - speed * speed) * np.asarray(prev, np.float64) + speed * np.asarray(target, np.float64)


def _position(frame_index: int, cfg: WalkConfig) -> float:
    """Frame index -> position in anchors (anchor i at i.0), snapped onto integers."""
    if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
        raise ValueError(f"frame_index must be a non-negative integer, got {frame_index!r}")
    return _snap(int(frame_index) / cfg.frames_per_anchor)


def _snap(u: float) -> float:
    r = round(u)
    return float(r) if abs(u - r) < _SNAP else u


def _segment(t: float, k: int, tempo: float) -> tuple[int, float]:
    """Time -> (segment i, fraction s in [0, 1)) from anchor i toward i + 1; s = 0 at anchors."""
    u = _snap(float(t) / tempo)
    if not 0.0 <= u <= k - 1:
        raise ValueError(f"t must be in [0, {(k - 1) * tempo}] s for {k} anchors, got {t}")
    i = math.floor(u)
    return i, u - i


def _check_anchors(anchors: np.ndarray) -> np.ndarray:
    a = np.asarray(anchors, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"anchors must be (k, d) with k >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(np.linalg.norm(a, axis=1) == 0):
        raise ValueError("anchors must be finite and non-zero")
    return a


def _neighbours(x: np.ndarray, i: int) -> np.ndarray:
    """x[i-1 : i+3] ((4, ...) for a segment), mirroring x[-1] = 2 x[0] - x[1] past either end."""
    before = x[i - 1] if i > 0 else 2 * x[0] - x[1]
    after = x[i + 2] if i + 2 < len(x) else 2 * x[-1] - x[-2]
    return np.stack([before, x[i], x[i + 1], after])


def _quintic_weights(s: float, c: float) -> np.ndarray:
    """(4,) weights of points i-1, i, i+1, i+2 at fraction s of segment i.

    Quintic Hermite with, at each anchor, velocity c (p[i+1] - p[i-1]) / 2 and acceleration
    p[i+1] - 2 p[i] + p[i-1]. Both are defined per anchor, so the two segments meeting there
    agree on position, velocity and acceleration: C2. The weights sum to 1 (affine).
    """
    s2, s3, s4, s5 = s**2, s**3, s**4, s**5
    h0 = 1 - 10 * s3 + 15 * s4 - 6 * s5  # position at 0
    h5 = 10 * s3 - 15 * s4 + 6 * s5  # position at 1
    h1 = c * (s - 6 * s3 + 8 * s4 - 3 * s5)  # velocity at 0, times c
    h4 = c * (-4 * s3 + 7 * s4 - 3 * s5)  # velocity at 1, times c
    h2 = 0.5 * (s2 - 3 * s3 + 3 * s4 - s5)  # acceleration at 0
    h3 = 0.5 * (s3 - 2 * s4 + s5)  # acceleration at 1
    return np.array([h2 - h1 / 2, h0 - 2 * h2 + h3 - h4 / 2, h5 + h1 / 2 + h2 - 2 * h3, h3 + h4 / 2])


def _spline(p: np.ndarray, log_r: np.ndarray, s: float, c: float) -> np.ndarray:
    """Quintic through p (4, d), then scaled to a spline of the log radii log_r (4,).

    A linear blend of Gaussians is shorter than either (mid-way between two random faces it is
    ~0.7 sqrt(d) long) and renders washed out, so the point is put back at the interpolated
    radius: z = exp(w . log_r) p / |p|. x -> x / |x| is smooth away from 0, so z is as smooth
    as p and the radius (C2), and at anchors it is the anchor itself.
    """
    # The radius uses plain Catmull-Rom tangents (c = 1): scaled ones would overshoot its range.
    radius = math.exp(_quintic_weights(s, 1.0) @ log_r)
    return _on_shell(_quintic_weights(s, c) @ p, radius, fallback=p[1] if s < 0.5 else p[2])


def _smoothstep(s: float) -> float:
    return s * s * (3 - 2 * s)


def _slerp(a: np.ndarray, b: np.ndarray, log_r: np.ndarray, e: float) -> np.ndarray:
    """Great-circle arc from a to b at eased fraction e; radius exp of the blended log radii."""
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    theta = math.acos(min(1.0, max(-1.0, float(ua @ ub))))
    if math.sin(theta) < 1e-6:  # (anti)parallel: no unique great circle, blend linearly instead
        u = (1 - e) * ua + e * ub
    else:
        u = (math.sin((1 - e) * theta) * ua + math.sin(e * theta) * ub) / math.sin(theta)
    return _on_shell(u, math.exp((1 - e) * log_r[0] + e * log_r[1]), fallback=a if e < 0.5 else b)


def _on_shell(p: np.ndarray, radius: float, fallback: np.ndarray) -> np.ndarray:
    """p rescaled to length `radius`; `fallback`'s direction where p is ~0 (antipodal anchors)."""
    n = float(np.linalg.norm(p))
    if n < 1e-12 * radius:
        p, n = fallback, float(np.linalg.norm(fallback))
    return p * (radius / n)


class Walker:
    """Frame latents of an endless walk, drawing anchors as they are needed.

    Keeps only the anchors of the latest frame (a window of at most 4), so it can run for
    years; `state()` holds that window, so a restart resumes the exact same path. Frames are
    meant to be asked for in order; a frame whose anchors were dropped raises ValueError (it can
    still be re-rendered from its `frame_key` with `frame_latent`).

    Args:
        cfg: the walk.
        anchor_source: returns the next anchor, a (d,) latent, each time it is called, once
            per anchor, in order. For "drift" it returns anchor 0 and then the drift targets
            (so a ledger can record every fresh draw), unless `rng` is given.
        rng: for "drift" only: draws the drift targets instead of anchor_source (then
            anchor_source is called for anchor 0 only).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> w = Walker(WalkConfig(), lambda: rng.standard_normal(128))
        >>> w.latent(200).shape, w.anchor_ids(200)
        ((128,), (0, 1, 2, 3))
    """

    def __init__(self, cfg: WalkConfig, anchor_source: Callable[[], np.ndarray],
                 rng: np.random.Generator | None = None) -> None:
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be an np.random.Generator (or None), got {type(rng).__name__}")
        self.cfg = cfg
        self._source = anchor_source
        self._rng = rng if cfg.style == "drift" else None
        self._first = 0  # id of _window[0]
        self._window: deque[np.ndarray] = deque()  # float64 (d,) anchors, ids _first, _first + 1, ...
        # Anchors kept before the latest frame's first one, so a frame rendered lately can be
        # rendered again (sources.LatentWalk.rewind, after a live change); 0 = none.
        self.keep_behind = 0

    @property
    def next_anchor_id(self) -> int:
        """Id of the next anchor to be drawn (= how many have been drawn)."""
        return self._first + len(self._window)

    @property
    def window(self) -> tuple[int, int]:
        """(first id, count) of the anchors held."""
        return self._first, len(self._window)

    def anchor_ids(self, frame_index: int) -> tuple[int, ...]:
        """Ids of the anchors that frame `frame_index` depends on."""
        return anchor_ids(frame_index, self.cfg)

    def anchors_needed_until(self, frame_index: int) -> int:
        """How many anchors (ids 0 .. n-1) the walk needs to render frames up to `frame_index`."""
        return anchor_ids(frame_index, self.cfg)[-1] + 1

    def frame_key(self, frame_index: int, position: float | None = None) -> dict[str, Any]:
        """What identifies frame `frame_index` (add the model's hash): JSON-able.

        frame_latent(anchors[key["anchor_ids"]], key["t"], WalkConfig.from_dict(key["walk"]))
        is the frame, bit for bit; "t" is seconds since the first listed anchor. `position`
        (anchor i at i.0) replaces the frame's own position index / frames_per_anchor, for a
        walk whose tempo changed while it ran (sources.LatentWalk.tune).
        """
        ids, t = self._locate(frame_index, position)
        return {"frame": int(frame_index), "anchor_ids": list(ids), "t": t, "walk": self.cfg.to_dict()}

    def latent(self, frame_index: int, position: float | None = None) -> np.ndarray:
        """The (d,) float32 latent of frame `frame_index` (at `position`, as in frame_key);
        draws anchors up to the ones it needs."""
        ids, t = self._locate(frame_index, position)  # as in frame_key, so the key reproduces this exactly
        if ids[0] < self._first:
            raise ValueError(f"frame {frame_index} needs anchor {ids[0]}, already dropped (window starts at "
                             f"{self._first}); re-render it from its frame_key")
        self._draw_until(ids[-1], keep_from=ids[0])
        z = frame_latent(np.stack([self._window[i - self._first] for i in ids]), t, self.cfg)
        self._drop_before(ids[0] - self.keep_behind)
        return z

    def holds(self, position: float) -> bool:
        """Whether the anchors of the latent at `position` are still in the window (a frame
        rendered lately can be rendered again: sources.LatentWalk.rewind).

        Example:
            >>> w = Walker(WalkConfig(), lambda: np.ones(4)); _ = w.latent(400)
            >>> w.holds(400 / 180), w.holds(0.0)
            (True, False)
        """
        return _ids_at(_snap(float(position)), self.cfg.style)[0] >= self._first

    def anchor(self, anchor_id: int) -> np.ndarray:
        """Anchor `anchor_id` as float32, while it is in the window (e.g. to log drift anchors)."""
        if not self._first <= anchor_id < self.next_anchor_id:
            raise ValueError(f"anchor {anchor_id} is not in the window {self.window}")
        return self._window[anchor_id - self._first].astype(np.float32)

    def _locate(self, frame_index: int, position: float | None = None) -> tuple[tuple[int, ...], float]:
        """(anchor ids, seconds since the first of them) of frame `frame_index` (at `position`)."""
        if position is None:
            u = _position(frame_index, self.cfg)
        elif not (math.isfinite(position) and position >= 0):
            raise ValueError(f"position must be a finite number >= 0, got {position!r}")
        else:
            u = _snap(float(position))
        ids = _ids_at(u, self.cfg.style)
        return ids, (u - ids[0]) * self.cfg.tempo

    def state(self) -> dict[str, Any]:
        """JSON-able state: with the same anchor_source position, `from_state` continues exactly."""
        return {"version": STATE_VERSION, "walk": self.cfg.to_dict(), "first_id": self._first,
                "next_anchor_id": self.next_anchor_id, "anchors": [a.tolist() for a in self._window],
                "rng": None if self._rng is None else _to_json(self._rng.bit_generator.state)}

    @classmethod
    def from_state(cls, state: dict[str, Any], anchor_source: Callable[[], np.ndarray]) -> "Walker":
        """The walker `state()` was taken from; anchor_source must next return anchor
        state["next_anchor_id"]. A drift walker gets its Generator back from the state."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"walker state version {state.get('version')!r}, expected {STATE_VERSION}")
        cfg = WalkConfig.from_dict(state["walk"])
        w = cls(cfg, anchor_source, None if state["rng"] is None else _rng_from_json(state["rng"]))
        anchors = [np.asarray(a, dtype=np.float64) for a in state["anchors"]]
        if state["first_id"] + len(anchors) != state["next_anchor_id"] or (state["next_anchor_id"] and not anchors):
            raise ValueError("walker state is inconsistent: first_id + len(anchors) != next_anchor_id, or no anchors")
        w._first, w._window = int(state["first_id"]), deque(anchors)
        return w

    def _draw_until(self, anchor_id: int, keep_from: int) -> None:
        while self.next_anchor_id <= anchor_id:
            self._window.append(self._next_anchor())
            self._drop_before(keep_from - self.keep_behind)  # a jump far ahead draws every anchor on the way, in order

    def _drop_before(self, anchor_id: int) -> None:
        # The newest anchor stays: drift steps from it.
        while self._first < anchor_id and len(self._window) > 1:
            self._window.popleft()
            self._first += 1

    def _next_anchor(self) -> np.ndarray:
        drifting = self.cfg.style == "drift" and bool(self._window)
        if drifting and self._rng is not None:
            prev = self._window[-1]
            return _f32(drift_anchor(prev, self._rng.standard_normal(prev.shape), self.cfg.drift_speed))
        a = _f32(np.asarray(self._source()))
        expected = self._window[-1].shape if self._window else a.shape
        if a.ndim != 1 or a.shape != expected or not np.all(np.isfinite(a)) or not np.any(a):
            raise ValueError(f"anchor_source gave anchor {self.next_anchor_id} of shape {a.shape}: "
                             f"expected a finite, non-zero vector of shape {expected}")
        return _f32(drift_anchor(self._window[-1], a, self.cfg.drift_speed)) if drifting else a


def _f32(a: np.ndarray) -> np.ndarray:
    """float64 holding float32 values: anchors are what the generator sees and what gets logged
    (`anchor()`), so frames re-rendered from logged float32 anchors are the same bit for bit."""
    return a.astype(np.float32).astype(np.float64)


def _to_json(x: Any) -> Any:
    """A bit generator's state with its ndarrays (MT19937, Philox, SFC64) as tagged lists."""
    if isinstance(x, dict):
        return {k: _to_json(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return {"ndarray": x.tolist(), "dtype": x.dtype.str}
    return x


def _from_json(x: Any) -> Any:
    if isinstance(x, dict) and set(x) == {"ndarray", "dtype"}:
        return np.asarray(x["ndarray"], dtype=x["dtype"])
    return {k: _from_json(v) for k, v in x.items()} if isinstance(x, dict) else x


def _rng_from_json(state: dict[str, Any]) -> np.random.Generator:
    kind = getattr(np.random, str(state.get("bit_generator")), None)
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        raise ValueError(f"unknown bit generator {state.get('bit_generator')!r} in walker state")
    bits = kind()
    bits.state = _from_json(state)
    return np.random.Generator(bits)
