"""How an attempt's end is told: the outcome an error maps to, the cleanup steps' part in
it, the run.<status> event and its fields, the history row, the metrics hook and the
report after the last attempt; an attempt the engine interrupted; retries' events."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog

from jobs.base import PlanContext
from jobs.plan import Plan, PullPolicy, RunContainer, SignalContainers
from jobs.run import RunJob
from scheduler.engine import ExitStatus
from scheduler.errors import EngineError, EngineUnavailableError, PullDeniedError
from scheduler.notify import RunReport
from scheduler.recording import backup_sizes
from scheduler.reports import run_json
from scheduler.runner import Runner
from scheduler.runs import Status
from scheduler.settings import JobEntry, load_config

from .fakes import FakeClock, FakeEngine
from .helpers import (
    CAPTURE,
    SCHEDULED,
    Heard,
    Hooks,
    Logs,
    backup_stopping_app,
    ended,
    events,
    history_of,
    make_config,
    make_runner,
    open_history,
    row,
    wait_for,
)


def run_one(runner: Runner, entry: JobEntry, at: datetime = SCHEDULED) -> tuple[str, Logs]:
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_id = runner.submit(entry, at)
        ended(runner)
    assert run_id is not None
    return run_id, logs


def new_runner(
    engine: FakeEngine, config_path: Path, job: str = ""
) -> tuple[Runner, Heard, JobEntry]:
    """A runner of job j (with ``job`` added to its table), and what its hooks heard."""
    config = make_config(config_path, job)
    heard = Heard()
    return make_runner(config, engine, heard), heard, config.jobs["j"]


def only_end(logs: Logs) -> dict[str, object]:
    ends = [e for e in logs if e["event"].split(".")[-1] in {s.value for s in Status}]
    assert len(ends) == 1, ends
    return dict(ends[0])


@dataclass
class RaisingEngine(FakeEngine):
    """ensure_image raises ``error``, after ``before`` (if any) ran."""

    error: Exception | None = None
    before: object = None

    def ensure_image(
        self,
        image: str,
        policy: PullPolicy,
        auth: object = None,
    ) -> None:
        self.calls.append(("ensure_image", (image, policy)))
        if callable(self.before):
            self.before()
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("error", "reason", "message"),
    [
        (EngineUnavailableError("engine gone"), "engine_unavailable", "engine gone"),
        (EngineError("no such image"), None, "no such image"),
        (
            PullDeniedError("registry r.example denied", "r.example"),
            "pull_denied",
            "registry r.example denied",
        ),
        (RuntimeError("boom"), None, "internal error: RuntimeError: boom"),
    ],
)
def test_an_error_before_the_container_maps_to_failed(
    tmp_path: Path, error: Exception, reason: str | None, message: str
) -> None:
    """The engine away: failed, reason engine_unavailable; the registry refusing the pull:
    failed, reason pull_denied; another engine error: failed
    with its message and no reason; a bug: failed, 'internal error: <type>: <message>', and
    run.crashed (only then). Never retried as anything but a failure; reported failed."""
    engine = RaisingEngine(FakeClock(), error=error)
    runner, heard, entry = new_runner(engine, tmp_path)
    run_id, logs = run_one(runner, entry)
    end = only_end(logs)
    assert (end["event"], end.get("reason"), end["error"]) == ("run.failed", reason, message)
    assert "exit_code" not in end
    assert (row(runner, run_id).status, row(runner, run_id).reason) == ("failed", reason)
    assert row(runner, run_id).error == message
    crashed = events(logs, "run.crashed")
    assert len(crashed) == (1 if isinstance(error, RuntimeError) else 0)
    assert [(r.status, r.reason, r.error) for _, r in heard.reports] == [
        ("started", None, None),
        ("failed", reason, message),
    ]


def test_an_engine_error_after_a_cancel_is_a_cancelled_run_with_its_reason(
    tmp_path: Path,
) -> None:
    """Shutdown cancels the run, then the engine refuses: the attempt ends cancelled
    (reason daemon_stopping, the engine's error kept), and is not retried."""
    engine = RaisingEngine(FakeClock(), error=EngineError("refused: stopping"))
    runner, _, entry = new_runner(engine, tmp_path, 'retries = 2\nretry_delay = "1s"')
    engine.before = runner.cancel_all
    run_id, logs = run_one(runner, entry)
    end = only_end(logs)
    assert (end["event"], end["reason"], end["error"]) == (
        "run.cancelled",
        "daemon_stopping",
        "refused: stopping",
    )
    assert engine.names().count("ensure_image") == 1
    assert not events(logs, "run.retrying")
    assert (row(runner, run_id).status, row(runner, run_id).reason) == (
        "cancelled",
        "daemon_stopping",
    )


CLEANUP = SignalContainers(("app",), restart=True)  # restarted with the job's stop_grace


@pytest.mark.parametrize(
    ("body", "cleanup_fails", "expected"),
    [
        ("ok", False, ("succeeded", 0, None)),
        ("ok", True, ("failed", None, "restart refused")),  # cleanup fails a run that succeeded
        ("exit3", True, ("failed", 3, None)),  # a failed run keeps its own failure
        ("create", True, ("failed", None, "create refused")),  # cleanup runs on an error too
    ],
)
def test_cleanup_steps_run_on_every_path_and_fail_only_a_success(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    cleanup_fails: bool,
    expected: tuple[str, int | None, str | None],
) -> None:
    """A plan's cleanup (post_exec and the like) runs after the body whatever happened; its
    failure turns a success into that failure and leaves any other outcome as it was. The
    plan is asked with the job's name and the daemon's ops image."""
    contexts: list[PlanContext] = []
    real_plan = RunJob.plan

    def plan(job: RunJob, ctx: PlanContext) -> Plan:
        contexts.append(ctx)
        return Plan(steps=real_plan(job, ctx).steps, cleanup=(CLEANUP,))

    monkeypatch.setattr(RunJob, "plan", plan)
    fail: dict[str, EngineError] = {}
    if cleanup_fails:
        fail["restart"] = EngineError("restart refused")
    if body == "create":
        fail["create"] = EngineError("create refused")
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(3 if body == "exit3" else 0), fail=fail)
    runner, _, entry = new_runner(engine, tmp_path)
    run_id, logs = run_one(runner, entry)
    end = only_end(logs)
    assert (end["event"], end.get("exit_code"), end.get("error")) == (
        f"run.{expected[0]}",
        *expected[1:],
    )
    assert row(runner, run_id).status == expected[0]
    assert engine.calls[-1] == ("restart", ("app", 3.0))  # last, after the body's container
    assert contexts == [PlanContext(job="j", ops_image="ops:1")]


