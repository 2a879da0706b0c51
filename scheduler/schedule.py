"""Schedules: cron strings, macros and ``@every`` into fire times.

The only module that imports APScheduler. Its triggers do the calendar arithmetic of cron
fields (month lengths, leap years, weekdays), run in UTC over the zone's wall-clock times;
this module reads the forms itself (cron's meaning, not APScheduler's), builds one trigger
per distinct set of fields, and maps wall-clock times to instants. Our own loop
(``scheduler.ticker``) asks for the times; see docs/design.md for why.

Accepted forms:

- 5-field cron ``minute hour day-of-month month day-of-week``, with ``*``,
  lists, ranges, steps, and month/day names. Day-of-week 0 and 7 are Sunday,
  as in cron. When both day fields are restricted, a day matching either
  fires (Vixie cron's rule); a field starting with ``*`` counts as
  unrestricted for that rule. A day of the month that none of the selected
  months has (February 30th) is refused, unless the day-of-week fires it.
- ``@with-seconds S M H DoM Mon DoW``: a seconds field first. A bare 6-field
  string is refused, so an extra field can never turn "every 5 minutes" into
  "every 5 seconds".
- Macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``), ``@hourly``.
- ``@every <duration>``: a fixed interval, counted in real elapsed time and
  aligned to the Unix epoch (``@every 1h`` fires at the top of each UTC hour).
- ``@manual``: no fire time at all; the job runs only when chained from another job's
  run or triggered (``crontainer trigger``).
- ``@at <RFC 3339 time>``: one instant, once (``@at 2027-01-01T03:00:00+01:00``); the
  UTC offset (or ``Z``) is required, so the instant never depends on the job's
  ``timezone``. That it ran is kept in the state database (``scheduler.one_shots``).

Daylight-saving time (the rule users rely on; see README "Schedules"): cron
fields are matched against the *wall clock* of the job's zone, and each
matching wall-clock time fires once:

- a time that does not exist (the spring-forward gap, 02:30 in Berlin on the
  last Sunday of March) fires once, shifted forward by the gap (03:30 CEST);
- a time that exists twice (the autumn repeated hour) fires once, at its
  first occurrence (02:30 CEST, not again at 02:30 CET).

So a daily job runs exactly once on both change days. APScheduler's own
``CronTrigger`` in the job's zone fires twice in the repeated hour (and can return the
same time again); to avoid that, its triggers run in UTC, which has no DST, over
wall-clock times, and this module maps those to instants.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import weakref
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from jobs.base import time_zone
from jobs.units import parse_duration
from scheduler import schedule_hints as hints

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.base import BaseTrigger

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EVERY_MAX_S = 366 * 86400
"""The longest ``@every`` interval (use a cron form for rarer runs)."""
SECONDS_PREFIX = "@with-seconds"
EVERY_PREFIX = "@every"
MANUAL = "@manual"
"""The schedule of a job that never fires on its own (chained or triggered only)."""
AT_PREFIX = "@at"
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)
"""RFC 3339's date-time, its offset optional here only to say that it is missing."""

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


NEVER_FIRES = "never fires"


