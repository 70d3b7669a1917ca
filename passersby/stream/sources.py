"""Frame sources and stages: what a screen shows, behind two small interfaces.

    Anchors (ledger claims) -> FrameSource -> Stage -> Stage ... -> Frame -> pacer -> sinks

A `FrameSource` turns a frame index into a picture and the key that re-renders it; it asks
its `Anchors` for never-used faces (each one claimed in the ledger before any pixel of it is
rendered). The engine (stream/engine.py) owns the thread, the queue, the ledger connection and
the pacing, and knows nothing else: a latent walk (`LatentWalk`, here), a feedback loop or any
other source plugs in unchanged, and so do the sinks, the ledger, taste steering and the kiosk.
A `Stage` transforms a finished picture (e.g. an enhancer that upscales it) and records itself
in the key.

Sources are built per screen by the application layer (passersby.app.installation), which
knows the models; nothing here imports one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from passersby.stream.offsets import Offsets
from passersby.stream.walker import Walker, WalkConfig

Image = np.ndarray  # (H, W, 3) uint8 RGB
Key = dict[str, Any]  # JSON-able: what re-renders the frame


class Anchors(Protocol):
    """A screen's never-used faces: each call claims the next one in the ledger (recorded
    before it is returned) and gives its latent; `ledger_ids` maps claim positions (0, 1, ...)
    to ledger row ids, for frame keys."""

    claimed: int

    def __call__(self) -> np.ndarray: ...

    def ledger_ids(self, positions: list[int]) -> list[int]: ...


@runtime_checkable
class FrameSource(Protocol):
    """Frames of one screen, asked for in increasing index order (jumps ahead allowed).

    `render(index)` -> (image (H, W, 3) uint8, key); `cut(index)` -> the first index at or
    after `index` that shows a new face (what "next" jumps to); `close()` releases resources.

    A source may also have capabilities, each a protocol below that the engine checks with
    isinstance (tests/stream/test_source_contract.py holds every source to the ones it declares):
    `Pressable` (a viewer's button: the peepshow), `Describable` (the chain it runs, for the
    status page: Keyframes), `Stateful` (a state of its own for the status page: the peepshow)
    and `Steerable` (offsets along named latent directions: the latent walk).

    Example:
        >>> walk = LatentWalk.__new__(LatentWalk)  # any object with the methods is one
        >>> isinstance(walk, FrameSource), isinstance(walk, Pressable)
        (True, False)
    """

    def render(self, index: int) -> tuple[Image, Key]: ...

    def cut(self, index: int) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class Pressable(Protocol):
    """A source with a button (stream/peep.PeepSource): `press()` is called from any thread and
    says whether a new face starts now (the engine then drops the frames rendered ahead)."""

    def press(self) -> bool: ...


@runtime_checkable
class Describable(Protocol):
    """A source that says how it renders, for the status page's "chains" (stream/keyframes.Keyframes:
    the chain's level, stages and keyframe spacing); a JSON-able dict."""

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Stateful(Protocol):
    """A source with a state of its own, for the status page's "screen_state" (the peepshow:
    blank or a face, presses by outcome); a JSON-able dict, safe to ask from any thread."""

    def state(self) -> dict[str, Any]: ...


@runtime_checkable
class Steerable(Protocol):
    """A source whose faces move along named latent directions (sliders, OSC, MIDI): the latent
    walk (and Keyframes around one, stream/keyframes.SteeredKeyframes). Amounts are in std units
    of each direction's component, clamped to [-3, 3]; a change ramps in over a few frames from
    the next frame rendered, and each frame's key records the amounts it was rendered with
    (stream/offsets.py). Callable from any thread.

    `set_offset(name, amount)` raises KeyError for an unknown name (the message lists the known
    ones); `offsets()` gives every direction's name and target amount."""

    def set_offset(self, name: str, amount: float) -> None: ...

    def offsets(self) -> dict[str, float]: ...


@runtime_checkable
class Tunable(Protocol):
    """A source with knobs that may change while it runs (the walk: tempo, speed; the feedback
    loop: drift, tempo). `tune(name, value)` is called from any thread: it checks the value
    (ValueError naming the knob) and the source applies it from the next frame it renders;
    `tunings()` are the values now (JSON-able). The engine drops the frames rendered ahead when
    a knob turns (stream/engine.ScreenProducer.renew), so a change shows within 2 frames."""

    def tune(self, name: str, value: float) -> None: ...

    def tunings(self) -> dict[str, float]: ...


@runtime_checkable
class Refreshable(Protocol):
    """A source that keeps pictures rendered ahead of the frame it is asked for (stream/keyframes:
    the next keyframe): `refresh()` forgets them, so a live change reaches the next frames."""

    def refresh(self) -> None: ...