def test_an_attempts_end_is_logged_recorded_counted_and_reported(tmp_path: Path) -> None:
    """A run that exits 3 after 12.3456 s: run.failed (a warning) with attempt, duration_s
    to the millisecond, container_id and exit_code, and no reason or error keys; the row has
    the end time, code, container and output tail; the metrics hook gets the unrounded
    duration; the report after it carries all of it, to the job's notify spec."""
    clock = FakeClock()
    engine = FakeEngine(clock, exit_status=ExitStatus(3), output_chunks=[("stdout", b"one\ntwo\n")])
    runner, heard, entry = new_runner(
        engine, tmp_path, '[jobs.j.notify]\nwebhook = "http://h/hook"\ncooldown = "0s"'
    )
    engine.on_start = lambda: clock.advance(12.3456)
    scheduled = SCHEDULED - timedelta(seconds=90.1234)
    run_id, logs = run_one(runner, entry, scheduled)
    end = only_end(logs)
    assert {k: v for k, v in end.items() if k != "timestamp"} == {
        "event": "run.failed",
        "log_level": "warning",
        "job": "j",
        "run_id": run_id,
        "attempt": 1,
        "duration_s": 12.346,
        "container_id": "c0ffee1",
        "exit_code": 3,
    }
    (started,) = events(logs, "run.started")
    assert {k: started[k] for k in ("attempt", "kind", "lag_s", "trigger", "scheduled_at")} == {
        "attempt": 1,
        "kind": "run",
        "lag_s": 90.123,
        "trigger": "schedule",
        "scheduled_at": scheduled.isoformat(),
    }
    finished = clock.now()
    recorded = row(runner, run_id)
    assert (recorded.started_at, recorded.finished_at) == (SCHEDULED, finished)
    assert (recorded.exit_code, recorded.container_id, recorded.output_tail) == (
        3,
        "c0ffee1",
        "one\ntwo",
    )
    assert [e[:3] for e in heard.ended] == [("j", "failed", finished)]
    assert heard.ended[0][3] == pytest.approx(12.3456)
    spec = entry.job.notify
    assert spec is not None
    assert heard.reports == [
        (
            spec,
            RunReport(
                job="j",
                run_id=run_id,
                status="started",
                scheduled_at=scheduled.isoformat(),
                trigger="schedule",
            ),
        ),
        (
            spec,
            RunReport(
                job="j",
                run_id=run_id,
                status="failed",
                attempt=1,
                exit_code=3,
                duration_s=12.346,
                output_tail=("one", "two"),
                scheduled_at=scheduled.isoformat(),
                trigger="schedule",
            ),
        ),
    ]


