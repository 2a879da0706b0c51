"""The jobs in force: the config's (main file and includes) and the containers' labels'.

Both change on their own — a reload replaces the config's, a scan the labels' — and the
schedule gets the union each time. A name the config defines is the config's: a label
job cannot take it (the scan refuses it; one the config took since is dropped here).
A job that leaves the schedule is logged (``job.removed``); a run of it in flight ends
as it would have.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from scheduler.labels.scan import LabelJobs
from scheduler.logs import get_logger
from scheduler.reload import diff_jobs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from scheduler.reload import JobChanges
    from scheduler.settings import JobEntry


class JobSet:
    """The config's jobs and the labels' jobs, handed together to ``schedule``."""

    def __init__(
        self,
        schedule: Callable[[Mapping[str, JobEntry]], None],
        jobs: Mapping[str, JobEntry],
        labels: LabelJobs | None = None,
    ) -> None:
        self._schedule = schedule
        self._lock = threading.Lock()
        self._config: Mapping[str, JobEntry] = jobs
        self._labels = labels or LabelJobs()
        self._all: Mapping[str, JobEntry] = self._union()
        self._log = get_logger()

    def _union(self) -> dict[str, JobEntry]:
        labelled = {n: e for n, e in self._labels.jobs.items() if n not in self._config}
        return {**self._config, **labelled}

    def all(self) -> Mapping[str, JobEntry]:
        """Every job in force now (a mapping that is replaced, never changed)."""
        return self._all

    def label_sources(self) -> dict[str, str]:
        """By label job, ``label:<container>``."""
        return self._labels.sources()

    def schedule(self) -> None:
        """Hand the jobs in force to the schedule (at start)."""
        with self._lock:
            self._schedule(self._all)

    def set_config(self, jobs: Mapping[str, JobEntry]) -> None:
        """The config's jobs from now on (a reload)."""
        with self._lock:
            kept, self._config = self._config, jobs
            try:
                self._replace("config")
            except BaseException:
                self._config = kept
                raise

    def set_labels(self, labels: LabelJobs) -> JobChanges:
        """The labels' jobs from now on (a scan); which of them changed (the config's being
        the same, the changes of the union are the labels')."""
        with self._lock:
            kept, self._labels = self._labels, labels
            try:
                return self._replace("labels")
            except BaseException:
                self._labels = kept
                raise

    def _replace(self, why: str) -> JobChanges:
        """The union of the config's and the labels' jobs in force, and how it changed; if
        the schedule cannot take it, everything stays as it was (and the error goes to the
        caller)."""
        old, self._all = self._all, self._union()
        changes = diff_jobs(old, self._all)
        if changes.added or changes.removed or changes.changed:
            try:
                self._schedule(self._all)
            except BaseException:
                self._all = old
                raise
        for name in changes.removed:
            self._log.info("job.removed", job=name, reason=why)
        return changes
