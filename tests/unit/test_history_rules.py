"""The state database, rule by rule: what is stored (UTC text, the output's tail),
what pruning keeps, what reads return, the schema's migrations, and the write-outage
events (history.write_failed once, history.write_recovered only when a row is added)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from scheduler.history import History, HistoryError
from scheduler.history.database import DB_NAME
from scheduler.history.runs import OUTPUT_TAIL_BYTES
from scheduler.history.schema import MIGRATIONS, SCHEMA_VERSION
from scheduler.runs import Status

from .helpers import events, local_zone

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping
    from pathlib import Path

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raw(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows as the file holds them (another connection, as the CLI would read)."""
    db = sqlite3.connect(tmp_path / DB_NAME)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    made = History.open(tmp_path)
    yield made
    made.close()


@pytest.fixture
def host_zone() -> Iterator[None]:
    """The host's local zone is not UTC (it must not matter)."""
    with local_zone("America/New_York"):
        yield


# --- what is stored -------------------------------------------------------------


@pytest.mark.usefixtures("host_zone")
def test_times_are_stored_as_utc_text_with_microseconds(tmp_path: Path, history: History) -> None:
    """Whatever the zone of the time given or of the host: UTC ISO 8601 text with
    microseconds (so they sort as text)."""
    plus2 = timezone(timedelta(hours=2))
    history.record_fire("a", datetime(2026, 1, 5, 14, 0, 0, 5, tzinfo=plus2))
    history.begin(
        "r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=at(1).astimezone(plus2)
    )
    history.finish("r1", 1, status=Status.SUCCEEDED, finished_at=at(2).astimezone(plus2))
    assert raw(
        tmp_path, "SELECT last_scheduled_at, last_success_at, last_finished_at FROM jobs"
    ) == [
        (
            "2026-01-05T12:00:00.000005+00:00",
            "2026-01-05T12:00:02.000000+00:00",
            "2026-01-05T12:00:02.000000+00:00",
        )
    ]
    assert raw(tmp_path, "SELECT scheduled_at, started_at, finished_at FROM runs") == [
        (
            "2026-01-05T12:00:00.000000+00:00",
            "2026-01-05T12:00:01.000000+00:00",
            "2026-01-05T12:00:02.000000+00:00",
        )
    ]


def lines_of(size: int, tail: str = "") -> list[str]:
    """Lines whose join with newlines is ``size`` bytes, ending with ``tail``."""
    first = "a" * (size - len(tail.encode()) - 1)
    return [first, tail] if tail else ["a" * size]


@pytest.mark.parametrize(
    ("output", "stored"),
    [
        (None, None),
        ([], None),
        (["one", "two"], "one\ntwo"),
        # exactly the limit: all of it
        (["a" * 4095, "b" * (OUTPUT_TAIL_BYTES - 4096)], "a" * 4095 + "\n" + "b" * 4096),
        # one byte over: the last OUTPUT_TAIL_BYTES bytes
        (["a" * 4096, "b" * (OUTPUT_TAIL_BYTES - 4096)], "a" * 4095 + "\n" + "b" * 4096),
        # the cut falls inside a two-byte character: its half is dropped, not an error
        (["é" + "x" * (OUTPUT_TAIL_BYTES - 1)], "x" * (OUTPUT_TAIL_BYTES - 1)),
    ],
)
def test_the_stored_output_tail(
    history: History, output: list[str] | None, stored: str | None
) -> None:
    """The last lines, at most OUTPUT_TAIL_BYTES bytes of UTF-8; none: no tail."""
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    history.finish("r1", 1, status=Status.FAILED, finished_at=at(1), exit_code=1, output=output)
    assert history.runs()[0].output_tail == stored


