"""Adopting a container an earlier daemon left running: what is told of it, the timeout it
has left, how its end is recorded and reported, what it had stopped, cancel and failures."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from scheduler.engine import ExitStatus
from scheduler.history import RunRecord
from scheduler.notify import RunReport
from scheduler.runner import Runner
from scheduler.settings import JobEntry, load_config

from .fakes import FakeClock, FakeEngine
from .helpers import (
    CAPTURE,
    SCHEDULED,
    Heard,
    Logs,
    ended,
    events,
    history_of,
    make_config,
    make_runner,
    open_history,
)

NOW = SCHEDULED + timedelta(minutes=5)


@dataclass
class SlowEngine(FakeEngine):
    """A container that ends (with ``exit_status``) after ``takes`` seconds of waiting."""

    takes: float = 0.0

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        if self.exit_status is not None and self.takes:
            self.clock.advance(self.takes)
        return super().wait(container_id, timeout)


def setup(
    tmp_path: Path, engine: FakeEngine, started_ago: float | None
) -> tuple[Runner, Heard, JobEntry, RunRecord]:
    """Job j's attempt 2 of run r1, begun ``started_ago`` seconds before NOW by an earlier
    daemon (None: no start time known)."""
    config = make_config(tmp_path)
    history = open_history(config)
    started = NOW - timedelta(seconds=started_ago or 0)
    history.begin("r1", 2, "j", trigger="catch_up", scheduled_at=SCHEDULED, started_at=started)
    (record,) = history.in_flight()
    if started_ago is None:
        record = dataclasses.replace(record, started_at=None)
    heard = Heard()
    return make_runner(config, engine, heard, history=history), heard, config.jobs["j"], record


def adopt(runner: Runner, entry: JobEntry, record: RunRecord, after: list[str]) -> Logs:
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.adopt(entry, record, "c-alive", after)
        ended(runner)
    assert runner.active() == 0
    return logs


def test_an_adopted_run_is_told_recorded_counted_and_reported(tmp_path: Path) -> None:
    """run.adopted (job, run_id, attempt, container_id, running_s); its end is run.failed
    for that attempt with the whole duration (before and after adoption); the row, the
    metric and one report (no 'started': it started long ago) say the same; what the run
    had stopped is started again and its record goes."""
    engine = SlowEngine(FakeClock(NOW), exit_status=ExitStatus(4), takes=7.0)
    runner, heard, entry, record = setup(tmp_path, engine, 100.1234)
    history_of(runner).mark_stopped("r1", "app", SCHEDULED)
    logs = adopt(runner, entry, record, ["app"])
    (adopted,) = events(logs, "run.adopted")
    assert {k: adopted[k] for k in ("job", "run_id", "attempt", "container_id", "running_s")} == {
        "job": "j",
        "run_id": "r1",
        "attempt": 2,
        "container_id": "c-alive",
        "running_s": 100.123,
    }
    (end,) = events(logs, "run.failed")
    assert (end["attempt"], end["container_id"], end["exit_code"], end["duration_s"]) == (
        2,
        "c-alive",
        4,
        107.123,
    )
    finished = engine.clock.now()
    (row,) = history_of(runner).runs("j")
    assert (row.run_id, row.attempt, row.status, row.exit_code, row.finished_at) == (
        "r1",
        2,
        "failed",
        4,
        finished,
    )
    assert [e[:3] for e in heard.ended] == [("j", "failed", finished)]
    assert heard.ended[0][3] == pytest.approx(107.1234)
    assert heard.reports == [
        (
            None,
            RunReport(
                job="j",
                run_id="r1",
                status="failed",
                attempt=2,
                exit_code=4,
                duration_s=107.123,
                scheduled_at=SCHEDULED.isoformat(),
                trigger="catch_up",
            ),
        )
    ]
    assert [a for n, a in engine.calls if n in ("start", "remove")] == ["c-alive", "app"]
    assert history_of(runner).still_stopped() == []


@pytest.mark.parametrize(
    ("started_ago", "running_s", "budget"),
    [
        (100.1234, 100.123, 499.8766),  # the job's 10 min less what it already ran
        (None, 300.0, 300.0),  # no start time: counted from its scheduled time
        (-30.0, 0.0, 600.0),  # started "in the future" (a clock stepped back): none ran
        (700.0, 700.0, 0.0),  # already past its timeout: stopped at once
    ],
)
def test_an_adopted_container_gets_what_is_left_of_its_timeout(
    tmp_path: Path, started_ago: float | None, running_s: float, budget: float
) -> None:
    """A container that never ends is waited for the job's timeout less the time it already
    ran (never less than nothing), then stopped and recorded timed_out."""
    engine = FakeEngine(FakeClock(NOW), exit_status=None)
    runner, _, entry, record = setup(tmp_path, engine, started_ago)
    logs = adopt(runner, entry, record, [])
    assert [e["running_s"] for e in events(logs, "run.adopted")] == [running_s]
    before_stop = engine.calls[: engine.names().index("stop")]
    waited = sum(float(str(arg)) for name, arg in before_stop if name == "wait")
    assert waited == pytest.approx(budget)
    assert [e["reason"] for e in events(logs, "run.timed_out")] == ["timeout"]


def test_an_adopted_run_is_stopped_at_shutdown(tmp_path: Path) -> None:
    """An adopted run waits in a daemon thread (it never keeps the process from exiting);
    cancel_all stops its container too (the job's stop_grace) and it ends cancelled, reason
    daemon_stopping."""
    engine = FakeEngine(FakeClock(NOW), exit_status=None, blocking=True)
    runner, _, entry, record = setup(tmp_path, engine, 10.0)
    waiting = threading.Event()
    real_wait = engine.wait

    def wait(container_id: str, timeout: float) -> ExitStatus | None:
        waiting.set()
        return real_wait(container_id, timeout)

    engine.wait = wait  # type: ignore[method-assign]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.adopt(entry, record, "c-alive", [])
        assert waiting.wait(5)
        assert all(r.thread is not None and r.thread.daemon for r in runner.active_runs().values())
        runner.cancel_all()
        ended(runner)
    assert ("stop", 3.0) in engine.calls
    assert [(e["reason"], e["run_id"]) for e in events(logs, "run.cancelled")] == [
        ("daemon_stopping", "r1")
    ]


def test_a_bug_while_adopting_ends_that_run_only(tmp_path: Path) -> None:
    """An unexpected error while waiting: run.crashed, the run leaves the runner, what it
    stopped is still started again, and the daemon goes on."""
    engine = FakeEngine(FakeClock(NOW))

    def broken(container_id: str, timeout: float) -> ExitStatus | None:
        raise RuntimeError("bug")

    engine.wait = broken  # type: ignore[method-assign]
    runner, heard, entry, record = setup(tmp_path, engine, 10.0)
    logs = adopt(runner, entry, record, ["app"])
    assert [e["log_level"] for e in events(logs, "run.crashed")] == ["error"]
    assert ("start", "app") in engine.calls
    assert heard.reports == []


def test_adopting_without_a_thread_is_told_and_leaves_nothing_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the thread limit: run.adopt_failed (job, run_id, error); nothing stays in flight;
    the row stays running for the next start to settle."""
    engine = FakeEngine(FakeClock(NOW))
    runner, _, entry, record = setup(tmp_path, engine, 10.0)

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with structlog.testing.capture_logs() as logs:
        runner.adopt(entry, record, "c-alive", [])
    failed = [e for e in logs if e["event"] == "run.adopt_failed"]
    assert [(e["job"], e["run_id"], e["error"], e["log_level"]) for e in failed] == [
        ("j", "r1", "can't start new thread", "warning")
    ]
    assert runner.active() == 0
    assert [r.status for r in history_of(runner).in_flight()] == ["running"]
    assert engine.calls == []


def test_an_adopted_logship_runs_checkpoints_are_stored_under_its_job(tmp_path: Path) -> None:
    """The checkpoints a shipping container reported while no daemon read it are taken
    from its log when it ends, and stored under its job."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n'
        '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\ncontainers = ["web"]\n'
        '[jobs.s.sink]\ntype = "file"\nvolume = "shipped"\npath = "out.ndjson"\n'
    )
    config = load_config(path, {})
    history = open_history(config)
    history.begin("r1", 1, "s", trigger="schedule", scheduled_at=SCHEDULED, started_at=SCHEDULED)
    (record,) = history.in_flight()
    engine = FakeEngine(FakeClock(NOW))
    engine.log_entries[("c-ship", "stderr")] = [
        (1, "t", b'@crontainer {"checkpoint": {"container:web:stdout": {"ns": 5, "skip": 1}}}')
    ]
    runner = Runner(engine, config.daemon, engine.clock, "ops:1", history)
    with structlog.testing.capture_logs(processors=CAPTURE):
        runner.adopt(config.jobs["s"], record, "c-ship", [])
        ended(runner)
    assert history.tool_state("s") == {"container:web:stdout": {"ns": 5, "skip": 1}}
