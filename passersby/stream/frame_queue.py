"""A screen's frames rendered ahead, and what a live change does to them (stream/engine.py).

A live change (a knob turned: stream/engine.ScreenProducer.renew) drops the frames rendered ahead
but the next one, so the 2nd frame shown after it is rendered with the change. Changes coming one
after another (a knob swept, an OSC flood: the last change fewer than CALM_FRAMES frames shown ago)
keep STORM_KEEP frames: the producer gets that many ticks to render a keyframe again (with 1 a
screen lost ~1 tick in 4 at 40 changes/s; with 2, 6 in 300 in benchmarks/osc.py's flood; with 3,
none). One that comes before the producer has put STORM_FRAMES frames since the last drops nothing
(the next frame rendered takes it). So in a storm a change shows within STORM_KEEP + STORM_FRAMES
frames.

The frames dropped are not thrown away at once: when the frame rendered with the change is not
ready at its tick (the producer was busy with a frame far ahead, or a claim took long), the pacer
shows the dropped frame of that index instead (`take_ready`): the motion goes on, the change shows
one frame later, and no tick is lost to a change. That frame's index is then done: the producer's
frame of the same index is refused.
"""

from __future__ import annotations

import queue
import time
from typing import Any

CALM_FRAMES = 8  # frames shown since the last change for the next one to count as after a calm spell
STORM_KEEP = 3  # frames kept at a change in a storm
STORM_FRAMES = 2  # frames put since the last change under which the next one drops nothing


class FrameQueue(queue.Queue):
    """The bounded queue of frames rendered ahead, with what a live change needs: drop all but
    the frame shown next, and refuse every frame rendered before the change but that one (or,
    when the queue was empty, but the one in flight), so the change shows from the 2nd frame
    after it. Both happen under the queue's own lock, so no stale frame slips in between. In a
    storm of changes (the last one fewer than CALM_FRAMES frames shown ago) it keeps STORM_KEEP.

    Example:
        >>> q = FrameQueue(4); [q.put(i) for i in range(3)] and None
        >>> q.renew(), q.qsize(), q.generation
        (2, 1, 1)
        >>> q.put_unless_stale("old", generation=0, timeout=0.1), q.put_unless_stale("new", 1, 0.1)
        (False, True)
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.generation = 0  # live changes so far
        self.dropped = 0  # frames dropped for live changes (rendered ahead, or in flight)
        self.put_since_renew = STORM_FRAMES  # frames put since the last change (a storm: fewer than STORM_FRAMES)
        self.taken_since_renew = CALM_FRAMES  # frames taken (shown) since the last change (none yet: calm)
        self.coalesced = 0  # changes that came in a storm: applied without dropping frames again
        self.stood_in = 0  # dropped frames shown because the changed one was not ready (take_ready)
        self._stale_ok = False  # one frame from before the change may still be put (the queue was empty)
        # The index after the frame kept at a change: a source that can go back renders on from it
        # (no frame skipped); until the producer has taken it, nothing is put.
        self.resume_at: int | None = None
        self._spare: dict[int, Any] = {}  # index -> a frame dropped at a change (take_ready may show it)
        self._last: int | None = None  # index of the last frame taken
        self._done: int | None = None  # frames up to this index were shown from _spare: refuse them

    def renew(self) -> int | None:
        """A live change: keep the frame shown next (the next STORM_KEEP when the last change was
        fewer than CALM_FRAMES frames shown ago), drop the rest (returns how many), bump the
        generation. None, dropping nothing, when the producer has put fewer than STORM_FRAMES
        frames since the last change: what is queued was rendered since, and dropping it again
        would leave the screen nothing to show (the next frame rendered takes the change)."""
        with self.mutex:
            if self.put_since_renew < STORM_FRAMES:
                self.coalesced += 1
                return None
            self.generation += 1
            keep = 1 if self.taken_since_renew >= CALM_FRAMES else STORM_KEEP
            self.put_since_renew = self.taken_since_renew = 0
            n = max(0, len(self.queue) - keep)
            self._stale_ok = len(self.queue) < keep  # fewer kept: the one in flight may be shown next
            for _ in range(n):
                frame = self.queue.pop()
                index = getattr(frame, "index", None)
                if index is not None:
                    self._spare[index] = frame  # (newer than a spare of an earlier change: nearer what shows next)
            head = getattr(self.queue[-1], "index", None) if self.queue else None
            if head is not None:  # (an empty queue keeps a resume not yet taken: its frame was shown)
                self.resume_at = head + 1
            self.dropped += n
            self.unfinished_tasks = max(0, self.unfinished_tasks - n)
            self.not_full.notify_all()
            return n

    def put_unless_stale(self, item: Any, generation: int, timeout: float) -> bool:
        """Put `item` (rendered at `generation`) unless a live change came since (then only the
        first such frame, and only when the change found the queue empty), or a spare of its index
        was shown; returns whether it was put; queue.Full after `timeout` s without room."""
        with self.not_full:
            deadline = time.monotonic() + timeout
            while self._qsize() >= self.maxsize:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise queue.Full
                self.not_full.wait(left)
            index = getattr(item, "index", None)
            if self.resume_at is not None or (self._done is not None and index is not None and index <= self._done):
                self.dropped += 1  # the producer goes back first, or this index was shown already
                return False
            if generation != self.generation:
                if not self._stale_ok:
                    self.dropped += 1
                    return False
                self._stale_ok = False
            self._put(item)
            self.put_since_renew += 1
            self.unfinished_tasks += 1
            self.not_empty.notify()
            return True

    def _get(self) -> Any:  # (under the queue's lock, from get)
        item = super()._get()
        self._taken(item)
        return item

    def _taken(self, item: Any) -> None:
        self.taken_since_renew += 1
        index = getattr(item, "index", None)
        if index is not None:
            self._last = index
            for old in [i for i in self._spare if i <= index]:
                del self._spare[old]

    def take_ready(self) -> Any:
        """The frame to show at this tick (the pacer's): the next one queued, or when none is, the
        frame of the next index dropped at a change (the changed one is not ready: the motion
        goes on); queue.Empty when neither is there.

        Example:
            >>> from types import SimpleNamespace as F
            >>> q = FrameQueue(4); [q.put(F(index=i)) for i in range(3)] and None
            >>> q.renew(), q.take_ready().index, q.take_ready().index  # the changed frame 1 is late
            (2, 0, 1)
        """
        with self.mutex:
            if self._qsize():
                item = self._get()
            else:
                item = self._spare.pop(self._last + 1, None) if self._last is not None else None
                if item is None:
                    raise queue.Empty
                self._done, self.stood_in = item.index, self.stood_in + 1
                self._taken(item)
            self.not_full.notify()
            return item

    def forget(self) -> None:
        """Drop everything queued and every spare (a deliberate cut: nothing of before may show)."""
        with self.mutex:
            self.queue.clear()
            self._spare.clear()
            self.unfinished_tasks = 0
            self.not_full.notify_all()

    def take_resume(self) -> int | None:
        """The index to render on from after a change (then forgotten), or None."""
        with self.mutex:
            r, self.resume_at = self.resume_at, None
            return r
