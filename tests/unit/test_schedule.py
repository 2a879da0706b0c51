"""Schedules: cron meaning (not APScheduler's), macros, @every, time zones."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from jobs.units import parse_duration
from scheduler.schedule import Schedule, ScheduleError, latest_fire, parse_schedule

from .helpers import local_zone

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
    # either day fires at the time and in the months the other fields say
    assert times("30 6 13 1 5", 3) == [
        "2027-01-01T06:30:00+00:00",
        "2027-01-08T06:30:00+00:00",
        "2027-01-13T06:30:00+00:00",
    ]


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


def test_every_runs_at_fixed_intervals_aligned_to_the_epoch() -> None:
    """@every: within one interval of any moment, then every interval, same rhythm after restarts."""
    schedule = parse_schedule("@every 1h30m")
    fired = schedule.next_times(SATURDAY_NOON, 3)
    assert timedelta(0) < fired[0] - SATURDAY_NOON <= timedelta(minutes=90)
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(minutes=90)] * 2
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert all((t - epoch) % timedelta(minutes=90) == timedelta(0) for t in fired)
    again = parse_schedule("@every 1h30m", "Europe/Berlin").next_times(SATURDAY_NOON, 3)
    assert again == fired


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
        ("0 0 30 2 *", "day-of-month field: '30' names no day that the months of the month"),
    ],
)
def test_bad_schedules_say_which_part_is_wrong(expression: str, message: str) -> None:
    """Every error names the field or form at fault."""
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*")):
        parse_schedule(expression)


# --- daylight-saving time: each wall-clock time fires once ----------------------------

DST_DAYS = [
    # zone, spring-forward day, autumn fall-back day, a time inside the gap / repeated hour
    ("Europe/Berlin", "2026-03-29", "2026-10-25", "02:30"),
    ("America/New_York", "2026-03-08", "2026-11-01", "02:30"),
]


@pytest.mark.parametrize(("zone", "spring", "autumn", "gap_time"), DST_DAYS)
def test_daily_job_runs_exactly_once_on_both_change_days(
    zone: str, spring: str, autumn: str, gap_time: str
) -> None:
    """A daily job at a time in the gap or the repeated hour fires once per local day."""
    for expression in ("30 2 * * *", "30 1 * * *", "0 3 * * *", "0 0 * * *"):
        schedule = parse_schedule(expression, zone)
        fired = schedule.next_times(datetime(2026, 1, 1, tzinfo=UTC), 366)
        days = [t.date().isoformat() for t in fired]
        assert len(days) == len(set(days)), f"{expression}: a day fired twice"
        assert spring in days
        assert autumn in days


def test_spring_gap_time_is_shifted_forward_by_the_gap() -> None:
    """02:30 does not exist in Berlin on 2026-03-29: it fires at 03:30 CEST, once."""
    fired = parse_schedule("30 2 * * *", "Europe/Berlin").next_times(
        datetime(2026, 3, 28, 12, tzinfo=UTC), 2
    )
    assert [t.isoformat() for t in fired] == [
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_repeated_hour_fires_at_the_first_occurrence_only() -> None:
    """01:30 happens twice in New York on 2026-11-01: it fires at 01:30 EDT, not again at 01:30 EST."""
    fired = parse_schedule("30 1 * * *", "America/New_York").next_times(
        datetime(2026, 10, 31, 12, tzinfo=UTC), 2
    )
    assert [t.isoformat() for t in fired] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    berlin = parse_schedule("*/30 2 * * *", "Europe/Berlin").next_times(
        datetime(2026, 10, 24, 12, tzinfo=UTC), 3
    )
    assert [t.isoformat() for t in berlin] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:00:00+01:00",
    ]


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
)
@pytest.mark.parametrize("expression", ["*/30 * * * *", "0 1-3 * * *", "15 2 * * 0", "@hourly"])
def test_fire_times_strictly_increase_across_dst_changes(zone: str, expression: str) -> None:
    """No time is returned twice and none goes backwards around every 2026 DST change."""
    schedule = parse_schedule(expression, zone)
    windows = [
        (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC)),
        (datetime(2026, 9, 25, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)),
    ]
    for start, stop in windows:
        moment, count = start, 0
        while moment < stop:
            nxt = schedule.next_after(moment)
            assert nxt is not None
            assert nxt.astimezone(UTC) > moment.astimezone(UTC)
            moment = nxt
            count += 1
        assert count > 5


@pytest.mark.parametrize(
    ("expression", "zone", "after", "until", "latest"),
    [
        # several missed hours: the latest one, not the first
        ("0 * * * *", "UTC", "2026-11-28T10:00:00+00:00", "2026-11-28T13:30:00+00:00",
         "2026-11-28T13:00:00+00:00"),
        # until is included, after is not
        ("0 * * * *", "UTC", "2026-11-28T10:00:00+00:00", "2026-11-28T13:00:00+00:00",
         "2026-11-28T13:00:00+00:00"),
        ("0 * * * *", "UTC", "2026-11-28T13:00:00+00:00", "2026-11-28T13:59:59+00:00", None),
        # the only time in the window is until itself
        ("0 * * * *", "UTC", "2026-11-28T12:00:00+00:00", "2026-11-28T13:00:00+00:00",
         "2026-11-28T13:00:00+00:00"),
        # nothing fell due
        ("0 3 * * *", "UTC", "2026-11-28T04:00:00+00:00", "2026-11-29T02:59:00+00:00", None),
        # two weeks down: the last Monday, not the first
        ("30 2 * * mon", "UTC", "2026-11-01T00:00:00+00:00", "2026-11-28T12:00:00+00:00",
         "2026-11-23T02:30:00+00:00"),
        # @every counts from the epoch: the last multiple before until
        ("@every 10s", "UTC", "2026-11-28T12:00:00+00:00", "2026-11-28T12:00:35+00:00",
         "2026-11-28T12:00:30+00:00"),
        # a missed day across the spring-forward gap fires at 03:30 CEST (the gap's shift)
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00", "2026-03-29T12:00:00+00:00",
         "2026-03-29T03:30:00+02:00"),
    ],
)  # fmt: skip
def test_latest_fire_is_the_last_missed_time(
    expression: str, zone: str, after: str, until: str, latest: str | None
) -> None:
    """latest_fire(after, until]: the latest scheduled time in the window — catch-up runs that
    one, once — or None when nothing fell due."""
    found = latest_fire(
        parse_schedule(expression, zone),
        datetime.fromisoformat(after),
        datetime.fromisoformat(until),
    )
    assert (found.isoformat() if found else None) == (
        datetime.fromisoformat(latest).isoformat() if latest else None
    )


@pytest.mark.parametrize(
    ("expression", "warnings"),
    [
        ("* * * * *", []),  # once a minute exactly: no warning
        ("@every 60s", []),
        ("@every 59s", ["fires more often than once a minute (every 59s)"]),
        ("@every 10s", ["fires more often than once a minute (every 10s)"]),
        ("@with-seconds */30 * * * * *", ["fires more often than once a minute (every 30s)"]),
        ("@with-seconds 0,10 * * * * *", ["fires more often than once a minute (at times 10s apart)"]),
        ("@yearly", []),
    ],
)  # fmt: skip
def test_validate_warns_about_a_schedule_that_never_fires_or_fires_within_a_minute(
    expression: str, warnings: list[str]
) -> None:
    """The warnings of ``crontainer validate``: a gap under 60s between any two of the next
    60 times (one gap: "every Ns"; uneven gaps: the smallest), or no time at all."""
    assert parse_schedule(expression).warnings(SATURDAY_NOON) == warnings


class CountingSchedule:
    """A schedule that counts how often its next fire time is asked for."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.calls = 0

    def next_after(self, moment: datetime) -> datetime | None:
        self.calls += 1
        return self.schedule.next_after(moment)


