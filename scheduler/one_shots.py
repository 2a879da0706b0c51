"""One-shot jobs (``schedule = "@at <time>"``): each instant runs at most once, across restarts.

The state database keeps it (``scheduler.history.one_shots``): an instant is *claimed* before
its run is handed to the runner — by the scheduling loop at its time, or by the start-up's
catch-up — and a claimed instant is never handed over again. When the run ends (any outcome,
after its last attempt, or never started: skipped, missed) the instant is *done* with that
outcome (``job.one_shot_done``, or ``job.one_shot_missed`` for a run that did not happen).

At the daemon's start, an instant that passed while no daemon ran (or before the job
existed) and was never claimed: with ``catch_up = true`` it runs once (trigger ``catch_up``,
within ``starting_deadline``); without it, it is done as missed. An instant claimed by an
earlier daemon that died takes the outcome of its run as recorded (an adopted run's when it
ends); one whose run never began is treated as never claimed.

A run that never began is no outcome: cancelled while it waited for a lock or a slot (the
daemon stopping, a ``replace``), its instant stays claimed but not begun, and the next start
decides it as above (``catch_up``, else missed). Missed because the engine did not answer at
its time (reason ``engine_unavailable``), a ``catch_up`` job's instant also stays claimed: it
is handed over again (trigger ``catch_up``) when the engine answers again, or at the next
start, within ``starting_deadline`` (``job.one_shot_pending`` says so); without ``catch_up``
it is done as missed.

A run-now (``crontainer trigger``) of a one-shot job runs it (trigger ``manual``) and leaves
its instant as it was: done or not. The key is the job and the instant: an ``@at`` time
edited (a reload) is a new one-shot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.logs import get_logger
from scheduler.runs import RunListener, Status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.base import NotifySpec
    from scheduler.clock import Clock
    from scheduler.engine_health import EngineHealth
    from scheduler.history import History, RunRecord
    from scheduler.notify import RunReport
    from scheduler.settings import JobEntry

Submit = Callable[["JobEntry", datetime, str], object]
"""``Runner.submit``: hands a run (entry, scheduled time, trigger) to the runner."""

CLAIMING_TRIGGERS = frozenset({"schedule", "catch_up"})
"""The runs that are a one-shot's instant (a run-now's or a run_on_start's are not)."""
NOT_RUN = frozenset({Status.SKIPPED.value, Status.MISSED.value})
"""Final statuses of a run that did not happen: its instant is done as missed."""
ENGINE_UNAVAILABLE = "engine_unavailable"
"""The reason of a run missed because the engine did not answer at its time."""
CATCH_UP_OFF = "catch_up_off"
"""The reason of an instant that passed while no daemon ran, for a job without catch_up."""


Key = tuple[str, datetime]


