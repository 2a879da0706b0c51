"""A schedule in words, for the status page: ``*/5 9-17 * * mon-fri`` is "every 5 minutes,
between 09:00 and 17:59, Monday through Friday". Every form ``scheduler.schedule`` reads
(5-field cron, ``@with-seconds``, the macros, ``@every``, ``@at``, ``@manual``) is said
from the values the schedule selects (``field_values``: the scheduler's own reading), so
``0-59/5`` and ``*/5`` read the same, day-of-week 7 is Sunday, and both day fields
restricted read "or" (Vixie cron's rule) unless one starts with ``*``."""

from __future__ import annotations

import functools
import itertools
import re
from typing import TYPE_CHECKING

from jobs.units import parse_duration
from scheduler.schedule import (
    AT_PREFIX,
    EVERY_PREFIX,
    MACROS,
    MANUAL,
    SECONDS_PREFIX,
    field_values,
    parse_at,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import tzinfo

_MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)
_WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SPAN = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day-of-month": (1, 31)}
_SPAN |= {"month": (1, 12), "day-of-week": (0, 6)}
_CLOCK = re.compile(r"at \d\d:\d\d(:\d\d)?(, \d\d:\d\d(:\d\d)?)*( and \d\d:\d\d(:\d\d)?)?$")
"""What ``_clock`` says: a few times of day, nothing else."""
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


@functools.lru_cache(maxsize=4096)
def schedule_words(expression: str, zone: tzinfo | None = None) -> str:
    """``expression`` (a schedule the daemon accepted) in words; an ``@at`` instant in
    ``zone`` (UTC without one), a cron form's wall clock named when ``zone`` is not UTC
    ("at 03:00 every day, Europe/Berlin time"). A bounded cache: the schedules are few."""
    text = " ".join(expression.split())
    head, _, rest = text.partition(" ")
    head = head.lower()
    if head == MANUAL:
        return "never on its own: only when chained or triggered"
    if head == AT_PREFIX:
        moment = parse_at(rest)
        if zone is not None:
            moment = moment.astimezone(zone)
        return f"once, at {moment:%Y-%m-%d %H:%M:%S} {moment.tzname()}"
    if head == EVERY_PREFIX:
        return "every " + duration_words(parse_duration(rest))
    if head in MACROS:
        fields = ["0", *MACROS[head].split()]
    elif head == SECONDS_PREFIX:
        fields = rest.split()
    else:
        fields = ["0", *text.split()]
    named = "" if zone is None or str(zone) == "UTC" else f", {zone} time"
    return cron_words(fields) + named


def duration_words(seconds: float) -> str:
    """``5400`` is "1 hour 30 minutes", ``60`` "minute", ``0.5`` "0.5 seconds"."""
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g} seconds"
    rest, parts = int(seconds), []
    for size, unit in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count > 1 else ''}")
    if len(parts) == 1 and parts[0].startswith("1 "):
        return parts[0][2:]  # "every minute", not "every 1 minute"
    return " ".join(parts)


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    found = []
    for _, run in itertools.groupby(enumerate(values), lambda pair: pair[1] - pair[0]):
        numbers = [value for _, value in run]
        found.append((numbers[0], numbers[-1]))
    return found


def _step(values: tuple[int, ...]) -> int | None:
    """The step of ``values`` when they are every n-th value from the first to the last
    (``*/n``, ``a/n``, ``a-b/n``), n > 1, at least three of them; else None."""
    if len(values) < 3:  # noqa: PLR2004 - two values are a list
        return None
    step = values[1] - values[0]
    even = all(b - a == step for a, b in itertools.pairwise(values))
    return step if step > 1 and even else None


def _stepped(
    values: tuple[int, ...], name: str, unit: str, say: Callable[[int], str]
) -> str | None:
    """``values`` as "every 5 minutes" (from the field's start to its end), "every 15
    minutes from minute 5", "every 2 hours from 09:00 through 17:00"; None if not even."""
    step = _step(values)
    if step is None:
        return None
    low, high = _SPAN[name]
    to_end = values[-1] + step > high
    start = "" if values[0] == low and to_end else f" from {say(values[0])}"
    end = "" if to_end else f" through {say(values[-1])}"
    return f"every {step} {unit}s{start}{end}"


def _said(values: tuple[int, ...], say: Callable[[int], str]) -> str:
    """The values as a list of single values and ranges ("1, 5 through 9 and 12")."""
    return _listed(
        [
            say(low) if low == high else f"{say(low)} through {say(high)}"
            for low, high in _runs(values)
        ]
    )


