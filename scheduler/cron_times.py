"""Cron arithmetic on wall-clock times: the first time after a given one that a cron form's
fields select. Naive datetimes (a zone's wall clock, no DST here: ``scheduler.schedule``
maps wall-clock times to instants).

Each field is kept as its sorted values (seconds, minutes, hours) or as a bit set (days of
the month, months, weekdays), so a next time is a few look-ups: the time of day from the
three sorted fields, then the days forward in the selected months. It gives the same times
as APScheduler's ``CronTrigger`` for the same fields (a unit test compares them), at a
tenth of the cost, and a day that never comes is refused when the schedule is read, never
searched for up to the year 9999.
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, timedelta

_SECOND = timedelta(seconds=1)
_LAST = datetime(MAXYEAR, 12, 31, 23, 59, 59)  # noqa: DTZ001 - a wall-clock time


@dataclass(frozen=True, slots=True)
class CronTimes:
    """The wall-clock times of a cron form.

    ``seconds``, ``minutes``, ``hours``: the values selected, sorted (not empty).
    ``days``, ``months``, ``weekdays``: bit sets (bit 1-31 a day of the month, 1-12 a month,
    0-6 a weekday from Monday as ``date.weekday``). ``either``: a day fires when its day of
    the month *or* its weekday is selected (both day fields restricted, Vixie cron's rule);
    else when both are.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: int
    months: int
    weekdays: int
    either: bool

    def next_after(self, after: datetime) -> datetime | None:
        """The first selected wall-clock time strictly after ``after`` (naive), or None
        when there is none before the year 10000."""
        if after >= _LAST:
            return None
        start = after.replace(microsecond=0) + _SECOND
        year, month, day = start.year, start.month, start.day
        clock = self._time_from(start.hour, start.minute, start.second)
        first = (self.hours[0], self.minutes[0], self.seconds[0])
        days, weekdays, either = self.days, self.weekdays, self.either
        while year <= MAXYEAR:
            if self.months >> month & 1:
                length = calendar.monthrange(year, month)[1]
                weekday = date(year, month, day).weekday()
                while day <= length:
                    on_day, on_weekday = days >> day & 1, weekdays >> weekday & 1
                    if clock is not None and (
                        (on_day or on_weekday) if either else (on_day and on_weekday)
                    ):
                        return datetime(year, month, day, *clock)  # noqa: DTZ001 - wall clock
                    day, weekday, clock = day + 1, (weekday + 1) % 7, first
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004
            day, clock = 1, first
        return None

    def _time_from(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        """The first selected time of day at or after ``hour:minute:second``, or None."""
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        at = bisect.bisect_left(hours, hour)
        if at < len(hours) and hours[at] == hour:
            within = bisect.bisect_left(minutes, minute)
            if within < len(minutes) and minutes[within] == minute:
                tick = bisect.bisect_left(seconds, second)
                if tick < len(seconds):
                    return hour, minute, seconds[tick]
                within += 1
            if within < len(minutes):
                return hour, minutes[within], seconds[0]
            at += 1
        if at < len(hours):
            return hours[at], minutes[0], seconds[0]
        return None


def bits(values: list[int]) -> int:
    """``values`` as a bit set (bit n set for each value n)."""
    found = 0
    for value in values:
        found |= 1 << value
    return found
