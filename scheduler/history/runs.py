"""The runs table (one row per attempt) and the jobs table (each job's marks: its latest
scheduled time, last outcome, last success), and the reads of both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.history.database import Database, as_text, as_time
from scheduler.runs import Status

OUTPUT_TAIL_BYTES = 8 * 1024
"""The output kept per attempt: its last lines, at most this many bytes."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One attempt of one run, as stored."""

    run_id: str
    attempt: int
    job: str
    trigger: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    exit_code: int | None
    reason: str | None
    error: str | None
    container_id: str | None
    output_tail: str | None
    parent_run_id: str | None = None
    """The run whose end started this one (trigger ``chain``)."""
    stored_bytes: int | None = None
    """A backup run's: the bytes it stored (its archive's size; with a restic repository,
    what the repository grew by)."""
    read_bytes: int | None = None
    """A backup run's: the bytes of data it read (tar's stream; restic's bytes processed)."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


GlanceRow = tuple[str, str, str, str | None, str | None, str | None]
"""An attempt in brief, as ``Runs.glance_rows`` reads it for the status page's strip: run
id, status, its time (started, else scheduled), start, end (stored text), why (its reason,
else its error, else its exit code when not 0: ``exit code 3``)."""


@dataclass(frozen=True, slots=True)
class JobMarks:
    """What the history knows of one job."""

    last_scheduled_at: datetime | None
    last_success_at: datetime | None
    last_status: str | None
    last_finished_at: datetime | None


def _tail(lines: list[str]) -> str | None:
    if not lines:
        return None
    text = "\n".join(lines)
    data = text.encode()
    if len(data) <= OUTPUT_TAIL_BYTES:
        return text
    return data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "ignore")


class Runs(Database):
    """Attempts and job marks: the daemon's writes, the reads of ``crontainer history``
    and of recovery."""

    def record_fire(self, job: str, scheduled_at: datetime) -> None:
        """Remember the job's latest scheduled time (for catch-up after downtime). Written on
        the way to the run's start without waiting for the disk: the run's next write (its
        row, or why it did not start) waits, and puts this one there with it."""
        self._write(
            "INSERT INTO jobs (name, last_scheduled_at) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET last_scheduled_at = "
            "max(coalesce(last_scheduled_at, ''), excluded.last_scheduled_at)",
            (job, as_text(scheduled_at)),
            adds=False,
            durable=False,
        )

    def begin(
        self,
        run_id: str,
        attempt: int,
        job: str,
        *,
        trigger: str,
        scheduled_at: datetime,
        started_at: datetime,
        parent_run_id: str | None = None,
    ) -> None:
        """An attempt starts: a row with status ``running``. It waits for the disk, and so
        puts the run's scheduled time (``record_fire``, just before) there with it."""
        self._write(
            "INSERT INTO runs (run_id, attempt, job, trigger, scheduled_at, started_at, status, "
            "parent_run_id) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
            (
                run_id,
                attempt,
                job,
                trigger,
                as_text(scheduled_at),
                as_text(started_at),
                parent_run_id,
            ),
        )

    def set_container(self, run_id: str, attempt: int, container_id: str) -> None:
        """The attempt's container exists (so a successor can find and settle it)."""
        self._write(
            "UPDATE runs SET container_id = ? WHERE run_id = ? AND attempt = ?",
            (container_id, run_id, attempt),
            adds=False,
        )

    def finish(
        self,
        run_id: str,
        attempt: int,
        *,
        status: Status,
        finished_at: datetime,
        exit_code: int | None = None,
        reason: str | None = None,
        error: str | None = None,
        output: list[str] | None = None,
        sizes: tuple[int | None, int | None] = (None, None),
    ) -> None:
        """An attempt ended; ``sizes``: a backup's stored and read bytes (``RunRecord``)."""
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, reason = ?, error = ?, "
            "output_tail = ?, stored_bytes = ?, read_bytes = ? WHERE run_id = ? AND attempt = ?",
            (
                status,
                as_text(finished_at),
                exit_code,
                reason,
                error,
                _tail(output or []),
                *sizes,
                run_id,
                attempt,
            ),
            adds=False,
        )
        self._mark(run_id, status, finished_at)

    def record(
        self,
        run_id: str,
        job: str,
        trigger: str,
        scheduled_at: datetime,
        *,
        status: Status,
        at: datetime,
        reason: str,
        parent_run_id: str | None = None,
    ) -> None:
        """A run that never started a container: skipped, missed, or cancelled while queued."""
        self._write(
            "INSERT INTO runs (run_id, attempt, job, trigger, scheduled_at, finished_at, status, "
            "reason, parent_run_id) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                job,
                trigger,
                as_text(scheduled_at),
                as_text(at),
                status,
                reason,
                parent_run_id,
            ),
        )
        self._mark(run_id, status, at)

    def _mark(self, run_id: str, status: Status, at: datetime) -> None:
        success = as_text(at) if status is Status.SUCCEEDED else None
        self._write(
            "INSERT INTO jobs (name, last_status, last_finished_at, last_success_at) "
            "SELECT job, ?, ?, ? FROM runs WHERE run_id = ? LIMIT 1 "
            "ON CONFLICT(name) DO UPDATE SET last_status = excluded.last_status, "
            "last_finished_at = excluded.last_finished_at, "
            "last_success_at = coalesce(excluded.last_success_at, last_success_at)",
            (status, as_text(at), success, run_id),
            adds=False,
        )

    def prune(self, job: str, status: Status, keep: int) -> None:
        """Keep the newest ``keep`` rows of ``job`` with ``status``."""
        self._write(
            "DELETE FROM runs WHERE job = ? AND status = ? AND rowid NOT IN ("
            " SELECT rowid FROM runs WHERE job = ? AND status = ?"
            " ORDER BY coalesce(finished_at, scheduled_at) DESC LIMIT ?)",
            (job, status, job, status, keep),
            adds=False,
        )

    # --- reads ----------------------------------------------------------------

    def runs(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest first."""
        if job:
            return self._select("WHERE job = ?", (job,), limit)
        return self._select("", (), limit)

    def job_runs(
        self, job: str, limit: int, *, status: str | None = None, output: bool = True
    ) -> list[RunRecord]:
        """``job``'s newest attempts (with ``status`` only, if given); ``output=False``
        leaves out their output tails (``output_tail`` None), for the reads of many rows."""
        if status is None:
            return self._select("WHERE job = ?", (job,), limit, output=output)
        return self._select("WHERE job = ? AND status = ?", (job, status), limit, output=output)

    def glance_rows(self, job: str, limit: int) -> list[GlanceRow]:
        """``job``'s newest attempts in brief, newest first (one read of an index), as
        stored (to compare with an earlier read)."""
        return self._read(
            "SELECT run_id, status, coalesce(started_at, scheduled_at), started_at, finished_at, "
            "coalesce(reason, error, 'exit code ' || nullif(exit_code, 0)) FROM runs WHERE job = ? "
            "ORDER BY coalesce(started_at, scheduled_at) DESC, attempt DESC LIMIT ?",
            (job, limit),
        )

    def run_attempts(self, run_id: str) -> list[RunRecord]:
        """Every attempt of run ``run_id``, the latest first; empty for an unknown run."""
        return self._select("WHERE run_id = ?", (run_id,), -1)

    def scheduled_run(self, job: str, scheduled_at: datetime) -> RunRecord | None:
        """The latest attempt of ``job``'s run for ``scheduled_at`` by its schedule or a
        catch-up (a run-now's runs are not it), if one began or was recorded."""
        found = self._select(
            "WHERE job = ? AND scheduled_at = ? AND trigger IN ('schedule', 'catch_up')",
            (job, as_text(scheduled_at)),
            1,
        )
        return found[0] if found else None

    def run(self, run_id: str) -> RunRecord | None:
        """The latest attempt of run ``run_id``, if it is recorded."""
        found = self._select("WHERE run_id = ?", (run_id,), 1)
        return found[0] if found else None

    def in_flight(self) -> list[RunRecord]:
        """Attempts recorded as running (after a crash: the ones to settle)."""
        return self._select("WHERE status = 'running'", (), -1)

    def _select(
        self, where: str, params: tuple[object, ...], limit: int, *, output: bool = True
    ) -> list[RunRecord]:
        """Rows matching ``where`` (fixed text of this module), newest first; -1: no limit.
        ``output=False``: without their output tails."""
        tail = "output_tail" if output else "NULL"
        # Only fixed text is formatted in; values are parameters.
        sql = (
            "SELECT run_id, attempt, job, trigger, scheduled_at, started_at, finished_at, status, "  # noqa: S608
            f"exit_code, reason, error, container_id, {tail}, parent_run_id, stored_bytes, "
            f"read_bytes FROM runs "
            f"{where} ORDER BY coalesce(started_at, scheduled_at) DESC, attempt DESC LIMIT ?"
        )
        rows = self._read(sql, (*params, limit))
        return [
            RunRecord(
                run_id=r[0],
                attempt=r[1],
                job=r[2],
                trigger=r[3],
                scheduled_at=datetime.fromisoformat(r[4]),
                started_at=as_time(r[5]),
                finished_at=as_time(r[6]),
                status=r[7],
                exit_code=r[8],
                reason=r[9],
                error=r[10],
                container_id=r[11],
                output_tail=r[12],
                parent_run_id=r[13],
                stored_bytes=r[14],
                read_bytes=r[15],
            )
            for r in rows
        ]

    def marks(self) -> dict[str, JobMarks]:
        """Per job: last scheduled time, last success, last outcome."""
        rows = self._read(
            "SELECT name, last_scheduled_at, last_success_at, last_status, last_finished_at "
            "FROM jobs"
        )
        return {r[0]: JobMarks(as_time(r[1]), as_time(r[2]), r[3], as_time(r[4])) for r in rows}
