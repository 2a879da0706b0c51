"""The state database: migrations, concurrent reader, marks."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from scheduler.history import History, HistoryError
from scheduler.history.database import DB_NAME
from scheduler.history.schema import SCHEMA_VERSION
from scheduler.runs import Status

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_a_new_database_is_created_in_wal_mode_at_the_current_schema(tmp_path: Path) -> None:
    """The daemon creates state_dir and the file; WAL lets the CLI read while it writes."""
    History.open(tmp_path / "deep" / "state").close()
    db = sqlite3.connect(tmp_path / "deep" / "state" / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    """A restart finds the runs and marks of before."""
    history = History.open(tmp_path)
    history.record_fire("a", T0)
    history.record(
        "r1", "a", "schedule", T0, status=Status.MISSED, at=T0, reason="starting_deadline"
    )
    history.close()
    again = History.open(tmp_path)
    assert [r.status for r in again.runs()] == ["missed"]
    assert again.marks()["a"].last_scheduled_at == T0


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A database written by a newer crontainer is not touched."""
    History.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer than this crontainer knows"):
        History.open(tmp_path)


def test_a_reader_sees_what_the_writer_wrote_while_it_is_open(tmp_path: Path) -> None:
    """The CLI's read-only connection and the daemon's connection work side by side."""
    writer = History.open(tmp_path)
    reader = History.open(tmp_path, readonly=True)
    writer.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    assert [r.status for r in reader.runs()] == ["running"]
    writer.finish(
        "r1", 1, status=Status.SUCCEEDED, finished_at=T0 + timedelta(seconds=1), exit_code=0
    )
    assert [r.status for r in reader.runs()] == ["succeeded"]
    assert reader.marks()["a"].last_success_at == T0 + timedelta(seconds=1)


def test_last_scheduled_time_only_moves_forward(tmp_path: Path) -> None:
    """A catch-up run for an older time does not move the mark back."""
    history = History.open(tmp_path)
    history.record_fire("a", T0)
    history.record_fire("a", T0 - timedelta(hours=1))
    assert history.marks()["a"].last_scheduled_at == T0


def test_output_tail_is_bounded(tmp_path: Path) -> None:
    """The stored tail keeps the end of the output, at most 8 KiB."""
    history = History.open(tmp_path)
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    lines = [f"line {i:05d} " + "x" * 100 for i in range(200)]
    history.finish("r1", 1, status=Status.SUCCEEDED, finished_at=T0, exit_code=0, output=lines)
    tail = history.runs()[0].output_tail
    assert tail is not None
    assert len(tail.encode()) <= 8 * 1024
    assert tail.endswith(lines[-1])


def test_a_failed_write_is_logged_not_raised(tmp_path: Path) -> None:
    """A broken database (here: closed) logs history.write_failed; the caller goes on."""
    history = History.open(tmp_path)
    history.close()
    with structlog.testing.capture_logs() as logs:
        history.record_fire("a", T0)
    assert [e["event"] for e in logs] == ["history.write_failed"]


def statements_of(history: History) -> list[str]:
    """The SQL the connection runs from now on, in order."""
    seen: list[str] = []
    history.connection.set_trace_callback(seen.append)
    return seen


def test_the_scheduled_time_is_written_without_waiting_for_the_disk_and_the_run_row_waits(
    tmp_path: Path,
) -> None:
    """On the way to a run's start the job's scheduled time does not wait for an fsync
    (synchronous NORMAL); the run's row right after it does (FULL), and puts both on disk;
    every other write waits too."""
    history = History.open(tmp_path)
    seen = statements_of(history)
    history.record_fire("a", T0)
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    history.set_container("r1", 1, "c0ffee")
    mode, writes = "FULL", []
    for sql in seen:
        if sql.startswith("PRAGMA synchronous="):
            mode = sql.removeprefix("PRAGMA synchronous=")
        else:
            writes.append((sql.split()[0:3], mode))
    assert writes == [
        (["INSERT", "INTO", "jobs"], "NORMAL"),
        (["INSERT", "INTO", "runs"], "FULL"),
        (["UPDATE", "runs", "SET"], "FULL"),
    ]
    assert history.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert history.marks()["a"].last_scheduled_at == T0


def test_a_failed_write_that_does_not_wait_leaves_the_next_ones_waiting(tmp_path: Path) -> None:
    """A refused write of the scheduled time is logged as any; the connection is back to
    waiting for the disk after it."""
    history = History.open(tmp_path)
    history.connection.execute("PRAGMA query_only=ON")
    with structlog.testing.capture_logs() as logs:
        history.record_fire("a", T0)
    assert [e["event"] for e in logs] == ["history.write_failed"]
    assert history.write_error is not None
    history.connection.execute("PRAGMA query_only=OFF")
    assert history.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
