"""The timing loop: sleep until the next due job, fire it, compute its next time.

Why our own loop rather than APScheduler's scheduler: we need the nominal
scheduled time of each run (for ``lag_s``, catch-up and history), an
injectable clock, and no silent drops (APScheduler 3 drops a run that starts
more than ``misfire_grace_time`` late, one second by default). Firing hands
the run to the runner and returns at once, so a busy job never delays the loop.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from scheduler.logs import get_logger

if TYPE_CHECKING:
    from scheduler.clock import Clock
    from scheduler.settings import JobEntry

MAX_SLEEP_S = 30.0
"""Never sleep longer than this, so a stepped wall clock is noticed soon."""
CLOCK_JUMP_S = 5.0
"""A wall clock that moved this much more or less than the monotonic clock has jumped."""

Fire = Callable[["JobEntry", datetime], object]


class Preparer(Protocol):
    """Prepares runs ahead of their time (``scheduler.prepared``): the ticker's hook."""

    def lead(self, entry: JobEntry) -> float:
        """How long before its due time a run of ``entry`` is prepared; 0: never."""
        ...

    def prepare(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        """Begin preparing the run of ``scheduled_at``, due at ``due``; return at once."""
        ...

    def retain(self, entries: Mapping[str, JobEntry]) -> None:
        """These are the jobs in force from now on."""
        ...


@dataclass(slots=True)
class _Slot:
    entry: JobEntry
    nominal: datetime | None  # the scheduled time of the next run
    due: datetime | None  # nominal plus this run's jitter
    prepare_at: datetime | None = None  # due less the job's lead, while that is ahead


@dataclass(slots=True)
class _Known:
    """What jobs planned from one same instant share: the next time of each schedule (jobs
    share one Schedule per expression and zone; by its id, kept alive by the caller), and
    one object per instant a slot holds (due, prepare_at: 48 bytes each, one per job)."""

    nominal: dict[int, datetime | None] = field(default_factory=dict)
    instants: dict[datetime, datetime] = field(default_factory=dict)

    def instant(self, value: datetime) -> datetime:
        """``value``, or the equal instant a slot already holds (all are in UTC)."""
        return self.instants.setdefault(value, value)


def _next_slot(
    entry: JobEntry,
    after: datetime,
    rng: random.Random,
    lead: float = 0.0,
    known: _Known | None = None,
) -> _Slot:
    """The job's next time after ``after``. A schedule that cannot say (validation makes
    this a bug) leaves the job unscheduled with ``job.schedule_failed``, never stops the
    loop or a reload. ``known``: what the jobs planned after this same ``after`` share."""
    try:
        key = id(entry.schedule)
        if known is not None and key in known.nominal:
            nominal = known.nominal[key]
        else:
            nominal = entry.schedule.next_after(after)
            if known is not None:
                known.nominal[key] = nominal
        if nominal is None:
            return _Slot(entry, None, None)
        jitter = entry.job.jitter
        due = nominal.astimezone(UTC)  # compare instants in UTC, never wall times
        if jitter:
            due += timedelta(seconds=rng.uniform(0, jitter))
    except Exception:  # one job's schedule must not stop the others
        get_logger().exception("job.schedule_failed", job=entry.name)
        return _Slot(entry, None, None)
    prepare_at = due - timedelta(seconds=lead) if lead > 0 else None
    if prepare_at is not None and prepare_at <= after:
        prepare_at = None  # due sooner than its lead: not prepared
    if known is not None:
        due = known.instant(due)
        prepare_at = None if prepare_at is None else known.instant(prepare_at)
    return _Slot(entry, nominal, due, prepare_at)


class Ticker:
    """Fires each job at its scheduled times; ``tick`` is the whole loop body."""

    def __init__(
        self,
        clock: Clock,
        fire: Fire,
        rng: random.Random | None = None,
        preparer: Preparer | None = None,
    ) -> None:
        """``preparer``: told when a run is its job's lead away from its due time."""
        self._clock = clock
        self._fire = fire
        self._preparer = preparer
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._anchor: tuple[datetime, float] | None = None  # (wall, monotonic) at the last tick
        self._log = get_logger()

    def set_jobs(self, entries: Mapping[str, JobEntry]) -> None:
        """Schedule exactly these jobs (the enabled ones). A job whose definition did not
        change keeps its next time; a new or changed one is planned from now."""
        now = self._clock.now()
        for entry in entries.values():
            if not entry.job.enabled:
                self._log.info("job.disabled", job=entry.name)
        planned: list[_Slot] = []
        known = _Known()  # one next time per shared schedule
        with self._lock:
            slots: dict[str, _Slot] = {}
            for name, entry in entries.items():
                if not entry.job.enabled:
                    continue
                old = self._slots.get(name)
                if old is not None and old.entry.job == entry.job:
                    slots[name] = _Slot(entry, old.nominal, old.due, old.prepare_at)
                else:
                    slots[name] = self._next(entry, now, known)
                    planned.append(slots[name])
            self._slots = slots
        log = self._log.bind()  # once: each call of the lazy proxy would bind again
        for slot in planned:
            log.info(
                "job.scheduled",
                job=slot.entry.name,
                kind=slot.entry.job.kind,
                schedule=slot.entry.schedule.expression,
                timezone=slot.entry.job.timezone,
                next_run=slot.nominal.isoformat() if slot.nominal else None,
            )
        if self._preparer is not None:
            self._preparer.retain(entries)
        self._wake.set()

    def _next(self, entry: JobEntry, after: datetime, known: _Known | None = None) -> _Slot:
        lead = self._preparer.lead(entry) if self._preparer is not None else 0.0
        return _next_slot(entry, after, self._rng, lead, known)

    def next_runs(self) -> dict[str, datetime | None]:
        """Each job's next scheduled time."""
        return {name: nominal for name, (_, nominal) in self.planned().items()}

    def planned(self) -> dict[str, tuple[JobEntry, datetime | None]]:
        """Each scheduled job, as the loop holds it, with its next scheduled time."""
        with self._lock:
            return {name: (slot.entry, slot.nominal) for name, slot in self._slots.items()}

    def _check_clock(self, now: datetime) -> None:
        """Compare the wall clock with the monotonic one; re-plan after a backward step.

        A backward step would otherwise silence every job until the wall clock
        catches up; a forward step makes due jobs fire once (coalesced), late.
        """
        mono = self._clock.monotonic()
        anchor, self._anchor = self._anchor, (now, mono)
        if anchor is None:
            return
        skew = (now - anchor[0]).total_seconds() - (mono - anchor[1])
        if abs(skew) < CLOCK_JUMP_S:
            return
        self._log.warning("clock.jumped", seconds=round(skew, 3))
        if skew < 0:
            with self._lock:
                self._slots = {n: self._next(s.entry, now) for n, s in self._slots.items()}

    def tick(self, now: datetime) -> float:
        """Fire every job due at ``now``; return how long to sleep until the next one."""
        self._check_clock(now)
        with self._lock:
            due = [
                (s.entry, s.nominal)
                for s in self._slots.values()
                if s.due is not None and s.nominal is not None and s.due <= now
            ]
            known = _Known()  # jobs due together share schedules
            for entry, _ in due:
                # One run for the latest due time; the ones in between (if the
                # loop was late) are coalesced, as cron does.
                self._slots[entry.name] = self._next(entry, now, known)
            ready = [s for s in self._slots.values() if s.prepare_at and s.prepare_at <= now]
            for slot in ready:
                slot.prepare_at = None
            upcoming = [s.prepare_at or s.due for s in self._slots.values() if s.due is not None]
        for entry, nominal in due:
            try:
                self._fire(entry, nominal)
            except Exception:  # one job's failure to start must not stop the loop
                self._log.exception(
                    "job.fire_failed", job=entry.name, scheduled_at=nominal.isoformat()
                )
        self._prepare(ready, now)
        if not upcoming:
            return MAX_SLEEP_S
        return max(0.0, min(MAX_SLEEP_S, (min(upcoming) - now).total_seconds()))

    def _prepare(self, slots: list[_Slot], now: datetime) -> None:
        """Hand the preparer each run whose time to be prepared came (not one already due)."""
        if self._preparer is None:
            return
        for slot in slots:
            if slot.nominal is None or slot.due is None or slot.due <= now:
                continue
            try:
                self._preparer.prepare(slot.entry, slot.nominal, slot.due)
            except Exception:  # the run takes the normal path at its time
                self._log.exception("run.prepare_failed", job=slot.entry.name)

    def run(self) -> None:
        """Loop until ``stop``; meant for its own thread."""
        while not self._stopped.is_set():
            began = self._clock.monotonic()
            delay = self.tick(self._clock.now())
            # The delay counts from the tick's start: firing took some of it already.
            self._wake.wait(max(0.0, delay - (self._clock.monotonic() - began)))
            self._wake.clear()

    def stop(self) -> None:
        """End ``run`` soon; no job fires after this returns to the loop."""
        self._stopped.set()
        self._wake.set()
