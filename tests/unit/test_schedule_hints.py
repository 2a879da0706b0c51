"""Schedules in forms this daemon does not read — English, Quartz, ``@reboot`` — are refused
with what to write instead, and what is suggested is a schedule the daemon reads."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from scheduler import schedule_hints
from scheduler.schedule import ScheduleError, parse_schedule
from tests.unit.configs import load_errors

if TYPE_CHECKING:
    from pathlib import Path


def refusal(expression: str) -> str:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    return str(caught.value)


@pytest.mark.parametrize(
    ("english", "instead"),
    [
        ("every day at 3", "0 3 * * *"),
        ("Every day at 3:30 pm", "30 15 * * *"),
        ("daily at 12 am", "0 0 * * *"),
        ("at 7", "0 7 * * *"),
        ("daily", "@daily"),
        ("hourly", "@hourly"),
        ("weekly", "@weekly"),
        ("midnight", "@daily"),
        ("every 5 minutes", "@every 5m"),
        ("every hour", "@every 1h"),
        ("every 2 days", "@every 2d"),
    ],
)
def test_an_english_schedule_is_told_the_schedule_to_write(english: str, instead: str) -> None:
    """The hint names a schedule that means what the English says, and that one is read."""
    message = refusal(english)
    assert message.startswith(f"{english!r} is not a schedule here: write {instead!r}")
    parse_schedule(instead)


def test_english_that_fits_no_pattern_gets_examples_of_each_form() -> None:
    """Not "expected 5 fields": examples of a macro, cron fields and @every."""
    message = refusal("twice a day every morning")
    assert "expected 5 fields" not in message
    for example in ("'@daily'", "'0 3 * * *'", "'*/15 * * * *'", "'@every 1h'"):
        assert example in message


def test_a_word_that_is_not_english_for_a_schedule_keeps_the_field_count_error() -> None:
    """A stray word is not taken for English: the count of fields is what is wrong."""
    assert refusal("bad") == (
        "expected 5 fields (minute hour day-of-month month day-of-week), got 1"
    )


@pytest.mark.parametrize(
    ("quartz", "instead", "notes"),
    [
        ("0 0 3 * * ? 2027", "0 3 * * *", ["there is no year field", "'2027' is left out"]),
        ("0 0 3 ? * MON", "0 3 * * MON", []),
        ("0 15 10 ? * 2-6", "15 10 * * MON-FRI", ["1-7 from Sunday"]),
        ("30 0 12 1/5 * ?", "@with-seconds 30 0 12 1/5 * *", []),
        ("0 0 3 * * * *", "0 3 * * *", []),
    ],
)
def test_a_quartz_expression_is_told_its_equivalent_here(
    quartz: str, instead: str, notes: list[str]
) -> None:
    """Seconds first, '?' and a year: the same times as cron fields (days of the week by
    name, since Quartz numbers them from Sunday = 1), and the equivalent is read here."""
    message = refusal(quartz)
    assert message.startswith("a Quartz expression (seconds first, '?' for no value")
    assert f"here write {instead!r}" in message
    for note in notes:
        assert note in message
    parse_schedule(instead)


def test_quartz_weekday_numbers_become_the_same_days() -> None:
    """Quartz's 2-6 is Monday to Friday: the suggested schedule fires on those days."""
    message = refusal("0 15 10 ? * 2-6")
    instead = message.split("here write ")[1].split("'")[1]
    times = parse_schedule(instead).next_times(datetime(2027, 3, 6, tzinfo=UTC), 5)  # a Saturday
    assert [t.strftime("%a %H:%M") for t in times] == [
        "Mon 10:15",
        "Tue 10:15",
        "Wed 10:15",
        "Thu 10:15",
        "Fri 10:15",
    ]


def test_quartz_values_cron_has_not_are_named_without_an_equivalent() -> None:
    """'L' (last day) has no cron equivalent: nothing is suggested that would be wrong."""
    message = refusal("0 0 0 L * ?")
    assert "here write" not in message
    assert "'L', 'W' and '#' are Quartz's own" in message
    assert "write 5 cron fields" in message


def test_a_question_mark_in_five_fields_is_told_to_be_a_star() -> None:
    """Quartz's 'no value' in an otherwise cron expression: write '*'."""
    assert refusal("0 3 ? * *") == "'?' is Quartz's 'no specific value': here write '*' instead"


def test_reboot_names_the_key_that_exists() -> None:
    """run_on_start exists (it is not "planned"): the message says to set it."""
    message = refusal("@reboot")
    assert "set run_on_start = true" in message
    assert "planned" not in message


def test_a_bad_schedule_is_reported_even_with_a_bad_time_zone(tmp_path: Path) -> None:
    """Both errors at once: the time zone's does not hide the schedule's."""
    errors = load_errors(
        tmp_path,
        '[jobs.a]\nkind = "run"\nimage = "busybox"\nschedule = "daily"\n'
        'timezone = "Europe/Berln"\n',
    )
    assert errors == [
        "jobs.a.schedule: 'daily' is not a schedule here: write '@daily'",
        (
            "jobs.a.timezone: unknown time zone 'Europe/Berln' (use an IANA name such as "
            "'Europe/Berlin'; did you mean `Europe/Berlin`?)"
        ),
    ]