def test_an_attempt_reads_back_as_written(history: History) -> None:
    """Every field of an attempt and of a run that never started, by run and attempt."""
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=at(1))
    history.set_container("r1", 1, "c0ffee")
    history.finish(
        "r1", 1, status=Status.FAILED, finished_at=at(3.5), exit_code=2, reason="exit_code",
        error="boom", output=["x"],
    )  # fmt: skip
    history.begin("r1", 2, "a", trigger="schedule", scheduled_at=T0, started_at=at(4))
    history.record("r2", "b", "manual", at(10), status=Status.SKIPPED, at=at(11), reason="overlap")
    by_key = {(r.run_id, r.attempt): r for r in history.runs(limit=-1)}
    first = by_key["r1", 1]
    assert (first.job, first.trigger, first.status) == ("a", "schedule", "failed")
    assert (first.scheduled_at, first.started_at, first.finished_at) == (T0, at(1), at(3.5))
    assert (first.exit_code, first.reason, first.error) == (2, "exit_code", "boom")
    assert (first.container_id, first.output_tail, first.duration_s) == ("c0ffee", "x", 2.5)
    second = by_key["r1", 2]
    assert (second.status, second.finished_at, second.container_id) == ("running", None, None)
    assert second.duration_s is None
    skipped = by_key["r2", 1]
    assert (skipped.job, skipped.trigger, skipped.status, skipped.reason) == (
        "b", "manual", "skipped", "overlap",
    )  # fmt: skip
    assert (skipped.scheduled_at, skipped.started_at, skipped.finished_at) == (at(10), None, at(11))
    assert (skipped.exit_code, skipped.error, skipped.container_id) == (None, None, None)


# --- marks ----------------------------------------------------------------------


def test_marks_follow_each_final_outcome_and_keep_the_last_success(history: History) -> None:
    """last_status / last_finished_at follow every final outcome (finished or recorded);
    last_success_at only a success; each job its own."""
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    history.finish("r1", 1, status=Status.SUCCEEDED, finished_at=at(1))
    history.begin("r2", 1, "a", trigger="schedule", scheduled_at=at(10), started_at=at(10))
    history.finish("r2", 1, status=Status.FAILED, finished_at=at(12))
    history.record("r3", "b", "schedule", at(20), status=Status.MISSED, at=at(21), reason="x")
    marks = history.marks()
    assert set(marks) == {"a", "b"}
    assert (marks["a"].last_status, marks["a"].last_finished_at) == ("failed", at(12))
    assert marks["a"].last_success_at == at(1)
    assert (marks["b"].last_status, marks["b"].last_finished_at) == ("missed", at(21))
    assert marks["b"].last_success_at is None
    assert marks["b"].last_scheduled_at is None
    history.record(
        "r4", "a", "schedule", at(30), status=Status.SKIPPED, at=at(31), reason="overlap"
    )
    assert history.marks()["a"].last_status == "skipped"
    assert history.marks()["a"].last_success_at == at(1)


# --- pruning --------------------------------------------------------------------


def test_prune_keeps_the_newest_rows_of_that_job_and_status_only(history: History) -> None:
    """By identity: the ``keep`` newest (by finish, else schedule) of that job and
    status stay; other statuses and other jobs are not touched."""
    for number in range(5):  # finished in the order 0, 1, 2, 3, 4
        history.record(f"m{number}", "a", "schedule", at(number), status=Status.MISSED,
                       at=at(100 + number), reason="x")  # fmt: skip
    history.begin("late", 1, "a", trigger="schedule", scheduled_at=at(50), started_at=at(50))
    history.finish("late", 1, status=Status.MISSED, finished_at=at(200))  # scheduled late, newest
    history.record("s1", "a", "schedule", at(0), status=Status.SKIPPED, at=at(1), reason="x")
    history.record("o1", "b", "schedule", at(0), status=Status.MISSED, at=at(1), reason="x")
    history.prune("a", Status.MISSED, 3)
    assert sorted(r.run_id for r in history.runs(limit=-1)) == [
        "late", "m3", "m4", "o1", "s1",
    ]  # fmt: skip
    history.prune("a", Status.MISSED, 0)
    assert sorted(r.run_id for r in history.runs(limit=-1)) == ["o1", "s1"]


# --- reads ----------------------------------------------------------------------


def test_runs_newest_first_of_a_job_or_all_with_a_limit(history: History) -> None:
    for number in range(25):
        job = "a" if number % 2 else "b"
        history.begin(f"r{number}", 1, job, trigger="schedule", scheduled_at=at(number),
                      started_at=at(number))  # fmt: skip
    history.begin("r24", 2, "b", trigger="schedule", scheduled_at=at(24), started_at=at(24))
    assert [(r.run_id, r.attempt) for r in history.runs()][:3] == [
        ("r24", 2), ("r24", 1), ("r23", 1),
    ]  # fmt: skip
    assert len(history.runs()) == 20  # the default limit
    assert [r.run_id for r in history.runs("a", limit=3)] == ["r23", "r21", "r19"]
    assert len(history.runs("a", limit=-1)) == 12
    assert len(history.runs(limit=-1)) == 26
    assert history.runs("nope") == []