def test_a_success_is_logged_at_info(tmp_path: Path) -> None:
    """run.succeeded is an info event; every other end a warning."""
    runner, heard, entry = new_runner(FakeEngine(FakeClock()), tmp_path)
    _, logs = run_one(runner, entry)
    end = only_end(logs)
    assert (end["event"], end["log_level"], end["exit_code"]) == ("run.succeeded", "info", 0)
    assert [s for _, s, _, _ in heard.ended] == ["succeeded"]


def test_retries_tell_each_attempt_and_the_next_and_report_the_last(tmp_path: Path) -> None:
    """retries = 2, every attempt fails: run.retrying says attempt n, next_attempt n+1 and
    the delay; each attempt is its own row and metric; one report, of attempt 3; one
    'started' report (attempt 1 only)."""
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(1))
    runner, heard, entry = new_runner(engine, tmp_path, 'retries = 2\nretry_delay = "5s"')
    run_id, logs = run_one(runner, entry)
    assert [(e["attempt"], e["next_attempt"], e["delay_s"]) for e in logs if e["event"] == "run.retrying"] == [
        (1, 2, 5.0),
        (2, 3, 10.0),
    ]  # fmt: skip
    assert [e["attempt"] for e in events(logs, "run.started")] == [1, 2, 3]
    assert [s for _, s, _, _ in heard.ended] == ["failed"] * 3
    assert [(r.status, r.attempt) for _, r in heard.reports] == [("started", None), ("failed", 3)]
    assert sorted(r.attempt for r in history_of(runner).runs("j") if r.run_id == run_id) == [
        1,
        2,
        3,
    ]


def test_a_cancel_during_the_backoff_ends_the_run_without_another_attempt(
    tmp_path: Path,
) -> None:
    """Shutdown while a run waits to retry: no further attempt; the run's end is reported
    cancelled (reason daemon_stopping, the last attempt's exit code) — the listeners (an
    @at instant, the chains) hear of its end; the failed attempt stays recorded."""
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(1))
    runner, heard, entry = new_runner(engine, tmp_path, 'retries = 3\nretry_delay = "5s"')
    clock = engine.clock
    real_sleep = clock.sleep

    def sleep(seconds: float, interrupt: threading.Event) -> bool:
        runner.cancel_all()
        return real_sleep(seconds, interrupt)

    clock.sleep = sleep  # type: ignore[method-assign]
    _, logs = run_one(runner, entry)
    assert not events(logs, "run.crashed")
    assert engine.created() == 1
    assert [r.status for r in history_of(runner).runs("j")] == ["failed"]
    assert [(r.status, r.reason, r.exit_code, r.attempt) for _, r in heard.reports] == [
        ("started", None, None, None),
        ("cancelled", "daemon_stopping", 1, 1),
    ]
    assert runner.active() == 0


def test_a_run_replaced_in_its_backoff_reports_its_end_and_starts_its_chain(
    tmp_path: Path,
) -> None:
    """concurrency = replace: a run-now arrives while the scheduled run waits to retry; the
    old run ends cancelled (reason replaced) — reported, and its on_finish chain starts."""
    config = make_config(
        tmp_path,
        'retries = 1\nretry_delay = "1h"\nconcurrency = "replace"\non_finish = ["k"]',
        jobs='[jobs.k]\nkind = "run"\nimage = "img:2"\nschedule = "@manual"\n',
    )
    clock = SleepingClock()
    engine = FakeEngine(clock, exit_status=ExitStatus(1))
    heard = Heard()
    runner = Runner(
        engine,
        config.daemon,
        clock,
        "ops:1",
        open_history(config),
        listeners=[Hooks(heard.on_ended, heard.on_report)],
        jobs=lambda: config.jobs,
    )
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.retrying")))
        engine.exit_status = ExitStatus(0)
        second = runner.submit(config.jobs["j"], SCHEDULED, trigger="manual")
        ended(runner)
    assert [(r.status, r.reason) for _, r in heard.reports if r.run_id == first] == [
        ("started", None),
        ("cancelled", "replaced"),
    ]
    assert [r.status for _, r in heard.reports if r.run_id == second] == ["started", "succeeded"]
    assert next(e["run_id"] for e in events(logs, "chain.dispatched")) == first


