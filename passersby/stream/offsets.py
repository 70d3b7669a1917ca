"""Live offsets along named latent directions: the sliders of a screen, model-free.

The application layer hands a screen's source a set of directions (passersby/model/directions.py
finds and stores them): per direction a stable id ("pca-3", "label"), a name the artist chose
("head turn"), and a step vector (z_dim,) = one standard deviation of its component in z. A
control (OSC, MIDI, a slider: `Steerable.set_offset`) sets a target amount in std units, clamped
to [-3, 3]; each rendered frame moves the applied amount toward the target by at most
`RAMP_PER_FRAME` std per frame (a knob turned fast still turns the face smoothly; a change
starts at the next frame the source renders and a jump of 1 std is done within 2 frames).

The offset changes the latent of what is rendered, never the anchors the ledger holds: the key
of each steered frame records the amounts applied (by direction id, so renaming keeps keys
valid) and the digest of the vectors, and `apply_offsets` (the one function both the stream
and the re-renderer call) reproduces its latent bit for bit.

The ledger claims the anchor, not the shown latent: the anchor is the face (a head turned by a
slider is the same sitter), the shown latent changes every frame with the sliders, and a claim
is made ahead of the frames that show it. What the ledger then guarantees with sliders in play:
every face is still claimed before a pixel of it is shown, and a new anchor is refused when it
is within 6 (the ledger's threshold, in z) of a face shown before - which every face shown
before moved by one slider is (one std of a direction is ~1 in z, a slider stops at 3 std), so
no slider brings back a face the ledger holds (tests/stream/test_offsets.py). Only several
sliders at their ends together (|sum of offsets| >= 6) reach past that radius. The critic and
the taste judge a candidate anchor moved by the sliders' targets (`delta`): the face as shown.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

LIMIT = 3.0  # amounts are in std units of their component, clamped to [-LIMIT, LIMIT]
RAMP_PER_FRAME = 0.5  # std per rendered frame: -3 -> +3 in 12 frames (0.4 s at 30 fps)
HISTORY = 64  # rendered frames whose amounts are remembered for a rewind (> any queue a rewind trims)


def vectors_digest(ids: list[str], vectors: np.ndarray) -> str:
    """A short hash of direction ids and their (k, z_dim) step vectors, as float32 bytes.

    Example:
        >>> vectors_digest(["pca-0"], np.eye(2)[:1])
        '2cb2360b6b4c7e18'
    """
    h = hashlib.sha256()
    for i, v in zip(ids, np.asarray(vectors, np.float32)):
        h.update(i.encode() + b"\0" + v.tobytes())
    return h.hexdigest()[:16]


def apply_offsets(latent: np.ndarray, steps: dict[str, np.ndarray], amounts: dict[str, float]) -> np.ndarray:
    """latent (d,) float32 moved by amount x step for each id in `amounts`, in sorted id order
    (float32, one fixed order: a re-render adds the same numbers in the same order).

    Args:
        latent: (d,) float32 latent of the frame.
        steps: direction id -> (d,) step vector (one std of its component).
        amounts: direction id -> applied amount in std units.

    Example:
        >>> apply_offsets(np.zeros(2, np.float32), {"a": np.array([1.0, 0.0])}, {"a": 1.5}).tolist()
        [1.5, 0.0]
    """
    z = np.asarray(latent, np.float32).copy()
    for i in sorted(amounts):
        z += np.float32(amounts[i]) * np.asarray(steps[i], np.float32)
    return z


def clamp(amount: float) -> float:
    """An amount as a finite float in [-LIMIT, LIMIT].

    Raises:
        ValueError: not a finite number.

    Example:
        >>> clamp(7), clamp(-1.25)
        (3.0, -1.25)
    """
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.floating, np.integer)):
        raise ValueError(f"an offset must be a number of std, got {amount!r}")
    a = float(amount)
    if not math.isfinite(a):
        raise ValueError(f"an offset must be finite, got {a!r}")
    return min(LIMIT, max(-LIMIT, a))


@dataclass(frozen=True)
class DirectionSteps:
    """The directions a screen can be steered along: ids, names and (k, z_dim) step vectors.

    Example:
        >>> s = DirectionSteps(("pca-0",), ("head turn",), np.eye(3)[:1])
        >>> s.id_of("head turn"), s.names
        ('pca-0', ('head turn',))
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    vectors: np.ndarray  # (k, z_dim) float32: one std of each direction's component

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors, np.float32)
        v = v.reshape(len(self.ids), -1) if len(self.ids) else np.zeros((0, 0), np.float32)
        object.__setattr__(self, "vectors", v)
        if len(self.names) != len(self.ids) or len(set(self.names)) != len(self.names) or len(set(self.ids)) != len(self.ids):
            raise ValueError("directions need one unique name and one unique id each")

    @property
    def digest(self) -> str:
        return vectors_digest(list(self.ids), self.vectors)

    @property
    def steps(self) -> dict[str, np.ndarray]:
        """id -> (z_dim,) step vector."""
        return dict(zip(self.ids, self.vectors))

    def id_of(self, name: str) -> str:
        """The id of the direction called `name` (its id works too). An OSC address or a MIDI file
        cannot hold a space: "head-turn", "head_turn" and "Head Turn" all name "head turn".

        Raises:
            KeyError: no such direction (the message lists the names).
        """
        if name in self.names:
            return self.ids[self.names.index(name)]
        if name in self.ids:
            return name
        loose = [i for n, i in zip(self.names, self.ids) if _loose(n) == _loose(name)]
        if len(loose) == 1:
            return loose[0]
        raise KeyError(f"no direction named {name!r}; known: {', '.join(self.names) or 'none'}")


