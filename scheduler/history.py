"""The run history: an embedded SQLite file in ``[daemon] state_dir``.

The daemon writes, the CLI reads at the same time: WAL mode and a busy
timeout make that safe. ``PRAGMA user_version`` is the schema version; each
entry of ``MIGRATIONS`` moves the file one version up, inside a transaction.
Times are stored as ISO 8601 UTC text with microseconds, so they sort as text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scheduler.errors import CrontainerError
from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

DB_NAME = "crontainer.db"
BUSY_TIMEOUT_MS = 5000
OUTPUT_TAIL_BYTES = 8 * 1024
"""The output kept per attempt: its last lines, at most this many bytes."""

MIGRATIONS: tuple[str, ...] = (
    # 1: runs (one row per attempt) and per-job marks
    """
    CREATE TABLE runs (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        reason TEXT,
        error TEXT,
        container_id TEXT,
        output_tail TEXT,
        PRIMARY KEY (run_id, attempt)
    );
    CREATE INDEX runs_by_job ON runs (job, status, scheduled_at);
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_scheduled_at TEXT,
        last_success_at TEXT,
        last_status TEXT,
        last_finished_at TEXT
    );
    """,
    # 2: containers a run stopped and must start again (a successor does, after a crash)
    """
    CREATE TABLE stopped (
        run_id TEXT NOT NULL,
        container TEXT NOT NULL,
        stopped_at TEXT NOT NULL,
        PRIMARY KEY (run_id, container)
    );
    """,
    # 3: where log shipping stands, per job and source (what the sink acknowledged)
    """
    CREATE TABLE checkpoints (
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (job, source)
    );
    """,
    # 4: that table holds any ops tool's state (a rotation's last rotations too): named so
    """
    ALTER TABLE checkpoints RENAME TO tool_state;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(CrontainerError):
    """The state database cannot be opened or used."""


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

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


@dataclass(frozen=True, slots=True)
class JobMarks:
    """What the history knows of one job."""

    last_scheduled_at: datetime | None
    last_success_at: datetime | None
    last_status: str | None
    last_finished_at: datetime | None


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _tail(lines: list[str]) -> str | None:
    if not lines:
        return None
    text = "\n".join(lines)
    data = text.encode()
    if len(data) <= OUTPUT_TAIL_BYTES:
        return text
    return data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "ignore")


