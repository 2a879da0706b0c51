"""Runs: the scheduler's policies around the steps of a plan.

Policies live here, not in the job kinds: concurrency (``forbid`` skips,
``allow`` overlaps, ``replace`` stops the previous run first), the global cap
``max_concurrent_runs`` with each job's ``starting_deadline`` (its slots:
``scheduler/slots.py``), and retries with capped exponential backoff. Every run
gets a thread and bound log fields (``job``, ``run_id``); ``scheduler/recording.py``
gives it history rows: one per attempt, or one row for a run that never started
(skipped, missed, cancelled while queued).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from jobs.base import PlanContext
from scheduler.engine_health import EngineHealth
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.logs import get_logger
from scheduler.recording import Recorder
from scheduler.runs import ActiveRun, Attempt, Outcome, RunInterruptedError, Status
from scheduler.slots import Slots
from scheduler.steps import StepExecutor
from scheduler.steps.containers import AFTER_STOP_WAIT_S

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from jobs.base import BaseJob
    from jobs.plan import Plan, Step
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.history import History, RunRecord
    from scheduler.runs import RunListener
    from scheduler.settings import DaemonSettings, JobEntry

REPLACE_MARGIN_S = 5.0
"""Beyond stop_grace and the post-stop wait, how long a replacing run waits for the old one."""


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What became of a run handed to the runner: started (``status`` None), or not and why."""

    run_id: str
    status: Status | None = None
    reason: str | None = None


def new_run_id() -> str:
    """A short random id, unique enough to name a run in labels and logs."""
    return uuid.uuid4().hex[:12]


def retry_delay(job: BaseJob, failed_attempt: int) -> float:
    """Seconds to wait after attempt ``failed_attempt``: retry_delay doubling, capped."""
    return float(min(job.retry_delay * 2 ** (failed_attempt - 1), job.retry_delay_max))


def should_retry(job: BaseJob, outcome: Outcome, attempt: int) -> bool:
    """Another attempt after this one? Only for failures and time-outs, within ``retries``."""
    if attempt > job.retries or outcome.status not in (Status.FAILED, Status.TIMED_OUT):
        return False
    if job.retry_exit_codes:
        return outcome.status is Status.FAILED and outcome.exit_code in job.retry_exit_codes
    return True


