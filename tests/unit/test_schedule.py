"""Schedules: cron meaning (not APScheduler's), macros, @every, time zones."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.schedule import ScheduleError, parse_schedule

# Saturday 2026-11-28, noon UTC.
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def times(
    expression: str, count: int = 3, zone: str = "UTC", after: datetime = SATURDAY_NOON
) -> list[str]:
    return [t.isoformat() for t in parse_schedule(expression, zone).next_times(after, count)]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_numeric_and_named_sunday_mean_sunday(sunday: str) -> None:
    """Day-of-week 0 and 7 are Sunday as in cron, not Monday as in APScheduler."""
    fired = parse_schedule(f"0 9 * * {sunday}").next_times(SATURDAY_NOON, 3)
    assert [t.strftime("%A %H:%M") for t in fired] == ["Sunday 09:00"] * 3
    assert fired[0] == datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def test_weekday_range_and_step_follow_cron_numbering() -> None:
    """1-5 is Monday to Friday; */2 over 0-6 is Sunday, Tuesday, Thursday, Saturday."""
    weekdays = parse_schedule("0 9 * * 1-5").next_times(SATURDAY_NOON, 5)
    assert [t.strftime("%a") for t in weekdays] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    stepped = parse_schedule("0 9 * * */2").next_times(SATURDAY_NOON, 4)
    assert [t.strftime("%a") for t in stepped] == ["Sun", "Tue", "Thu", "Sat"]
    wrapped = parse_schedule("0 9 * * 5-7").next_times(SATURDAY_NOON, 3)
    assert [t.strftime("%a") for t in wrapped] == ["Sun", "Fri", "Sat"]


def test_five_fields_with_names_steps_and_lists() -> None:
    """Minutes, hours, month names: the standard 5-field form."""
    assert times("*/20 8-9 * dec *", 4) == [
        "2026-12-01T08:00:00+00:00",
        "2026-12-01T08:20:00+00:00",
        "2026-12-01T08:40:00+00:00",
        "2026-12-01T09:00:00+00:00",
    ]
    assert times("5,35 12 * * *", 2) == ["2026-11-28T12:05:00+00:00", "2026-11-28T12:35:00+00:00"]


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    """Vixie cron's rule: the 13th and every Friday, not only Friday the 13th."""
    fired = parse_schedule("0 0 13 * 5").next_times(SATURDAY_NOON, 3)
    assert [t.date().isoformat() for t in fired] == ["2026-12-04", "2026-12-11", "2026-12-13"]


def test_seconds_form_is_marked_and_fires_on_seconds() -> None:
    """@with-seconds takes six fields, seconds first."""
    assert times("@with-seconds */20 * * * * *") == [
        "2026-11-28T12:00:20+00:00",
        "2026-11-28T12:00:40+00:00",
        "2026-11-28T12:01:00+00:00",
    ]


def test_bare_six_fields_are_refused_not_read_as_seconds() -> None:
    """A stray sixth field must not turn every 5 minutes into every 5 seconds."""
    with pytest.raises(ScheduleError, match=r"seconds field must be marked.*@with-seconds"):
        parse_schedule("*/5 * * * * *")


@pytest.mark.parametrize(
    ("macro", "first"),
    [
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("@annually", "2027-01-01T00:00:00+00:00"),
        ("@monthly", "2026-12-01T00:00:00+00:00"),
        ("@weekly", "2026-11-29T00:00:00+00:00"),
        ("@daily", "2026-11-29T00:00:00+00:00"),
        ("@midnight", "2026-11-29T00:00:00+00:00"),
        ("@hourly", "2026-11-28T13:00:00+00:00"),
    ],
)
def test_macros(macro: str, first: str) -> None:
    """Each macro means its cron expression."""
    assert times(macro, 1) == [first]


def test_every_runs_at_fixed_intervals_after_start() -> None:
    """@every: first run one interval after parsing, then every interval."""
    before = datetime.now(UTC)
    schedule = parse_schedule("@every 1h30m")
    fired = schedule.next_times(before, 3)
    assert fired[0] - before >= timedelta(hours=1, minutes=30)
    assert fired[0] - before < timedelta(hours=1, minutes=31)
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(minutes=90)] * 2


def test_time_zone_is_applied_and_reported() -> None:
    """A job in Europe/Berlin fires at Berlin's wall-clock time, shown with Berlin's offset."""
    assert times("30 2 * * *", 2, "Europe/Berlin") == [
        "2026-11-29T02:30:00+01:00",
        "2026-11-30T02:30:00+01:00",
    ]
    summer = datetime(2026, 7, 1, tzinfo=UTC)
    assert times("30 2 * * *", 1, "Europe/Berlin", after=summer) == ["2026-07-01T02:30:00+02:00"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("* * * 13 *", "month field: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("* * * * funday", "day-of-week field: 'funday' is not a number or a name"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * *", "expected 5 fields"),
        ("@fortnightly", "unknown macro"),
        ("@every", "@every: expected a duration"),
        ("@every 0s", "at least 1s"),
        ("@with-seconds * * * * *", "takes 6 fields"),
        ("@reboot", "run_on_start"),
        ("   ", "empty"),
    ],
)
def test_bad_schedules_say_which_part_is_wrong(expression: str, message: str) -> None:
    """Every error names the field or form at fault."""
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*")):
        parse_schedule(expression)