@pytest.mark.parametrize("expression", ["0 3 * * *", "*/5 * * * *", "@every 7s"])
def test_latest_fire_after_a_year_down_is_a_binary_search(expression: str) -> None:
    """After a year of downtime the latest missed time is found in about 45 steps (README:
    bounded work, a binary search over time, not a walk over every missed time)."""
    counting = CountingSchedule(parse_schedule(expression))
    until = SATURDAY_NOON + timedelta(days=365, seconds=1)
    found = latest_fire(cast("Schedule", counting), SATURDAY_NOON, until)
    assert found is not None
    assert found <= until
    after_it = parse_schedule(expression).next_after(found)
    assert after_it is not None
    assert after_it > until  # the latest: none after it is due
    assert counting.calls <= 45


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("5-5 * * * *", "2026-11-28T12:05:00+00:00"),  # a range of one value
        ("59 23 31 12 *", "2026-12-31T23:59:00+00:00"),  # every field's highest value
        ("0 0 1 1 *", "2027-01-01T00:00:00+00:00"),  # and lowest
        ("0 12 * * 6-6", "2026-12-05T12:00:00+00:00"),
        ("0 0 */10 * *", "2026-12-01T00:00:00+00:00"),  # days 1, 11, 21, 31 only
    ],
)
def test_field_bounds_and_one_value_ranges_are_accepted(expression: str, first: str) -> None:
    """Ranges and field bounds are inclusive: ``5-5`` is minute 5, 59/23/31/12 are valid."""
    assert times(expression, 1) == [first]