class Runner:
    """Applies the policies, starts runs in threads, records them, cancels them on shutdown."""

    def __init__(
        self,
        engine: Engine,
        settings: DaemonSettings,
        clock: Clock,
        ops_image: str,
        history: History,
        *,
        listeners: Iterable[RunListener] = (),
        engine_health: EngineHealth | None = None,
    ) -> None:
        """``listeners`` hear of every attempt that ended and every run skipped or missed
        (the metrics), and of each run's start and its end after the last attempt (the
        notifications); more with ``add_listener``. ``engine_health`` is the watch's view of
        the engine: a run due while it is down is missed."""
        self._engine_health = engine_health or EngineHealth()
        self._clock = clock
        self._ops_image = ops_image
        self.history = history
        """The run history every run is recorded in."""
        self._recorder = Recorder(history, clock, listeners)
        self._steps = StepExecutor(engine, settings, clock, history)
        self.slots = Slots(settings.max_concurrent_runs, clock)
        """The global cap ``max_concurrent_runs``: a run holds a slot through its attempts."""
        self._active: dict[str, ActiveRun] = {}
        self._lock = threading.Lock()
        self._log = get_logger()

    # --- called by the ticker and the daemon ----------------------------------

    def add_listener(self, listener: RunListener) -> None:
        """``listener`` hears of runs from now on (after those given at construction)."""
        self._recorder.add_listener(listener)

    def running_by_job(self) -> dict[str, int]:
        """Runs in flight, by job."""
        with self._lock:
            runs = list(self._active.values())
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.entry.name] = counts.get(run.entry.name, 0) + 1
        return counts

    def active_ids(self) -> frozenset[str]:
        """Run ids in flight (an engine-return settle leaves them alone)."""
        with self._lock:
            return frozenset(self._active)

    def submit(
        self, entry: JobEntry, scheduled_at: datetime, trigger: str = "schedule"
    ) -> str | None:
        """Apply the job's concurrency policy; start a run unless it is skipped. Return its id."""
        dispatched = self.dispatch(entry, scheduled_at, trigger)
        return dispatched.run_id if dispatched.status is None else None

    def dispatch(
        self, entry: JobEntry, scheduled_at: datetime, trigger: str = "schedule"
    ) -> Dispatched:
        """``submit``, telling why a run did not start (skipped, missed, failed)."""
        if trigger != "manual":  # a manual run is no scheduled time (catch-up looks at those)
            self.history.record_fire(entry.name, scheduled_at)
        run = ActiveRun(new_run_id(), entry, scheduled_at, trigger)
        if (engine_error := self._engine_health.error) is not None:
            self._recorder.unstarted(run, Status.MISSED, "engine_unavailable", error=engine_error)
            return Dispatched(run.run_id, Status.MISSED, "engine_unavailable")
        with self._lock:
            mine = [r for r in self._active.values() if r.entry.name == entry.name]
            policy = entry.job.concurrency
            if mine and policy == "forbid":
                blocking = mine[0].run_id
            else:
                blocking = None
                replaced = mine if policy == "replace" else []
                self._active[run.run_id] = run
        if blocking is not None:
            reason = "previous run still running"
            self._recorder.unstarted(run, Status.SKIPPED, reason, running_run_id=blocking)
            return Dispatched(run.run_id, Status.SKIPPED, reason)
        run.thread = threading.Thread(
            target=self._execute,
            args=(run, replaced),
            name=f"run-{entry.name}-{run.run_id}",  # pragma: no mutate
            daemon=True,
        )
        try:
            run.thread.start()
        except RuntimeError as e:  # "can't start new thread": the process's thread limit
            with self._lock:
                self._active.pop(run.run_id, None)  # later runs of the job are not blocked
            self._recorder.unstarted(run, Status.FAILED, "thread_start_failed", error=str(e))
            return Dispatched(run.run_id, Status.FAILED, "thread_start_failed")
        return Dispatched(run.run_id)

    def active(self) -> int:
        """Runs in flight."""
        with self._lock:
            return len(self._active)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every run to end; True when none is left."""
        deadline = self._clock.monotonic() + timeout
        while True:
            with self._lock:
                threads = [r.thread for r in self._active.values() if r.thread is not None]
            if not threads:
                return True
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return False
            threads[0].join(remaining)

    def cancel_all(self, reason: str = "daemon_stopping") -> None:
        """Stop every run in flight: its container gets the stop signal, then a kill."""
        with self._lock:
            runs = list(self._active.values())
        for run in runs:
            self._cancel(run, reason)

    def _cancel(self, run: ActiveRun, reason: str) -> None:
        run.cancelled.cancel(reason)
        attempt = run.attempt
        self.slots.wake_all()  # a queued run sees its flag and gives up
        if attempt is not None:
            self._steps.stop(attempt)

    # --- inside the run's thread ----------------------------------------------

    def _execute(self, run: ActiveRun, replaced: list[ActiveRun]) -> None:
        structlog.contextvars.bind_contextvars(job=run.entry.name, run_id=run.run_id)
        try:
            self._replace(replaced)
            if self._take_slot(run):
                try:
                    self._attempts(run)
                finally:
                    self.slots.free()
        except Exception:  # a bug (or a broken state database) ends this run, not the daemon
            self._log.exception("run.crashed")
        finally:
            with self._lock:
                self._active.pop(run.run_id, None)
            structlog.contextvars.clear_contextvars()

    def _replace(self, replaced: list[ActiveRun]) -> None:
        if not replaced:
            return
        self._log.info("run.replacing", replaced_run_ids=[r.run_id for r in replaced])
        for old in replaced:
            self._cancel(old, "replaced")
        for old in replaced:
            if old.thread is not None:
                old.thread.join(old.entry.job.stop_grace + AFTER_STOP_WAIT_S + REPLACE_MARGIN_S)

    def _take_slot(self, run: ActiveRun) -> bool:
        """Wait for a global slot until the starting deadline; record why not, if not."""
        deadline = run.entry.job.starting_deadline
        refused = self.slots.take(run.scheduled_at, deadline, run.cancelled)
        if refused is None:
            return True
        if refused.reason == "starting_deadline":
            lag_s = round(refused.late_s, 3)
            self._recorder.unstarted(
                run, Status.MISSED, refused.reason, lag_s=lag_s, starting_deadline_s=deadline
            )
        else:
            self._recorder.unstarted(run, Status.CANCELLED, refused.reason)
        return False

    def _attempts(self, run: ActiveRun) -> None:
        job = run.entry.job
        number = 1
        while True:
            outcome = self._attempt(run, number)
            if outcome is None:
                return  # interrupted: settled when the engine is back
            if run.cancelled.is_set() or not should_retry(job, outcome, number):
                self._recorder.ended(run, number, outcome)
                return
            delay = retry_delay(job, number)
            self._log.info("run.retrying", attempt=number, next_attempt=number + 1, delay_s=delay)
            if self._clock.sleep(delay, run.cancelled):
                return
            number += 1

    def _attempt(self, run: ActiveRun, number: int) -> Outcome | None:
        started, began = self._clock.now(), self._clock.monotonic()
        attempt = self._recorder.began(run, number, started)
        run.attempt = attempt
        try:
            outcome = self._outcome(attempt)
        except RunInterruptedError as e:
            self._recorder.interrupted(number, e)
            return None  # still recorded running: settled when the engine is back
        finally:
            run.attempt = None
        self._recorder.finished(run, attempt, outcome, self._clock.monotonic() - began)
        return outcome

    # --- runs an earlier daemon started -------------------------------------------

    def adopt(
        self,
        entry: JobEntry,
        record: RunRecord,
        container_id: str,
        start_after: list[str] | None = None,
    ) -> None:
        """Wait for a container left running by an earlier instance; record how it ends; then
        start ``start_after`` again (containers that run had stopped)."""
        run = ActiveRun(record.run_id, entry, record.scheduled_at, record.trigger)
        run.thread = threading.Thread(
            target=self._adopted,
            args=(run, record, container_id, start_after or []),
            name=f"adopt-{run.run_id}",  # pragma: no mutate
            daemon=True,
        )
        with self._lock:
            self._active[run.run_id] = run
        try:
            run.thread.start()
        except RuntimeError as e:  # the thread limit: the next start of the daemon settles it
            with self._lock:
                self._active.pop(run.run_id, None)
            self._log.warning("run.adopt_failed", job=entry.name, run_id=run.run_id, error=str(e))

    def _adopted(
        self, run: ActiveRun, record: RunRecord, container_id: str, start_after: list[str]
    ) -> None:
        structlog.contextvars.bind_contextvars(job=run.entry.name, run_id=run.run_id)
        try:
            started = record.started_at or run.scheduled_at
            elapsed = max(0.0, (self._clock.now() - started).total_seconds())
            self._log.info(
                "run.adopted",
                attempt=record.attempt,
                container_id=container_id,
                running_s=round(elapsed, 3),
            )
            attempt = Attempt(
                run.run_id,
                run.entry.name,
                run.entry.job,
                run.cancelled,
                number=record.attempt,
                on_started=lambda name: self.history.unmark_stopped(run.run_id, name),
            )
            run.attempt = attempt
            began = self._clock.monotonic()
            try:
                outcome = self._steps.adopt(
                    attempt,
                    container_id,
                    max(0.0, run.entry.job.timeout - elapsed),
                    self._all_steps(run.entry),
                )
            finally:
                self._steps.start_again(attempt, start_after)
            self._recorder.finished(
                run, attempt, outcome, elapsed + self._clock.monotonic() - began
            )
            self._recorder.ended(run, record.attempt, outcome)
        except Exception:  # as in _execute: a bug ends this run, not the daemon
            self._log.exception("run.crashed")
        finally:
            with self._lock:
                self._active.pop(run.run_id, None)
            structlog.contextvars.clear_contextvars()

    def recover(self, entry: JobEntry, container_id: str) -> None:
        """Keep what an ended container of ``entry``'s, left by a dead daemon, holds (a
        shipping tool's checkpoints in its log): the job's step handlers say what."""
        self._steps.recover(entry.name, self._all_steps(entry), container_id)

    def _all_steps(self, entry: JobEntry) -> tuple[Step, ...]:
        """The steps of a run of ``entry``: its plan's, then its cleanup's."""
        plan = self._plan(entry.job, entry.name)
        return plan.steps + plan.cleanup

    def _plan(self, job: BaseJob, name: str) -> Plan:
        """The plan of a run of ``job`` (named ``name``) with this daemon's ops image."""
        return job.plan(PlanContext(job=name, ops_image=self._ops_image))

    def _outcome(self, attempt: Attempt) -> Outcome:
        """Execute the plan; every failure becomes an outcome, never an escaping error."""
        try:
            plan = self._plan(attempt.job, attempt.job_name)
            outcome = Outcome(Status.SUCCEEDED, exit_code=0)
            try:
                outcome = self._steps.run_all(attempt, plan.steps)
            finally:
                for step in plan.cleanup:  # post_exec and the like: on every path
                    after = self._steps.run(attempt, step)
                    if after.status is not Status.SUCCEEDED and outcome.status is Status.SUCCEEDED:
                        outcome = after
        except RunInterruptedError:
            raise
        except EngineError as e:
            if attempt.cancelled.is_set():
                return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason, error=str(e))
            reason = "engine_unavailable" if isinstance(e, EngineUnavailableError) else None
            return Outcome(Status.FAILED, reason=reason, error=str(e))
        except Exception as e:  # one run's bug must not take the daemon down
            self._log.exception("run.crashed")
            return Outcome(Status.FAILED, error=f"internal error: {type(e).__name__}: {e}")
        return outcome