class ScheduleError(ValueError):
    """A schedule string that cannot be read; the message says which part."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_SECOND = _Field("second", 0, 59, {})
_MINUTE = _Field("minute", 0, 59, {})
_HOUR = _Field("hour", 0, 23, {})
_DOM = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)})
_DOW = _Field("day-of-week", 0, 7, {d: i for i, d in enumerate(_DAYS)})


def _value(text: str, field: _Field) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.names[lowered]
    if not text.isdigit():
        raise ScheduleError(f"{field.name} field: {text!r} is not a number or a name")
    number = int(text)
    if not field.low <= number <= field.high:
        raise ScheduleError(
            f"{field.name} field: {number} is out of range {field.low}-{field.high}"
        )
    return number


def _expand(text: str, field: _Field) -> list[int]:
    """All values a cron field selects, sorted (day-of-week: 0..6, Sunday 0)."""
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field.name} field: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(
                    f"{field.name} field: step {step_text!r} must be a positive number"
                )
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, field), _value(last, field)
            if low > high:
                raise ScheduleError(f"{field.name} field: range {base!r} runs backwards")
        else:
            low = _value(base, field)
            high = field.high if step_text else low
        values.update(range(low, high + 1, step))
    if field is _DOW:
        values = {v % 7 for v in values}
    return sorted(values)


_FIELDS = {field.name: field for field in (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)}


def _values(text: str, field: _Field) -> tuple[int, ...]:
    """``_expand`` as a tuple shared by every schedule with the same field."""
    return _shared_values(text, field.name)


@functools.lru_cache(maxsize=4096)
def _shared_values(text: str, name: str) -> tuple[int, ...]:
    """``_expand`` of field ``name`` (a bounded cache: the fields written are few)."""
    return tuple(_expand(text, _FIELDS[name]))


def field_values(text: str, name: str) -> tuple[int, ...]:
    """The values cron field ``name`` (``second``, ``minute``, ``hour``, ``day-of-month``,
    ``month``, ``day-of-week``) written ``text`` selects, sorted (day-of-week: Sunday 0),
    as the schedule reads them (``scheduler.schedule_words`` says them in words)."""
    return _shared_values(text, name)


def _compact(values: tuple[int, ...], field: _Field) -> str:
    """The shortest APScheduler expression selecting exactly ``values`` (sorted, within
    ``field``, cron's numbers): ``*``, ``*/step``, ``first-last/step`` or a list of values
    and ranges. A trigger tests each list item at every step, so fewer items are faster,
    and equal selections written differently share one trigger."""
    if len(values) > 1:
        step = values[1] - values[0]
        if all(b - a == step for a, b in itertools.pairwise(values)):
            suffix = "" if step == 1 else f"/{step}"
            if values[0] == field.low and values[-1] + step > field.high:
                return f"*{suffix}"
            return f"{values[0]}-{values[-1]}{suffix}"
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in _runs(values))


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """``values`` (sorted, distinct) as runs of consecutive numbers: (first, last) each."""
    found: list[tuple[int, int]] = []
    for _, run in itertools.groupby(enumerate(values), lambda pair: pair[1] - pair[0]):
        numbers = [value for _, value in run]
        found.append((numbers[0], numbers[-1]))
    return found


_APS_WEEKDAYS = [*_DAYS[1:], _DAYS[0]]
"""APScheduler's weekday names in its own order (Monday first, as its numbers)."""


def _weekdays(values: tuple[int, ...]) -> str:
    """Weekdays (cron numbers, Sunday 0) as APScheduler reads them: names, never numbers
    (it numbers them from Monday = 0), consecutive ones as a range (``mon-fri``)."""
    monday_first = sorted((v - 1) % 7 for v in values)
    if len(monday_first) == 7:  # noqa: PLR2004 - every day
        return "*"
    names = _APS_WEEKDAYS
    return ",".join(
        names[low] if low == high else f"{names[low]}-{names[high]}"
        for low, high in _runs(monday_first)
    )


@functools.lru_cache(maxsize=4096)
def _written(text: str, name: str) -> str:
    """Field ``name`` as written (``text``) in APScheduler's words: ``_compact``, or
    ``_weekdays`` for the day-of-week (a bounded cache, as ``_shared_values``)."""
    values = _shared_values(text, name)
    return _weekdays(values) if name == _DOW.name else _compact(values, _FIELDS[name])


_TRIGGER_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
"""A CronTrigger's fields, in its order (``CronTrigger.FIELD_NAMES``)."""


_WEEK_FIELDS = ("week", "day_of_week")
"""The fields that are no part of a date (APScheduler's ``REAL = False``): one that selects
every value (``*``) never moves a time, so a trigger leaves it out and steps faster."""


def _cron(**given: str) -> BaseTrigger:
    """``CronTrigger(**given, timezone=UTC)``, its fields shared with every other trigger
    that has the same expression in that field (``*`` in most): a field is read-only once
    compiled, so thousands of triggers hold a few hundred fields instead of eight each.
    Built through the state APScheduler's job stores restore a trigger from, without the
    week fields that select every value (``_WEEK_FIELDS``)."""
    trigger = CronTrigger.__new__(CronTrigger)
    fields = [
        _cron_field(name, given.get(name, "*"))
        for name in _TRIGGER_FIELDS
        if name not in _WEEK_FIELDS or given.get(name, "*") != "*"
    ]
    state = {"version": 2, "timezone": UTC, "start_date": None, "end_date": None}
    trigger.__setstate__({**state, "fields": fields, "jitter": None})
    return trigger


@functools.lru_cache(maxsize=4096)
def _cron_field(name: str, expression: str) -> object:
    """The compiled field ``name`` of a CronTrigger selecting ``expression`` (a bounded
    cache: the expressions are few, and ``_compact`` keeps them short)."""
    return CronTrigger.FIELDS_MAP[name](name, expression, is_default=expression == "*")


_LAST = datetime(MAXYEAR, 12, 31, 23, 59, 59)  # noqa: DTZ001 - a wall-clock time


class WallClock:
    """The wall-clock times a cron form's fields select: an APScheduler trigger run in UTC
    (which has no DST) over naive wall-clock times. One per distinct set of fields, shared
    by every schedule that has them, in any zone (``_WALL_CLOCKS``)."""

    __slots__ = ("__weakref__", "_last", "trigger")

    def __init__(self, trigger: BaseTrigger) -> None:
        self.trigger = trigger
        self._last: tuple[datetime, datetime | None] | None = None  # the last answer

    def next_after(self, after: datetime) -> datetime | None:
        """The first selected wall-clock time strictly after ``after`` (naive), or None
        when there is none before the year 10000. The last answer is kept: the jobs that
        share this wall clock, asked from the same moment, get it without a search."""
        last = self._last  # one read: another thread may replace it
        if last is not None and last[0] == after:
            return last[1]
        found: datetime | None = None
        if after < _LAST:
            try:
                found = self.trigger.get_next_fire_time(None, (after + _TICK).replace(tzinfo=UTC))
            except (ValueError, OverflowError):  # the next one would be after the year 9999
                found = None
        wall = found.replace(tzinfo=None) if found is not None else None
        self._last = (after, wall)
        return wall


_WALL_CLOCKS: weakref.WeakValueDictionary[tuple[str, ...], WallClock] = (
    weakref.WeakValueDictionary()
)
"""Each WallClock still held by a schedule, by its trigger's fields as APScheduler reads
them: ``0 5 * * 0``, ``0 5 * * 7`` and ``0 5 * * sun`` in any zone share one."""

_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
"""The most days of each month (February: 29, in leap years)."""


def _wall_clock(fields: list[str]) -> tuple[WallClock, tuple[str, ...] | None]:
    """The wall-clock times of 6 cron fields (seconds first), and the warnings of
    ``validate`` when they are known without looking at fire times (None: see
    ``Schedule.warnings``). ScheduleError for a day that none of the months has."""
    second, minute, hour, dom, month, dow = fields
    seconds, months, days = _values(second, _SECOND), _values(month, _MONTH), _values(dom, _DOM)
    either = not (dom.startswith("*") or dow.startswith("*"))
    # Both day fields must match unless `either`; every date that exists falls on each
    # weekday in some year, so only a day that no selected month has never comes.
    comes = any(day <= _MONTH_DAYS[m - 1] for m in months for day in days)
    if not either and not comes:
        raise ScheduleError(
            f"day-of-month field: {dom!r} names no day that the months of the month field "
            f"({month!r}) have, so the schedule would never fire"
        )
    common = (
        _written(second, _SECOND.name),
        _written(minute, _MINUTE.name),
        _written(hour, _HOUR.name),
        _written(month, _MONTH.name),
    )
    # Vixie's rule, either day field: the day-of-month's trigger or the weekday's, and
    # the weekday's alone when the day never comes (a trigger would search for it up
    # to the year 9999 at every call).
    rule = ("either" if comes else "weekday") if either else "both"
    key = (*common, _written(dom, _DOM.name), _written(dow, _DOW.name), rule)
    found = _WALL_CLOCKS.get(key)
    if found is None:
        found = _WALL_CLOCKS[key] = WallClock(_trigger(key))
    # One second of each minute: fire times lie whole minutes apart (a wall-clock time
    # that DST moves keeps its second, and times never repeat), so never less than 60s.
    return found, (() if len(seconds) == 1 else None)


def _trigger(key: tuple[str, ...]) -> BaseTrigger:
    """The trigger of a ``_wall_clock`` key: its fields as APScheduler reads them, and
    which day field fires (both, either, the weekday alone)."""
    second, minute, hour, month, day, day_of_week, rule = key
    common = {"second": second, "minute": minute, "hour": hour, "month": month}
    if rule == "both":
        return _cron(day=day, day_of_week=day_of_week, **common)
    by_weekday = _cron(day_of_week=day_of_week, **common)
    if rule == "weekday":
        return by_weekday
    return OrTrigger([_cron(day=day, **common), by_weekday])


_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRECISION = timedelta(milliseconds=1)
"""Below the resolution of any schedule (one second)."""


_LOOKBACK = timedelta(hours=3)
"""Longer than any DST change: a spring-forward change this recent may have moved the gap's
times to after the moment asked from."""


def _first_fire(
    next_wall: Callable[[datetime], datetime | None], zone: ZoneInfo, instant: datetime
) -> datetime | None:
    """The earliest instant (UTC) after ``instant`` of a matching wall-clock time at its
    first occurrence (fold=0: a repeated time fires once, in summer time; a time in the
    spring gap fires moved forward by the gap). ``next_wall``: the first matching wall-clock
    time after a given one.

    Wall-clock times that exist map to instants in their order, so the first one after the
    moment's own wall-clock time fires first, except: from inside the repeated hour's
    second pass, its remaining times fired in the first pass (look from its end); and a
    time in a gap fires at an instant that times after the gap may precede, or that the
    moment may already be inside (a change just before it)."""
    if zone.key == "UTC":  # most jobs: the wall clock is the instant
        wall = next_wall(instant.replace(tzinfo=None))
        return wall.replace(tzinfo=UTC) if wall else None
    local = instant.astimezone(zone)
    cursor = local.replace(tzinfo=None)
    offset = local.utcoffset()
    if not local.fold and (instant - _LOOKBACK).astimezone(zone).utcoffset() == offset:
        # the usual case, no change just before: the next wall-clock time, if it has the
        # same offset and no second pass (else it is near a change: see below)
        wall = next_wall(cursor)
        if wall is None:
            return None
        fire = (wall - offset).replace(tzinfo=UTC)  # type: ignore[operator]
        back = fire.astimezone(zone)
        if not back.fold and back.replace(tzinfo=None) == wall:
            return fire
    return _first_fire_near_a_change(next_wall, zone, instant)


def _first_fire_near_a_change(
    next_wall: Callable[[datetime], datetime | None], zone: ZoneInfo, instant: datetime
) -> datetime | None:
    """``_first_fire`` where the moment or the next wall-clock time may be near a change."""
    local = instant.astimezone(zone)
    cursor = local.replace(tzinfo=None)
    offset = _offset(cursor, zone, local.fold)
    best: datetime | None = None
    if local.fold:  # the repeated hour's second pass: its times fired in the first
        summer = _offset(cursor, zone)
        change = _change_between(zone, instant - (summer - offset), instant)
        cursor = (change + summer).replace(tzinfo=None) - _TICK
    else:
        earlier = (instant - _LOOKBACK).astimezone(zone)
        shift = offset - _offset(earlier.replace(tzinfo=None), zone, earlier.fold)
        if shift > timedelta(0):  # a spring-forward change just before: its gap's times
            wall = next_wall(cursor - shift)
            if wall is not None and not _exists(wall, zone):
                best = _instant(wall, zone)
    while (wall := next_wall(cursor)) is not None:
        fire = _instant(wall, zone)
        if _exists(wall, zone):
            return fire if best is None else min(best, fire)
        best = fire if best is None else min(best, fire)
        cursor = _gap_end(wall, zone) - _TICK  # after the gap, times may fire earlier
    return best


def _offset(wall: datetime, zone: ZoneInfo, fold: int = 0) -> timedelta:
    """The zone's UTC offset at the wall-clock time ``wall`` (naive), at its pass ``fold``."""
    return wall.replace(tzinfo=zone, fold=fold).utcoffset()  # type: ignore[return-value]


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) of a wall-clock time's first occurrence (a gap time: moved forward)."""
    return wall.replace(tzinfo=zone).astimezone(UTC)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """``wall`` is a time the zone's clock shows (not in a spring-forward gap)."""
    return _instant(wall, zone).astimezone(zone).replace(tzinfo=None) == wall