def test_in_flight_is_every_running_attempt(history: History) -> None:
    for number in range(30):
        history.begin(f"r{number}", 1, "a", trigger="schedule", scheduled_at=at(number),
                      started_at=at(number))  # fmt: skip
    history.finish("r7", 1, status=Status.SUCCEEDED, finished_at=at(100))
    running = history.in_flight()
    assert len(running) == 29
    assert "r7" not in {r.run_id for r in running}


def test_still_stopped_newest_first_until_unmarked(history: History) -> None:
    history.mark_stopped("r1", "db", at(1))
    history.mark_stopped("r2", "web", at(3))
    history.mark_stopped("r2", "db", at(2))
    assert history.still_stopped() == [("r2", "web"), ("r2", "db"), ("r1", "db")]
    history.unmark_stopped("r2", "db")
    assert history.still_stopped() == [("r2", "web"), ("r1", "db")]


def test_checkpoints_forget_then_set_per_job(tmp_path: Path, history: History) -> None:
    """Stored as JSON with sorted keys; forgetting one source leaves the others; each
    job its own."""
    history.save_tool_state("a", {"f1": {"z": 1, "a": [1]}, "f2": {"o": 2}}, [], at(1))
    history.save_tool_state("b", {"f1": {"o": 9}}, [], at(1))
    history.save_tool_state("a", {"f3": {"o": 3}}, ["f1"], at(2))
    assert history.tool_state("a") == {"f2": {"o": 2}, "f3": {"o": 3}}
    assert history.tool_state("b") == {"f1": {"o": 9}}
    assert raw(tmp_path, "SELECT data FROM tool_state WHERE job = 'a' AND source = 'f2'") == [
        ('{"o": 2}',)
    ]
    history.save_tool_state("b", {"f1": {"z": 1, "a": 2}}, [], at(3))
    assert raw(tmp_path, "SELECT data FROM tool_state WHERE job = 'b'") == [('{"a": 2, "z": 1}',)]


def test_a_failed_checkpoint_batch_changes_nothing(history: History) -> None:
    """One transaction: a batch that fails midway (here a value that is not JSON, after
    the forgetting) leaves every checkpoint as it was; the next batch works."""
    history.save_tool_state("a", {"f1": {"o": 1}, "f2": {"o": 2}}, [], at(1))
    with structlog.testing.capture_logs() as logs, pytest.raises(TypeError):
        history.save_tool_state("a", {"f3": {"o": 3}, "f4": {"o": object()}}, ["f1"], at(2))
    assert history.tool_state("a") == {"f1": {"o": 1}, "f2": {"o": 2}}
    assert logs == []  # not a database error: raised to the caller's bug handling
    history.save_tool_state("a", {"f3": {"o": 3}}, ["f1"], at(3))
    assert history.tool_state("a") == {"f2": {"o": 2}, "f3": {"o": 3}}


# --- opening and the schema -----------------------------------------------------