@runtime_checkable
class Rewindable(Protocol):
    """A source that can render again from a recent frame (the walk: its path is a function of
    the anchors it still holds): `rewind(index)` -> whether the next `render` may be `index`.
    After a live change the engine renders the dropped frames again, with the change, so no
    frame is skipped; a source that cannot (the feedback loop runs forward) goes on from where
    it is. A source may also have `rewind_after(index)` -> bool: render on after `index`, which
    stays as rendered, with the change taking effect there (Keyframes keeps the keyframe a
    shown frame blended from; LatentWalk has it)."""

    def rewind(self, index: int) -> bool: ...


def capable(source: Any, capability: type) -> Any:
    """`source`, or the source it wraps (its `wrapped`, e.g. Keyframes around a walk), that has
    `capability`; None when neither has it.

    Example:
        >>> class Wrapper:
        ...     wrapped = LatentWalk.__new__(LatentWalk)
        >>> type(capable(Wrapper(), Tunable)).__name__, capable(Wrapper(), Pressable)
        ('LatentWalk', None)
    """
    seen = 0
    while source is not None and seen < 8:  # wrappers nest a level or two; never a cycle
        if isinstance(source, capability):
            return source
        source, seen = getattr(source, "wrapped", None), seen + 1
    return None


class Stage(Protocol):
    """A picture-to-picture step after the source (e.g. an upscaler): (image, key) -> (image,
    key); it adds its own identity to the key so the frame can be re-rendered through it."""

    def __call__(self, image: Image, key: Key) -> tuple[Image, Key]: ...


def mix(a: Image, b: Image, w: float) -> Image:
    """(1 - w) a + w b of two uint8 pictures of one size, rounded (crossfades, keyframe blends).

    Example:
        >>> int(mix(np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8), 0.5)[0, 0, 0])
        128
    """
    if w >= 1.0:
        return b
    return np.clip(np.rint((1 - w) * a.astype(np.float32) + w * b.astype(np.float32)), 0, 255).astype(np.uint8)


def run_stages(stages: tuple[Stage, ...] | list[Stage], image: Image, key: Key) -> tuple[Image, Key]:
    """Pass a frame through `stages` in order.

    Example:
        >>> flip = lambda im, k: (im[:, ::-1], {**k, "stages": k.get("stages", []) + ["flip"]})
        >>> run_stages([flip], np.zeros((2, 3, 3), np.uint8), {})[1]
        {'stages': ['flip']}
    """
    for stage in stages:
        image, key = stage(image, key)
    return image, key


WALK_TUNINGS = {"tempo": (0.05, 3600.0), "speed": (0.0, 8.0)}  # live knobs of the walk: (lo, hi)
RECENT = 64  # frames a walk can go back to (more than a queue of frames rendered ahead)


