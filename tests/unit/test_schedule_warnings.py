"""``validate``'s schedule warnings told from the form, checked against the walk over the next
60 fire times over many generated schedules; the compact fields the triggers get; schedules
shared between jobs."""

from __future__ import annotations

import gc
import random
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from scheduler import schedule as schedule_module
from scheduler.schedule import ScheduleError, parse_schedule, walked_warnings

if TYPE_CHECKING:
    from collections.abc import Callable

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
MOMENTS = [
    datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 58, 30, tzinfo=UTC),  # just before Berlin's spring gap
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # inside Berlin's first 02:xx (CEST)
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # inside Berlin's repeated 02:xx (CET)
    datetime(2026, 3, 8, 6, 59, tzinfo=UTC),  # just before New York's spring gap
    datetime(2028, 2, 28, 23, 0, tzinfo=UTC),  # a leap day ahead
]
FIELDS = [(0, 59, []), (0, 23, []), (1, 28, []), (1, 12, ["feb", "jun", "dec"]), (0, 7, ["mon"])]
"""Each field's values and names (days up to the 28th: the rare days come on their own)."""


def _item(rng: random.Random, low: int, high: int, names: list[str]) -> str:
    """One item of a cron field: a value, a name, a range, a step, or ``*``."""
    first = rng.randint(low, high)
    last = rng.randint(first, high)
    step = rng.randint(1, max(1, high - low))
    return rng.choice(
        [
            "*",
            f"*/{step}",
            str(first),
            f"{first}-{last}",
            f"{first}-{last}/{step}",
            f"{first}/{step}",
            rng.choice(names) if names else str(first),
        ]
    )


def _field(rng: random.Random, low: int, high: int, names: list[str]) -> str:
    return ",".join(_item(rng, low, high, names) for _ in range(rng.choice([1, 1, 1, 2, 3])))


def _expression(rng: random.Random) -> str:
    """A schedule of any form; a share of them on days that few or no months have."""
    pick = rng.random()
    if pick < 0.15:
        return rng.choice([*schedule_module.MACROS])
    if pick < 0.28:
        return f"@every {rng.choice(['1s', '1.5s', '10s', '59s', '60s', '61s', '2m', '1h'])}"
    fields = [_field(rng, *spec) for spec in FIELDS]
    if pick < 0.3:  # rare days: the 29th to the 31st of short months
        fields[2] = rng.choice(["30", "31", "29", "30,31", "29-31", "31"])
        fields[3] = rng.choice(["2", "feb", "4,6", "2,4", "apr-jun", "2-4/2", "11"])
        # a restricted weekday would fire it (either day field): the rare-day tests below
        fields[4] = rng.choice(["*", "*/2", "*/3"])
    if pick < 0.6:
        seconds = rng.choice([str(rng.randint(0, 59)), _field(rng, 0, 59, [])])
        return f"@with-seconds {seconds} {' '.join(fields)}"
    return " ".join(fields)


def test_warnings_told_from_the_form_are_those_of_the_walk() -> None:
    """Over many generated schedules, zones and moments (DST changes, a leap day), the
    warnings told from the form are the ones the next 60 fire times give."""
    rng = random.Random(19)
    seen: Counter[str] = Counter()
    for _ in range(250):
        expression, zone = _expression(rng), rng.choice(ZONES)
        try:
            schedule = parse_schedule(expression, zone)
        except ScheduleError as e:  # a day that none of its months has
            refusal = str(e)
            seen[
                "refused" if refusal.endswith("so the schedule would never fire") else refusal
            ] += 1
            continue
        if schedule.known_warnings is None:
            continue  # several seconds a minute: the walk itself decides
        after = rng.choice(MOMENTS) + timedelta(seconds=rng.choice([0, 1, 3600, 86400]))
        told = schedule.warnings(after)
        assert told == walked_warnings(schedule, after), (expression, zone, after)
        seen[told[0].split(" (")[0] if told else "none"] += 1
    # the generator reaches each answer (else the comparison proves little)
    assert seen.keys() == {"none", "refused", "fires more often than once a minute"}


@pytest.mark.parametrize(
    ("expression", "warnings"),
    [
        ("0 0 29 2 *", []),  # fires in leap years
        ("@with-seconds 30 * * * * *", []),
        ("@every 1.5s", ["fires more often than once a minute (every 1.5s)"]),
    ],
)
def test_warnings_of_rare_days_and_single_seconds(expression: str, warnings: list[str]) -> None:
    """A day that only some years have fires; one second per minute is never more often
    than once a minute."""
    after = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_schedule(expression).warnings(after) == warnings
    assert walked_warnings(parse_schedule(expression), after) == warnings


