"""One run: plan → engine steps → outcome, with cleanup on every path.

Each run has its own thread, bound log fields (``job``, ``run_id``) and a
cancel flag. Containers are created explicitly, attached before start (no
output is missed), waited for under the job's timeout, and removed in
``finally`` with their anonymous volumes.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import structlog

from jobs import PlanContext
from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_RUN
from scheduler.errors import EngineError
from scheduler.logs import get_logger
from scheduler.output import OutputLog

if TYPE_CHECKING:
    from datetime import datetime

    from jobs.plan import ContainerSpec, RunContainer
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.settings import DaemonSettings, JobEntry

WAIT_CHUNK_S = 300.0
"""A wait is split into requests of at most this long, so a silent engine is noticed."""
OUTPUT_DRAIN_S = 5.0
"""After the container ends, wait this long for its output stream to close."""
AFTER_STOP_WAIT_S = 30.0
"""After a stop call, wait this long for the container's exit status."""


class Status(StrEnum):
    """How a run ended; each has its event ``run.<status>``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Outcome:
    """The result of one run."""

    status: Status
    exit_code: int | None = None
    reason: str | None = None
    error: str | None = None


@dataclass(slots=True)
class ActiveRun:
    """A run in flight: what a canceller needs to reach it."""

    run_id: str
    entry: JobEntry
    scheduled_at: datetime
    trigger: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    container_id: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def new_run_id() -> str:
    """A short random id, unique enough to name a run in labels and logs."""
    return uuid.uuid4().hex[:12]


class Runner:
    """Starts runs in threads, caps how many run at once, cancels them on shutdown."""

    def __init__(
        self, engine: Engine, settings: DaemonSettings, clock: Clock, ops_image: str
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._ops_image = ops_image
        self._running = 0  # runs holding one of the max_concurrent_runs slots
        self._slot_free = threading.Condition()
        self._active: dict[str, ActiveRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._log = get_logger()

    def submit(self, entry: JobEntry, scheduled_at: datetime, trigger: str = "schedule") -> str:
        """Start a run of ``entry`` in its own thread; return its run id."""
        run = ActiveRun(new_run_id(), entry, scheduled_at, trigger)
        thread = threading.Thread(
            target=self._execute, args=(run,), name=f"run-{entry.name}-{run.run_id}", daemon=True
        )
        with self._lock:
            self._active[run.run_id] = run
            self._threads[run.run_id] = thread
        thread.start()
        return run.run_id

    def active(self) -> int:
        """Runs in flight."""
        with self._lock:
            return len(self._active)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every run to end; True when none is left."""
        deadline = self._clock.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads.values())
            if not threads:
                return True
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return False
            threads[0].join(remaining)

    def cancel_all(self) -> None:
        """Stop every run in flight: its container gets the stop signal, then a kill."""
        with self._lock:
            runs = list(self._active.values())
        for run in runs:
            self._cancel(run)
        with self._slot_free:
            self._slot_free.notify_all()  # queued runs see their flag and give up

    def _cancel(self, run: ActiveRun) -> None:
        with run.lock:
            run.cancelled.set()
            container_id = run.container_id
        if container_id is None:
            return
        try:
            self._engine.stop(container_id, run.entry.job.stop_grace)
        except EngineError as e:
            self._log.warning(
                "run.cancel_failed", job=run.entry.name, run_id=run.run_id, error=str(e)
            )

    # --- inside the run's thread -------------------------------------------

    def _execute(self, run: ActiveRun) -> None:
        structlog.contextvars.bind_contextvars(job=run.entry.name, run_id=run.run_id)
        log = self._log
        try:
            if not self._take_slot(run):
                log.warning("run.cancelled", reason="daemon_stopping", started=False)
                return
            try:
                started = self._clock.monotonic()
                lag = (self._clock.now() - run.scheduled_at).total_seconds()
                log.info(
                    "run.started",
                    kind=run.entry.job.kind,
                    scheduled_at=run.scheduled_at.isoformat(),
                    lag_s=round(lag, 3),
                    trigger=run.trigger,
                )
                outcome = self._outcome(run)
                duration = round(self._clock.monotonic() - started, 3)
            finally:
                self._free_slot()
            fields: dict[str, object] = {"duration_s": duration, "container_id": run.container_id}
            fields.update(
                (k, v)
                for k, v in (
                    ("exit_code", outcome.exit_code),
                    ("reason", outcome.reason),
                    ("error", outcome.error),
                )
                if v is not None
            )
            level = log.info if outcome.status is Status.SUCCEEDED else log.warning
            level(f"run.{outcome.status.value}", **fields)
        finally:
            with self._lock:
                self._active.pop(run.run_id, None)
                self._threads.pop(run.run_id, None)
            structlog.contextvars.clear_contextvars()

    def _take_slot(self, run: ActiveRun) -> bool:
        """Wait for one of the global slots; False if the run is cancelled meanwhile."""
        with self._slot_free:
            while self._running >= self._settings.max_concurrent_runs:
                if run.cancelled.is_set():
                    return False
                self._slot_free.wait()
            if run.cancelled.is_set():
                return False
            self._running += 1
            return True

    def _free_slot(self) -> None:
        with self._slot_free:
            self._running -= 1
            self._slot_free.notify()

    def _outcome(self, run: ActiveRun) -> Outcome:
        """Execute the plan; every failure becomes an outcome, never an escaping error."""
        try:
            plan = run.entry.job.plan(PlanContext(job=run.entry.name, ops_image=self._ops_image))
            outcome = Outcome(Status.SUCCEEDED, exit_code=0)
            for step in plan.steps:
                outcome = self._step(run, step)
                if outcome.status is not Status.SUCCEEDED:
                    break
        except EngineError as e:
            return Outcome(
                Status.CANCELLED if run.cancelled.is_set() else Status.FAILED, error=str(e)
            )
        except Exception as e:  # one run's bug must not take the daemon down
            self._log.exception("run.crashed")
            return Outcome(Status.FAILED, error=f"internal error: {type(e).__name__}: {e}")
        return outcome

    def _step(self, run: ActiveRun, step: RunContainer) -> Outcome:
        return self._run_container(run, step.spec)

    def _run_container(self, run: ActiveRun, spec: ContainerSpec) -> Outcome:
        engine = self._engine
        engine.ensure_image(spec.image, spec.pull)
        daemon = self._settings.name
        labels = {LABEL_DAEMON: daemon, LABEL_JOB: run.entry.name, LABEL_RUN: run.run_id}
        container_id: str | None = None
        reader: threading.Thread | None = None
        output = OutputLog(
            self._log, self._settings.max_output_line, self._settings.max_output_per_run
        )
        try:
            container_id = engine.create(
                spec, name=f"{daemon}-{run.entry.name}-{run.run_id}", labels=labels
            )
            with run.lock:
                run.container_id = container_id
                if run.cancelled.is_set():
                    return Outcome(Status.CANCELLED, reason="daemon_stopping")
            reader = self._read_output(engine, container_id, output)
            engine.start(container_id)
            return self._await(run, container_id)
        finally:
            if reader is not None:
                reader.join(OUTPUT_DRAIN_S)
            output.close()
            if container_id is not None:
                try:
                    engine.remove(container_id)
                except EngineError as e:
                    self._log.warning("run.cleanup_failed", container_id=container_id, error=str(e))

    def _read_output(
        self, engine: Engine, container_id: str, output: OutputLog
    ) -> threading.Thread:
        stream = engine.output(container_id)

        def pump() -> None:
            try:
                for name, chunk in stream:
                    output.feed(name, chunk)
            except EngineError as e:
                self._log.warning("run.output_lost", error=str(e))

        context = contextvars.copy_context()  # the run's bound job and run_id
        thread = threading.Thread(target=context.run, args=(pump,), name="output", daemon=True)
        thread.start()
        return thread

    def _await(self, run: ActiveRun, container_id: str) -> Outcome:
        engine, job = self._engine, run.entry.job
        deadline = self._clock.monotonic() + job.timeout
        while (remaining := deadline - self._clock.monotonic()) > 0:
            status = engine.wait(container_id, min(remaining, WAIT_CHUNK_S))
            if status is None:
                continue
            if run.cancelled.is_set():
                return Outcome(
                    Status.CANCELLED, exit_code=status.exit_code, reason="daemon_stopping"
                )
            if status.oom_killed:
                return Outcome(Status.FAILED, exit_code=status.exit_code, reason="oom_killed")
            if status.exit_code != 0:
                return Outcome(Status.FAILED, exit_code=status.exit_code, error=status.error)
            return Outcome(Status.SUCCEEDED, exit_code=0)
        self._log.info(
            "run.stopping", reason="timeout", timeout_s=job.timeout, stop_signal=job.stop_signal
        )
        engine.stop(container_id, job.stop_grace)
        status = engine.wait(container_id, AFTER_STOP_WAIT_S)
        return Outcome(
            Status.TIMED_OUT,
            exit_code=status.exit_code if status else None,
            reason="timeout",
        )