def _every(name: str, values: tuple[int, ...], unit: str, say: Callable[[int], str]) -> str:
    """A field that repeats within its parent: "every 5 minutes", "at minutes 0 and 30"."""
    low, high = _SPAN[name]
    if values == tuple(range(low, high + 1)):
        return f"every {unit}"
    stepped = _stepped(values, name, unit, lambda v: f"{unit} {say(v)}")
    if stepped is not None:
        return stepped
    runs = _runs(values)
    if len(runs) == 1 and runs[0][0] != runs[0][1]:
        return f"every {unit} from {unit} {say(runs[0][0])} through {unit} {say(runs[0][1])}"
    plural = "s" if len(values) > 1 else ""
    return f"at {unit}{plural} {_said(values, say)}"


def _hours(values: tuple[int, ...]) -> str:
    """The hour field beside a repeating minute: "between 09:00 and 17:59", "every 2 hours"."""
    stepped = _stepped(values, "hour", "hour", lambda h: f"{h:02d}:00")
    if stepped is not None:
        return stepped
    spans = [f"between {a:02d}:00 and {b:02d}:59" for a, b in _runs(values)]
    return _listed(spans)


def _clock(seconds: tuple[int, ...], minutes: tuple[int, ...], hours: tuple[int, ...]) -> str:
    """A few fixed times of day: "at 03:00", "at 02:30 and 14:30", "at 12:00:15"."""
    shown = [
        f"{h:02d}:{m:02d}" + (f":{s:02d}" if seconds != (0,) else "")
        for h in hours
        for m in minutes
        for s in seconds
    ]
    return f"at {_listed(shown)}"


def _time_of_day(second: tuple[int, ...], minute: tuple[int, ...], hour: tuple[int, ...]) -> str:
    if len(second) == 1 and len(minute) * len(hour) <= 4:  # noqa: PLR2004 - a few times
        return _clock(second, minute, hour)
    few_hours = len(hour) <= 8 and all(a == b for a, b in _runs(hour))  # noqa: PLR2004
    if len(second) == 1 and len(minute) == 1 and _step(hour) is None and few_hours:
        return _clock(second, minute, hour)
    parts = []
    if second != (0,):
        parts.append(_every("second", second, "second", str))
    every_minute = minute == tuple(range(60))
    if not every_minute or not parts:
        parts.append(_every("minute", minute, "minute", str))
    elif parts[-1].startswith("at second"):
        parts[-1] += " of every minute"
    if hour != tuple(range(24)):
        parts.append(_hours(hour))
    elif parts[-1].startswith("at minute"):
        parts[-1] += " of every hour"
    return ", ".join(parts)


def _days(dom_text: str, dow_text: str) -> str:
    days, weekdays = field_values(dom_text, "day-of-month"), field_values(dow_text, "day-of-week")
    every_day = days == tuple(range(1, 32))
    every_weekday = weekdays == tuple(range(7))
    on_days = ""
    if not every_day:
        stepped = _stepped(days, "day-of-month", "day", lambda d: f"day {d}")
        if stepped is not None:
            on_days = f"{stepped} of the month"
        else:
            plural = "s" if len(days) > 1 else ""
            on_days = f"on day{plural} {_said(days, str)} of the month"
    monday_first = tuple(sorted((day - 1) % 7 for day in weekdays))  # Friday through Sunday
    on_weekdays = "" if every_weekday else "on " + _said(monday_first, _WEEK.__getitem__)
    if on_days and on_weekdays:
        either = not (dom_text.startswith("*") or dow_text.startswith("*"))
        return f"{on_days} or {on_weekdays}" if either else f"{on_days}, if also {on_weekdays}"
    return on_days or on_weekdays


def cron_words(fields: list[str]) -> str:
    """Six cron fields (seconds first) in words."""
    second_text, minute_text, hour_text, dom_text, month_text, dow_text = fields
    second = field_values(second_text, "second")
    minute = field_values(minute_text, "minute")
    hour = field_values(hour_text, "hour")
    parts = [_time_of_day(second, minute, hour)]
    days = _days(dom_text, dow_text)
    if days:
        parts.append(days)
    elif _CLOCK.match(parts[0]):
        parts[0] += " every day"
    months = field_values(month_text, "month")
    if months != tuple(range(1, 13)):
        parts.append("in " + _said(months, lambda m: _MONTHS[m - 1]))
    return ", ".join(parts)
