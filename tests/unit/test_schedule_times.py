"""The fire times of cron forms (APScheduler's triggers built from our expanded fields)
against two references, for many random expressions and moments in UTC (no DST:
test_schedule_dst covers the zones): APScheduler's ``CronTrigger`` given the fields as
written (the comparison the project's own cron arithmetic passed before the triggers came
back: the same times), and a scan of the calendar day by day with cron's rule written out
here."""

from __future__ import annotations

import ast
import itertools
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from scheduler import schedule as schedule_module
from scheduler.schedule import ScheduleError, parse_schedule

ROOT = Path(__file__).resolve().parents[2]

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


MONTH_NUMBERS = {name: number for number, name in enumerate(MONTHS, 1)}


def _selected(text: str, low: int, high: int) -> set[int]:
    """The values a cron field other than day-of-week selects, as cron reads it."""
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        else:
            first_text, _, last_text = base.partition("-")
            first = MONTH_NUMBERS.get(first_text) or int(first_text)
            if last_text:
                last = MONTH_NUMBERS.get(last_text) or int(last_text)
            else:
                last = high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _scanned(fields: list[str], weekdays: set[int], after: datetime, count: int) -> list[datetime]:
    """The first ``count`` times after ``after`` (UTC) that cron fields (seconds first)
    select: every day in turn, by cron's rule (either day field when both are restricted,
    one starting with ``*`` counting as unrestricted), then its times of day in order."""
    second, minute, hour, dom, month, dow = fields
    clock = list(
        itertools.product(
            sorted(_selected(hour, 0, 23)),
            sorted(_selected(minute, 0, 59)),
            sorted(_selected(second, 0, 59)),
        )
    )
    days, months = _selected(dom, 1, 31), _selected(month, 1, 12)
    either = not (dom.startswith("*") or dow.startswith("*"))
    found: list[datetime] = []
    day = after.date()
    while len(found) < count and day < date(after.year + 60, 1, 1):
        on_day, on_weekday = day.day in days, (day.weekday() + 1) % 7 in weekdays
        if day.month in months and ((on_day or on_weekday) if either else on_day and on_weekday):
            times = (datetime(day.year, day.month, day.day, *at, tzinfo=UTC) for at in clock)
            found += itertools.islice((t for t in times if t > after), count - len(found))
        day += timedelta(days=1)
    return found


def test_next_times_are_crons_for_random_expressions() -> None:
    """For 1,000 random expressions and moments (1999 to 2101: leap days, 2000 is a leap
    year and 2100 is not; rare days such as the 31st of February with a weekday), the next
    three times are those of a day-by-day scan of the calendar, and APScheduler's for the
    fields as written, to the second."""
    rng = random.Random(1919)
    compared = refused = rescued = 0
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
        found = schedule.next_times(moment, 3)
        assert found == _scanned(fields, weekdays, moment, 3), (fields, moment.isoformat())
        assert len(found) == 3  # every schedule read fires within 60 years
        compared += 1
        rescued += fields[3] in {"30", "31"} and fields[4] in {"2", "feb"} and fields[5][0] != "*"
        try:
            trigger = _reference(fields, weekdays, moment + timedelta(days=60 * 366))
        except ValueError:  # a step longer than its range ('50/16'): cron reads it, APScheduler not
            continue
        expected: list[datetime] = []
        cursor = moment
        for _ in range(3):
            following = trigger.get_next_fire_time(None, cursor + timedelta(microseconds=1))
            assert following is not None, (fields, cursor)
            expected.append(following)
            cursor = following
        assert found == expected, (fields, moment.isoformat())
    assert refused > 0
    assert rescued > 0  # a day that never comes, fired by its weekday alone


def test_a_time_of_day_carries_over_to_the_next_day_month_and_year() -> None:
    """From the last second of a day, a month, a year and a leap day, the next time is the
    first one of the next selected day; after the last one before the year 10000, none."""
    every_day = parse_schedule("0,30 0,12 * * *")
    cases = [
        (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 2, 1, 0, 0, tzinfo=UTC)),
        (datetime(2026, 12, 31, 12, 30, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        (datetime(2028, 2, 28, 12, 30, 0, 1, tzinfo=UTC), datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
        (
            datetime(2028, 2, 29, 12, 29, 59, 999999, tzinfo=UTC),
            datetime(2028, 2, 29, 12, 30, tzinfo=UTC),
        ),
    ]
    for after, expected in cases:
        assert every_day.next_after(after) == expected
    assert every_day.next_after(datetime(9999, 12, 31, 12, 30, tzinfo=UTC)) is None
    assert parse_schedule("0 0 29 2 *").next_after(datetime(9996, 3, 1, tzinfo=UTC)) is None


def _imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_schedule_is_the_only_module_importing_apscheduler() -> None:
    """APScheduler does the calendar arithmetic, and only ``scheduler/schedule.py`` imports
    it (none of ``jobs/``, nor any other module of ``scheduler/``); its cron forms run on
    APScheduler's triggers."""
    importing = {
        str(path.relative_to(ROOT))
        for package in ("scheduler", "jobs")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "apscheduler" in _imported(path)
    }
    assert importing == {"scheduler/schedule.py"}
    schedule = parse_schedule("0 5 * * mon-fri")
    assert isinstance(schedule.rule, schedule_module.WallClock)
    assert isinstance(schedule.rule.trigger, CronTrigger)
    assert isinstance(parse_schedule("0 5 13 * fri").rule.trigger, OrTrigger)  # type: ignore[union-attr]
