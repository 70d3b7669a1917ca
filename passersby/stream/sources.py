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
class Rewindable(Protocol):
    """A source that can render again from an earlier frame (the latent walk, and Keyframes
    around one): `rewind(index)` says whether frames from `index` on can be rendered again (the
    anchors they need are still held) and, if so, forgets what it kept of them. The engine uses
    it to re-render the frames it had rendered ahead when a slider moves (Engine.steer), so a
    change shows within 2 frames instead of after the whole queue."""

    def rewind(self, index: int) -> bool: ...


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


class LatentWalk:
    """The latent walk as a frame source: anchors from the ledger, a smooth path through them
    (stream/walker.py), each latent rendered by the model.

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

    def render(self, index: int) -> tuple[Image, Key]:
        amounts = self.steering.advance(index)  # id -> std, this frame's share of the ramp
        # The walk's own latent (anchors from the ledger), then the sliders' offset: (z_dim,) float32.
        z = self.steering.apply(self.walker.latent(index), amounts)
        image = self.renderer(z[None])[0]
        key = self.walker.frame_key(index)
        # The frame's anchors as ledger rows (drift: the fresh draws mixed into these anchors).
        key.update(source="latent-walk", model=self.model_hash,
                   ledger_ids=self.anchors.ledger_ids(key["anchor_ids"]), **self.steering.key(amounts))
        return image, key

    def set_offset(self, name: str, amount: float) -> None:
        self.steering.set(name, amount)

    def rewind(self, index: int) -> bool:
        # Frames from `index` on render again while their anchors are in the walker's window.
        if index < 0 or self.walker.anchor_ids(index)[0] < self.walker.window[0]:
            return False
        self.steering.rewind(index)
        return True

    def offsets(self) -> dict[str, float]:
        return self.steering.targets()

    def cut(self, index: int) -> int:
        fpa = self.walk.frames_per_anchor
        return max(index, int(math.ceil((math.floor(index / fpa) + 1) * fpa)))

    def close(self) -> None:
        pass