def _change_between(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant (UTC) at which ``zone``'s offset changes between ``before`` (the old
    offset) and ``after`` (the new one): a bisection over whole seconds (the changes of the
    time zone database fall on whole seconds)."""
    old = before.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == old:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first wall-clock time after the spring-forward gap that ``wall`` is in."""
    later = _offset(wall, zone, fold=1)  # the offset after the change
    change = _change_between(zone, wall.replace(tzinfo=UTC) - later, _instant(wall, zone))
    return (change + later).replace(tzinfo=None)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Schedule:
    """A parsed schedule: the fire times of one job.

    ``rule``: the wall-clock times of a cron form (in the zone's wall clock), the
    interval of ``@every`` (real time, from the Unix epoch), the one instant of ``@at``
    (aware, UTC), or None for ``@manual`` (no time at all). ``known_warnings``: what
    ``warnings`` says, when the form alone tells
    (None: it looks at fire times).
    """

    expression: str
    zone: ZoneInfo
    rule: WallClock | timedelta | datetime | None
    known_warnings: tuple[str, ...] | None = None

    @property
    def manual(self) -> bool:
        """``@manual``: the job runs only by a chain or a trigger, never on its own."""
        return self.rule is None

    @property
    def one_shot(self) -> datetime | None:
        """The instant of an ``@at`` schedule (UTC); None for the schedules that repeat."""
        return self.rule if isinstance(self.rule, datetime) else None

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (aware), in the schedule's zone."""
        instant = moment.astimezone(UTC)
        rule = self.rule
        if rule is None:
            return None
        if isinstance(rule, timedelta):  # the next multiple of the interval
            return (_EPOCH + ((instant - _EPOCH) // rule + 1) * rule).astimezone(self.zone)
        if isinstance(rule, datetime):  # @at: its instant, while it is ahead
            return rule.astimezone(self.zone) if rule > instant else None
        fire = _first_fire(rule.next_after, self.zone, instant)
        return fire.astimezone(self.zone) if fire else None

    def next_times(self, after: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fire times after ``after``, in the schedule's time zone."""
        times: list[datetime] = []
        moment = after
        while len(times) < count:
            nxt = self.next_after(moment)
            if nxt is None:
                break
            times.append(nxt)
            moment = nxt
        return times

    def warnings(self, after: datetime) -> list[str]:
        """What ``validate`` warns about: a schedule that never fires, or that fires more
        often than once a minute (judged on its next 60 times). Told by the form where it
        can be (a cron form with one second per minute fires at most once a minute; an
        ``@every`` at its interval); only a seconds field of several values looks at
        the fire times."""
        if self.known_warnings is not None:
            return list(self.known_warnings)
        if isinstance(self.rule, datetime):
            return [] if self.rule > after else [at_in_the_past(self.expression)]
        return walked_warnings(self, after)


def at_in_the_past(expression: str) -> str:
    """``validate``'s warning for an ``@at`` schedule (as written) whose time has passed."""
    return (
        f"{' '.join(expression.split())!r} is in the past: the job runs only if that time "
        "never came while the daemon ran and catch_up = true (then once, at its start)"
    )


def walked_warnings(schedule: Schedule, after: datetime) -> list[str]:
    """``Schedule.warnings`` judged on the next 60 fire times after ``after``."""
    times = schedule.next_times(after, 60)
    if not times:
        return [NEVER_FIRES]
    instants = [time.astimezone(UTC) for time in times]  # real time apart, DST or not
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(instants)]
    if gaps and min(gaps) < 60:  # noqa: PLR2004 - a minute
        every = (
            f"every {min(gaps):g}s" if min(gaps) == max(gaps) else f"at times {min(gaps):g}s apart"
        )
        return [_often(every)]
    return []


def _often(every: str) -> str:
    return f"fires more often than once a minute ({every})"


def latest_fire(schedule: Schedule, after: datetime, until: datetime) -> datetime | None:
    """The latest fire time in (after, until], or None. Bounded work: a binary search
    over moments (about 45 steps for a year), never a walk over every missed time."""
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    first = schedule.next_after(after)
    if first is None or first.astimezone(UTC) > until:
        return None
    low, high = after, until  # invariant: the next fire after `low` is <= until
    while high - low > _PRECISION:
        middle = low + (high - low) / 2
        found = schedule.next_after(middle)
        if found is not None and found.astimezone(UTC) <= until:
            low = middle
        else:
            high = middle
    return schedule.next_after(low)


_PARSED: weakref.WeakValueDictionary[tuple[str, str], Schedule] = weakref.WeakValueDictionary()
"""Each schedule parsed and still held by a job, by expression and zone: jobs with the same
schedule share one (it is frozen), and a
reload finds the ones it keeps. An entry goes when no job holds its schedule any more."""


def parse_schedule(expression: str, timezone: str = "UTC") -> Schedule:
    """Read one schedule string; raise ScheduleError saying what is wrong."""
    key = (expression, timezone)
    found = _PARSED.get(key)
    if found is None:
        found = _PARSED[key] = _parse(expression, timezone, hinted=True)
    return found


def _parse(expression: str, timezone: str, *, hinted: bool) -> Schedule:
    """``parse_schedule``; with ``hinted`` False, errors carry no hint of what to write
    instead (a hint checks its suggestion this way, so hints never call themselves)."""
    zone = time_zone(timezone)
    text = " ".join(expression.split())
    if not text:
        raise ScheduleError("the schedule is empty")
    if text.startswith("@"):
        return _macro_schedule(expression, zone, text, hinted=hinted)
    return _five_field_schedule(expression, zone, text, hinted=hinted)


def _macro_schedule(expression: str, zone: ZoneInfo, text: str, *, hinted: bool) -> Schedule:
    """A schedule written as an ``@`` form (``text``: ``expression`` with single spaces)."""
    head, _, rest = text.partition(" ")
    head = head.lower()
    if head == EVERY_PREFIX:
        interval, warned = _every(rest)
        return Schedule(expression, zone, interval, known_warnings=warned)
    if head == AT_PREFIX:
        return Schedule(expression, zone, parse_at(rest))
    if head == SECONDS_PREFIX:
        fields = rest.split()
        hint = _hint(lambda: hints.quartz(fields, _readable)) if hinted and "?" in fields else None
        if hint is not None:
            raise ScheduleError(hint)
        if len(fields) != 6:  # noqa: PLR2004
            raise ScheduleError(
                f"'{SECONDS_PREFIX}' takes 6 fields (second minute hour day-of-month "
                f"month day-of-week), got {len(fields)}"
            )
        return _cron_schedule(expression, zone, fields)
    if head in MACROS and not rest:
        return _cron_schedule(expression, zone, ["0", *MACROS[head].split()])
    if head == MANUAL and not rest:
        return Schedule(expression, zone, None, known_warnings=())
    if head == "@reboot":
        raise ScheduleError(
            "'@reboot' is not a schedule here: set run_on_start = true (the job runs once "
            "when the daemon starts), with a schedule for its later runs (e.g. '@daily')"
        )
    forms = [
        *MACROS,
        MANUAL,
        f"{EVERY_PREFIX} <duration>",
        f"{SECONDS_PREFIX} <6 fields>",
        f"{AT_PREFIX} <RFC 3339 time>",
    ]
    known = ", ".join(forms)
    raise ScheduleError(f"unknown macro {text!r} (known: {known})")


def _five_field_schedule(expression: str, zone: ZoneInfo, text: str, *, hinted: bool) -> Schedule:
    """A 5-field cron schedule (``text``: ``expression`` with single spaces); when it is not
    one and ``hinted``, the error says what to write instead of English or Quartz's form
    (asked only then: a valid expression never gets a hint)."""
    try:
        return _cron_schedule(expression, zone, ["0", *_five_fields(text)])
    except ScheduleError:
        if not hinted:
            raise
        hint = _hint(
            lambda: (
                _at_hint(text)
                or hints.english(text, _readable)
                or hints.quartz(text.split(), _readable)
            )
        )
        if hint is None:
            raise
        raise ScheduleError(hint) from None


def _at_hint(text: str) -> str | None:
    """What to write for a date and time given as a schedule (``2027-01-01T03:00:00Z``, ``at
    2027-01-01T03:00:00Z``): the ``@at`` form; None for anything else."""
    words = text.split(" ", 1)
    candidate = words[1] if len(words) == 2 and words[0].lower() == "at" else text  # noqa: PLR2004
    found = _RFC3339.fullmatch(candidate)
    if found is None:
        return None
    offset = "" if found["offset"] else " (with its UTC offset, e.g. +01:00, or Z for UTC)"
    return (
        f"{text!r} is not a schedule here: to run once at that time, "
        f"write '@at {candidate}'{offset}"
    )


def _cron_schedule(expression: str, zone: ZoneInfo, fields: list[str]) -> Schedule:
    times, warned = _wall_clock(fields)
    return Schedule(expression, zone, times, known_warnings=warned)


def _five_fields(text: str) -> list[str]:
    """The fields of a cron expression; ScheduleError when there are not 5 of them."""
    fields = text.split()
    if len(fields) == 6:  # noqa: PLR2004
        raise ScheduleError(
            "6 fields: a seconds field must be marked, as in "
            f"'{SECONDS_PREFIX} {text}'; standard cron has 5 fields"
        )
    if len(fields) != 5:  # noqa: PLR2004
        raise ScheduleError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    return fields


def _hint(make: Callable[[], str | None]) -> str | None:
    """The hint ``make`` gives, or None when making it fails: a hint is optional, and the
    error it would have joined is reported without it."""
    try:
        return make()
    except Exception:  # a failing hint must never replace the schedule's error
        return None


def _readable(expression: str) -> bool:
    """``expression`` is a schedule this module reads (checked without hints, so a hint's
    suggestion never asks for another hint)."""
    try:
        _parse(expression, "UTC", hinted=False)
    except ScheduleError:
        return False
    return True


def _every(rest: str) -> tuple[timedelta, tuple[str, ...]]:
    """The interval of ``@every <rest>``, and its warning (an interval under a minute)."""
    try:
        seconds = parse_duration(rest.strip())
    except ValueError as e:
        raise ScheduleError(f"@every: {e}") from None
    if seconds < 1:
        raise ScheduleError(f"@every: the interval must be at least 1s, got {rest.strip()!r}")
    if seconds > EVERY_MAX_S:
        raise ScheduleError(
            f"@every: the interval must be at most 366d (use a cron form for rarer runs), "
            f"got {rest.strip()!r}"
        )
    # Intervals count real elapsed time, so they run in UTC: a DST change neither
    # stretches nor shortens them. They are aligned to the Unix epoch, so a job keeps
    # its rhythm across restarts (and catch-up can tell which time was missed).
    interval = timedelta(seconds=seconds)
    gap = interval.total_seconds()  # what the fire times are apart, to the µs
    return interval, ((_often(f"every {gap:g}s"),) if gap < 60 else ())  # noqa: PLR2004


def parse_at(text: str) -> datetime:
    """The instant (UTC) of ``@at <text>``: an RFC 3339 date-time with its UTC offset, as in
    ``2027-01-01T03:00:00+01:00`` or ``2027-01-01T02:00:00Z``; ScheduleError saying what is
    wrong (no offset, a date or time that does not exist, another form)."""
    text = text.strip()
    example = "2027-01-01T03:00:00+01:00"
    if not text:
        raise ScheduleError(f"@at takes a date and time with its UTC offset, as in '@at {example}'")
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ScheduleError(
            f"@at: {text!r} is not an RFC 3339 date and time (write e.g. {example!r}, "
            "or with 'Z' for UTC)"
        )
    if found["offset"] is None:
        raise ScheduleError(
            f"@at: {text!r} has no UTC offset: add one (e.g. "
            f"'{found['date']}T{found['time']}+01:00', or 'Z' for UTC)"
        )
    offset = "+00:00" if found["offset"] in "Zz" else found["offset"]
    if int(offset[1:3]) > 23 or int(offset[4:]) > 59:  # noqa: PLR2004
        raise ScheduleError(f"@at: {text!r}: the UTC offset {offset} is not one (at most ±23:59)")
    try:
        moment = datetime.fromisoformat(f"{found['date']}T{found['time']}{offset}")
    except ValueError as e:
        raise ScheduleError(f"@at: {text!r} is not a valid date and time ({e})") from None
    return moment.astimezone(UTC)
