"""The status page's timeline: the next 24 h of planned runs of the jobs ``/`` shows, one
row per job with runs in that window, on one time axis, so that runs at the same time (a
backup and a rotation of the same volume) line up. Server-rendered SVG, no script.

The planned times are the scheduler's own (``Schedule.next_after``, as ``crontainer jobs``
and the page's "Next run": the first mark is that time). A job that fires more than
``MARKS_MAX`` times in the window, or ``CROWD`` times within half an hour, draws no mark
per run but bands over the half hours it fires in (at most 48 of them, found with one
``next_after`` per half hour), so ``@every 1s`` costs what ``@hourly`` costs. A mark is
as wide as the job's median duration over its last runs (at least ``MARK_MIN_S``). The
times of each schedule are kept for an hour (``Timeline``): jobs with the same schedule
and zone share them, and a refresh reuses them.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.schedule_words import schedule_words
from scheduler.ui_html import esc, job_href, link, took

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from scheduler.history import GlanceRow
    from scheduler.schedule import Schedule

WINDOW = timedelta(hours=24)
KEPT = timedelta(hours=1)
"""How long a schedule's planned times are reused (they are planned this much further)."""
MARKS_MAX = 48
"""More runs than this in the window: bands over the half hours with runs, not marks."""
SLOT = timedelta(minutes=30)
CROWD = 4
"""So many runs within half an hour: bands too (the marks would touch anyway), found
after those few runs rather than after ``MARKS_MAX`` of them."""
ROWS_MAX = 50
"""The timeline's rows at most: the first jobs with runs ahead among those ``/`` shows (a
timeline of hundreds of rows is no glance; a filter picks the jobs to compare)."""
MARK_MIN_S = 240.0
"""The narrowest mark (4 min of the 24 h: visible at any width)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WIDTH = 1440
"""The SVG's width in its own units: one a minute."""
_GRID = (
    '<path class="grid" vector-effect="non-scaling-stroke" d="'
    + "".join(f"M{x} 0V12" for x in range(240, _WIDTH, 240))
    + '"/>'
)
"""A line every 4 hours, under the axis' times."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A schedule's runs from ``start`` to ``end``: each time (``times``), or when they are
    too many (``dense``), the starts of the half hours that have one or more."""

    start: datetime
    end: datetime
    times: tuple[datetime, ...]
    dense: tuple[datetime, ...] | None


def plan(schedule: Schedule, start: datetime, end: datetime) -> Plan:
    """The runs of ``schedule`` after ``start`` up to ``end`` (UTC): at most ``MARKS_MAX``
    + 1 calls of ``next_after`` for the times (fewer when ``CROWD`` of them fall within
    half an hour), then, when they are too many, one per half hour with runs."""
    times: list[datetime] = []
    moment = schedule.next_after(start)
    crowded = False
    while moment is not None and moment <= end and len(times) <= MARKS_MAX and not crowded:
        times.append(moment.astimezone(UTC))
        crowded = len(times) >= CROWD and times[-1] - times[-CROWD] < SLOT
        moment = schedule.next_after(moment)
    if len(times) <= MARKS_MAX and not crowded:
        return Plan(start, end, tuple(times), None)
    slots: list[datetime] = []
    moment = times[0]
    while moment is not None and moment <= end:
        slot = _EPOCH + (moment.astimezone(UTC) - _EPOCH) // SLOT * SLOT
        slots.append(slot)
        moment = schedule.next_after(slot + SLOT - timedelta(microseconds=1))
    return Plan(start, end, tuple(times), tuple(slots))


def median_duration(rows: Iterable[GlanceRow]) -> float | None:
    """The median duration (seconds) of the runs in ``rows`` that ended; None: none did."""
    read = datetime.fromisoformat
    spent = [
        (read(finished) - read(started)).total_seconds()
        for _, _, _, started, finished, _ in rows
        if started and finished
    ]
    return statistics.median(spent) if spent else None


@dataclass(frozen=True, slots=True)
class Lane:
    """One job's row: its name, schedule, and median duration (None: unknown)."""

    name: str
    schedule: Schedule
    duration_s: float | None