def _loose(name: str) -> str:
    """A direction's name without case, its words apart by one space.

    Example:
        >>> _loose("Head_turn"), _loose("head-turn")
        ('head turn', 'head turn')
    """
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


class Offsets:
    """A screen's slider positions (targets) and the amounts applied to the frame being rendered.

    Thread-safe: `set` comes from a control thread, `advance` from the screen's producer.

    Args:
        steps: the directions (DirectionSteps); None: nothing to steer.
        initial: name -> amount applied from the first frame (the settings' fixed offsets).
        ramp: std per rendered frame the applied amount moves toward its target.

    Example:
        >>> o = Offsets(DirectionSteps(("pca-0",), ("turn",), np.eye(2)[:1]))
        >>> o.set("turn", 1.0)
        >>> o.advance(0), o.advance(1)
        ({'pca-0': 0.5}, {'pca-0': 1.0})
    """

    def __init__(self, steps: DirectionSteps | None = None, initial: dict[str, float] | None = None,
                 ramp: float = RAMP_PER_FRAME) -> None:
        self.steps = steps or DirectionSteps((), (), np.zeros((0, 0), np.float32))
        self.ramp = float(ramp)
        self._lock = threading.Lock()
        self._target: dict[str, float] = {}  # id -> target amount
        self._applied: dict[str, float] = {}  # id -> amount of the last rendered frame
        self._frame: int | None = None  # index of the last rendered frame
        # (frame, amounts) of the latest frames, so a rewind (the engine re-rendering frames it
        # had queued) ramps on from what the frame before showed, never with a jump.
        self._history: deque[tuple[int, dict[str, float]]] = deque(maxlen=HISTORY)
        for name, amount in (initial or {}).items():
            i = self.steps.id_of(name)
            self._target[i] = self._applied[i] = clamp(amount)
        self._initial = dict(self._applied)

    def set(self, name: str, amount: float) -> None:
        """Target `amount` std (clamped to [-3, 3]) along the direction `name` (or its id)."""
        i, a = self.steps.id_of(name), clamp(amount)
        with self._lock:
            self._target[i] = a

    def targets(self) -> dict[str, float]:
        """name -> target amount, every direction (0.0 where none was set)."""
        with self._lock:
            return {n: self._target.get(i, 0.0) for i, n in zip(self.steps.ids, self.steps.names)}

    def advance(self, frame: int) -> dict[str, float]:
        """The amounts (id -> std, zeros left out) for frame `frame`: each applied amount moved
        toward its target by at most ramp x (frames since the last call), at least one frame's worth."""
        with self._lock:
            frames = 1 if self._frame is None else max(1, frame - self._frame)
            self._frame = frame
            step = self.ramp * frames
            for i, want in self._target.items():
                have = self._applied.get(i, 0.0)
                self._applied[i] = want if abs(want - have) <= step else have + math.copysign(step, want - have)
            self._history.append((frame, dict(self._applied)))
            return {i: a for i, a in sorted(self._applied.items()) if a != 0.0}

    def rewind(self, frame: int) -> None:
        """Frames from `frame` on will be rendered again: the ramp goes on from the amounts of the
        latest frame before it (the first frame's, if none is remembered)."""
        with self._lock:
            while self._history and self._history[-1][0] >= frame:
                self._history.pop()
            if self._history:
                self._frame, applied = self._history[-1]
                self._applied = dict(applied)
            else:
                self._frame, self._applied = None, dict(self._initial)

    def delta(self) -> np.ndarray | None:
        """(z_dim,) float32 sum of the targets' offsets, or None when all are 0: what a candidate
        anchor will look like once the sliders have arrived (the critic and the taste judge that)."""
        with self._lock:
            amounts = {i: a for i, a in self._target.items() if a != 0.0}
        if not amounts:
            return None
        return apply_offsets(np.zeros(self.steps.vectors.shape[1], np.float32), self.steps.steps, amounts)

    def key(self, amounts: dict[str, float]) -> dict[str, Any]:
        """The frame-key entries of applied `amounts` ({} when none: unsteered keys stay as they were)."""
        if not amounts:
            return {}
        return {"offsets": dict(amounts), "directions": self.steps.digest}

    def apply(self, latent: np.ndarray, amounts: dict[str, float]) -> np.ndarray:
        """latent (d,) float32 moved by `amounts` (apply_offsets)."""
        return apply_offsets(latent, self.steps.steps, amounts) if amounts else latent