class LatentWalk:
    """The latent walk as a frame source: anchors from the ledger, a smooth path through them
    (stream/walker.py), each latent rendered by the model.

    Tunable (live knobs, `tune`): "tempo" (seconds from one anchor face to the next) and
    "speed" (how fast the walk moves along its path, 1 = as the tempo says, 0 = holds the
    face). A change bends the path's timing at the frame it reaches, never its place: the walk
    goes on from where it is, at the new rate. Keys stay exact: "t" is measured in the
    configured tempo (the key's "walk"), and "timing" records the live values.

    Args:
        walk: the path's style and tempo.
        anchors: the screen's ledger claims (Anchors).
        renderer: (1, z_dim) float32 -> (1, R, R, 3) uint8.
        model_hash: the renderer's model, written in every key.
        offsets: the screen's directions and slider positions (stream/offsets.Offsets); None:
            none to steer along (`set_offset` then refuses every name).

    Example:
        >>> src = LatentWalk(WalkConfig(tempo=1.0, fps=4.0), anchors, renderer, "9f2c")  # anchors and a renderer built elsewhere  # doctest: +SKIP
        >>> image, key = src.render(0)  # anchors and a renderer built elsewhere  # doctest: +SKIP
    """

    def __init__(self, walk: WalkConfig, anchors: Anchors, renderer: Callable[[np.ndarray], np.ndarray],
                 model_hash: str, offsets: Offsets | None = None) -> None:
        self.walk, self.anchors, self.renderer, self.model_hash = walk, anchors, renderer, model_hash
        self.walker = Walker(walk, anchors)
        self.steering = offsets or Offsets()
        self.walker.keep_behind = 2  # a few anchors more, so a live change can go back over an anchor (rewind)
        self.tempo, self.speed = float(walk.tempo), 1.0
        self._pending: dict[str, float] = {}  # set by tune (any thread), applied by render
        # (frame index, position) where the present rate began; None: never tuned (index / frames per anchor).
        self._pivot: tuple[int, float] | None = None
        self._recent: dict[int, float] = {}  # index -> position of the frames rendered lately (rewind)

    def tune(self, name: str, value: float) -> None:
        """Set live knob `name` ("tempo" seconds, "speed" factor) from the next frame on.

        Example:
            >>> walk = LatentWalk(WalkConfig(), None, None, "m")
            >>> walk.tune("speed", 2.0); walk.tunings()  # applied from the next frame rendered
            {'tempo': 6.0, 'speed': 2.0}
        """
        if name not in WALK_TUNINGS:
            raise ValueError(f"the walk has no live knob {name!r}; it has {sorted(WALK_TUNINGS)}")
        lo, hi = WALK_TUNINGS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValueError(f"walk {name} must be a number in {lo:g}..{hi:g}, got {value!r}")
        self._pending[name] = float(value)

    def tunings(self) -> dict[str, float]:
        return {"tempo": self._pending.get("tempo", self.tempo), "speed": self._pending.get("speed", self.speed)}

    def _rate(self) -> float:
        """Anchor positions per frame now."""
        return self.speed / (self.tempo * self.walk.fps)

    def _position(self, index: int) -> float | None:
        if self._pivot is None:
            return None  # the walker's own index / frames_per_anchor, bit for bit as before any tuning
        i0, u0 = self._pivot
        return u0 + (index - i0) * self._rate()

    def _apply(self, index: int) -> None:
        """Take the pending knobs at frame `index`: the position there stays, the rate changes."""
        u = self._position(index)
        u = index / self.walk.frames_per_anchor if u is None else u
        pending, self._pending = self._pending, {}
        self.tempo, self.speed = pending.get("tempo", self.tempo), pending.get("speed", self.speed)
        self._pivot = (index, u)

    def rewind(self, index: int) -> bool:
        """Render on from recent frame `index` (sources.Rewindable), at the place it had; False
        when it is not recent or its anchors have left the walker's window."""
        u = self._recent.get(index)
        if u is None:
            return False
        if not self.walker.holds(u):
            return False
        if self._pivot is not None:
            self._pivot = (index, u)
        for i in [i for i in self._recent if i > index]:  # (index itself stays: it can be gone back to again)
            del self._recent[i]
        self.steering.rewind(index)  # the sliders' ramp goes on from the frame before `index`
        return True

    def rewind_after(self, index: int) -> bool:
        """Render on after recent frame `index`, which stays as it was rendered (a keyframe already
        shown, stream/keyframes.Keyframes.rewind): live changes made since take effect at it. The
        walk's place there stays and a new rate moves it from there; the sliders ramp on from its
        amounts. False when it is not recent or its anchors have left the walker's window.

        Example:
            >>> walk.render(10); walk.tune("speed", 2.0); walk.rewind_after(10)  # a walk built elsewhere  # doctest: +SKIP
            True
        """
        u = self._recent.get(index)
        if u is None or not self.walker.holds(u):
            return False
        if self._pivot is not None:
            self._pivot = (index, u)
        if self._pending:
            self._apply(index)
        for i in [i for i in self._recent if i > index]:
            del self._recent[i]
        self.steering.rewind(index + 1)  # the ramp goes on from frame `index`'s amounts
        return True

    def render(self, index: int) -> tuple[Image, Key]:
        if self._pending:
            self._apply(index)
        u = self._position(index)
        self._recent[index] = index / self.walk.frames_per_anchor if u is None else u
        if len(self._recent) > RECENT:
            del self._recent[min(self._recent)]
        amounts = self.steering.advance(index)  # id -> std, this frame's share of the sliders' ramp
        # The walk's own latent (anchors from the ledger), then the sliders' offset: (z_dim,) float32.
        z = self.steering.apply(self.walker.latent(index, u), amounts)
        image = self.renderer(z[None])[0]
        key = self.walker.frame_key(index, u)
        # The frame's anchors as ledger rows (drift: the fresh draws mixed into these anchors).
        key.update(source="latent-walk", model=self.model_hash,
                   ledger_ids=self.anchors.ledger_ids(key["anchor_ids"]), **self.steering.key(amounts))
        if self._pivot is not None:
            key["timing"] = {"tempo": self.tempo, "speed": self.speed}
        return image, key

    def set_offset(self, name: str, amount: float) -> None:
        self.steering.set(name, amount)

    def offsets(self) -> dict[str, float]:
        return self.steering.targets()

    def cut(self, index: int) -> int:
        if self._pivot is None and not self._pending:
            fpa = self.walk.frames_per_anchor
            return max(index, int(math.ceil((math.floor(index / fpa) + 1) * fpa)))
        # A tuned walk (its rate may even be 0): the next anchor from this very frame on.
        if self._pending:
            self._apply(index)
        u = self._position(index)
        self._pivot = (index, float(math.floor(u + 1e-9) + 1))
        return index

    def close(self) -> None:
        pass
