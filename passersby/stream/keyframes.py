"""A screen's chain (source -> stages) at the largest level this machine keeps up with.

    levels = [(stages, every), ...]   largest first, e.g. [(enhancer, 1), (enhancer, 2), ((), 1)]

At level (stages, every), the source renders every `every`-th frame (a keyframe) and passes it
through `stages`; the frames between two keyframes are blends of them (a latent walk moves
little in a tenth of a second, so the blend is the motion, not a ghost). The level is chosen
at start by the application layer (which measures its models, app/chain.py) and lowered here
when the screen falls behind: when the keyframes' average cost per displayed frame stays above
the frame's time budget for `patience` seconds of frames, the next level takes over at the next
keyframe, and `describe()` (in the status page) and the log say so.

Back up, with hysteresis: a passing load (a backup, an update) should not cost the enhancer for
the rest of a years-long run, and a level that was too slow must not flap. A lowered chain
predicts the level above from what it measures now: the keyframe cost of this level times the
ratio of the two levels' keyframe costs measured back to back when it was lowered (same load,
so the ratio is the levels' own), divided by the upper level's `every`. When that prediction
stays within `RAISE_MARGIN` of the budget for `raise_after` seconds, the chain goes up one
level, never above the level it started at (what the start measurement found this machine
keeps). Each time a raised level has to be lowered again, its wait doubles.

Keys: a keyframe's key is its source key after the stages, plus "chain" (level, every); a frame
between keyframes a and b carries a's key, "frame" = its own index, and "between" = {"from":
a's frame index, "from_ledger_ids": a's ledger ids, "next": b's key, "mix": weight of b}, which re-renders it (render both
keyframes, blend).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np

from passersby.stream.sources import FrameSource, Image, Key, Stage, Steerable, mix as blend, run_stages

log = logging.getLogger("passersby")

RAISE_MARGIN = 0.75  # raise only when the upper level is predicted to cost <= 75 % of the budget
# Keyframes remembered for a live change: a queue of 12 frames at a keyframe every 2nd holds 7; each
# is one picture (512 x 512 x 3 uint8 after the enhancer: 0.8 MB), so at most ~10 MB a screen.
RECENT_KEYFRAMES = 12


class Keyframes:
    """A FrameSource running `source` through a chain of stages at one of `levels`.

    Args:
        source: the screen's frame source (asked only for keyframe indices, increasing).
        levels: [(stages, every)] from the largest chain to the smallest; every >= 1.
        budget: seconds one displayed frame may cost on average (e.g. 0.8 / fps); None: never
            lower the level.
        patience: displayed frames of over-budget cost before the level is lowered.
        clock: a time.perf_counter-like function (tests inject one).
        start_level: the level the start measurement chose; the chain is never raised above it.
        raise_after: seconds the level above must be predicted to fit before the chain goes back
            up (doubled for a level each time it falls behind within one wait); None: never.

    Example:
        >>> src = Keyframes(walk, [((enhance,), 2), ((), 1)], budget=0.8 / 30)  # a walk and an enhancer built elsewhere  # doctest: +SKIP
        >>> image, key = src.render(0)  # a walk and an enhancer built elsewhere  # doctest: +SKIP
    """

    def __init__(self, source: FrameSource, levels: Sequence[tuple[Sequence[Stage], int]], budget: float | None = None,
                 patience: int = 90, clock: Callable[[], float] | None = None, start_level: int = 0,
                 raise_after: float | None = 300.0) -> None:
        if not levels or any(int(e) < 1 for _, e in levels):
            raise ValueError("levels must be a non-empty list of (stages, every >= 1)")
        import time

        self.source, self.levels = source, [(tuple(s), int(e)) for s, e in levels]
        self.budget, self.patience, self.clock = budget, patience, clock or time.perf_counter
        self.level = self.top = start_level  # never raised above the level the start measurement chose
        self.costs: deque[float] = deque(maxlen=max(1, patience))  # seconds per displayed frame
        self.cache: dict[int, tuple[Image, Key]] = {}  # keyframe index -> (image, key)
        # The latest keyframes rendered, index -> (image, key, level), up to RECENT_KEYFRAMES (one
        # queue of frames rendered ahead): a live change keeps the one its kept frame blended from.
        self.rendered: dict[int, tuple[Image, Key, int]] = {}
        self.lowered: list[dict[str, Any]] = []
        self.raised: list[dict[str, Any]] = []
        self.raise_after = raise_after  # seconds of headroom before going up; None: never
        self.waits: dict[int, float] = {}  # level -> its own wait (doubled each time it fails again)
        # level -> (keyframe seconds of level-1, of level), measured back to back when lowered (same load)
        self.pair_costs: dict[int, tuple[float, float]] = {}
        self._upper_cost: float | None = None  # keyframe cost of the level just left (to fill pair_costs)
        self._quiet_since: float | None = None  # when the prediction last went under the margin
        self._raised_at: float | None = None  # clock of the last raise

    @property
    def every(self) -> int:
        return self.levels[self.level][1]

    @property
    def wrapped(self) -> FrameSource:
        """The source inside (its live knobs and directions are asked there: sources.capable)."""
        return self.source

    def rewind(self, index: int) -> bool:
        """Render on from `index` (sources.Rewindable, after a live change) when the source inside
        can go back. When `index` falls between two keyframes, the frame before it (kept, shown)
        blended from the earlier one: that keyframe stays as it was rendered and only the later
        one is rendered again, with the change (the source's `rewind_after`), so a change costs
        one keyframe, not two, before the frame that shows it. Else both are rendered again."""
        first = index - index % self.every
        if first < index and self._keep(first):
            return True
        rewind = getattr(self.source, "rewind", None)
        if rewind is None or not rewind(first):
            return False
        for old in [i for i in self.cache if i >= first]:  # rendered before the change
            del self.cache[old]
        for old in [i for i in self.rendered if i >= first]:
            del self.rendered[old]
        return True

    def _keep(self, first: int) -> bool:
        """Keep keyframe `first` as rendered (at this level) and have the source render on after
        it with the change; False when it is gone or the source cannot."""
        kept = self.rendered.get(first)
        after = getattr(self.source, "rewind_after", None)
        if kept is None or kept[2] != self.level or after is None or not after(first):
            return False
        self.cache = {first: (kept[0], kept[1])}
        for old in [i for i in self.rendered if i > first]:
            del self.rendered[old]
        return True

    def refresh(self) -> None:
        """A live knob turned: forget the keyframes rendered before it, so the next frame is a
        blend of two keyframes rendered with the change (a source that can go back renders the
        earlier one again); a source that cannot keeps the earlier one, which is shown already,
        and loses only the newest."""
        if getattr(self.source, "rewind", None) is not None:
            self.cache.clear()
        elif len(self.cache) > 1:
            del self.cache[max(self.cache)]

    def _keyframe(self, index: int) -> tuple[Image, Key]:
        if index not in self.cache:
            stages, every = self.levels[self.level]
            t0 = self.clock()
            image, key = run_stages(stages, *self.source.render(index))
            self.costs.extend([(self.clock() - t0) / every] * every)
            self.cache[index] = (image, {**key, "chain": {"level": self.level, "every": every}})
            if every > 1:  # (with a keyframe every frame there is nothing between to keep one for)
                self.rendered[index] = (*self.cache[index], self.level)
                while len(self.rendered) > RECENT_KEYFRAMES:
                    del self.rendered[min(self.rendered)]
            # Keep what blends still need: keyframes from `index - every` on (a lowered level
            # may reuse the last one).
            for old in [i for i in self.cache if i < index - every]:
                del self.cache[old]
        return self.cache[index]

    def _keyframe_cost(self) -> float:
        """Mean seconds per keyframe over the window (costs are per displayed frame)."""
        return float(np.mean(self.costs)) * self.every

    def _note_pair(self) -> None:
        """On the first full window after lowering: both levels' keyframe costs under one load."""
        if self._upper_cost is not None and len(self.costs) == self.costs.maxlen:
            self.pair_costs[self.level] = (self._upper_cost, self._keyframe_cost())
            self._upper_cost = None

    def _maybe_lower(self, index: int) -> None:
        """At a keyframe: the next level, if the last `patience` frames cost more than the budget."""
        if (self.budget is None or self.level + 1 >= len(self.levels) or len(self.costs) < self.costs.maxlen
                or float(np.mean(self.costs)) <= self.budget):
            return
        cost = float(np.mean(self.costs))
        if self._raised_at is not None and self.clock() - self._raised_at < self._wait(self.level + 1):
            # Raised too early (fell behind within one wait of going up): wait twice as long next time.
            self.waits[self.level + 1] = 2 * self._wait(self.level + 1)
        self._raised_at = None
        # The latest quarter of the window: the load that made it fall behind, not the calm before.
        self._upper_cost = float(np.mean(list(self.costs)[-max(1, len(self.costs) // 4):])) * self.every
        self._change(index, self.level + 1, cost)
        self.lowered.append({"frame": int(index), "level": self.level, "ms_per_frame": round(1000 * cost, 1)})
        log.warning("chain: %.1f ms per frame against a budget of %.1f ms; lowered to level %d (%s, a keyframe "
                    "every %d frames)", 1000 * cost, 1000 * self.budget, self.level, self.stage_names(), self.every)

    def _wait(self, level: int) -> float:
        return self.waits.get(level, float(self.raise_after or 0.0))

    def _maybe_raise(self, index: int) -> None:
        """At a keyframe: the level above, if predicted within RAISE_MARGIN of the budget long enough."""
        if self.budget is None or self.raise_after is None or self.level <= self.top:
            return
        if len(self.costs) < self.costs.maxlen:
            return  # a full window of this level's own costs first
        if self.level not in self.pair_costs:
            return
        upper, lower = self.pair_costs[self.level]
        load = self._keyframe_cost() / lower if lower > 1e-6 else 1.0  # now against when lowered
        predicted = upper * load / self.levels[self.level - 1][1]  # seconds per displayed frame
        now = self.clock()
        if predicted > RAISE_MARGIN * self.budget:
            self._quiet_since = None
            return
        if self._quiet_since is None:
            self._quiet_since = now
        if now - self._quiet_since < self._wait(self.level):
            return
        self._change(index, self.level - 1, predicted)
        self._raised_at = now
        self.raised.append({"frame": int(index), "level": self.level, "predicted_ms_per_frame": round(1000 * predicted, 1)})
        log.warning("chain: %.1f ms per frame predicted against a budget of %.1f ms for %.0f s; raised to level %d "
                    "(%s, a keyframe every %d frames)", 1000 * predicted, 1000 * self.budget, self._wait(self.level + 1),
                    self.level, self.stage_names(), self.every)

    def _change(self, index: int, level: int, cost: float) -> None:
        """Switch to `level` at keyframe `index`: a fresh cost window, no stale pictures."""
        same_stages = self.levels[level][0] == self.levels[self.level][0]
        self.level = level
        self.costs.clear()
        self._quiet_since = None
        if not same_stages:  # other stages, other pictures (other sizes): nothing cached fits
            self.cache.clear()

    def stage_names(self) -> str:
        stages = self.levels[self.level][0]
        return "+".join(getattr(s, "name", type(s).__name__) for s in stages) or "no stages"

    def render(self, index: int) -> tuple[Image, Key]:
        k = self.every
        first = index - index % k
        if index % k == 0 or first not in self.cache:
            self._note_pair()
            self._maybe_lower(index)
            self._maybe_raise(index)
            k = self.every
            first = index - index % k
        if index % k == 0:
            return self._keyframe(index)
        (a, ka), (b, kb) = self._keyframe(first), self._keyframe(first + k)
        w = (index - first) / k
        ids = list(dict.fromkeys(list(ka.get("ledger_ids", [])) + list(kb.get("ledger_ids", []))))
        return blend(a, b, w), {**ka, "frame": int(index), "ledger_ids": ids,
                                "between": {"from": int(first), "from_ledger_ids": list(ka.get("ledger_ids", [])),
                                            "next": kb, "mix": w}}

    def cut(self, index: int) -> int:
        """The inner source's next face, on a keyframe."""
        c = self.source.cut(index)
        k = self.every
        return -(-c // k) * k

    def describe(self) -> dict[str, Any]:
        """The chain now, for the status page."""
        return {"level": self.level, "levels": len(self.levels), "stages": self.stage_names(), "every": self.every,
                "lowered": list(self.lowered), "raised": list(self.raised), "raise_after": self.raise_after}

    def close(self) -> None:
        self.source.close()


class SteeredKeyframes(Keyframes):
    """Keyframes around a Steerable source (the latent walk), steerable itself (sources.Steerable)
    and rewindable (sources.Rewindable): offsets go to the source, which applies them on each
    keyframe; the frames between are blends, so a change shows from the next keyframe on.

    Example:
        >>> src = SteeredKeyframes(walk, [((enhance,), 2), ((), 1)])  # a walk and an enhancer built elsewhere  # doctest: +SKIP
        >>> src.set_offset("head turn", 1.5)  # a walk and an enhancer built elsewhere  # doctest: +SKIP
    """

    def set_offset(self, name: str, amount: float) -> None:
        self.source.set_offset(name, amount)

    def offsets(self) -> dict[str, float]:
        return self.source.offsets()


def chain(source: FrameSource, levels: Sequence[tuple[Sequence[Stage], int]], **kw: Any) -> Keyframes:
    """`source` in a Keyframes chain, steerable when the source is (SteeredKeyframes).

    Example:
        >>> chain(walk, [((), 1)]).levels  # a walk built elsewhere  # doctest: +SKIP
        [((), 1)]
    """
    return (SteeredKeyframes if isinstance(source, Steerable) else Keyframes)(source, levels, **kw)
