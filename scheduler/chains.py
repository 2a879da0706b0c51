"""Chains: when a run ends after its last attempt, the jobs its job names in ``on_success``,
``on_failure`` or ``on_finish`` start right after, through the runner's normal path (each
under its own concurrency, starting deadline, the global cap), with trigger ``chain`` and
the parent run on the record.

Which jobs: those of the parent job as it is in force when the run ends — a reload that
removed an edge stops it firing, one that added an edge makes it fire, even for a run
that was already running (whose own steps stay the ones it started with). A child that
is no longer in force, or disabled, is not started (``chain.skipped``); nor is any while
the daemon stops. A run that never started (skipped, missed) starts nothing; a run left
running by an engine outage or an earlier instance starts its chain when the daemon sees
it end (adoption), and not if it is only settled from the record.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from scheduler.logs import get_logger
from scheduler.runs import ChainParent, RunListener, Status
from scheduler.settings.chains import edges

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from jobs.base import BaseJob
    from scheduler.clock import Clock
    from scheduler.runner import Dispatched
    from scheduler.runs import ActiveRun, Outcome
    from scheduler.settings import JobEntry

    Dispatch = Callable[[JobEntry, datetime, str, ChainParent], Dispatched]

FAILURES = frozenset({Status.FAILED, Status.TIMED_OUT})
"""The outcomes ``on_failure`` follows (a missed or skipped run never ran: it starts none)."""


def followers(job: BaseJob, status: Status) -> list[tuple[str, str]]:
    """The jobs a run of ``job`` that ended ``status`` starts, each once, as (key, job), in
    the order written: ``on_success`` or ``on_failure``, then ``on_finish``."""
    wanted = {"on_finish"}
    if status is Status.SUCCEEDED:
        wanted.add("on_success")
    elif status in FAILURES:
        wanted.add("on_failure")
    found: dict[str, str] = {}
    for key, name in edges(job):
        if key in wanted:
            found.setdefault(name, key)
    return [(key, name) for name, key in found.items()]


class Chains(RunListener):
    """Starts the jobs that follow a run when it finishes (a runner's listener)."""

    def __init__(
        self, dispatch: Dispatch, jobs: Callable[[], Mapping[str, JobEntry]], clock: Clock
    ) -> None:
        """``dispatch`` starts a run (the runner's); ``jobs``: the jobs in force now."""
        self._dispatch = dispatch
        self._jobs = jobs
        self._clock = clock
        self._closed = threading.Event()
        self._log = get_logger()

    def close(self) -> None:
        """The daemon stops: no chained run starts from now on."""
        self._closed.set()

    def finished(self, run: ActiveRun, outcome: Outcome) -> None:
        """``run`` ended: start what follows it (on its thread: its job and run id are the
        bound log fields of the chain's events)."""
        status = outcome.status
        jobs = self._jobs()
        current = jobs.get(run.entry.name)
        if current is None:  # its job left the config meanwhile: its chains with it
            for _key, child in followers(run.entry.job, status):
                self._skipped(child, status, "parent_removed")
            return
        parent = ChainParent(run.entry.name, run.run_id, status)
        for key, child in followers(current.job, status):
            entry = jobs.get(child)
            if self._closed.is_set():
                self._skipped(child, status, "daemon_stopping")
            elif entry is None:
                self._skipped(child, status, "removed")
            elif not entry.job.enabled:
                self._skipped(child, status, "disabled")
            else:
                self._start(entry, key, parent)

    def _start(self, entry: JobEntry, key: str, parent: ChainParent) -> None:
        try:
            dispatched = self._dispatch(entry, self._clock.now(), "chain", parent)
        except Exception:  # one child's failure must not stop the others, nor the parent
            self._log.exception(
                "chain.skipped",
                child=entry.name,
                parent_status=parent.status.value,
                reason="internal",
                on=key,
            )
            return
        if dispatched.status is None:
            self._log.info(
                "chain.dispatched",
                child=entry.name,
                child_run_id=dispatched.run_id,
                parent_status=parent.status.value,
                on=key,
            )
        else:
            self._skipped(
                entry.name,
                parent.status,
                dispatched.reason or dispatched.status.value,
                child_run_id=dispatched.run_id,
                child_status=dispatched.status.value,
            )

    def _skipped(self, child: str, status: Status, reason: str, **fields: object) -> None:
        self._log.warning(
            "chain.skipped", child=child, parent_status=status.value, reason=reason, **fields
        )