class SleepingClock(FakeClock):
    """A back-off really waits: until its run is cancelled."""

    def sleep(self, seconds: float, interrupt: threading.Event) -> bool:
        return interrupt.wait(60)


@dataclass
class VanishingEngine(FakeEngine):
    """The engine goes away while the container runs."""

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        self.calls.append(("wait", timeout))
        raise EngineUnavailableError("connection reset")


def test_an_attempt_the_engine_interrupted_stays_running_untold(tmp_path: Path) -> None:
    """The engine vanishes mid-run: run.interrupted (attempt, container_id, reason
    engine_unavailable, the error); the row stays running with its container for the
    settling at the engine's return; no end event, metric, report or retry; the container is
    left alone."""
    engine = VanishingEngine(FakeClock())
    runner, heard, entry = new_runner(engine, tmp_path, 'retries = 2\nretry_delay = "1s"')
    run_id, logs = run_one(runner, entry)
    (interrupted,) = events(logs, "run.interrupted")
    assert {
        k: interrupted[k]
        for k in ("job", "run_id", "attempt", "container_id", "reason", "error", "log_level")
    } == {
        "job": "j",
        "run_id": run_id,
        "attempt": 1,
        "container_id": "c0ffee1",
        "reason": "engine_unavailable",
        "error": "connection reset",
        "log_level": "warning",
    }
    recorded = row(runner, run_id)
    assert (recorded.status, recorded.container_id, recorded.finished_at) == (
        "running",
        "c0ffee1",
        None,
    )
    assert not [e for e in logs if e["event"] in {f"run.{s.value}" for s in Status}]
    assert heard.ended == []
    assert [r.status for _, r in heard.reports] == ["started"]
    assert "remove" not in engine.names()
    assert engine.created() == 1


def test_events_of_a_run_carry_its_job_and_run_id(tmp_path: Path) -> None:
    """Every event logged inside a run's thread is bound to job and run_id."""
    runner, _, entry = new_runner(
        FakeEngine(FakeClock(), output_chunks=[("stdout", b"x\n")]), tmp_path
    )
    run_id, logs = run_one(runner, entry)
    inside = [e for e in logs if e["event"] in ("run.started", "run.output", "run.succeeded")]
    assert len(inside) == 3
    assert {(e["job"], e["run_id"]) for e in inside} == {("j", run_id)}


def test_a_tools_result_joins_run_succeeded_but_never_overrides_its_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ops tool's result keys are added to run.succeeded; a key the daemon sets itself
    (attempt, container_id) keeps the daemon's value."""
    real_plan = RunJob.plan

    def plan(job: RunJob, ctx: PlanContext) -> Plan:
        (step,) = real_plan(job, ctx).steps
        assert isinstance(step, RunContainer)
        return Plan(steps=(RunContainer(step.spec, tool="backup"),))

    monkeypatch.setattr(RunJob, "plan", plan)
    result = b'@crontainer {"result": {"archive": "a.tar", "bytes": 10, "attempt": 99, "container_id": "x"}}\n'
    engine = FakeEngine(FakeClock(), output_chunks=[("stderr", result)])
    runner, _, entry = new_runner(engine, tmp_path)
    _, logs = run_one(runner, entry)
    end = only_end(logs)
    assert (end["event"], end["archive"], end["bytes"]) == ("run.succeeded", "a.tar", 10)
    assert (end["attempt"], end["container_id"]) == (1, "c0ffee1")


def test_a_bug_in_a_runs_thread_ends_that_run_only(tmp_path: Path) -> None:
    """A bug after the attempt ended (here: the metrics hook raises) is run.crashed; the run
    leaves the runner and frees its slot, so the next run starts (max_concurrent_runs = 1)."""
    config = make_config(tmp_path, daemon="max_concurrent_runs = 1")
    engine = FakeEngine(FakeClock())
    crashes = [RuntimeError("metrics bug")]

    def on_ended(job: str, status: str, at: datetime, duration: float | None) -> None:
        if crashes:
            raise crashes.pop()

    runner = Runner(
        engine,
        config.daemon,
        engine.clock,
        "ops:1",
        open_history(config),
        listeners=[Hooks(on_ended)],
    )
    first, logs = run_one(runner, config.jobs["j"])
    assert [e["log_level"] for e in events(logs, "run.crashed")] == ["error"]
    assert {(e["job"], e["run_id"]) for e in events(logs, "run.crashed")} == {("j", first)}
    assert runner.active() == 0
    second, logs = run_one(runner, config.jobs["j"])
    assert [e["run_id"] for e in events(logs, "run.succeeded")] == [second]
    assert not events(logs, "run.queued")


