"""The shared types of a run: how it ended (Status, Outcome), one attempt (Attempt), how it
is cancelled, a run in flight (ActiveRun), and who hears of it (RunListener) — a leaf module
every part of the daemon can import."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from scheduler.errors import CrontainerError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from jobs.base import BaseJob, NotifySpec
    from scheduler.errors import EngineUnavailableError
    from scheduler.exec_ahead import PreparedExec
    from scheduler.notify import RunReport
    from scheduler.run_files import RunFile
    from scheduler.settings import JobEntry
    from scheduler.steps.containers import Created


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
    details: dict[str, object] = field(default_factory=dict)
    """An ops tool's reported result (the keys go into run.succeeded)."""


@dataclass(frozen=True, slots=True)
class ChainParent:
    """The run whose end started a chained run: its job, its id, how it ended."""

    job: str
    run_id: str
    status: Status

    def env(self) -> dict[str, str]:
        """The chained run's variables (the kinds that run a user's command get them)."""
        return {
            "CRONTAINER_PARENT_JOB": self.job,
            "CRONTAINER_PARENT_RUN_ID": self.run_id,
            "CRONTAINER_PARENT_STATUS": self.status.value,
        }


class Cancellation(threading.Event):
    """A run's cancel flag, carrying why: shared by the run and each of its attempts, so the
    reason can never be copied stale from one to the other."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "daemon_stopping"

    def cancel(self, reason: str) -> None:
        """Record ``reason``, then set the flag."""
        self.reason = reason
        self.set()


class RunningProcess(Protocol):
    """A process an attempt started in a container it did not create (an exec): what a
    canceller stops."""

    def stop(self) -> None:
        """Stop it: the job's stop signal, its grace, then SIGKILL."""


@dataclass(slots=True)
class Attempt:
    """What the executor needs to know of the attempt it runs, and what a canceller needs."""

    run_id: str
    job_name: str
    job: BaseJob
    cancelled: Cancellation
    number: int = 1
    container_id: str | None = None
    """The live container, while there is one (what a canceller stops)."""
    created: str | None = None
    """The container this attempt created, kept for the record after removal."""
    process: RunningProcess | None = None
    """A running exec (what a canceller stops when there is no container)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_container: Callable[[str], None] | None = None
    on_stop: Callable[[str], None] | None = None
    """Called before the attempt stops a container (the daemon records it)."""
    on_started: Callable[[str], None] | None = None
    """Called after the attempt started a stopped container again."""
    prepared: Created | None = None
    """The container made ahead for this attempt (``scheduler.prepared``), until its step
    takes it to start it."""
    exec_ahead: PreparedExec | None = None
    """The exec created ahead for this attempt (``scheduler.exec_ahead``), until its step
    takes it to start it."""
    parent: ChainParent | None = None
    """The run that chained this one (its variables go into the plan)."""
    output_file: RunFile | None = None
    """The run's file its output is written to (``output`` in the job), if any."""


@dataclass(slots=True)
class ActiveRun:
    """A run in flight (queued, running or between attempts)."""

    run_id: str
    entry: JobEntry
    scheduled_at: datetime
    trigger: str
    cancelled: Cancellation = field(default_factory=Cancellation)
    attempt: Attempt | None = None
    thread: threading.Thread | None = None
    last_duration: float | None = None
    exec_ahead: PreparedExec | None = None
    """The exec created ahead for this run (``scheduler.exec_ahead``), until its first
    attempt."""
    parent: ChainParent | None = None
    """The run whose end started this one (trigger ``chain``)."""
    outcome: Outcome | None = None
    """How the run ended after its last attempt, once it did: the listeners hear of it
    (``finished``: its chains start) when the run has let go of its locks and slot."""
    settles_seen: int | None = None
    """When an engine outage cut the run off: how many settlings the runner had seen then
    (``Runner.release_interrupted``); one more by the time its thread ends means the
    settling passed it by (it was still in hand), so its locks are given back at once."""


class RunInterruptedError(CrontainerError):
    """The engine went away while the attempt's container existed: the attempt stays
    recorded as running, and the orphan logic settles it when the engine is back."""

    def __init__(self, container_id: str, cause: EngineUnavailableError) -> None:
        super().__init__(str(cause))
        self.container_id = container_id


class RunListener:
    """Hears of runs' lives from the runner (``Runner.add_listener``): the metrics count
    attempts, the notifications report runs. Each method does nothing unless overridden."""

    def ended(self, job: str, status: Status, at: datetime, duration: float | None) -> None:
        """An attempt of ``job`` ended with ``status`` at ``at`` after ``duration`` seconds;
        or a run was skipped or missed (``duration`` None)."""

    def report(self, spec: NotifySpec | None, report: RunReport) -> None:
        """A run started, or ended after its last attempt; ``spec`` is its job's notify."""

    def finished(self, run: ActiveRun, outcome: Outcome) -> None:
        """``run`` ended with ``outcome`` after its last attempt (called on its thread, after
        ``report``; never for a run that did not start)."""
