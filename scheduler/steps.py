"""Executing a plan's steps on the engine, with cleanup on every path.

A container is created explicitly, attached before start (no output is
missed), waited for under the job's timeout, and removed in ``finally`` with
its anonymous volumes.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_RUN
from scheduler.errors import EngineError
from scheduler.logs import get_logger
from scheduler.output import OutputLog

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobs.base import BaseJob
    from jobs.plan import ContainerSpec, Step
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.settings import DaemonSettings

WAIT_CHUNK_S = 300.0
"""A wait is split into requests of at most this long, so a silent engine is noticed."""
OUTPUT_DRAIN_S = 5.0
"""After the container ends, wait this long for its output stream to close."""
AFTER_STOP_WAIT_S = 30.0
"""After a stop call, wait this long for the container's exit status."""


class Status(StrEnum):
    """How a run (or one attempt of it) ended; each has its event ``run.<status>``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    MISSED = "missed"


@dataclass(slots=True)
class Outcome:
    """The result of one attempt."""

    status: Status
    exit_code: int | None = None
    reason: str | None = None
    error: str | None = None
    output: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Attempt:
    """What the executor needs to know of the attempt it runs, and what a canceller needs."""

    run_id: str
    job_name: str
    job: BaseJob
    cancelled: threading.Event
    cancel_reason: str = "daemon_stopping"
    container_id: str | None = None
    """The live container, while there is one (what a canceller stops)."""
    created: str | None = None
    """The container this attempt created, kept for the record after removal."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_container: Callable[[str], None] | None = None


class StepExecutor:
    """Runs steps for the runner; never lets an engine error escape a step unhandled."""

    def __init__(self, engine: Engine, settings: DaemonSettings, clock: Clock) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._log = get_logger()

    def run(self, attempt: Attempt, step: Step) -> Outcome:
        """Execute one step (the union of steps grows with the job kinds)."""
        return self._run_container(attempt, step.spec)

    def stop(self, attempt: Attempt) -> None:
        """Stop the attempt's container if it has one (stop signal, grace, kill)."""
        with attempt.lock:
            attempt.cancelled.set()
            container_id = attempt.container_id
        if container_id is None:
            return
        try:
            self._engine.stop(container_id, attempt.job.stop_grace)
        except EngineError as e:
            self._log.warning("run.cancel_failed", run_id=attempt.run_id, error=str(e))

    def _run_container(self, attempt: Attempt, spec: ContainerSpec) -> Outcome:
        engine = self._engine
        engine.ensure_image(spec.image, spec.pull)
        daemon = self._settings.name
        labels = {LABEL_DAEMON: daemon, LABEL_JOB: attempt.job_name, LABEL_RUN: attempt.run_id}
        container_id: str | None = None
        reader: threading.Thread | None = None
        output = OutputLog(
            self._log, self._settings.max_output_line, self._settings.max_output_per_run
        )
        try:
            container_id = engine.create(
                spec, name=f"{daemon}-{attempt.job_name}-{attempt.run_id}", labels=labels
            )
            if attempt.on_container is not None:
                attempt.on_container(container_id)
            with attempt.lock:
                attempt.container_id = attempt.created = container_id
                if attempt.cancelled.is_set():
                    return Outcome(Status.CANCELLED, reason=attempt.cancel_reason)
            reader = self._read_output(container_id, output)
            engine.start(container_id)
            outcome = self._await(attempt, container_id)
        finally:
            if reader is not None:
                reader.join(OUTPUT_DRAIN_S)
            output.close()
            if container_id is not None:
                with attempt.lock:
                    attempt.container_id = None
                try:
                    engine.remove(container_id)
                except EngineError as e:
                    self._log.warning("run.cleanup_failed", container_id=container_id, error=str(e))
        outcome.output = list(output.tail)
        return outcome

    def _read_output(self, container_id: str, output: OutputLog) -> threading.Thread:
        stream = self._engine.output(container_id)

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

    def _await(self, attempt: Attempt, container_id: str) -> Outcome:
        engine, job = self._engine, attempt.job
        deadline = self._clock.monotonic() + job.timeout
        while (remaining := deadline - self._clock.monotonic()) > 0:
            status = engine.wait(container_id, min(remaining, WAIT_CHUNK_S))
            if status is None:
                continue
            if attempt.cancelled.is_set():
                return Outcome(
                    Status.CANCELLED, exit_code=status.exit_code, reason=attempt.cancel_reason
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
            Status.TIMED_OUT, exit_code=status.exit_code if status else None, reason="timeout"
        )
