"""Fire times across every 2026 DST change of three zones (a one-hour change on either side
of UTC, and Lord Howe's 30-minute one), checked against a brute-force reference: every
wall-clock second of a few hours around the change, kept when it matches, mapped to the
instant of its first occurrence (a time in the spring gap moves forward by the gap). The
next time after any moment is the earliest such instant after it."""

from __future__ import annotations

import bisect
import functools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from scheduler.schedule import parse_schedule

if TYPE_CHECKING:
    from collections.abc import Callable

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
WINDOW = timedelta(hours=3)
"""Fire times are compared from this long before a change to this long after it."""


@functools.cache
def changes(zone: str) -> list[datetime]:
    """The instants (UTC, to the minute) in 2026 at which ``zone``'s offset changes."""
    tz = ZoneInfo(zone)
    found = []
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment.year == 2026:
        later = moment + timedelta(hours=1)
        if moment.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            minute = moment
            while minute.astimezone(tz).utcoffset() == moment.astimezone(tz).utcoffset():
                minute += timedelta(minutes=1)
            found.append(minute)
        moment = later
    return found


CASES: list[tuple[str, int, Callable[[datetime], bool]]] = [
    # expression, the step of the brute force in seconds, which wall-clock times fire
    ("@with-seconds * * * * * *", 1, lambda w: True),
    ("@with-seconds */20 * * * * *", 1, lambda w: w.second % 20 == 0),
    ("* * * * *", 60, lambda w: True),
    ("*/20 * * * *", 60, lambda w: w.minute % 20 == 0),
    ("@hourly", 60, lambda w: w.minute == 0),
    ("*/20 2 * * *", 60, lambda w: w.minute % 20 == 0 and w.hour == 2),
    ("20,40 1,2 * * *", 60, lambda w: w.minute in (20, 40) and w.hour in (1, 2)),
    ("10,50 2 * * *", 60, lambda w: w.minute in (10, 50) and w.hour == 2),
    ("30 2 * * *", 60, lambda w: w.minute == 30 and w.hour == 2),
    ("45 0-3 * * *", 60, lambda w: w.minute == 45 and w.hour <= 3),
]


@functools.cache
def walls(zone: str, change: datetime, step: int) -> list[tuple[datetime, datetime]]:
    """Every ``step``-th wall-clock second (from :00) around ``change``, each with the
    instant (UTC) of its first occurrence (fold=0: a time in the gap moves forward by it)."""
    tz = ZoneInfo(zone)
    margin = timedelta(seconds=1560 * step)  # 26 min, or 26 hours: past the next time
    wall = (change - WINDOW - margin).astimezone(tz).replace(tzinfo=None, second=0)
    stop = (change + WINDOW + margin).astimezone(tz).replace(tzinfo=None)
    found = []
    while wall <= stop:
        found.append((wall, wall.replace(tzinfo=tz).astimezone(UTC)))
        wall += timedelta(seconds=step)
    return found


def reference(
    zone: str, change: datetime, step: int, matches: Callable[[datetime], bool]
) -> list[datetime]:
    """Every fire time (UTC) of the wall-clock times around ``change`` that ``matches``
    says fire, sorted and each once: the brute force the schedule must agree with."""
    return sorted({instant for wall, instant in walls(zone, change, step) if matches(wall)})


def moments(change: datetime, fired: list[datetime]) -> list[datetime]:
    """Moments to ask from: every 7 min 13 s around the change; a second before, at and half a
    second after the change and the ends of a 30-minute or one-hour gap or repeat; and the
    same around fire times near the change (about 150 of them, all for rare schedules)."""
    start = change - WINDOW
    found = [
        start + k * timedelta(seconds=433) for k in range(2 * WINDOW // timedelta(seconds=433))
    ]
    near = [time for time in fired if abs(time - change) < WINDOW]
    edges = [change + timedelta(minutes=m) for m in (-60, -30, 0, 30, 60)]
    for time in [*near[:: max(1, len(near) // 150)], *edges]:
        found += [time - timedelta(seconds=1), time, time + timedelta(milliseconds=500)]
    return found


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("expression", "step", "matches"), CASES, ids=[c[0] for c in CASES])
def test_next_time_around_dst_changes_is_the_brute_force_one(
    zone: str, expression: str, step: int, matches: Callable[[datetime], bool]
) -> None:
    """From any moment near a change (in the gap's shifted times, in either occurrence of the
    repeated hour or half hour), the next fire time is the earliest instant after it of a
    matching wall-clock time at its first occurrence: never None, never a time twice, none
    skipped."""
    schedule = parse_schedule(expression, zone)
    found_changes = changes(zone)
    assert len(found_changes) == 2
    for change in found_changes:
        fired = reference(zone, change, step, matches)
        for moment in moments(change, fired):
            expected = fired[bisect.bisect_right(fired, moment)]
            got = schedule.next_after(moment.astimezone(ZoneInfo(zone)))
            assert got is not None, (expression, zone, moment)
            assert got.astimezone(UTC) == expected, (expression, zone, moment.isoformat())


def test_every_second_from_inside_the_repeated_hour_fires_after_it() -> None:
    """From the second 02:30 in Berlin (CET, the repeated hour) an every-second schedule's next
    time is 03:00 CET: the repeated hour's times fired at their first occurrence (issue 19)."""
    schedule = parse_schedule("@with-seconds * * * * * *", "Europe/Berlin")
    moment = datetime.fromisoformat("2026-10-25T02:30:00+01:00")
    found = schedule.next_after(moment)
    assert found is not None
    assert found.isoformat() == "2026-10-25T03:00:00+01:00"


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("interval", [1, 7, 90, 1800, 3600, 5400])
def test_every_counts_real_time_across_dst_changes(zone: str, interval: int) -> None:
    """``@every N`` fires at the multiples of N seconds since the epoch, whatever the zone's
    offset does: the next time after a moment is the next multiple."""
    schedule = parse_schedule(f"@every {interval}s", zone)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for change in changes(zone):
        moment = change - WINDOW
        while moment < change + WINDOW:
            elapsed = int((moment - epoch).total_seconds())
            expected = epoch + timedelta(seconds=(elapsed // interval + 1) * interval)
            got = schedule.next_after(moment)
            assert got is not None
            assert got.astimezone(UTC) == expected, (zone, interval, moment.isoformat())
            moment += timedelta(seconds=interval * 7 // 3 + 1)
