"""Re-render any frame the stream showed from its key: what captures (and the gallery) use.

A key (stream/sources.py, stream/feedback.py, stream/keyframes.py) names everything a frame
depends on: the models' hashes, the ledger rows of its anchors, the walk's position or the
loop's segment, the keyframes it was blended from and the stages it went through. Given the
same models, the ledger and the same runtime, `shown(key)` gives back the frame's pixels, bit
for bit; `best(key)` gives the best picture of the same moment the chain can make (the
enhancer applied even where this machine's live chain had to leave it out).

    key ──> source picture (walk: latent -> generator; feedback: replay from the anchor)
        ──> stages ("stages": the enhancer)  ──> blended with the next keyframe ("between")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from passersby.stream.feedback import LoopStates, replay
from passersby.stream.offsets import DirectionSteps, apply_offsets
from passersby.stream.sources import mix
from passersby.stream.walker import WalkConfig, frame_latent

Image = np.ndarray


class RerenderError(ValueError):
    """A key this installation cannot re-render (other models, unknown source, missing anchor)."""


@dataclass
class Rerenderer:
    """Re-renders frames with one installation's models.

    Args:
        models: {"generator": hash, "painter": hash (feedback), "enhancer": hash (if any)}.
        render_for: screen name -> (1, z_dim) float32 -> (1, R, R, 3) uint8 (the screen's class).
        anchor_of: ledger id -> the anchor's latent (z_dim,) float32.
        step: the feedback loop's step (app/feedback.loop_step), or None.
        upscale: the enhancer, picture -> 2x picture, or None.
        directions: the installation's directions (stream/offsets.DirectionSteps), for frames
            steered along them (key "offsets"), or None.

    Example:
        >>> image = rr.shown(frame.key)  # a frame shown by a running installation  # doctest: +SKIP
        >>> np.array_equal(image, frame.image)  # a frame shown by a running installation  # doctest: +SKIP
        True
    """

    models: dict[str, str]
    render_for: Callable[[str], Callable[[np.ndarray], np.ndarray]]
    anchor_of: Callable[[int], np.ndarray]
    step: Callable[[Image, np.ndarray], Image] | None = None
    upscale: Callable[[Image], Image] | None = None
    directions: DirectionSteps | None = None
    _renderers: dict[str, Callable] = field(default_factory=dict)
    # The last few source pictures by key: a capture asks for the frame as shown and at its
    # best, which share their source (a feedback frame's replay may take seconds).
    _memo: dict[str, Image] = field(default_factory=dict)
    # Feedback loop states kept per segment (stream/feedback.LoopStates): once a segment was
    # replayed, any of its frames re-renders from a state at most 3 paintings before it.
    _loop_states: LoopStates = field(default_factory=LoopStates)

    def _render(self, screen: str) -> Callable[[np.ndarray], np.ndarray]:
        if screen not in self._renderers:
            self._renderers[screen] = self.render_for(screen)
        return self._renderers[screen]

    def _check(self, role: str, want: str | None) -> None:
        have = self.models.get(role)
        if want is not None and want != have:
            raise RerenderError(f"the frame was made by {role} {want}, this installation has {have or 'none'}: "
                                f"re-render it with the same {role} file")

    def source(self, key: dict[str, Any]) -> Image:
        """The source's picture of the key's frame (before blends and stages)."""
        memo = json.dumps(key, sort_keys=True, default=str)
        if memo not in self._memo:
            self._memo[memo] = self._source(key)
            while len(self._memo) > 4:
                self._memo.pop(next(iter(self._memo)))
        return self._memo[memo]

    def _source(self, key: dict[str, Any]) -> Image:
        screen = key.get("screen", "")
        if key.get("source") == "latent-walk":
            self._check("generator", key.get("model"))
            z = np.stack([self.anchor_of(i) for i in key["ledger_ids"]])
            latent = self._steered(frame_latent(z, key["t"], WalkConfig.from_dict(key["walk"])), key)
            return self._render(screen)(latent[None])[0]
        if key.get("source") == "anchor":  # a face at its anchor (the gallery's "recently shown")
            self._check("generator", key.get("model"))
            return self._render(screen)(self.anchor_of(key["ledger_ids"][0])[None])[0]
        if key.get("source") == "peep":
            if key.get("state") == "blank":
                raise RerenderError("the peep screen is blank: nothing to re-render (press first)")
            self._check("generator", key.get("model"))
            return self._render(screen)(self.anchor_of(key["ledger_ids"][0])[None])[0]
        if key.get("source") == "feedback":
            models = key.get("models", {})
            self._check("generator", models.get("generator"))
            self._check("painter", models.get("painter"))
            if self.step is None:
                raise RerenderError("a feedback frame needs the painter; this installation has no feedback screen")
            return replay(key, self.anchor_of, self._render(screen), self.step, self._loop_states)
        raise RerenderError(f"unknown frame source {key.get('source')!r}")

    def _steered(self, latent: np.ndarray, key: dict[str, Any]) -> np.ndarray:
        """The walk's latent moved as the stream moved it (key "offsets": direction id -> std)."""
        amounts = key.get("offsets")
        if not amounts:
            return latent
        have = self.directions.digest if self.directions is not None else None
        if key.get("directions") != have:
            raise RerenderError(f"the frame was steered along directions {key.get('directions')}, this installation "
                                f"has {have or 'none'}: re-render it with the same model.directions file")
        return apply_offsets(latent, self.directions.steps, amounts)

    def shown(self, key: dict[str, Any]) -> Image:
        """The frame as it was shown: its keyframe(s) through the recorded stages, blended."""
        stages = key.get("stages", [])
        image = self._blended(key, lambda k: self._stages(self.source(k), stages))
        if key.get("fade"):  # a peep face fading to black (stream/peep.py)
            image = mix(image, np.zeros_like(image), key["fade"])
        return image

    def best(self, key: dict[str, Any]) -> tuple[Image, str]:
        """(the best picture of the key's moment, what it is): the enhancer's output when this
        installation has the enhancer, else the frame as shown (a peep face: whole, not faded)."""
        if self.upscale is None:
            return self.shown({**key, "fade": 0.0}), "as shown"
        return self._blended(key, lambda k: self.upscale(self.source(k))), f"enhancer {self.models.get('enhancer')}"

    def _blended(self, key: dict[str, Any], keyframe: Callable[[dict[str, Any]], Image]) -> Image:
        """`keyframe(key)`, or for a frame between two keyframes (stream/keyframes.py) the blend
        of both, as the stream made it (after the stages)."""
        between = key.get("between")
        if not between:
            return keyframe(key)
        first = {k: v for k, v in key.items() if k != "between"}
        first.update(frame=between["from"], ledger_ids=between["from_ledger_ids"])
        nxt = {**between["next"], "screen": key.get("screen", "")}
        return mix(keyframe(first), keyframe(nxt), between["mix"])

    def _stages(self, image: Image, stages: list[dict[str, str]]) -> Image:
        for stage in stages:
            if "enhancer" not in stage:
                raise RerenderError(f"unknown stage {stage!r}")
            self._check("enhancer", stage["enhancer"])
            if self.upscale is None:
                raise RerenderError("the frame went through the enhancer; this installation has none")
            image = self.upscale(image)
        return image

