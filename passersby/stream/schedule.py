"""Opening hours: outside them the screens go dark and the engine idles, and it wakes on time.

    Schedule(days="mon-sat", hours="10:00-18:00", timezone="Europe/Berlin", holidays="2026-12-25")

Hours may run past midnight ("18:00-02:00": a night opening belongs to the day it began).
`OpeningHours` is a small thread that asks the schedule every `poll` seconds (with an injected
clock in tests) and puts the engine to sleep (no frame shown but one black frame per screen,
no face claimed, the pacer idle) or wakes it; `on_change(open)` lets the application switch
the monitors off and on (DPMS) where it can.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(spec: str) -> frozenset[int]:
    """"mon-fri,sun" -> {0, 1, 2, 3, 4, 6}; ranges may wrap ("sat-mon")."""
    out: set[int] = set()
    for part in (p.strip().lower() for p in spec.split(",") if p.strip()):
        a, _, b = part.partition("-")
        if a not in DAYS or (b and b not in DAYS):
            raise ValueError(f"schedule.days: {part!r} is not a day or a range of days ({', '.join(DAYS)})")
        i, j = DAYS.index(a), DAYS.index(b or a)
        out.update((i + k) % 7 for k in range((j - i) % 7 + 1))
    if not out:
        raise ValueError("schedule.days: give at least one day, e.g. mon-sun")
    return frozenset(out)


def _hours(spec: str) -> tuple[time, time]:
    try:
        a, b = (time.fromisoformat(x.strip()) for x in spec.split("-"))
    except ValueError:
        raise ValueError(f"schedule.hours: {spec!r} must look like 10:00-18:00") from None
    if a == b:
        raise ValueError(f"schedule.hours: {spec!r} opens and closes at the same time")
    return a, b


@dataclass(frozen=True)
class Schedule:
    """When the installation is open.

    Example:
        >>> s = Schedule.parse("mon-fri", "10:00-18:00", "UTC", "")
        >>> s.is_open(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)), s.is_open(datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc))
        (True, False)
    """

    days: frozenset[int]
    opens: time
    closes: time
    tz: ZoneInfo
    holidays: frozenset[date]

    @classmethod
    def parse(cls, days: str, hours: str, tz: str, holidays: str) -> "Schedule":
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"schedule.timezone: {tz!r} is not a time zone, e.g. Europe/Berlin") from None
        try:
            hol = frozenset(date.fromisoformat(h.strip()) for h in holidays.split(",") if h.strip())
        except ValueError:
            raise ValueError(f"schedule.holidays: {holidays!r} must be dates like 2026-12-25, comma-separated") from None
        return cls(_days(days), *_hours(hours), zone, hol)

    def is_open(self, now: datetime) -> bool:
        """Whether `now` (an aware datetime) falls in opening hours."""
        local = now.astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        if self.opens < self.closes:
            return self._open_day(local.date()) and self.opens <= t < self.closes
        # Past midnight: open from `opens` on an open day until `closes` the next morning.
        return (self._open_day(local.date()) and t >= self.opens) or \
            (self._open_day(local.date() - timedelta(days=1)) and t < self.closes)

    def _open_day(self, d: date) -> bool:
        return d.weekday() in self.days and d not in self.holidays

    def next_change(self, now: datetime, step: timedelta = timedelta(minutes=1)) -> datetime:
        """The first minute after `now` at which is_open changes (within 15 days), local time."""
        state, t = self.is_open(now), now.astimezone(self.tz).replace(second=0, microsecond=0)
        for _ in range(15 * 24 * 60):
            t += step
            if self.is_open(t) != state:
                return t
        return t


class OpeningHours:
    """Sleeps and wakes `engine` by `schedule` (a thread polling every `poll` seconds).

    Args:
        engine: has sleep(why) and wake() (stream/engine.Engine).
        schedule: when it is open.
        clock: () -> aware datetime (tests inject one).
        on_change: called with True on opening, False on closing (e.g. monitors on / off).
    """

    def __init__(self, engine, schedule: Schedule, clock: Callable[[], datetime] | None = None,
                 poll: float = 5.0, on_change: Callable[[bool], None] | None = None) -> None:
        self.engine, self.schedule, self.poll, self.on_change = engine, schedule, poll, on_change
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.open: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="passersby-opening-hours", daemon=True)

    def start(self) -> "OpeningHours":
        self.check()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self.check()

    def check(self) -> None:
        now = self.clock()
        is_open = self.schedule.is_open(now)
        if is_open == self.open:
            return
        self.open = is_open
        if is_open:
            self.engine.wake()
        else:
            until = self.schedule.next_change(now)
            self.engine.sleep(f"closed until {until:%a %d %b %H:%M} ({self.schedule.tz.key})")
        if self.on_change is not None:
            self.on_change(is_open)