@pytest.mark.parametrize(
    ("expression", "days", "months"),
    [
        ("0 0 30 2 *", "30", "2"),
        ("0 0 31 2,4 *", "31", "2,4"),
        ("0 0 31 2 */2", "31", "2"),  # a day-of-week from '*' does not count
        ("@with-seconds 0 0 0 30-31 feb *", "30-31", "feb"),
        ("0 0 31 4-11/5 *", "31", "4-11/5"),  # April and September
    ],
)
def test_a_day_that_none_of_its_months_has_is_refused(
    expression: str, days: str, months: str
) -> None:
    """It would never fire (unless a restricted weekday fires it): an error naming the
    day-of-month field as written and the months, not a search up to the year 9999."""
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(expression)
    assert str(raised.value) == (
        f"day-of-month field: {days!r} names no day that the months of the month field "
        f"({months!r}) have, so the schedule would never fire"
    )


def test_a_rare_day_with_a_weekday_fires_on_the_weekday() -> None:
    """Both day fields restricted: either fires, so the 31st of February on Mondays fires
    (on Mondays in February) and has no warning; its trigger is the weekday's alone, with
    no day of the month that it would search for up to the year 9999."""
    schedule = parse_schedule("0 0 31 2 mon")
    after = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert schedule.warnings(after) == []
    assert [t.isoformat() for t in schedule.next_times(after, 1)] == ["2027-02-01T00:00:00+00:00"]
    assert isinstance(schedule.rule, schedule_module.WallClock)
    assert str(schedule.rule.trigger) == (
        "cron[month='2', day_of_week='mon', hour='0', minute='0', second='0']"
    )


def test_equal_fields_share_one_trigger_in_every_zone() -> None:
    """Schedules selecting the same times however written (0 and 7 and sun, a list and its
    step) share one APScheduler trigger, in any zone; other times get their own."""
    schedules = [
        parse_schedule("0 5 * * 0", "UTC"),
        parse_schedule("0 5 * * 7", "Europe/Berlin"),
        parse_schedule("@with-seconds 0 0 5 * * sun", "America/New_York"),
        parse_schedule("0 5 */1 * 0", "UTC"),
    ]
    assert len({id(schedule.rule) for schedule in schedules}) == 1
    assert isinstance(schedules[0].rule, schedule_module.WallClock)
    assert (
        str(schedules[0].rule.trigger)
        == "cron[day_of_week='sun', hour='5', minute='0', second='0']"
    )
    assert parse_schedule("0 5 * * 1").rule is not schedules[0].rule
    assert parse_schedule("0 5 1-30 * *").rule is not parse_schedule("0 5 * * *").rule


def test_jobs_with_the_same_schedule_share_it_and_it_goes_with_the_last() -> None:
    """Parsing the same expression in the same zone gives the same schedule while a job
    holds it; the cache keeps none that no job holds."""
    first = parse_schedule("17 4 * * 1-5", "Europe/Berlin")
    assert parse_schedule("17 4 * * 1-5", "Europe/Berlin") is first
    assert parse_schedule("17 4 * * 1-5", "UTC") is not first
    assert parse_schedule("17  4 * * 1-5", "Europe/Berlin") is not first  # as written
    held = weakref.ref(first)
    del first
    gc.collect()
    assert held() is None


def _matcher(fields: list[str]) -> Callable[[datetime], bool]:
    """Cron's own rule, read with the parser's field reader: whether a moment (UTC, on a
    minute) is a fire time of the 5 ``fields``."""
    specs = [
        schedule_module._MINUTE,
        schedule_module._HOUR,
        schedule_module._DOM,
        schedule_module._MONTH,
        schedule_module._DOW,
    ]
    minutes, hours, days, months, weekdays = (
        set(schedule_module._expand(text, spec)) for text, spec in zip(fields, specs, strict=True)
    )
    either = not (fields[2].startswith("*") or fields[4].startswith("*"))

    def matches(moment: datetime) -> bool:
        if moment.minute not in minutes or moment.hour not in hours:
            return False
        if moment.month not in months:
            return False
        on_day, on_weekday = moment.day in days, (moment.weekday() + 1) % 7 in weekdays
        return (on_day or on_weekday) if either else (on_day and on_weekday)

    return matches


def test_fire_times_are_cron_fields_matched_minute_by_minute() -> None:
    """The triggers (their compact, shared fields) fire at exactly the minutes that match the
    fields as cron reads them, including the day-of-month or day-of-week rule: the next
    times of many generated expressions against a scan of every minute of three days."""
    rng = random.Random(5)
    checked = 0
    for _ in range(60):
        fields = [_field(rng, *spec) for spec in FIELDS]
        fields[1] = rng.choice(["*", fields[1], "*/3"])  # fire within days, mostly
        fields[3] = rng.choice(["*", "*", fields[3]])
        after = datetime(
            2026, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC
        )
        start = after + timedelta(minutes=1)
        scan = (start + timedelta(minutes=step) for step in range(3 * 1440))
        matches = _matcher(fields)
        expected = [moment for moment in scan if matches(moment)][:4]
        found = parse_schedule(" ".join(fields)).next_times(after, 4)
        assert found[: len(expected)] == expected, fields
        if len(expected) < 4:
            assert len(found) == len(expected) or found[len(expected)] > after + timedelta(days=3)
        checked += bool(expected)
    assert checked > 30
