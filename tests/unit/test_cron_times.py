"""Our cron arithmetic against APScheduler's ``CronTrigger`` (the arithmetic this project used
before, given the same fields in cron's meaning): the same next times for many random
expressions and moments, in UTC (no DST; test_schedule_dst covers the zones)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from scheduler.cron_times import CronTimes
from scheduler.schedule import ScheduleError, parse_schedule

NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _item(rng: random.Random, low: int, high: int, names: list[str]) -> str:
    """One item of a cron field (not day-of-week): a value, a name, a range, a step, ``*``."""
    first = rng.randint(low, high)
    last = rng.randint(first, high)
    step = rng.randint(1, max(1, (high - low) // 2))
    forms = ["*", f"*/{step}", str(first), f"{first}-{last}", f"{first}-{last}/{step}"]
    forms += [f"{first}/{step}", names[first - low] if names else str(last)]
    return rng.choice(forms)


def _field(rng: random.Random, low: int, high: int, names: list[str] | None = None) -> str:
    return ",".join(_item(rng, low, high, names or []) for _ in range(rng.choice([1, 1, 2, 3])))


def _weekdays(rng: random.Random) -> tuple[str, set[int]]:
    """A day-of-week field as cron reads it (0 and 7 Sunday, names, ranges, steps) and the
    weekdays it selects (0 Sunday), told apart without the parser's reader."""
    first, last = sorted(rng.sample(range(8), 2))
    step = rng.randint(1, 4)
    days = rng.sample(range(7), rng.randint(1, 3))
    return rng.choice(
        [
            ("*", set(range(7))),
            (f"*/{step}", {v % 7 for v in range(0, 8, step)}),
            (f"{first}-{last}", {v % 7 for v in range(first, last + 1)}),
            (f"{first}-{last}/{step}", {v % 7 for v in range(first, last + 1, step)}),
            (",".join(str(d) for d in days), set(days)),
            (",".join(NAMES[d] for d in days), set(days)),
            ("7", {0}),
            ("mon-fri", {1, 2, 3, 4, 5}),
        ]
    )


def _reference(fields: list[str], weekdays: set[int], end: datetime) -> BaseTrigger:
    """APScheduler's trigger for cron fields (seconds first), in UTC: weekdays by name (it
    numbers them from Monday), and Vixie's rule — either day field when both are
    restricted, a field starting with ``*`` counting as unrestricted — as an OrTrigger.
    It looks no further than ``end`` (a day field alone may never come: February 30th)."""
    second, minute, hour, dom, month, dow = fields
    names = ",".join(NAMES[d] for d in sorted(weekdays))
    common = {"second": second, "minute": minute, "hour": hour, "month": month, "end_date": end}
    if dom.startswith("*") or dow.startswith("*"):
        return CronTrigger(day=dom, day_of_week=names, timezone=UTC, **common)
    return OrTrigger(
        [
            CronTrigger(day=dom, timezone=UTC, **common),
            CronTrigger(day_of_week=names, timezone=UTC, **common),
        ]
    )


def _expression(rng: random.Random) -> tuple[list[str], set[int]]:
    """Random fields, seconds first; a share on rare days (29th-31st, February, leap days)."""
    dow, weekdays = _weekdays(rng)
    fields = [
        rng.choice(["0", "0", _field(rng, 0, 59)]),
        _field(rng, 0, 59),
        _field(rng, 0, 23),
        rng.choice(["*", "*", _field(rng, 1, 31)]),
        rng.choice(["*", "*", _field(rng, 1, 12, MONTHS)]),
        dow,
    ]
    if rng.random() < 0.2:
        fields[3] = rng.choice(["29", "30", "31", "29-31", "*/29", "28-31/3"])
        fields[4] = rng.choice(["2", "feb", "2,4", "*", "4-11/5", "1-12/2"])
    return fields, weekdays


def test_next_times_are_apschedulers_for_random_expressions() -> None:
    """For 1,000 random expressions and moments (1999 to 2101: leap days, 2000 is a leap
    year and 2100 is not), the next three times are APScheduler's, to the second."""
    rng = random.Random(1919)
    compared = refused = 0
    while compared < 1000:
        fields, weekdays = _expression(rng)
        try:
            schedule = parse_schedule("@with-seconds " + " ".join(fields))
        except ScheduleError:
            refused += 1  # a day that none of its months has: test_schedule_warnings
            continue
        moment = datetime(1999, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(103 * 365 * 86400), microseconds=rng.choice([0, 250000])
        )
        try:
            trigger = _reference(fields, weekdays, moment + timedelta(days=60 * 366))
        except ValueError:  # a step longer than its range ('50/16'): cron reads it, APScheduler not
            continue
        expected: list[datetime] = []
        cursor = moment
        for _ in range(3):
            found = trigger.get_next_fire_time(None, cursor + timedelta(microseconds=1))
            assert found is not None, (fields, cursor)  # every schedule read fires in 60 years
            expected.append(found)
            cursor = found
        assert schedule.next_times(moment, 3) == expected, (fields, moment.isoformat())
        compared += 1
    assert refused > 0


def test_a_time_of_day_carries_over_to_the_next_day_month_and_year() -> None:
    """From the last second of a day, a month, a year and a leap day, the next time is the
    first one of the next selected day."""
    every_day = CronTimes((0,), (0, 30), (0, 12), days=~0, months=~0, weekdays=~0, either=False)
    cases = [
        (datetime(2026, 1, 31, 23, 59, 59), datetime(2026, 2, 1, 0, 0)),  # noqa: DTZ001
        (datetime(2026, 12, 31, 12, 30), datetime(2027, 1, 1, 0, 0)),  # noqa: DTZ001
        (datetime(2028, 2, 28, 12, 30, 0, 1), datetime(2028, 2, 29, 0, 0)),  # noqa: DTZ001
        (datetime(2028, 2, 29, 12, 29, 59, 999999), datetime(2028, 2, 29, 12, 30)),  # noqa: DTZ001
    ]
    for after, expected in cases:
        assert every_day.next_after(after) == expected
    assert every_day.next_after(datetime(9999, 12, 31, 12, 30)) is None  # noqa: DTZ001