class History:
    """The state database; every method is safe to call from any thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self._write_error: str | None = None
        self._failed_writes = 0

    @classmethod
    def open(cls, state_dir: Path, *, readonly: bool = False) -> History:
        """Open (and, for the daemon, create and migrate) the database in ``state_dir``."""
        path = state_dir / DB_NAME
        try:
            if readonly:
                if not path.exists():
                    raise HistoryError(
                        f"{path}: no state database (has the daemon run with this state_dir?)"
                    )
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                state_dir.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            history = cls(db)
            history._migrate(readonly=readonly)
        except sqlite3.Error as e:
            raise HistoryError(f"{path}: cannot use the state database: {e}") from e
        except OSError as e:
            raise HistoryError(f"{state_dir}: cannot create the state directory: {e}") from e
        return history

    def _migrate(self, *, readonly: bool) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"the state database has schema {version}, newer than this crontainer knows "
                f"({SCHEMA_VERSION}); use a newer crontainer or another state_dir"
            )
        if version < SCHEMA_VERSION and readonly:
            raise HistoryError(
                f"the state database has schema {version}; start the daemon to migrate it"
            )
        for number in range(version, SCHEMA_VERSION):
            self._db.executescript(
                f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;"
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @property
    def write_error(self) -> str | None:
        """Why the last write failed (a full disk…), while writes fail; None once one works."""
        return self._write_error

    def _failed(self, error: sqlite3.Error) -> None:
        """A write failed: one ``history.write_failed`` when writes start failing (not one per
        write: a full disk fails them all), counted until one works again."""
        first = self._write_error is None
        self._write_error = str(error)
        self._failed_writes += 1
        if first:
            get_logger().error("history.write_failed", error=str(error))

    def _succeeded(self) -> None:
        if self._write_error is not None:
            get_logger().info("history.write_recovered", failed_writes=self._failed_writes)
            self._write_error, self._failed_writes = None, 0

    def _write(
        self,
        sql: str,
        params: tuple[object, ...],
        *,
        required: bool = False,
        adds: bool = True,
    ) -> None:
        """Write; a failure is logged (``history.write_failed``, once per outage) and runs go
        on — unless the write is ``required`` (what a successor needs to undo an action):
        then HistoryError, and the action is not taken. Only a write that ``adds`` a row, and
        did, ends an outage: an update or a delete can work on a full disk (so can an
        upsert of a job's marks, which updates its row in place: ``adds=False``)."""
        try:
            with self._lock:
                added = self._db.execute(sql, params).rowcount > 0
        except sqlite3.Error as e:
            self._failed(e)
            if required:
                raise HistoryError(f"the state database refuses writes: {e}") from e
            return
        if adds and added:
            self._succeeded()

    # --- the daemon's writes ------------------------------------------------

    def record_fire(self, job: str, scheduled_at: datetime) -> None:
        """Remember the job's latest scheduled time (for catch-up after downtime)."""
        self._write(
            "INSERT INTO jobs (name, last_scheduled_at) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET last_scheduled_at = "
            "max(coalesce(last_scheduled_at, ''), excluded.last_scheduled_at)",
            (job, _text(scheduled_at)),
            adds=False,
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
    ) -> None:
        """An attempt starts: a row with status ``running``."""
        self._write(
            "INSERT INTO runs (run_id, attempt, job, trigger, scheduled_at, started_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (run_id, attempt, job, trigger, _text(scheduled_at), _text(started_at)),
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
        status: str,
        finished_at: datetime,
        exit_code: int | None = None,
        reason: str | None = None,
        error: str | None = None,
        output: list[str] | None = None,
    ) -> None:
        """An attempt ended."""
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, reason = ?, error = ?, "
            "output_tail = ? WHERE run_id = ? AND attempt = ?",
            (
                status,
                _text(finished_at),
                exit_code,
                reason,
                error,
                _tail(output or []),
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
        status: str,
        at: datetime,
        reason: str,
    ) -> None:
        """A run that never started a container: skipped, missed, or cancelled while queued."""
        self._write(
            "INSERT INTO runs "
            "(run_id, attempt, job, trigger, scheduled_at, finished_at, status, reason) "
            "VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
            (run_id, job, trigger, _text(scheduled_at), _text(at), status, reason),
        )
        self._mark(run_id, status, at)

    def _mark(self, run_id: str, status: str, at: datetime) -> None:
        success = _text(at) if status == "succeeded" else None
        self._write(
            "INSERT INTO jobs (name, last_status, last_finished_at, last_success_at) "
            "SELECT job, ?, ?, ? FROM runs WHERE run_id = ? LIMIT 1 "
            "ON CONFLICT(name) DO UPDATE SET last_status = excluded.last_status, "
            "last_finished_at = excluded.last_finished_at, "
            "last_success_at = coalesce(excluded.last_success_at, last_success_at)",
            (status, _text(at), success, run_id),
            adds=False,
        )

    def mark_stopped(self, run_id: str, container: str, at: datetime) -> None:
        """Written before a run stops a container, so a successor can start it again; raise
        HistoryError if it cannot be (then the container must not be stopped)."""
        self._write(
            "INSERT OR REPLACE INTO stopped (run_id, container, stopped_at) VALUES (?, ?, ?)",
            (run_id, container, _text(at)),
            required=True,
        )

    def unmark_stopped(self, run_id: str, container: str) -> None:
        """The container was started again."""
        self._write(
            "DELETE FROM stopped WHERE run_id = ? AND container = ?",
            (run_id, container),
            adds=False,
        )

    def tool_state(self, job: str) -> dict[str, dict[str, object]]:
        """The state ``job``'s ops tool reported, by source: log shipping's checkpoints, a
        rotation's last rotation of each file."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, data FROM tool_state WHERE job = ?", (job,)
            ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def save_tool_state(
        self,
        job: str,
        marks: Mapping[str, object],
        forget: Iterable[str],
        at: datetime,
    ) -> None:
        """Forget, then set, the tool state of ``job`` — in one transaction: after an
        acknowledged batch every source it touched moves, or none does. A failure is
        logged (``history.write_failed``): the next run then ships those lines again."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "DELETE FROM tool_state WHERE job = ? AND source = ?",
                        [(job, source) for source in forget],
                    )
                    self._db.executemany(
                        "INSERT OR REPLACE INTO tool_state (job, source, data, updated_at) "
                        "VALUES (?, ?, ?, ?)",
                        [
                            (job, source, json.dumps(data, sort_keys=True), _text(at))
                            for source, data in marks.items()
                        ],
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._failed(e)
            return
        if marks:
            self._succeeded()

    def still_stopped(self) -> list[tuple[str, str]]:
        """(run_id, container) pairs stopped by runs that did not start them again."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, container FROM stopped ORDER BY stopped_at DESC"
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def prune(self, job: str, status: str, keep: int) -> None:
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

    def in_flight(self) -> list[RunRecord]:
        """Attempts recorded as running (after a crash: the ones to settle)."""
        return self._select("WHERE status = 'running'", (), -1)

    def _select(self, where: str, params: tuple[object, ...], limit: int) -> list[RunRecord]:
        """Rows matching ``where`` (fixed text of this module), newest first; -1: no limit."""
        # Only fixed text is formatted in; values are parameters.
        sql = (
            "SELECT run_id, attempt, job, trigger, scheduled_at, started_at, finished_at, status, "  # noqa: S608
            "exit_code, reason, error, container_id, output_tail FROM runs "
            f"{where} ORDER BY coalesce(started_at, scheduled_at) DESC, attempt DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [
            RunRecord(
                run_id=r[0],
                attempt=r[1],
                job=r[2],
                trigger=r[3],
                scheduled_at=datetime.fromisoformat(r[4]),
                started_at=_time(r[5]),
                finished_at=_time(r[6]),
                status=r[7],
                exit_code=r[8],
                reason=r[9],
                error=r[10],
                container_id=r[11],
                output_tail=r[12],
            )
            for r in rows
        ]

    def marks(self) -> dict[str, JobMarks]:
        """Per job: last scheduled time, last success, last outcome."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, last_scheduled_at, last_success_at, last_status, last_finished_at "
                "FROM jobs"
            ).fetchall()
        return {r[0]: JobMarks(_time(r[1]), _time(r[2]), r[3], _time(r[4])) for r in rows}