def test_an_old_schema_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A file at schema 1 (an older crontainer's) is moved up to the current one at start;
    its runs stay; the tables of later versions work."""
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    db.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
    db.execute(
        "INSERT INTO runs (run_id, attempt, job, trigger, scheduled_at, status) "
        "VALUES ('r1', 1, 'a', 'schedule', ?, 'missed')",
        (T0.isoformat(timespec="microseconds"),),
    )
    db.close()
    with pytest.raises(HistoryError, match="schema 1; start the daemon to migrate it"):
        History.open(tmp_path, readonly=True)
    history = History.open(tmp_path)
    assert raw(tmp_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert [r.run_id for r in history.runs()] == ["r1"]
    history.mark_stopped("r2", "db", at(1))
    history.save_tool_state("a", {"f": {"o": 1}}, [], at(1))
    assert history.still_stopped() == [("r2", "db")]
    assert history.tool_state("a") == {"f": {"o": 1}}
    history.close()
    History.open(tmp_path, readonly=True).close()  # now current: the CLI reads it


def test_a_schema_3_files_checkpoints_are_the_tool_state_after_the_migration(
    tmp_path: Path,
) -> None:
    """Schema 3 kept log shipping's checkpoints and rotation state in a table called
    ``checkpoints``; version 4 renames it ``tool_state``, every row kept."""
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    script = " ".join(MIGRATIONS[:3])
    db.executescript(f"BEGIN; {script} PRAGMA user_version = 3; COMMIT;")
    db.execute(
        "INSERT INTO checkpoints (job, source, data, updated_at) VALUES (?, ?, ?, ?)",
        ("ship", "container:web:stdout", '{"ns": 5, "skip": 1}', T0.isoformat()),
    )
    db.close()
    history = History.open(tmp_path)
    assert raw(tmp_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert history.tool_state("ship") == {"container:web:stdout": {"ns": 5, "skip": 1}}
    assert raw(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'checkpoints'") == []
    history.close()


def test_a_missing_database_is_a_clear_error_for_a_reader(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no state database") as caught:
        History.open(tmp_path, readonly=True)
    assert str(tmp_path / DB_NAME) in str(caught.value)
    assert not (tmp_path / DB_NAME).exists()  # the reader creates nothing


def test_a_reader_cannot_write(tmp_path: Path) -> None:
    History.open(tmp_path).close()
    reader = History.open(tmp_path, readonly=True)
    with pytest.raises(HistoryError, match="refuses writes"):
        reader.mark_stopped("r1", "db", T0)


def test_opening_errors_name_the_place(tmp_path: Path) -> None:
    """A state_dir that cannot be made, a file that is not a database: HistoryError
    naming the directory or the file."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HistoryError, match="cannot create the state directory") as caught:
        History.open(blocker / "state")
    assert str(blocker / "state") in str(caught.value)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / DB_NAME).write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(HistoryError, match="cannot use the state database") as caught:
        History.open(tmp_path / "bad")
    assert str(tmp_path / "bad" / DB_NAME) in str(caught.value)