class Timeline:
    """Plans by schedule (expression and zone), each kept for ``KEPT``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, str], Plan] = {}

    def plan_of(self, schedule: Schedule, now: datetime) -> Plan:
        key = (schedule.expression, str(schedule.zone))
        with self._lock:
            kept = self._plans.get(key)
        if kept is not None and kept.start <= now and now + WINDOW <= kept.end:
            return kept
        made = plan(schedule, now, now + WINDOW + KEPT)
        with self._lock:
            self._plans[key] = made
        return made

    def forget_except(self, schedules: Iterable[Schedule]) -> None:
        """Drop the plans of schedules no job holds any more."""
        held = {(s.expression, str(s.zone)) for s in schedules}
        with self._lock:
            for gone in self._plans.keys() - held:
                del self._plans[gone]

    def render(self, lanes: Sequence[Lane], now: datetime) -> str:
        """The timeline of ``lanes`` (the jobs that may have runs ahead), from ``now`` for
        24 h: the first ``ROWS_MAX`` of them with runs in that time."""
        end = now + WINDOW
        rows: list[str] = []
        more = 0
        for lane in lanes:
            if len(rows) == ROWS_MAX:
                more = len(lanes) - lanes.index(lane)
                break
            if row := self._row(lane, now, end):
                rows.append(row)
        if not rows:
            return ""
        cut = (
            f" Only the first {ROWS_MAX} are drawn ({more} more jobs on this page may have "
            "runs ahead): narrow the jobs with the filter above to compare others."
            if more
            else ""
        )
        utc = now.astimezone(UTC)
        ticks = "".join(
            f"<span>{'now ' if i == 0 else ''}{utc + i * WINDOW / 6:%H:%M}</span>" for i in range(6)
        )
        return (
            '<section class="timeline" aria-labelledby="timeline"><h2 id="timeline">'
            "Next 24 hours</h2>"
            f'<p class="muted">Planned runs of the {len(rows)} job'
            f"{'' if len(rows) == 1 else 's'} above with runs in the next 24 h, on one "
            "time axis (UTC); a mark is as wide as the job's median run; a band covers the "
            f"half hours a job runs in when it runs more than {MARKS_MAX} times a day or "
            f"{CROWD} times within half an hour.{cut}</p>"
            '<div class="wide"><table><thead><tr><th scope="col">Job</th>'
            f'<th scope="col"><div class="axis">{ticks}</div></th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div></section>"
        )

    def _row(self, lane: Lane, now: datetime, end: datetime) -> str:
        found = self.plan_of(lane.schedule, now)
        zone = lane.schedule.zone
        times = [t for t in found.times if now < t <= end]
        width = max(MARK_MIN_S, lane.duration_s or 0.0) / 60
        took_words = f"median {took(lane.duration_s)}" if lane.duration_s is not None else ""
        shapes: list[str] = []
        if found.dense is None:
            if not times:
                return ""
            for t in times:
                x = (t - now).total_seconds() / 60
                local = t.astimezone(zone)
                shapes.append(
                    f'<rect class="run" x="{x:.1f}" y="1" width="{width:.1f}" height="10">'
                    f"<title>{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
                    f"{', ' + took_words if took_words else ''}</title></rect>"
                )
            said = f"{len(times)} run{'s' if len(times) > 1 else ''} in the next 24 h"
        else:
            spans = _spans([s for s in found.dense if s + SLOT > now and s <= end])
            if not spans:
                return ""
            words = esc(schedule_words(lane.schedule.expression, zone))
            for first, last in spans:
                x = max(0.0, (first - now).total_seconds() / 60)
                w = min(_WIDTH, (last + SLOT - now).total_seconds() / 60) - x
                shapes.append(
                    f'<rect class="band" x="{x:.1f}" y="1" width="{w:.1f}" height="10">'
                    f"<title>{words}: too many runs to mark each</title></rect>"
                )
            said = f"runs too close together to mark each ({words})"
        if times:
            soonest = times[0].astimezone(zone)
            said += f", the first at {soonest:%Y-%m-%d %H:%M} {soonest.tzname()}"
        name = esc(lane.name)
        return (
            f'<tr><th scope="row" class="name">{link(job_href(lane.name), name)}</th>'
            f'<td class="lane"><svg viewBox="0 0 {_WIDTH} 12" preserveAspectRatio="none" '
            f'role="img" aria-label="{name}: {said}">{_GRID}{"".join(shapes)}</svg></td></tr>'
        )


def _spans(slots: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive half hours as (first, last) pairs."""
    spans: list[tuple[datetime, datetime]] = []
    for slot in slots:
        if spans and slot - spans[-1][1] == SLOT:
            spans[-1] = (spans[-1][0], slot)
        else:
            spans.append((slot, slot))
    return spans
