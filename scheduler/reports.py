"""What ``crontainer history`` and ``crontainer jobs`` print: plain tables or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from scheduler.claims import ClaimRecord
    from scheduler.history import JobMarks, OneShotRecord, RunRecord
    from scheduler.settings import JobEntry

    OneShotRecords = Mapping[tuple[str, datetime], OneShotRecord]
    """The state database's one-shot instants, by job and instant (``History.one_shots``)."""

Json = dict[str, object]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S%z") if moment else "-"


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
        "stored_bytes": record.stored_bytes,
        "read_bytes": record.read_bytes,
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


def cluster_table(records: list[ClaimRecord]) -> str:
    """``history --cluster``: one line per claimed fire, newest first."""
    rows = [
        [
            r.scheduled_at,
            r.job,
            r.run_id,
            r.replica,
            r.status or "claimed",
            "-" if r.exit_code is None else str(r.exit_code),
            r.ended_at or "-",
            r.settled_by or "-",
        ]
        for r in records
    ]
    headers = ["SCHEDULED", "JOB", "RUN ID", "REPLICA", "STATUS", "EXIT", "ENDED", "SETTLED BY"]
    return table(headers, rows)


def _one_shot(
    name: str, entry: JobEntry, one_shots: OneShotRecords
) -> tuple[OneShotRecord | None, Json | None]:
    """A one-shot (``@at``) job's instant as stored (if claimed) and as ``jobs --json`` shows
    it; (None, None) for a job that repeats."""
    at = entry.schedule.one_shot
    if at is None:
        return None, None
    record = one_shots.get((name, at))
    shown: Json = {
        "at": at.isoformat(),
        "done": record is not None and record.done,
        "outcome": record.outcome if record else None,
        "reason": record.reason if record else None,
        "run_id": record.run_id if record else None,
        "done_at": _iso(record.done_at) if record else None,
    }
    return record, shown


def next_run_word(name: str, entry: JobEntry, one_shots: OneShotRecords) -> str | None:
    """NEXT RUN in words where the job has no next time: ``disabled``, a one-shot whose
    instant is done (``done: <outcome>``) or under way (``running``), ``manual``; None: its
    schedule's next time (``crontainer jobs`` and the status page say the same)."""
    if not entry.job.enabled:
        return "disabled"
    at = entry.schedule.one_shot
    if at is not None and (record := one_shots.get((name, at))) is not None:
        return f"done: {record.outcome}" if record.done else "running"
    return "manual" if entry.schedule.manual else None


def _next(entry: JobEntry, record: OneShotRecord | None, now: datetime) -> datetime | None:
    """The job's next run: none when disabled, or a one-shot that is done (or under way)."""
    if not entry.job.enabled or record is not None:
        return None
    return entry.schedule.next_after(now)


def jobs_json(
    jobs: Mapping[str, JobEntry],
    sources: Mapping[str, str],
    marks: dict[str, JobMarks],
    now: datetime,
    one_shots: OneShotRecords | None = None,
) -> Json:
    """Each job with where it comes from (``sources``, default ``config``), its next run and
    what the history knows of it; a one-shot's instant (``one_shot``: done, its outcome)."""
    report: Json = {}
    for name, entry in jobs.items():
        mark = marks.get(name)
        record, one_shot = _one_shot(name, entry, one_shots or {})
        upcoming = _next(entry, record, now)
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
            "one_shot": one_shot,
            "locks": list(entry.job.locks),
        }
    return report


def jobs_table(
    jobs: Mapping[str, JobEntry],
    sources: Mapping[str, str],
    marks: dict[str, JobMarks],
    now: datetime,
    one_shots: OneShotRecords | None = None,
) -> str:
    """One line per job; NEXT RUN of a one-shot whose instant is done: ``done: <outcome>``
    (``running`` while its run is under way)."""
    rows = []
    for name, entry in jobs.items():
        mark = marks.get(name)
        word = next_run_word(name, entry, one_shots or {})
        shown = word if word is not None else _short(entry.schedule.next_after(now))
        rows.append(
            [
                name,
                entry.job.kind,
                entry.schedule.expression,
                entry.job.timezone,
                shown,
                (mark.last_status or "-") if mark else "-",
                _short(mark.last_success_at) if mark else "-",
                sources.get(name, "config"),
                ",".join(entry.job.locks) or "-",
            ]
        )
    headers = [
        "JOB", "KIND", "SCHEDULE", "TIMEZONE", "NEXT RUN", "LAST", "LAST SUCCESS", "SOURCE",
        "LOCKS",
    ]  # fmt: skip
    return table(headers, rows)
