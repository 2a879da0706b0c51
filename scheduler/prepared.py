"""Runs prepared ahead of their time: a ``run`` job's container made ``prepare_ahead``
before its scheduled time, so that only its start remains at the time.

The ticker asks ``lead`` when it plans a job's next run and calls ``prepare`` at the
run's due time (jitter included) less the lead, if that is still ahead; a thread of its
own then reads the secrets, checks the image, creates the container (labelled with the
run id it will have) and attaches its output. When the ticker fires that very run, the
runner ``take``s it: the run gets the prepared run's id, and its first attempt starts the
container (``Containers.run`` with ``prepared``) if the run's policies let it start.

Nothing is prepared that would only be thrown away: not while the engine is away, not for
a job no longer in force (a reload between the ticker's pick and ``prepare``), not for a
``forbid`` job whose runs overlap (its last run was skipped, and the run that made it be
skipped still runs: the next is most likely skipped too).

Whatever is not started is removed (``run.prepared_discarded``, with the reason): the
runner ``discard``s a taken one whose run did not start; ``retain`` (a reload, a label
scan) drops those of jobs removed, changed or disabled; ``discard_all`` those made before
the engine went away (and tells the settling which run ids it removes itself);
``close`` (the daemon stops) all of them. Removals have threads of their own, so a
preparation that hangs (an image pull) never holds one up. A container that survives a
kill -9 carries a run id without a run record: the orphan logic removes it at the next
start (``scheduler.recovery``).

At most one prepared run per job: a new preparation of the job replaces an older one
never taken (a clock stepped back), and one whose time passed without being taken is
removed at the next preparation, take or retain (``expired``).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from jobs.plan import RunContainer
from jobs.run import RunJob
from scheduler.background import Background
from scheduler.logs import get_logger
from scheduler.selection import SelectionError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from jobs.base import BaseJob
    from jobs.plan import ContainerSpec, Plan
    from scheduler.clock import Clock
    from scheduler.engine_health import EngineHealth
    from scheduler.settings import JobEntry
    from scheduler.steps.containers import Containers, Created

EXPIRED_AFTER_S = 60.0
"""A prepared run not taken this long after its time will never be: it is removed."""
CLOSE_WAIT_S = 30.0
"""At a stop, how long preparations and removals under way may take to end."""
WORKERS = 8
"""Preparations at once: a burst of jobs due together is prepared by this many threads
(the engine itself creates containers largely one after another), never a thread per
job."""
REMOVERS = 4
"""Removals at once, on threads of their own (never queued behind a preparation)."""


@dataclass(slots=True)
class PreparedRun:
    """One run prepared (or being prepared) ahead: whose, for when, under which run id."""

    job: str
    definition: BaseJob
    """The job as it was when the run was prepared: only a run of that same job takes it."""
    scheduled_at: datetime
    due: datetime
    run_id: str
    created: Created | None = None
    """The container, once made."""
    dropped: str | None = None
    """Why nobody will take it (set while it is still being made: it is removed when done)."""


def preparable(plan: Plan) -> ContainerSpec | None:
    """The container of a plan that is one plain container (no ops tool, nothing on its
    stdin, no cleanup), else None."""
    if len(plan.steps) != 1 or plan.cleanup:
        return None
    step = plan.steps[0]
    if not isinstance(step, RunContainer) or step.tool is not None or step.stdin_secret:
        return None
    return step.spec


class Preparations:
    """The runs prepared ahead, by job; the ticker prepares them, the runner takes them."""

    def __init__(
        self,
        containers: Containers,
        plan: Callable[[JobEntry], Plan],
        clock: Clock,
        health: EngineHealth,
        new_id: Callable[[], str],
        *,
        skipped: Callable[[JobEntry], bool] = lambda _: False,
    ) -> None:
        """``plan`` gives a run's plan; ``new_id`` a run id; ``health`` says whether the
        engine answers (nothing is prepared while it does not); ``skipped`` whether the
        job's next run is most likely skipped by its concurrency rule (nor then)."""
        self._containers = containers
        self._plan = plan
        self._clock = clock
        self._health = health
        self._new_id = new_id
        self._skipped = skipped
        self._items: dict[str, PreparedRun] = {}
        self._in_force: Mapping[str, JobEntry] | None = None
        """The jobs of the last ``retain`` (None before the first)."""
        self._owned: dict[str, PreparedRun] = {}
        """By run id: every run whose container this store makes or removes (not those
        handed to a run), until it is removed or known not to exist."""
        self._pool = Background(WORKERS, "prepare")
        self._removals = Background(REMOVERS, "discard")
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._removing: dict[concurrent.futures.Future[None], PreparedRun] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._log = get_logger()

    # --- the ticker's side ------------------------------------------------------------

    def lead(self, entry: JobEntry) -> float:
        """How long before its due time a run of ``entry`` is prepared; 0: never."""
        job = entry.job
        return job.prepare_ahead if isinstance(job, RunJob) else 0.0

    def prepare(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        """Begin preparing ``entry``'s run of ``scheduled_at`` (due at ``due``) in a thread;
        returns at once. Nothing is made while the engine is away (it would fail; the run
        at its time says why), for a job a reload took away or changed since the ticker
        picked this run, or for a run its concurrency rule most likely skips (``forbid``,
        the run that made the last one be skipped still going; if it ends before the
        time after all, the run takes the normal path)."""
        if self._health.error is not None or self._skipped(entry):
            return
        item = PreparedRun(entry.name, entry.job, scheduled_at, due, self._new_id())
        with self._lock:  # retain holds it too: a reload is before this or after
            if self._closed or not self._current(entry):
                return
            old = self._items.pop(entry.name, None)
            self._items[entry.name] = self._owned[item.run_id] = item
            expired = self._expired()
        if old is not None:
            self._drop(old, "replaced")
        for stale in expired:
            self._drop(stale, "expired")
        if self._spawn(lambda: self._make(entry, item), item) is None:
            self._forget(item)  # the run takes the normal path
            self._log.warning("run.prepare_failed", job=item.job, error="no thread to prepare")

    def retain(self, entries: Mapping[str, JobEntry]) -> None:
        """The jobs in force now (a reload, a label scan): a prepared run of a job removed,
        changed or disabled is removed, and none is prepared for them from now on."""
        dropped: list[tuple[PreparedRun, str]] = []
        with self._lock:
            self._in_force = entries
            for name, item in list(self._items.items()):
                entry = entries.get(name)
                if entry is None:
                    reason = "job_removed"
                elif not entry.job.enabled:
                    reason = "job_disabled"
                elif entry.job != item.definition:
                    reason = "job_changed"
                else:
                    continue
                del self._items[name]
                dropped.append((item, reason))
            dropped.extend((item, "expired") for item in self._expired())
        for item, reason in dropped:
            self._drop(item, reason)

    # --- the runner's side ------------------------------------------------------------

    def take(self, entry: JobEntry, scheduled_at: datetime) -> PreparedRun | None:
        """The run prepared for ``entry`` at ``scheduled_at`` (ready, and of this same job),
        now the caller's to start or to ``discard``; else None (the normal path). Prepared
        runs whose time passed long ago (a job a reload took away while it was being
        prepared) are removed on the way."""
        reason: str | None = None
        with self._lock:
            dropped = [(old, "expired") for old in self._expired()]
            item = self._items.get(entry.name)
            if item is not None and item.scheduled_at <= scheduled_at:
                del self._items[entry.name]
                if item.scheduled_at < scheduled_at:
                    reason = "expired"  # its run never came (a clock stepped back)
                elif item.created is None:
                    reason = "not_ready"
                elif item.definition != entry.job:
                    reason = "job_changed"
                if reason is not None:
                    dropped.append((item, reason))
                else:
                    del self._owned[item.run_id]  # the caller's now
            else:
                item = None
        for old, why in dropped:
            self._drop(old, why)
        return item if reason is None else None

    def discard(self, item: PreparedRun, reason: str, *, wait: bool) -> None:
        """Remove a taken run's container, which will not be started (its run did not
        start, or its attempt did not use it): at once (``wait``) or in a thread."""
        with self._lock:
            self._owned[item.run_id] = item
        if wait:
            self._remove(item, reason)
        else:
            self._drop(item, reason)

    def discard_all(self, reason: str) -> frozenset[str]:
        """Remove every prepared run not taken (the engine came back: what was made before
        it went away may be gone). Return the run ids whose containers this store removes
        (those, and any still being made or removed): the settling leaves them alone, so
        that each is removed once."""
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for item in items:
            self._drop(item, reason)
        with self._lock:
            return frozenset(self._owned)

    def close(self, *, wait: bool = True) -> None:
        """Prepare nothing more; remove what is prepared and not taken; with ``wait``, then
        ``finish``. A stop passes ``wait=False`` and calls ``finish`` once its runs are
        done: a preparation pulling an image must not hold up the runs' grace."""
        with self._lock:
            self._closed = True
            items, self._items = list(self._items.values()), {}
        for item in items:
            self._drop(item, "daemon_stopping")
        if wait:
            self.finish()

    def finish(self) -> None:
        """Wait (bounded, ``CLOSE_WAIT_S``) for the preparations and removals under way;
        end the pools. A preparation still hanging then removes its container itself if it
        ever makes one; a removal the engine has not done by then is logged
        (``run.cleanup_failed``: the next start removes the container as an orphan)."""
        with self._lock:
            pending = list(self._pending)
        _, stuck = concurrent.futures.wait(pending, CLOSE_WAIT_S)
        with self._lock:
            left = [item for future, item in self._removing.items() if future in stuck]
        for item in left:
            self._log.warning(
                "run.cleanup_failed",
                job=item.job,
                run_id=item.run_id,
                container_id=item.created.container_id if item.created else None,
                error=f"not removed {CLOSE_WAIT_S:g} s into the stop: the next start removes it",
            )
        # Daemon threads: one that still hangs in the engine never holds up the exit.
        self._removals.shutdown()  # a removal under way goes on while it can
        self._pool.shutdown(cancel_futures=True)

    # --- inside ------------------------------------------------------------------------

    def _current(self, entry: JobEntry) -> bool:
        """``entry`` is the job in force (under the lock): none was retained yet, or the
        last retain holds this very job, enabled."""
        if self._in_force is None:
            return True
        now = self._in_force.get(entry.name)
        return now is not None and now.job.enabled and now.job == entry.job

    def _expired(self) -> list[PreparedRun]:
        """Take out the prepared runs whose time passed long ago (under the lock)."""
        limit = self._clock.now() - timedelta(seconds=EXPIRED_AFTER_S)
        stale = [item for item in self._items.values() if item.due < limit]
        for item in stale:
            del self._items[item.job]
        return stale

    def _spawn(
        self,
        target: Callable[[], None],
        item: PreparedRun,
        pool: Background | None = None,
    ) -> concurrent.futures.Future[None] | None:
        """``target`` on ``pool`` (the preparations'), with ``item``'s log fields (a context
        of its own); None if the pool cannot take it."""

        def body() -> None:
            structlog.contextvars.bind_contextvars(job=item.job, run_id=item.run_id)
            try:
                target()
            except Exception:  # a bug here must not end the daemon, or the run
                self._log.exception("run.prepare_failed", reason="internal")

        try:
            future = (pool or self._pool).submit(contextvars.Context().run, body)
        except RuntimeError:  # the thread limit, or closed
            return None
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
            self._removing.pop(future, None)

    def _make(self, entry: JobEntry, item: PreparedRun) -> None:
        """Make ``item``'s container (in its thread); a failure is logged and the run, at
        its time, takes the normal path (and reports the error in its record)."""
        scheduled_at = item.scheduled_at.isoformat()
        with self._lock:
            dropped_early = item.dropped is not None  # while it waited for a worker
        if dropped_early:
            self._forget(item)
            return
        spec = preparable(self._plan(entry))
        if spec is None:
            self._forget(item)
            return
        try:
            created = self._containers.prepare(item.job, item.run_id, spec)
        except Exception as e:  # engine, secret, selection: the run at its time says
            self._forget(item)
            # A volumes_from that selects no one container: the run at its time reports
            # that very problem on the normal path, so here it is only a detail.
            level = self._log.debug if isinstance(e, SelectionError) else self._log.warning
            level("run.prepare_failed", scheduled_at=scheduled_at, error=str(e))
            return
        with self._lock:
            item.created = created
            dropped = item.dropped or ("daemon_stopping" if self._closed else None)
        if dropped is not None:
            self._remove(item, dropped)
            return
        ahead = (item.due - self._clock.now()).total_seconds()
        self._log.info(
            "run.prepared",
            scheduled_at=scheduled_at,
            container_id=created.container_id,
            ahead_s=round(ahead, 3),
        )

    def _forget(self, item: PreparedRun) -> None:
        """``item`` has no container (and will have none): out of the store."""
        with self._lock:
            if self._items.get(item.job) is item:
                del self._items[item.job]
            self._owned.pop(item.run_id, None)

    def _drop(self, item: PreparedRun, reason: str) -> None:
        """``item`` will not be started: its container is removed in a thread (or, while
        it is still being made, once made)."""
        with self._lock:
            if item.created is None:
                item.dropped = reason
                return
        future = self._spawn(lambda: self._remove(item, reason), item, self._removals)
        if future is None:
            self._remove(item, reason)
            return
        with self._lock:
            if not future.done():
                self._removing[future] = item

    def _remove(self, item: PreparedRun, reason: str) -> None:
        """Remove ``item``'s container, then say so (a failure to remove: logged too)."""
        created = item.created
        if created is None:
            return
        try:
            self._containers.discard(created)
        finally:  # removed, or its failure logged: the orphan logic's from now on
            with self._lock:
                self._owned.pop(item.run_id, None)
        self._log.info(
            "run.prepared_discarded",
            job=item.job,
            run_id=item.run_id,
            scheduled_at=item.scheduled_at.isoformat(),
            container_id=created.container_id,
            reason=reason,
        )
