"""What ``crontainer history`` and ``crontainer jobs`` print: plain tables or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from scheduler.history import JobMarks, RunRecord
    from scheduler.settings import JobEntry

Json = dict[str, object]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S%z") if moment else "-"


def _next(entry: JobEntry, upcoming: datetime | None) -> str:
    """The NEXT RUN column: a time, or why there is none (disabled, manual)."""
    if not entry.job.enabled:
        return "disabled"
    return "manual" if entry.schedule.manual else _short(upcoming)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def run_json(record: RunRecord) -> Json:
    """One attempt, with the same key names as the log events."""
    return {
        "run_id": record.run_id,
        "attempt": record.attempt,
        "job": record.job,
        "trigger": record.trigger,
        "parent_run_id": record.parent_run_id,
        "status": record.status,
        "scheduled_at": _iso(record.scheduled_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "duration_s": record.duration_s,
        "exit_code": record.exit_code,
        "reason": record.reason,
        "error": record.error,
        "container_id": record.container_id,
        "output_tail": record.output_tail,
    }


def history_table(records: list[RunRecord]) -> str:
    """Newest first, one line per attempt."""
    rows = [
        [
            _short(r.started_at or r.scheduled_at),
            r.job,
            r.run_id,
            str(r.attempt),
            r.status,
            "-" if r.exit_code is None else str(r.exit_code),
            "-" if r.duration_s is None else f"{r.duration_s:.1f}s",
            r.parent_run_id or "-",
            r.reason or r.error or "",
        ]
        for r in records
    ]
    headers = ["STARTED", "JOB", "RUN ID", "TRY", "STATUS", "EXIT", "TOOK", "PARENT", "REASON"]
    return table(headers, rows)


def jobs_json(
    jobs: Mapping[str, JobEntry],
    sources: Mapping[str, str],
    marks: dict[str, JobMarks],
    now: datetime,
) -> Json:
    """Each job with where it comes from (``sources``, default ``config``), its next run and
    what the history knows of it."""
    report: Json = {}
    for name, entry in jobs.items():
        mark = marks.get(name)
        upcoming = entry.schedule.next_after(now) if entry.job.enabled else None
        report[name] = {
            "kind": entry.job.kind,
            "source": sources.get(name, "config"),
            "schedule": entry.schedule.expression,
            "timezone": entry.job.timezone,
            "enabled": entry.job.enabled,
            "manual": entry.schedule.manual,
            "next_run": _iso(upcoming),
            "last_status": mark.last_status if mark else None,
            "last_finished_at": _iso(mark.last_finished_at) if mark else None,
            "last_success_at": _iso(mark.last_success_at) if mark else None,
            "last_scheduled_at": _iso(mark.last_scheduled_at) if mark else None,
        }
    return report


def jobs_table(
    jobs: Mapping[str, JobEntry],
    sources: Mapping[str, str],
    marks: dict[str, JobMarks],
    now: datetime,
) -> str:
    """One line per job."""
    rows = []
    for name, entry in jobs.items():
        mark = marks.get(name)
        upcoming = entry.schedule.next_after(now) if entry.job.enabled else None
        rows.append(
            [
                name,
                entry.job.kind,
                entry.schedule.expression,
                entry.job.timezone,
                _next(entry, upcoming),
                (mark.last_status or "-") if mark else "-",
                _short(mark.last_success_at) if mark else "-",
                sources.get(name, "config"),
            ]
        )
    headers = ["JOB", "KIND", "SCHEDULE", "TIMEZONE", "NEXT RUN", "LAST", "LAST SUCCESS", "SOURCE"]
    return table(headers, rows)
