"""Execs prepared ahead: an ``exec`` job's exec instance created ``prepare_ahead`` before its
scheduled time, so that only the exec's start remains at the time (one engine request, not
two: docs/performance.md, "Fire lag").

The ticker asks ``lead`` when it plans a job's next run and calls ``prepare`` at the run's
due time less the lead; a thread then resolves the job's container selector to the one
running container, as the run would, and creates the exec in it (``POST
/containers/<id>/exec``: the engine records the command, user, working directory and
environment; nothing runs). When the ticker fires that very run, the runner ``take``s it
and its first attempt starts it (``ExecHandler``); a start the engine refuses (the
container was removed, stopped or replaced since) falls back to the normal path.

The engine has no call to delete an exec that never started: engine 20.10 keeps it with
its container (listed in the container's ``ExecIDs``, still there after its exec
garbage collection ran) until the container stops, which drops it (a start then gets 404
"No such exec instance"; docs/configuration.md, "Execs prepared ahead"). So an exec not
started is never thrown away while it can still serve:
it is kept, one per job, and the job's next preparation uses it again when the job's
definition is the same and its selector still finds the same container. Only a job
changed, removed or disabled, a container replaced, or the daemon's stop leave one behind
(``run.exec_unused``) — at most one per job and such event, never one per run.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from jobs.exec import ExecJob
from jobs.plan import ExecCommand
from scheduler.background import Background
from scheduler.errors import EngineConflictError, EngineNotFoundError
from scheduler.logs import get_logger
from scheduler.selection import SelectionError, exactly_one
from scheduler.steps.exec import wrapped

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from jobs.base import BaseJob
    from jobs.plan import Plan
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.engine_health import EngineHealth
    from scheduler.settings import JobEntry
    from scheduler.ticker import Preparer

WORKERS = 2
"""Exec creations at once (each is one short engine request)."""


def preparable_exec(plan: Plan) -> ExecCommand | None:
    """The exec of a plan that is one exec and nothing else, else None."""
    if len(plan.steps) != 1 or plan.cleanup or not isinstance(plan.steps[0], ExecCommand):
        return None
    return plan.steps[0]


@dataclass(slots=True)
class PreparedExec:
    """An exec created and not started: whose, in which container, for which run."""

    job: str
    definition: BaseJob
    """The job as it was when the exec was created: only a run of that same job starts it."""
    container: str
    """The id of the container the exec was created in."""
    exec_id: str
    scheduled_at: datetime | None
    """The scheduled run it was made ready for (its selector checked): only that run takes
    it; None while a preparation checks it again."""


class ExecsAhead:
    """The execs prepared ahead, one per job: the ticker prepares them, a run takes one."""

    def __init__(
        self,
        engine: Engine,
        plan: Callable[[JobEntry], Plan],
        clock: Clock,
        health: EngineHealth,
    ) -> None:
        """``plan`` gives a run's plan; ``health`` says whether the engine answers (nothing
        is prepared while it does not)."""
        self._engine = engine
        self._plan = plan
        self._clock = clock
        self._health = health
        self._held: dict[str, PreparedExec] = {}
        self._in_force: Mapping[str, JobEntry] | None = None
        """The jobs of the last ``retain`` (None before the first)."""
        self._pool: Background | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._log = get_logger()

    # --- the ticker's side ------------------------------------------------------------

    def lead(self, entry: JobEntry) -> float:
        """How long before its due time a run of ``entry`` is prepared; 0: never."""
        job = entry.job
        return job.prepare_ahead if isinstance(job, ExecJob) else 0.0

    def prepare(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        """Make an exec ready for ``entry``'s run of ``scheduled_at`` (due at ``due``) in a
        thread; returns at once."""
        if self._health.error is not None:
            return  # it would fail; the run at its time says why
        with self._lock:
            if self._closed or self._not_in_force(entry) is not None:
                return  # a reload took the job away or changed it since the ticker's pick
            if self._pool is None:  # no thread for a daemon without exec jobs
                self._pool = Background(WORKERS, "exec-ahead")
            pool = self._pool
        try:
            pool.submit(contextvars.Context().run, self._make, entry, scheduled_at, due)
        except RuntimeError:  # the thread limit, or closed: the run takes the normal path
            self._log.warning("run.prepare_failed", job=entry.name, error="no thread to prepare")

    def retain(self, entries: Mapping[str, JobEntry]) -> None:
        """The jobs in force now: an exec held for a job removed, changed or disabled will
        never be started."""
        unused: list[tuple[PreparedExec, str]] = []
        with self._lock:
            self._in_force = entries
            for name, item in list(self._held.items()):
                reason = self._not_in_force_as(name, item.definition)
                if reason is None:
                    continue
                del self._held[name]
                unused.append((item, reason))
        for item, reason in unused:
            self._unused(item, reason)

    # --- the runner's side ------------------------------------------------------------

    def take(self, entry: JobEntry, scheduled_at: datetime) -> PreparedExec | None:
        """The exec made ready for ``entry``'s run of ``scheduled_at`` (of this same job),
        now the caller's to start or to ``give_back``; else None (the normal path)."""
        with self._lock:
            item = self._held.get(entry.name)
            if item is None or item.scheduled_at != scheduled_at or item.definition != entry.job:
                return None
            del self._held[entry.name]
            return item

    def give_back(self, item: PreparedExec) -> None:
        """A taken exec that was not started (its run did not start, or its attempt did not
        get that far): kept for the job's next run, unless another is held by then."""
        with self._lock:
            kept = not self._closed and self._held.setdefault(item.job, item) is item
            item.scheduled_at = None  # the next preparation checks its container again
        if not kept:
            self._unused(item, "daemon_stopping" if self._closed else "replaced")

    def drop(self, item: PreparedExec, reason: str) -> None:
        """A taken exec that will not be started (made before the engine went away, for a
        run still waiting): ``run.exec_unused``; its run creates an exec of its own."""
        self._unused(item, reason)

    def close(self) -> None:
        """Prepare nothing more (a creation under way ends on its own, its exec unused);
        what is held will not be started."""
        with self._lock:
            self._closed = True
            pool, held, self._held = self._pool, list(self._held.values()), {}
        if pool is not None:
            pool.shutdown(
                cancel_futures=True
            )  # daemon threads: a hung creation never holds up the exit
        for item in held:
            self._unused(item, "daemon_stopping")

    # --- inside ------------------------------------------------------------------------

    def _make(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        """Check the held exec's container, or create one (in the preparation's thread); a
        failure is logged and the run, at its time, takes the normal path."""
        structlog.contextvars.bind_contextvars(job=entry.name)
        try:
            self._ready(entry, scheduled_at, due)
        except Exception as e:  # engine, selection: the run at its time says
            # No one running container to make it in (none, stopped, several; or gone or
            # stopped between the selection and the creation): the run at its time reports
            # that very problem on the normal path, so here it is only a detail.
            level = self._log.debug if _unselectable(e) else self._log.warning
            level("run.prepare_failed", scheduled_at=scheduled_at.isoformat(), error=str(e))

    def _ready(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        step = preparable_exec(self._plan(entry))
        with self._lock:
            gone = self._not_in_force(entry) is not None  # a reload while it waited
        if step is None or gone:
            return
        container = exactly_one(self._engine, step.container, step.key, running=True).id
        with self._lock:
            held = self._held.pop(entry.name, None)
        reused = held is not None and held.definition == entry.job and held.container == container
        if held is not None and not reused:
            self._unused(held, "job_changed" if held.definition != entry.job else "new_container")
        if held is not None and reused:
            item = held
        else:
            exec_id = self._engine.exec_create(
                container, wrapped(step.command), user=step.user, workdir=step.workdir, env=step.env
            )
            item = PreparedExec(entry.name, entry.job, container, exec_id, None)
        with self._lock:  # retain holds it too: a reload is before this or after
            reason = "daemon_stopping" if self._closed else self._not_in_force(entry)
            if reason is None and self._held.get(entry.name) is not None:
                reason = "replaced"  # a run gave one back meanwhile
            if reason is None:
                item.scheduled_at = scheduled_at
                self._held[entry.name] = item
        if reason is not None:  # made for a definition no longer in force, or the stop
            self._unused(item, reason)
            return
        self._log.info(
            "run.exec_prepared",
            scheduled_at=scheduled_at.isoformat(),
            container_id=container,
            exec_id=item.exec_id,
            reused=reused,
            ahead_s=round((due - self._clock.now()).total_seconds(), 3),
        )

    def _not_in_force(self, entry: JobEntry) -> str | None:
        """Why ``entry`` is not the job in force (under the lock), or None: it is, or no
        jobs were retained yet."""
        return self._not_in_force_as(entry.name, entry.job)

    def _not_in_force_as(self, name: str, definition: BaseJob) -> str | None:
        if self._in_force is None:
            return None
        now = self._in_force.get(name)
        if now is None:
            return "job_removed"
        if not now.job.enabled:
            return "job_disabled"
        return "job_changed" if now.job != definition else None

    def _unused(self, item: PreparedExec, reason: str) -> None:
        """``item`` will never be started (the engine keeps it until its container stops):
        say so."""
        self._log.info(
            "run.exec_unused",
            job=item.job,
            container_id=item.container,
            exec_id=item.exec_id,
            reason=reason,
        )


def _unselectable(error: Exception) -> bool:
    """``error`` says the job's container could not be selected, or was gone or stopped
    when the exec was created in it (not an unexpected failure)."""
    return isinstance(error, SelectionError | EngineNotFoundError | EngineConflictError)


class Preparers:
    """Several preparers as the ticker's one: each job's runs go to those that lead it."""

    def __init__(self, *parts: Preparer) -> None:
        self._parts = parts

    def lead(self, entry: JobEntry) -> float:
        """The longest lead any part has for ``entry`` (a job is one kind: one part's)."""
        return max((part.lead(entry) for part in self._parts), default=0.0)

    def prepare(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        """Hand the run to each part that prepares ``entry``'s runs."""
        for part in self._parts:
            if part.lead(entry) > 0:
                part.prepare(entry, scheduled_at, due)

    def retain(self, entries: Mapping[str, JobEntry]) -> None:
        """Tell every part the jobs in force."""
        for part in self._parts:
            part.retain(entries)