def test_a_quartz_expression_behind_with_seconds_gets_the_same_hint() -> None:
    """'@with-seconds' takes the seconds first as Quartz does, but not its '?'."""
    assert refusal("@with-seconds 10 0 3 ? * MON").endswith(
        "here write '@with-seconds 10 0 3 * * MON'"
    )


_UNIT_S = {"minutes": 60, "hours": 3600}


@pytest.mark.parametrize(
    ("count", "unit"),
    [(5, "minutes"), (7, "minutes"), (15, "minutes"), (61, "minutes"), (6, "hours"), (25, "hours")],
)
def test_every_schedule_suggested_for_every_n_units_fires_every_n_units(
    count: int, unit: str
) -> None:
    """Each suggestion is read here and keeps the interval all along: a cron step restarts
    every hour (day), so '*/7' (…:56, then :00) or '*/61' (hourly) is never offered."""
    message = refusal(f"every {count} {unit}")
    suggested = re.findall(r"'([^']+)'", message.split(": write ", 1)[1])
    assert suggested
    assert suggested[0] == f"@every {count}{unit[0]}"
    for schedule in suggested:
        times = parse_schedule(schedule).next_times(datetime(2027, 3, 6, tzinfo=UTC), 60)
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert gaps == {count * _UNIT_S[unit]}, schedule


@pytest.mark.parametrize("english", ["every 0 hours", "every 0 minutes", "every 400 days"])
def test_english_whose_interval_is_not_read_here_gets_examples_not_a_suggestion(
    english: str,
) -> None:
    """'@every 0h' (or more than 366 days) is refused here: it is not suggested."""
    message = refusal(english)
    assert "'@every 0" not in message
    assert "'@every 400d'" not in message
    assert message.startswith(f"{english!r} is not a schedule here: write cron fields or a macro")


@pytest.mark.parametrize(
    "quartz",
    ["@with-seconds ? ? ? ? ? ?", "? 0 12 * * ? *", "0 ? 12 * * ?", "0 0 12 * ? ? 2027"],
)
def test_a_question_mark_where_quartz_has_none_gets_a_hint_not_a_loop(quartz: str) -> None:
    """A '?' in the seconds, minute, hour or month field cannot be turned into cron fields:
    the hint says so and suggests nothing (it once asked for a hint of its own suggestion,
    without end)."""
    message = refusal(quartz)
    assert message.startswith("a Quartz expression")
    assert "here write" not in message
    assert "'?' stands only for a day of the month or of the week" in message


def test_a_looping_quartz_schedule_is_located_and_hides_no_other_error(tmp_path: Path) -> None:
    """The schedule's error names its key, and the file's other errors are still reported."""
    errors = load_errors(
        tmp_path,
        '[jobs.a]\nkind = "run"\nimage = "busybox"\nschedule = "? 0 12 * * ? *"\n'
        '[jobs.b]\nkind = "run"\nimage = "busybox"\nschedule = "@with-seconds ? ? ? ? ? ?"\n'
        "comand = 1\n",
    )
    assert [e.split(": ", 1)[0] for e in errors] == [
        "jobs.a.schedule",
        "jobs.b.schedule",
        "jobs.b.comand",
    ]


def test_a_hint_that_fails_leaves_the_schedules_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint is optional: an exception while making one means no hint, never a crash."""

    def broken(*_: object) -> str | None:
        raise RecursionError

    monkeypatch.setattr(schedule_hints, "quartz", broken)
    monkeypatch.setattr(schedule_hints, "english", broken)
    assert refusal("0 0 3 ? * MON").startswith("6 fields: a seconds field must be marked")
    assert refusal("every day at 3") == (
        "expected 5 fields (minute hour day-of-month month day-of-week), got 4"
    )
    assert refusal("@with-seconds 0 0 3 ? * MON").startswith("day-of-month field")


def test_a_hint_is_looked_for_only_when_the_schedule_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Valid cron expressions (in every form) never ask for a hint; one that is not read
    asks, and its hint is the error."""
    asked: list[str] = []

    def english(text: str, readable: object) -> str | None:
        asked.append(text)
        return f"{text!r} is not a schedule here"

    monkeypatch.setattr(schedule_hints, "english", english)
    for expression in (
        "17 4 * * 1-5",
        "*/5 * 1,15 jan-mar *",
        "@daily",
        "@with-seconds 0 * * * * *",
    ):
        parse_schedule(expression + "  ")  # not parsed before (the cache is by expression)
    assert asked == []
    assert refusal("every day at 4") == "'every day at 4' is not a schedule here"
    assert asked == ["every day at 4"]
