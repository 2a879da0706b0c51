"""Prometheus metrics of the daemon, in its own registry (prometheus-client).

Counted as the runs end, so they match the history of this daemon's life (one
count per attempt, as the history has one row per attempt): ``crontainer_runs_total``
by job and status (``skipped`` and ``missed`` included) and the run duration
histogram. Gauges are read at scrape time: running runs, runs waiting for a lock (jobs
with a ``lock``), last run, last success
(seeded from the state database, so it survives restarts: alert on its age) and
next run of each job (the time the scheduling loop holds, not computed again per scrape),
whether the engine answers. ``crontainer_build_info`` (always 1)
carries the package's and Python's versions as labels. No ``*_created`` series: a counter's
creation time says nothing a dashboard uses and doubles the series.
"""

from __future__ import annotations

import platform
import threading
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, TypeAlias

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.runs import RunListener, Status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from scheduler.settings import JobEntry

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
"""Run durations in seconds: from quick commands to day-long backups."""


Planned: TypeAlias = tuple["JobEntry", datetime | None]
"""A scheduled job as the loop holds it, and its next time (None: never)."""


@dataclass(slots=True)
class JobState:
    """What the gauges show of one job."""

    last_run: datetime | None = None
    last_success: datetime | None = None


@dataclass
class Live:
    """What the daemon tells the metrics as it runs (read at scrape time)."""

    jobs: Callable[[], Mapping[str, JobEntry]]
    running: Callable[[], Mapping[str, int]]
    now: Callable[[], datetime]
    engine_error: Callable[[], str | None]
    """Why the engine does not answer; None while it does."""
    planned: Callable[[], Mapping[str, Planned]] = dict
    """The scheduling loop's jobs with their next times (``Ticker.planned``)."""
    waiting: Callable[[], Mapping[str, int]] = dict
    """Runs waiting for a lock, by job (``Locks.waiting``)."""
    states: dict[str, JobState] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "running": GaugeMetricFamily(
            "crontainer_runs_running", "Runs in flight, by job", labels=["job"]
        ),
        "waiting": GaugeMetricFamily(
            "crontainer_runs_waiting_for_lock",
            "Runs in flight waiting for an exclusive lock (the job key lock), by job",
            labels=["job"],
        ),
        "last": GaugeMetricFamily(
            "crontainer_last_run_timestamp_seconds",
            "When the job's last attempt ended (UNIX time)",
            labels=["job"],
        ),
        "success": GaugeMetricFamily(
            "crontainer_last_success_timestamp_seconds",
            "When the job last succeeded (UNIX time; alert on its age)",
            labels=["job"],
        ),
        "next": GaugeMetricFamily(
            "crontainer_next_run_timestamp_seconds",
            "When the job runs next (UNIX time, without jitter; absent if never or disabled)",
            labels=["job"],
        ),
        "engine": GaugeMetricFamily("crontainer_engine_up", "1 while the Docker engine answers"),
    }


def _next_run(entry: JobEntry, planned: Planned | None, now: datetime) -> datetime | None:
    """The job's next time: the loop's, when it holds this very job and that time is still
    ahead; computed from the schedule otherwise (a run due but not fired yet, or a reload
    between the job set and the loop)."""
    if planned is not None and planned[0] is entry:
        nominal = planned[1]
        if nominal is None or nominal > now:
            return nominal
    if not entry.job.enabled:
        return None
    upcoming = entry.schedule.next_times(now, 1)
    return upcoming[0] if upcoming else None


class _Gauges(Collector):
    def __init__(self, live: Live) -> None:
        self._live = live

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples: registering does not collect (with 10,000 jobs, a
        collect at start cost a second)."""
        yield from _families().values()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live = self._live
        jobs = live.jobs()
        running = live.running()
        waiting = live.waiting()
        planned = live.planned()
        now = live.now()
        gauges = _families()
        with live.lock:
            states = {name: (s.last_run, s.last_success) for name, s in live.states.items()}
        for name, entry in sorted(jobs.items()):
            gauges["running"].add_metric([name], running.get(name, 0))
            if entry.job.locks:
                gauges["waiting"].add_metric([name], waiting.get(name, 0))
            last, success = states.get(name, (None, None))
            if last is not None:
                gauges["last"].add_metric([name], last.timestamp())
            if success is not None:
                gauges["success"].add_metric([name], success.timestamp())
            upcoming = _next_run(entry, planned.get(name), now)
            if upcoming is not None:
                gauges["next"].add_metric([name], upcoming.timestamp())
        gauges["engine"].add_metric([], 1 if live.engine_error() is None else 0)
        yield from gauges.values()


def package_version() -> str:
    """The installed crontainer's version ("unknown" outside an installed tree)."""
    try:
        return version("crontainer")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
        return "unknown"


class Metrics(RunListener):
    """The daemon's metrics; ``render`` gives the Prometheus text format."""

    def __init__(self, live: Live) -> None:
        self.live = live
        # process-wide and idempotent; unannotated in prometheus_client
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "crontainer_build_info",
            "Always 1; the labels say which crontainer and which Python run",
            ["version", "python"],
            registry=self.registry,
        ).labels(package_version(), platform.python_version()).set(1)
        self._runs = Counter(
            "crontainer_runs",
            "Attempts ended, by job and status (succeeded, failed, timed_out, cancelled, "
            "skipped, missed)",
            ["job", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "crontainer_run_duration_seconds",
            "How long attempts ran, by job",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._reloads = Counter(
            "crontainer_config_reloads",
            "Config reloads, by result (applied, invalid)",
            ["result"],
            registry=self.registry,
        )
        for result in ("applied", "invalid"):
            self._reloads.labels(result)
        self._reload_counts = {"applied": 0, "invalid": 0}
        self.registry.register(_Gauges(live))

    def seed(self, job: str, last_run: datetime | None, last_success: datetime | None) -> None:
        """Start from what the state database knows (the gauges survive restarts)."""
        with self.live.lock:
            self.live.states[job] = JobState(last_run, last_success)

    def ended(self, job: str, status: Status, at: datetime, duration: float | None) -> None:
        """An attempt ended (or a run was skipped or missed, ``duration`` None)."""
        self._runs.labels(job, status.value).inc()
        if duration is not None:
            self._duration.labels(job).observe(duration)
            with self.live.lock:
                state = self.live.states.setdefault(job, JobState())
                state.last_run = at
                if status is Status.SUCCEEDED:
                    state.last_success = at

    def reloaded(self, *, applied: bool) -> None:
        """A reload was applied, or refused (a bad file)."""
        result = "applied" if applied else "invalid"
        self._reloads.labels(result).inc()
        with self.live.lock:
            self._reload_counts[result] += 1

    def reloads(self) -> dict[str, int]:
        """The reloads since the start, by result (``applied``, ``invalid``): the status
        page's header says them."""
        with self.live.lock:
            return dict(self._reload_counts)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
