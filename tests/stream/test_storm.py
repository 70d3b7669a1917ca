"""Live changes in a storm (a knob swept, an OSC flood): a change that comes fewer than
STORM_FRAMES frames after the last one is applied without dropping the queue again, and one that
comes fewer than CALM_FRAMES after it keeps STORM_KEEP frames, not one, so the screen always has frames to
show; a change after a calm spell keeps only the frame shown next (the 2nd frame shows it)."""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace

import pytest

from passersby.stream.engine import ScreenProducer
from passersby.stream.frame_queue import CALM_FRAMES, STORM_FRAMES, STORM_KEEP, FrameQueue


def _producer(size: int = 6) -> ScreenProducer:
    p = ScreenProducer.__new__(ScreenProducer)  # only what renew uses: the queue, the lock, the flag
    p.frames, p._lock, p._refresh = FrameQueue(size), threading.Lock(), False
    return p


def _fill(q: FrameQueue, start: int, n: int) -> None:
    for i in range(start, start + n):
        assert q.put_unless_stale(SimpleNamespace(index=i), q.generation, timeout=0.1)


def test_a_change_after_a_quiet_spell_drops_what_was_rendered_ahead():
    p, knob = _producer(), []
    _fill(p.frames, 0, 6)
    p.renew(lambda: knob.append(1))
    assert knob == [1] and p.frames.qsize() == 1 and p.frames.generation == 1 and p._refresh


def test_changes_in_a_storm_are_applied_but_drop_nothing_more_until_frames_come():
    p, knob = _producer(), []
    _fill(p.frames, 0, 6)
    p.renew(lambda: knob.append(1))  # drops 1..5
    assert p.frames.take_resume() == 1  # the producer goes back to the first dropped frame
    _fill(p.frames, 1, STORM_FRAMES - 1)  # the producer has put fewer than STORM_FRAMES since
    before = p.frames.qsize()
    for v in (2, 3, 4):
        p.renew(lambda v=v: knob.append(v))
    assert knob == [1, 2, 3, 4]  # every value reaches the source (the next frame rendered shows it)
    assert p.frames.generation == 1 and p.frames.qsize() == before and p.frames.coalesced == 3
    _fill(p.frames, STORM_FRAMES, 3)  # STORM_FRAMES frames and more since the last drop: the next change drops
    p.renew(lambda: knob.append(5))  # again, keeping STORM_KEEP frames (the last change is not CALM_FRAMES old)
    assert p.frames.take_resume() == STORM_KEEP
    assert p.frames.generation == 2 and p.frames.qsize() == STORM_KEEP and knob[-1] == 5


def test_after_a_calm_spell_a_change_keeps_only_the_frame_shown_next_again():
    """Calm is counted in frames shown, not put: a producer that refills its queue at once after
    a change has not made the change old."""
    p = _producer(size=CALM_FRAMES + 4)
    _fill(p.frames, 0, 4)
    p.renew(lambda: None)
    assert p.frames.take_resume() == 1 and p.frames.qsize() == 1
    _fill(p.frames, 1, CALM_FRAMES + 2)  # refilled, but nothing shown since: still a storm
    p.renew(lambda: None)
    assert p.frames.take_resume() == STORM_KEEP and p.frames.qsize() == STORM_KEEP
    _fill(p.frames, STORM_KEEP, CALM_FRAMES)
    for _ in range(CALM_FRAMES):  # the screen shows CALM_FRAMES frames: calm again
        p.frames.get_nowait()
    p.renew(lambda: None)
    assert p.frames.take_resume() == p.frames.queue[0].index + 1 and p.frames.qsize() == 1


def test_a_frame_dropped_at_a_change_stands_in_when_the_changed_one_is_late():
    """The pacer (take_ready) shows the dropped frame of the next index rather than lose the tick;
    that index is then done: the producer's frame of it is refused and the next one is shown."""
    q = FrameQueue(8)
    _fill(q, 0, 6)
    assert q.renew() == 5 and q.take_resume() == 1  # frames 1..5 dropped
    assert q.take_ready().index == 0
    stand_in = q.take_ready()  # the changed frame 1 is not rendered yet
    assert stand_in.index == 1 and q.stood_in == 1
    assert not q.put_unless_stale(SimpleNamespace(index=1), q.generation, timeout=0.1)  # shown already
    assert q.put_unless_stale(SimpleNamespace(index=2), q.generation, timeout=0.1)
    assert q.take_ready().index == 2
    assert q.take_ready().index == 3 and q.stood_in == 2  # late again: the next spare, in order
    assert q.put_unless_stale(SimpleNamespace(index=4), q.generation, timeout=0.1)
    assert q.take_ready().index == 4 and q.stood_in == 2
    q2 = FrameQueue(8)
    _fill(q2, 0, 4)
    q2.renew()
    assert q2.take_resume() == 1 and q2.take_ready().index == 0
    _fill(q2, 1, 3)  # the changed frames came in time: no stand-in, and the spares of their indices go
    assert [q2.take_ready().index for _ in range(3)] == [1, 2, 3] and q2.stood_in == 0
    with pytest.raises(queue.Empty):
        q2.take_ready()


def test_a_cut_forgets_the_spares():
    q = FrameQueue(8)
    _fill(q, 0, 6)
    q.renew()
    q.forget()  # next_anchor: nothing of before may show
    assert q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.take_ready()


def test_the_newest_dropped_frame_of_an_index_stands_in():
    """Two changes in a row: the frame of an index rendered after the first (with it) is the one that
    stands in, not the one from before both."""
    q = FrameQueue(8)
    for i in range(4):
        assert q.put_unless_stale(SimpleNamespace(index=i, tag="old"), q.generation, timeout=0.1)
    q.renew()  # calm: keeps 0, drops old 1..3
    assert q.take_resume() == 1
    for i in range(1, 4):
        assert q.put_unless_stale(SimpleNamespace(index=i, tag="new"), q.generation, timeout=0.1)
    q.renew()  # a storm (nothing shown since): keeps STORM_KEEP = 3 (0, new 1, new 2), drops new 3
    assert [f.index for f in q.queue] == [0, 1, 2]
    assert [q.take_ready().index for _ in range(3)] == [0, 1, 2]
    stand_in = q.take_ready()
    assert (stand_in.index, stand_in.tag, q.stood_in) == (3, "new", 1)
