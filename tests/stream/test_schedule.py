"""Opening hours: days, hours past midnight, holidays, time zones; an engine put to sleep
(black screens, no face claimed, near-idle) and woken on time by an injected clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from passersby.stream.ledger import SqliteLedger
from passersby.stream.schedule import OpeningHours, Schedule

from .test_engine import engine

UTC = timezone.utc


def at(y, mo, d, h, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def test_days_hours_holidays_and_time_zones():
    s = Schedule.parse("tue-sun", "10:00-18:00", "Europe/Berlin", "2026-12-25")
    assert s.is_open(at(2026, 12, 1, 9, 0))  # Tuesday 10:00 in Berlin (UTC+1)
    assert not s.is_open(at(2026, 12, 1, 8, 59))
    assert not s.is_open(at(2026, 11, 30, 12))  # a Monday
    assert not s.is_open(at(2026, 12, 25, 12))  # a holiday (Friday)
    assert s.is_open(at(2026, 12, 26, 16, 59)) and not s.is_open(at(2026, 12, 26, 17, 0))
    assert s.next_change(at(2026, 12, 1, 20)) == datetime(2026, 12, 2, 10, 0, tzinfo=s.tz)
    night = Schedule.parse("fri", "20:00-02:00", "UTC", "")
    assert night.is_open(at(2026, 12, 4, 23)) and night.is_open(at(2026, 12, 5, 1, 59))  # Fri night into Sat
    assert not night.is_open(at(2026, 12, 5, 2)) and not night.is_open(at(2026, 12, 5, 23))
    wrap = Schedule.parse("sat-mon", "00:00-23:59", "UTC", "")
    assert sorted(wrap.days) == [0, 5, 6]
    for bad, match in ((("mo-fr", "10:00-18:00", "UTC", ""), "schedule.days"),
                       (("mon", "10:00 to 18:00", "UTC", ""), "schedule.hours"),
                       (("mon", "10:00-18:00", "Mars/Olympus", ""), "schedule.timezone"),
                       (("mon", "10:00-18:00", "UTC", "Christmas"), "schedule.holidays")):
        with pytest.raises(ValueError, match=match):
            Schedule.parse(*bad)


def test_the_engine_sleeps_outside_opening_hours_and_wakes_on_time(tmp_path: Path):
    now = [at(2026, 12, 1, 12)]
    changes = []
    s = Schedule.parse("mon-sun", "10:00-18:00", "UTC", "")
    with engine(tmp_path) as e:
        e.start()
        hours = OpeningHours(e, s, clock=lambda: now[0], poll=0.05, on_change=changes.append).start()
        try:
            time.sleep(0.5)
            assert hours.open and e.status()["faces_this_run"] > 0 and "closed" not in e.status()
            now[0] = at(2026, 12, 1, 18, 30)  # closing time
            time.sleep(0.3)
            st = e.status()
            assert st["closed"].startswith("closed until Wed 02 Dec 10:00") and changes == [True, False]
            assert all(not e.hub.latest(n).image.any() and e.hub.latest(n).key["state"] == "closed" for n in e.screens)
            assert e.health()["status"] == "ok"  # closed is not failing
            claimed, shown = st["faces_this_run"], dict(e.pacer.shown)
            e.hub.control("resume")  # an operator's resume does not open the doors
            time.sleep(1.0)
            assert e.status()["faces_this_run"] == claimed and e.pacer.shown == shown  # idle: nothing claimed or shown
            now[0] += timedelta(hours=15, minutes=30)  # Wednesday 10:00
            time.sleep(0.5)
            assert changes == [True, False, True] and "closed" not in e.status()
            assert e.pacer.shown["left"] > shown["left"]
        finally:
            hours.stop()
    with SqliteLedger.open_existing(tmp_path / "ledger.sqlite") as led:
        assert len(led) >= claimed