@pytest.mark.parametrize(
    ("interval", "error"),
    [
        ("1s", None),
        ("999ms", "@every: the interval must be at least 1s, got '999ms'"),
        ("366d", None),
        ("366d1s", "@every: the interval must be at most 366d"),
        ("  90s ", None),
    ],
)
def test_every_interval_bounds_are_inclusive(interval: str, error: str | None) -> None:
    """``@every`` takes 1s to 366d, both included; outside, the error names the bound and
    the interval as written."""
    if error is None:
        schedule = parse_schedule(f"@every {interval}")
        first, second = schedule.next_times(SATURDAY_NOON, 2)
        assert (second - first).total_seconds() == parse_duration(interval.strip())
    else:
        with pytest.raises(ScheduleError, match=re.escape(error)):
            parse_schedule(f"@every {interval}")


def test_a_start_with_a_step_runs_to_the_end_of_the_field() -> None:
    """``5/15`` in the minute field is 5, 20, 35, 50 (as in cron: start/step to the end)."""
    assert times("5/15 12 * * *", 5) == [
        "2026-11-28T12:05:00+00:00",
        "2026-11-28T12:20:00+00:00",
        "2026-11-28T12:35:00+00:00",
        "2026-11-28T12:50:00+00:00",
        "2026-11-29T12:05:00+00:00",
    ]


def test_every_times_are_shown_in_the_jobs_zone() -> None:
    """``@every`` runs in real time but its times carry the job's zone like any schedule's."""
    berlin = parse_schedule("@every 1h", "Europe/Berlin").next_times(SATURDAY_NOON, 2)
    assert [t.isoformat() for t in berlin] == [
        "2026-11-28T14:00:00+01:00",
        "2026-11-28T15:00:00+01:00",
    ]


@pytest.mark.parametrize("host_zone", ["America/New_York", "Asia/Tokyo"])
def test_fire_times_do_not_depend_on_the_hosts_time_zone(host_zone: str) -> None:
    """The job's zone decides, never the container's TZ: the same times with TZ set west or
    east of the job's zone as in UTC, for cron fields, both day fields (Vixie's rule),
    @every."""
    cases = [
        ("30 2 * * *", "Europe/Berlin", SATURDAY_NOON),
        ("0 0 13 * 5", "UTC", SATURDAY_NOON),
        ("0 0 13 * 5", "UTC", datetime(2026, 12, 13, 2, 0, tzinfo=UTC)),  # just after the 13th
        ("0 */10 * * *", "Asia/Tokyo", SATURDAY_NOON),
        ("0 9 * * *", "America/New_York", SATURDAY_NOON),  # 07:00 there: today's 09:00 next
        ("@every 1h30m", "Europe/Berlin", SATURDAY_NOON),
        ("@daily", "Europe/Berlin", SATURDAY_NOON),  # a macro: midnight there
        ("@with-seconds 30 15 9 * * *", "America/New_York", SATURDAY_NOON),  # the seconds form
    ]
    expected = [times(expression, 3, zone, after) for expression, zone, after in cases]
    assert expected[-2][0] == "2026-11-29T00:00:00+01:00"
    assert expected[-1][0] == "2026-11-28T09:15:30-05:00"
    with local_zone(host_zone):
        assert [times(expression, 3, zone, after) for expression, zone, after in cases] == expected


def test_a_schedule_keeps_its_expression_as_written() -> None:
    """What ``crontainer jobs`` shows is the schedule as written, in every form."""
    for expression in ("*/5  * * * *", "@every 90s", "@daily", "@with-seconds 0 * * * * *"):
        assert parse_schedule(expression).expression == expression


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "the schedule is empty"),
        (
            "@reboot",
            (
                "'@reboot' is not a schedule here: set run_on_start = true (the job runs once when the "
                "daemon starts), with a schedule for its later runs (e.g. '@daily')"
            ),
        ),
        (
            "@daily 5",
            (
                "unknown macro '@daily 5' (known: @yearly, @annually, @monthly, @weekly, @daily, "
                "@midnight, @hourly, @manual, @every <duration>, @with-seconds <6 fields>, "
                "@at <RFC 3339 time>)"
            ),
        ),
        (
            "*/5 * * * * *",
            (
                "6 fields: a seconds field must be marked, as in '@with-seconds */5 * * * * *'; "
                "standard cron has 5 fields"
            ),
        ),
    ],
)
def test_form_errors_say_what_is_accepted(expression: str, message: str) -> None:
    """The message ``validate`` prints for a schedule of the wrong form, in full: it lists
    what is accepted (a macro takes nothing after it)."""
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert str(caught.value) == message