class OneShots(RunListener):
    """Claims each ``@at`` instant once and records it done when its run ends (it hears of
    runs as a ``RunListener``)."""

    def __init__(
        self,
        history: History,
        clock: Clock,
        submit: Submit,
        *,
        engine_health: EngineHealth | None = None,
        jobs: Callable[[], Mapping[str, JobEntry]] | None = None,
    ) -> None:
        """``submit``: the runner's, given the runs this object lets through. With
        ``engine_health``, the instants missed while the engine was away are handed over
        again when it answers again, as the jobs in force then (``jobs``) have them."""
        self._history = history
        self._clock = clock
        self._submit = submit
        self._health = engine_health
        self._jobs = jobs
        self._lock = threading.Lock()
        self._claimed: set[Key] = set()
        """Instants claimed by this daemon (or left claimed by an earlier one), not yet done."""
        self._taken: set[Key] = set()
        """Every instant this daemon claimed: never claimed again, even when the state
        database refused the writes."""
        self._handed: dict[Key, JobEntry] = {}
        """The job each claimed instant was handed over as, until it is done."""
        self._waiting: dict[Key, JobEntry] = {}
        """Instants missed while the engine was away, to hand over when it is back."""
        self._log = get_logger()
        if engine_health is not None:
            engine_health.on_up(self.engine_back)

    def load(self) -> None:
        """Take on the instants an earlier daemon claimed and left unfinished (before the
        runs it left are settled: an adopted run's end finishes its instant)."""
        pending = {key for key, r in self._history.one_shots().items() if not r.done}
        with self._lock:
            self._claimed |= pending

    def fire(self, entry: JobEntry, scheduled_at: datetime) -> object:
        """The scheduling loop's fire: a one-shot's instant is claimed first, and a claimed
        one is refused (``job.one_shot_refused``: the wall clock stepped back past it)."""
        at = entry.schedule.one_shot
        if at is not None and not self._claim(entry.name, at):
            self._log.warning(
                "job.one_shot_refused", job=entry.name, at=at.isoformat(), reason="already_run"
            )
            return None
        if at is not None:
            with self._lock:
                self._handed[entry.name, at] = entry
        return self._submit(entry, scheduled_at, "schedule")

    def _claim(self, job: str, at: datetime) -> bool:
        """Claim ``job``'s ``at``: True once (in this daemon and in the state database)."""
        key = (job, at)
        with self._lock:
            if key in self._taken or key in self._claimed:
                return False
            if not self._history.claim_one_shot(job, at, self._clock.now()):
                return False
            self._taken.add(key)
            self._claimed.add(key)
        return True

    def report(self, spec: NotifySpec | None, report: RunReport) -> None:  # noqa: ARG002
        """A run ended after its last attempt (or never started): a claimed instant it was
        is done with its status."""
        if report.status == "started" or report.trigger not in CLAIMING_TRIGGERS:
            return
        if report.scheduled_at is None:
            return
        key = (report.job, datetime.fromisoformat(report.scheduled_at))
        with self._lock:
            if key not in self._claimed:
                return
            until = self._not_begun(key, report)
            if until is None:
                self._claimed.discard(key)
                self._handed.pop(key, None)
        if until is None:
            self._done(key, report.status, report.run_id, report.reason)
            return
        job, at = key
        self._log.info(
            "job.one_shot_pending",
            job=job,
            at=at.isoformat(),
            run_id=report.run_id,
            reason=report.reason,
            until=until,
        )
        if until == "engine_return" and self._health is not None and self._health.error is None:
            self.engine_back()  # the engine came back while this run was being missed

    def _not_begun(self, key: Key, report: RunReport) -> str | None:
        """(Under the lock.) A run of a claimed instant that never began and leaves it
        claimed: when it is decided (``next_start``, ``engine_return``); None: it is done."""
        if report.attempt is not None:
            return None  # an attempt began: its outcome is the instant's
        if report.status == Status.CANCELLED.value:
            return "next_start"
        entry = self._handed.get(key)
        if (
            report.status == Status.MISSED.value
            and report.reason == ENGINE_UNAVAILABLE
            and entry is not None
            and entry.job.catch_up
        ):
            self._waiting[key] = entry
            return "engine_return" if self._health is not None else "next_start"
        return None

    def engine_back(self) -> None:
        """The engine answers again: the instants missed meanwhile are handed over (trigger
        ``catch_up``) within their ``starting_deadline``, else done as missed — each as the
        jobs in force now have it (one changed or gone since is left to the next start)."""
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        current = self._jobs() if self._jobs is not None else {}
        now = self._clock.now()
        for (name, at), handed in waiting.items():
            entry = current.get(name) if self._jobs is not None else handed
            if entry is None or entry.schedule.one_shot != at or not entry.job.enabled:
                continue
            self._missed(entry, at, now, claimed=True)

    def _done(self, key: Key, outcome: str, run_id: str | None, reason: str | None) -> None:
        job, at = key
        if not self._history.finish_one_shot(
            job, at, outcome=outcome, at_time=self._clock.now(), run_id=run_id, reason=reason
        ):
            return  # done already (or the write failed: logged)
        fields = {"job": job, "at": at.isoformat(), "outcome": outcome, "run_id": run_id}
        if outcome in NOT_RUN and reason != "claimed":  # claimed: run by another replica
            self._log.warning("job.one_shot_missed", **fields, reason=reason)
        else:
            self._log.info("job.one_shot_done", **fields)

    def at_start(self, jobs: Mapping[str, JobEntry], now: datetime) -> None:
        """Each enabled one-shot whose instant passed and is not done: settled from its run's
        record, caught up (``catch_up``), or done as missed. Called once the loop runs and
        the runs an earlier daemon left are settled; the loop plans from a moment before
        ``now``, so an instant between the two is the loop's to claim (it is claimed once)."""
        records = self._history.one_shots()
        for entry in jobs.values():
            at = entry.schedule.one_shot
            if at is None or not entry.job.enabled or at > now:
                continue
            record = records.get((entry.name, at))
            if record is not None and record.done:
                continue
            if record is not None and self._settled(entry.name, at):
                continue
            self._missed(entry, at, now, claimed=record is not None)

    def _settled(self, job: str, at: datetime) -> bool:
        """An instant an earlier daemon claimed: done from its run's record if it ended, left
        to its adopted run if it runs; False if its run never began."""
        run = self._history.scheduled_run(job, at)
        if run is None or _never_began(run):
            return False
        if run.status != "running":
            with self._lock:
                self._claimed.discard((job, at))
            self._done((job, at), run.status, run.run_id, run.reason)
        return True

    def _missed(self, entry: JobEntry, at: datetime, now: datetime, *, claimed: bool) -> None:
        """``entry``'s instant ``at`` never ran (``claimed``: an earlier daemon claimed it, and
        its run never began): caught up, or done as missed."""
        name, job = entry.name, entry.job
        if not claimed and not self._claim(name, at):
            return  # the loop claimed it meanwhile
        with self._lock:
            self._claimed.add((name, at))
        if not job.catch_up:
            self._settle_missed(name, at, CATCH_UP_OFF)
        elif not catch_up_in_time(entry, at, now):
            self._settle_missed(name, at, "starting_deadline")
        else:
            with self._lock:
                self._handed[name, at] = entry
            self._submit(entry, at, "catch_up")

    def _settle_missed(self, job: str, at: datetime, reason: str) -> None:
        with self._lock:
            self._claimed.discard((job, at))
            self._handed.pop((job, at), None)
        self._done((job, at), Status.MISSED.value, None, reason)


def catch_up_in_time(entry: JobEntry, missed: datetime, now: datetime) -> bool:
    """A catch-up of ``entry``'s ``missed`` time is still within its ``starting_deadline``:
    logged ``job.catch_up`` (then it runs), else ``job.catch_up_skipped``."""
    job, log = entry.job, get_logger()
    late = (now - missed).total_seconds()
    if job.starting_deadline is not None and late > job.starting_deadline:
        log.info(
            "job.catch_up_skipped",
            job=entry.name,
            missed_at=missed.isoformat(),
            late_s=round(late, 3),
            starting_deadline_s=job.starting_deadline,
        )
        return False
    log.info("job.catch_up", job=entry.name, missed_at=missed.isoformat(), late_s=round(late, 3))
    return True


def _never_began(run: RunRecord) -> bool:
    """A recorded run of an instant that leaves it not begun: cancelled before it started,
    or missed because the engine did not answer."""
    if run.started_at is not None:
        return False
    return run.status == Status.CANCELLED.value or (
        run.status == Status.MISSED.value and run.reason == ENGINE_UNAVAILABLE
    )