def test_a_container_a_run_stops_is_recorded_under_that_run_until_started_again(
    tmp_path: Path,
) -> None:
    """A backup with stop = ["app"]: while its archive runs, the state holds (run_id, app),
    written at the stop; once app is started again the record is gone."""
    config = backup_stopping_app(tmp_path)
    engine = FakeEngine(FakeClock())
    history = open_history(config)
    runner = Runner(engine, config.daemon, engine.clock, "ops:1", history)
    seen: list[list[tuple[str, str]]] = []
    engine.on_start = lambda: seen.append(history.still_stopped())
    with structlog.testing.capture_logs(processors=CAPTURE):
        run_id = runner.submit(config.jobs["b"], SCHEDULED)
        ended(runner)
    assert seen[0] == [(str(run_id), "app")]  # at the archive's start
    assert [a for n, a in engine.calls if n in ("stop", "start")][-1] == "app"
    assert history.still_stopped() == []


def test_a_logship_runs_checkpoints_are_kept_in_the_state_database(tmp_path: Path) -> None:
    """What a logship run's tool reports as delivered is stored under the job in the
    runner's history (the next run starts there)."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n'
        '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\ncontainers = ["web"]\n'
        '[jobs.s.sink]\ntype = "file"\nvolume = "shipped"\npath = "out.ndjson"\n'
    )
    config = load_config(path, {})
    mark = {"ns": 5, "skip": 1}
    engine = FakeEngine(
        FakeClock(),
        output_chunks=[
            ("stderr", b'@crontainer {"checkpoint": {"container:web:stdout": ' + json.dumps(mark).encode() + b"}}\n"),
            ("stderr", b'@crontainer {"result": {"lines": 1}}\n'),
        ],
    )  # fmt: skip
    history = open_history(config)
    runner = Runner(engine, config.daemon, engine.clock, "ops:1", history)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["s"], SCHEDULED)
        ended(runner)
    assert [e["lines"] for e in events(logs, "run.succeeded")] == [1]
    assert history.tool_state("s") == {"container:web:stdout": mark}


def test_a_backups_stored_and_read_bytes_are_kept_in_the_history(tmp_path: Path) -> None:
    """A backup run's result (the archive's bytes, tar's data bytes) is stored with its
    attempt (the status page charts them); a run of another kind stores none."""
    config = backup_stopping_app(tmp_path)
    result = (
        b'@crontainer {"result": {"archive": "b.tar.gz", "bytes": 2048, "data_bytes": 8192,'
        b' "files": 3, "encrypted": false, "sha256": "00", "archive_s": 1.5}}\n'
    )
    engine = FakeEngine(FakeClock(), output_chunks=[("stderr", result)])
    history = open_history(config)
    runner = Runner(engine, config.daemon, engine.clock, "ops:1", history)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_id = runner.submit(config.jobs["b"], SCHEDULED)
        ended(runner)
    assert [e["bytes"] for e in events(logs, "run.succeeded")] == [2048]
    (record,) = history.job_runs("b", 10)
    assert (record.run_id, record.stored_bytes, record.read_bytes) == (run_id, 2048, 8192)
    shown = run_json(record)  # crontainer history --json
    assert (shown["stored_bytes"], shown["read_bytes"]) == (2048, 8192)


def test_backup_sizes_read_tar_and_restic_results() -> None:
    """The tar tool's bytes and data_bytes, restic's bytes_added and bytes_processed; what
    is missing or not a count is None."""
    assert backup_sizes({"bytes": 5, "data_bytes": 9}) == (5, 9)
    assert backup_sizes({"bytes": 5, "data_bytes": None}) == (5, None)
    assert backup_sizes({"bytes_added": 7, "bytes_processed": 70}) == (7, 70)
    assert backup_sizes({"bytes": True, "data_bytes": -1}) == (None, None)
    assert backup_sizes({}) == (None, None)
