"""What runs once when the daemon starts: a missed run of each ``catch_up`` job (the latest
missed time, within its ``starting_deadline``), then every ``run_on_start`` job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.logs import get_logger
from scheduler.schedule import latest_fire

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from scheduler.history import History
    from scheduler.runner import Runner
    from scheduler.settings import JobEntry


def catch_up(jobs: Mapping[str, JobEntry], history: History, runner: Runner, now: datetime) -> None:
    """A job with catch_up whose run fell due while the daemon was down runs once, for the
    latest missed time, if that is within its starting_deadline."""
    log = get_logger()
    marks = history.marks()
    for entry in jobs.values():
        job, mark = entry.job, marks.get(entry.name)
        if not (job.enabled and job.catch_up) or mark is None or mark.last_scheduled_at is None:
            continue
        missed = latest_fire(entry.schedule, mark.last_scheduled_at, now)
        if missed is None:
            continue
        late = (now - missed).total_seconds()
        if job.starting_deadline is not None and late > job.starting_deadline:
            log.info(
                "job.catch_up_skipped",
                job=entry.name,
                missed_at=missed.isoformat(),
                late_s=round(late, 3),
                starting_deadline_s=job.starting_deadline,
            )
            continue
        log.info(
            "job.catch_up", job=entry.name, missed_at=missed.isoformat(), late_s=round(late, 3)
        )
        runner.submit(entry, missed, trigger="catch_up")


def run_on_start(jobs: Mapping[str, JobEntry], runner: Runner, now: datetime) -> None:
    """Every enabled job with run_on_start runs (trigger ``start``)."""
    for entry in jobs.values():
        if entry.job.enabled and entry.job.run_on_start:
            runner.submit(entry, now, trigger="start")