def test_the_daemons_threads_share_one_history(history: History) -> None:
    """Runs write from their own threads."""
    errors: list[BaseException] = []

    def write() -> None:
        try:
            history.begin("t1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
        except BaseException as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []
    assert history.write_error is None
    assert [r.run_id for r in history.runs()] == ["t1"]


# --- write outages --------------------------------------------------------------


def test_an_outage_is_logged_once_and_its_end_with_the_lost_writes(tmp_path: Path) -> None:
    """history.write_failed (with the error) when writes start failing, not per write;
    write_error says why meanwhile; the first write that adds a row ends it:
    history.write_recovered with how many writes failed; a new outage counts anew."""
    History.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    history = History(db)
    assert history.write_error is None
    with structlog.testing.capture_logs() as logs:
        db.execute("PRAGMA query_only = 1")
        for number in range(3):
            history.record_fire(f"j{number}", T0)
        assert history.write_error == "attempt to write a readonly database"
        db.execute("PRAGMA query_only = 0")
        history.begin("r1", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
        assert history.write_error is None
        db.execute("PRAGMA query_only = 1")
        history.record("r2", "a", "schedule", T0, status=Status.MISSED, at=T0, reason="x")
        db.execute("PRAGMA query_only = 0")
        history.record("r3", "a", "schedule", T0, status=Status.MISSED, at=T0, reason="x")
    assert events(logs, "history.write_failed", "history.write_recovered") == [
        {
            "event": "history.write_failed",
            "log_level": "error",
            "error": "attempt to write a readonly database",
        },
        {"event": "history.write_recovered", "log_level": "info", "failed_writes": 3},
        {
            "event": "history.write_failed",
            "log_level": "error",
            "error": "attempt to write a readonly database",
        },
        {"event": "history.write_recovered", "log_level": "info", "failed_writes": 2},
    ]
    # r2 and its mark were lost (2 writes); r1 and r3 are there
    assert sorted(r.run_id for r in history.runs()) == ["r1", "r3"]
    history.close()


def test_a_required_write_that_fails_raises_and_is_logged(tmp_path: Path) -> None:
    """A stop that cannot be recorded must not happen: HistoryError saying the database
    refuses writes; the outage is logged as any other."""
    History.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    history = History(db)
    db.execute("PRAGMA query_only = 1")
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(
            HistoryError,
            match=r"^the state database refuses writes: attempt to write a readonly database$",
        ):
            history.mark_stopped("r1", "db", T0)
        history.unmark_stopped("r1", "db")  # not required: logged only, never raised
    assert [e["event"] for e in logs] == ["history.write_failed"]
    db.execute("PRAGMA query_only = 0")
    assert history.still_stopped() == []
    history.close()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[History, list[MutableMapping[str, Any]]]]:
    """A history whose file cannot grow (a full disk): rows can be updated or deleted
    in place, none added. Run r0 (job a, attempt 1, running) and a stopped container
    (r0, db) exist; history.write_failed has been logged."""
    History.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    history = History(db)
    history.record_fire("a", T0)
    history.begin("r0", 1, "a", trigger="schedule", scheduled_at=T0, started_at=T0)
    history.mark_stopped("r0", "db", T0)
    history.save_tool_state("a", {"f": {"o": 1}}, [], T0)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    with structlog.testing.capture_logs() as logs:
        number = 0
        while history.write_error is None:
            number += 1
            assert number < 100_000, "max_page_count never made a write fail"
            history.begin(f"x{number}", 1, "b", trigger="schedule", scheduled_at=T0,
                          started_at=T0)  # fmt: skip
        assert history.write_error == "database or disk is full"
        yield history, logs
    history.close()


def test_updates_and_deletes_on_a_full_disk_do_not_end_the_outage(
    full_disk: tuple[History, list[MutableMapping[str, Any]]],
) -> None:
    """Only a write that adds a row ends an outage: an update or a delete works on a
    full disk and says nothing about it."""
    history, logs = full_disk
    history.set_container("r0", 1, "c0ffee")
    history.unmark_stopped("r0", "db")
    history.prune("b", Status.SKIPPED, 0)
    assert history.write_error == "database or disk is full"
    assert [e["event"] for e in logs] == ["history.write_failed"]
    assert history.runs("a")[0].container_id == "c0ffee"  # the update did work
    assert history.still_stopped() == []


def test_marks_updated_on_a_full_disk_do_not_end_the_outage(
    full_disk: tuple[History, list[MutableMapping[str, Any]]],
) -> None:
    """A run that ends, a fire that is remembered, while no row can be added: the job's
    marks are updated in place, but the outage goes on (no history.write_recovered, the
    write error stays for /healthz) until a row is added again."""
    history, logs = full_disk
    history.finish("r0", 1, status=Status.SUCCEEDED, finished_at=at(5))
    history.record_fire("a", at(60))
    assert history.write_error == "database or disk is full"
    assert [e["event"] for e in logs] == ["history.write_failed"]
    marks = history.marks()["a"]
    assert (marks.last_status, marks.last_success_at, marks.last_scheduled_at) == (
        "succeeded", at(5), at(60),
    )  # fmt: skip


def test_a_refused_checkpoint_batch_is_logged_and_moves_nothing(tmp_path: Path) -> None:
    """The shipping's checkpoints cannot be saved: history.write_failed with the error,
    none moved (the next run ships those lines again); a batch that sets checkpoints
    ends the outage, one that only forgets does not."""
    History.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    history = History(db)
    history.save_tool_state("a", {"f1": {"o": 1}}, [], at(1))
    with structlog.testing.capture_logs() as logs:
        db.execute("PRAGMA query_only = 1")
        history.save_tool_state("a", {"f2": {"o": 2}}, ["f1"], at(2))
        assert history.write_error == "attempt to write a readonly database"
        db.execute("PRAGMA query_only = 0")
        history.save_tool_state("a", {}, ["nothing"], at(3))
        assert history.write_error is not None
        history.save_tool_state("a", {"f3": {"o": 3}}, [], at(4))
        assert history.write_error is None
    assert history.tool_state("a") == {"f1": {"o": 1}, "f3": {"o": 3}}
    assert events(logs, "history.write_failed", "history.write_recovered") == [
        {
            "event": "history.write_failed",
            "log_level": "error",
            "error": "attempt to write a readonly database",
        },
        {"event": "history.write_recovered", "log_level": "info", "failed_writes": 1},
    ]
    history.close()
