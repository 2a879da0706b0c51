"""One run against a scripted engine: outcome, labels, and removal on every path."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from jobs.base import NotifySpec, PlanContext
from jobs.plan import PullPolicy, RunContainer, WithStopped
from scheduler.clock import Clock, SystemClock
from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_JOB, LABEL_RUN, ExitStatus
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.history import History, HistoryError
from scheduler.notify import Notifier, RunReport
from scheduler.runner import Runner
from scheduler.runs import Attempt, Cancellation, Status
from scheduler.settings import Config, load_config
from scheduler.status import Health

from .fakes import FakeClock, FakeEngine
from .helpers import Hooks, backup_stopping_app, events, open_history

SCHEDULED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_config(tmp_path: Path, job: str = "", daemon: str = "") -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d1"\nstate_dir = "{tmp_path}/state"\n{daemon}\n'
        '[jobs.j]\nkind = "run"\nimage = "img:1"\nschedule = "@daily"\n'
        f'timeout = "10m"\nstop_grace = "3s"\npull = "always"\n{job}\n'
    )
    return load_config(path, {})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


def make_runner(config: Config, engine: FakeEngine, clock: Clock | None = None) -> Runner:
    history = open_history(config)  # closed after the test
    return Runner(engine, config.daemon, clock or engine.clock, "ops:1", history)


def run_once(config: Config, engine: FakeEngine) -> list[MutableMapping[str, Any]]:
    runner = make_runner(config, engine)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    assert runner.active() == 0
    return logs


def final(logs: list[MutableMapping[str, Any]]) -> MutableMapping[str, Any]:
    ends = [
        e
        for e in logs
        if e["event"] in ("run.succeeded", "run.failed", "run.timed_out", "run.cancelled")
    ]
    assert len(ends) == 1, logs
    return ends[0]


def test_success_runs_the_steps_in_order_with_our_labels(config: Config) -> None:
    """pull policy → create (labelled) → attach → start → wait → remove; run.succeeded."""
    engine = FakeEngine(FakeClock(), output_chunks=[("stdout", b"hi\n")])
    logs = run_once(config, engine)
    assert engine.names() == ["ensure_image", "create", "output", "start", "wait", "remove"]
    assert engine.calls[0] == ("ensure_image", ("img:1", PullPolicy.ALWAYS))
    started = next(e for e in logs if e["event"] == "run.started")
    run_id = started["run_id"]
    assert engine.created_labels == {
        LABEL_DAEMON: "d1",
        LABEL_JOB: "j",
        LABEL_RUN: run_id,
        LABEL_ATTEMPT: "1",
    }
    assert engine.calls[1] == ("create", f"d1-j-{run_id}")
    assert started["scheduled_at"] == SCHEDULED.isoformat()
    assert [e["line"] for e in logs if e["event"] == "run.output"] == ["hi"]
    end = final(logs)
    assert (end["event"], end["exit_code"], end["run_id"], end["job"]) == (
        "run.succeeded",
        0,
        run_id,
        "j",
    )
    assert end["container_id"] == "c0ffee1"


def test_nonzero_exit_fails_with_the_exit_code(config: Config) -> None:
    """Exit 3 is run.failed with exit_code 3; the container is still removed."""
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(3))
    end = final(run_once(config, engine))
    assert (end["event"], end["exit_code"]) == ("run.failed", 3)
    assert engine.names()[-1] == "remove"


def test_oom_kill_is_a_failure_with_its_reason(config: Config) -> None:
    """A container killed for memory ends failed with reason oom_killed."""
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(137, oom_killed=True))
    end = final(run_once(config, engine))
    assert (end["event"], end["reason"], end["exit_code"]) == ("run.failed", "oom_killed", 137)


@pytest.mark.parametrize("step", ["output", "start", "wait"])
def test_a_failing_step_after_create_still_removes_the_container(config: Config, step: str) -> None:
    """No leaked container on any error path after the container exists."""
    engine = FakeEngine(FakeClock(), fail={step: EngineError(f"{step} said no")})
    end = final(run_once(config, engine))
    assert end["event"] == "run.failed"
    assert end["error"] == f"{step} said no"
    assert engine.names()[-1] == "remove"


@pytest.mark.parametrize("step", ["ensure_image", "create"])
def test_a_run_that_cannot_create_its_container_fails_clearly(config: Config, step: str) -> None:
    """No image or a refused create: run.failed with the engine's reason, nothing to remove."""
    engine = FakeEngine(FakeClock(), fail={step: EngineUnavailableError("engine gone")})
    end = final(run_once(config, engine))
    assert (end["event"], end["error"]) == ("run.failed", "engine gone")
    assert end["container_id"] is None
    assert "remove" not in engine.names()


def test_timeout_stops_then_records_timed_out(config: Config) -> None:
    """A container that never ends is stopped with the job's grace after its timeout."""
    engine = FakeEngine(FakeClock(), exit_status=None)
    logs = run_once(config, engine)
    end = final(logs)
    assert (end["event"], end["reason"], end["exit_code"]) == ("run.timed_out", "timeout", 143)
    assert ("stop", 3.0) in engine.calls
    before_stop = engine.calls[: engine.names().index("stop")]
    assert sum(float(str(arg)) for name, arg in before_stop if name == "wait") == 600
    assert engine.names()[-1] == "remove"
    assert any(e["event"] == "run.stopping" for e in logs)


def test_cancel_stops_the_running_container_and_records_cancelled(config: Config) -> None:
    """Shutdown cancels a run: stop signal with the job's grace, run.cancelled, removed."""
    engine = FakeEngine(FakeClock(), exit_status=None)
    runner = make_runner(config, engine)
    engine.on_start = runner.cancel_all  # cancel while the container runs
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    end = final(logs)
    assert (end["event"], end["reason"]) == ("run.cancelled", "daemon_stopping")
    assert ("stop", 3.0) in engine.calls
    assert engine.names()[-1] == "remove"


def test_runs_beyond_the_global_cap_wait_and_are_cancellable(tmp_path: Path) -> None:
    """With max_concurrent_runs = 1 a second run waits; cancelling frees it without starting."""
    config = make_config(tmp_path, 'concurrency = "allow"', daemon="max_concurrent_runs = 1")
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    runner = make_runner(config, engine)
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        assert started.wait(5)
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.active() == 2
        assert engine.names().count("create") == 1  # the second is queued, not started
        runner.cancel_all()
        assert runner.join(10)
    assert len([e for e in logs if e["event"] == "run.cancelled"]) == 2
    rows = runner.history.runs("j")
    assert sorted((r.status, r.started_at is None, r.reason) for r in rows) == [
        ("cancelled", False, "daemon_stopping"),  # the running one
        ("cancelled", True, "daemon_stopping"),  # the queued one never started
    ]
    assert engine.names().count("create") == 1
    assert engine.names().count("remove") == 1


CAPTURE = [structlog.contextvars.merge_contextvars]


def overlapping(
    tmp_path: Path, policy: str
) -> tuple[FakeEngine, Runner, list[MutableMapping[str, Any]]]:
    """Submit a second run while the first one still runs."""
    config = make_config(tmp_path, f'concurrency = "{policy}"')
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    runner = make_runner(config, engine)
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], SCHEDULED)
        assert started.wait(5)
        second = runner.submit(config.jobs["j"], SCHEDULED)
        runner.cancel_all()
        assert runner.join(10)
    assert first is not None
    return engine, runner, [dict(e, first=first, second=second) for e in logs]


def test_forbid_skips_a_run_while_the_previous_one_runs(tmp_path: Path) -> None:
    """concurrency = forbid: run.skipped with the reason and the blocking run; recorded."""
    engine, runner, logs = overlapping(tmp_path, "forbid")
    skipped = events(logs, "run.skipped")
    assert len(skipped) == 1
    assert skipped[0]["reason"] == "previous run still running"
    assert skipped[0]["running_run_id"] == skipped[0]["first"]
    assert skipped[0]["second"] is None
    assert engine.created() == 1
    statuses = {r.status for r in runner.history.runs("j")}
    assert statuses == {"skipped", "cancelled"}


def test_allow_runs_both(tmp_path: Path) -> None:
    """concurrency = allow: the second run starts while the first one runs."""
    engine, _, logs = overlapping(tmp_path, "allow")
    assert len(events(logs, "run.started")) == 2
    assert engine.created() == 2
    assert not events(logs, "run.skipped")


def test_replace_stops_the_previous_run_before_starting(tmp_path: Path) -> None:
    """concurrency = replace: run.replacing names the old run; it ends cancelled (reason
    replaced), then the new one starts."""
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    config = make_config(tmp_path, 'concurrency = "replace"')
    runner = make_runner(config, engine)
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], SCHEDULED)
        assert started.wait(5)
        engine.on_start = None
        engine.blocking = False
        engine.exit_status = ExitStatus(0)
        second = runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    order = [
        (e["event"], e["run_id"])
        for e in logs
        if e["event"] in ("run.cancelled", "run.started", "run.succeeded")
    ]
    assert order == [
        ("run.started", first),
        ("run.cancelled", first),
        ("run.started", second),
        ("run.succeeded", second),
    ]
    assert events(logs, "run.cancelled")[0]["reason"] == "replaced"
    replacing = events(logs, "run.replacing")
    assert [(e["job"], e["run_id"], e["replaced_run_ids"]) for e in replacing] == [
        ("j", second, [first])
    ]


def test_retries_until_success_with_capped_backoff(tmp_path: Path) -> None:
    """Two failures then success: 3 attempts, each its own container, delays 10 s then 15 s
    (20 s capped by retry_delay_max)."""
    config = make_config(tmp_path, 'retries = 4\nretry_delay = "10s"\nretry_delay_max = "15s"')
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(1), ExitStatus(1), ExitStatus(0)])
    logs = run_once(config, engine)
    assert [e["attempt"] for e in events(logs, "run.failed")] == [1, 2]
    assert [e["attempt"] for e in events(logs, "run.succeeded")] == [3]
    assert [e["delay_s"] for e in events(logs, "run.retrying")] == [10.0, 15.0]
    assert engine.created() == 3
    assert engine.names().count("remove") == 3
    rows = sorted(History.open(config.daemon.state_dir).runs("j"), key=lambda r: r.attempt)
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert len({r.run_id for r in rows}) == 1


def test_retries_only_for_listed_exit_codes(tmp_path: Path) -> None:
    """retry_exit_codes = [75]: exit 75 is retried, exit 2 is final."""
    config = make_config(tmp_path, 'retries = 3\nretry_delay = "1s"\nretry_exit_codes = [75]')
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(75), ExitStatus(2), ExitStatus(0)])
    logs = run_once(config, engine)
    assert [(e["attempt"], e["exit_code"]) for e in events(logs, "run.failed")] == [(1, 75), (2, 2)]
    assert engine.created() == 2


def test_a_run_later_than_its_starting_deadline_is_missed(tmp_path: Path) -> None:
    """Scheduled 2 min ago with a 1 min deadline: run.missed, no container."""
    config = make_config(tmp_path, 'starting_deadline = "1m"')
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], engine.clock.now() - timedelta(minutes=2))
        assert runner.join(10)
    missed = events(logs, "run.missed")
    assert missed[0]["reason"] == "starting_deadline"
    assert missed[0]["lag_s"] == 120.0
    assert engine.created() == 0
    assert [r.status for r in runner.history.runs("j")] == ["missed"]


def test_a_queued_run_is_missed_when_no_slot_frees_in_time(tmp_path: Path) -> None:
    """At the global cap a run waits for its starting deadline, then is recorded missed."""
    config = make_config(
        tmp_path,
        'starting_deadline = "0.3s"\nconcurrency = "allow"',
        daemon="max_concurrent_runs = 1",
    )
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    clock = SystemClock()
    runner = make_runner(config, engine, clock)
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], clock.now())
        assert started.wait(5)
        queued = runner.submit(config.jobs["j"], clock.now())
        assert queued is not None
        deadline = time.monotonic() + 10
        while not events(logs, "run.missed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runner.cancel_all()
        assert runner.join(10)
    assert events(logs, "run.queued")[0]["max_concurrent_runs"] == 1
    assert events(logs, "run.missed")[0]["run_id"] == queued


def test_history_keeps_the_last_runs_of_each_outcome(tmp_path: Path) -> None:
    """history_limit = 2: the newest two successes and the newest two failures stay."""
    config = make_config(tmp_path, "history_limit = 2")
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(0)] * 3 + [ExitStatus(1)] * 3)
    runner = make_runner(config, engine)
    run_ids: list[str] = []
    for _ in range(6):
        run_ids.append(str(runner.submit(config.jobs["j"], SCHEDULED)))
        assert runner.join(10)
        engine.clock.advance(60)
    rows = runner.history.runs("j")
    assert sorted(r.status for r in rows) == ["failed", "failed", "succeeded", "succeeded"]
    # which, not how many: the newest two of each outcome, by identity
    assert sorted(r.run_id for r in rows) == sorted([*run_ids[1:3], *run_ids[4:6]])
    assert runner.history.marks()["j"].last_status == "failed"
    assert runner.history.marks()["j"].last_success_at is not None


def test_with_stopped_stops_in_order_and_starts_again_in_reverse_on_failure(tmp_path: Path) -> None:
    """Only running containers are stopped (recorded first); the body fails; they are started
    again in reverse order and their records are removed."""
    config = make_config(tmp_path)
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(2), not_running={"idle"})
    runner = make_runner(config, engine)
    spec = config.jobs["j"].job.plan(PlanContext(job="j", ops_image="ops")).steps[0]
    assert isinstance(spec, RunContainer)
    step = WithStopped(containers=("app", "idle", "db"), body=(spec,), grace=5.0)
    attempt = Attempt(
        "r1",
        "j",
        config.jobs["j"].job,
        Cancellation(),
        on_stop=lambda name: runner.history.mark_stopped("r1", name, SCHEDULED),
        on_started=lambda name: runner.history.unmark_stopped("r1", name),
    )
    recorded: list[list[tuple[str, str]]] = []
    engine.on_start = lambda: recorded.append(runner.history.still_stopped())
    outcome = runner.steps.run(attempt, step)
    assert outcome.exit_code == 2
    order = [(n, a) for n, a in engine.calls if n in ("stop", "start", "select")]
    assert order[:5] == [  # every selector resolved before the first stop
        ("select", "app"),
        ("select", "idle"),
        ("select", "db"),
        ("stop", 5.0),
        ("stop", 5.0),
    ]
    starts = [a for n, a in engine.calls if n == "start"]
    assert starts[-2:] == ["db", "app"]  # reverse order, after the body's own container
    assert sorted(recorded[0]) == [("r1", "app"), ("r1", "db")]  # recorded while stopped
    assert runner.history.still_stopped() == []


def test_a_run_whose_thread_cannot_start_is_failed_and_blocks_nothing(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the process's thread limit a run cannot start: it is recorded failed with the
    reason, and the job's next run starts normally (it is not skipped as overlapping)."""
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine)
    start = threading.Thread.start
    refused: list[str] = []

    def limited(thread: threading.Thread) -> None:
        if thread.name.startswith("run-") and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", limited)
    with structlog.testing.capture_logs() as logs:
        assert runner.submit(config.jobs["j"], SCHEDULED) is None
        assert runner.active() == 0
        second = runner.submit(config.jobs["j"], SCHEDULED + timedelta(days=1))
        assert second is not None
        assert runner.join(10)
    assert refused
    failed = [e for e in logs if e["event"] == "run.failed"]
    assert [(e["reason"], e["error"]) for e in failed] == [
        ("thread_start_failed", "can't start new thread")
    ]
    assert not [e for e in logs if e["event"] == "run.skipped"]
    statuses = [(r.run_id == second, r.status, r.reason) for r in runner.history.runs("j")]
    assert sorted(statuses) == [(False, "failed", "thread_start_failed"), (True, "succeeded", None)]


def test_a_full_state_disk_stops_no_container_and_is_a_health_failure(tmp_path: Path) -> None:
    """The state database refuses writes (a full disk): a backup does not stop a container
    whose stop it cannot record (a successor could not start it again) and fails saying so;
    /healthz reports the reason; the many failed writes of the run add no event to the one
    that began the outage; once writes work again, history.write_recovered and the next
    backup stops and starts as usual."""
    config = backup_stopping_app(tmp_path)
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine)
    history = runner.history
    health = Health(lambda: True, lambda: None, lambda: history.write_error)
    with structlog.testing.capture_logs() as filling:
        fill_every_page(history)
    assert [e["event"] for e in filling][-1] == "history.write_failed"
    with structlog.testing.capture_logs() as logs:
        runner.submit(config.jobs["b"], SCHEDULED)
        assert runner.join(10)
        failed = [e for e in logs if e["event"] == "run.failed"]
        assert "stop" not in engine.names()
        assert [(e["reason"], e["error"]) for e in failed] == [
            (
                "state_unwritable",
                (
                    "not stopping 'app': the state database refuses writes: database or disk "
                    "is full (a successor could not start it again)"
                ),
            )
        ]
        assert health.healthy() == (
            False,
            {
                "status": "unhealthy",
                "reason": "the state database refuses writes: database or disk is full",
            },
        )
        history.connection.execute("PRAGMA max_page_count = 1000000")  # space again
        runner.submit(config.jobs["b"], SCHEDULED + timedelta(days=1))
        assert runner.join(10)
    events = [e["event"] for e in logs]
    assert events.count("history.write_failed") == 0  # said once, when the outage began
    assert events.count("history.write_recovered") == 1
    recovered = next(e for e in logs if e["event"] == "history.write_recovered")
    assert recovered["failed_writes"] > 1
    assert health.healthy() == (True, {"status": "ok"})
    calls = [(n, a) for n, a in engine.calls if n in ("stop", "start") and a in ("app", 10.0)]
    assert [n for n, _ in calls] == ["stop", "start"]
    assert [row for row in history.still_stopped() if row[1] == "app"] == []


def fill_every_page(history: History) -> None:
    """The disk is full: the file may not grow (max_page_count), and the free space left in
    its pages — runs, job marks, stopped containers, checkpoints — is used up, so every
    write that adds a row fails."""
    pages = history.connection.execute("PRAGMA page_count").fetchone()[0]
    history.connection.execute(f"PRAGMA max_page_count = {pages}")
    at = SCHEDULED
    writers: list[Callable[[int, str], None]] = [
        lambda n, x: history.record_fire(f"f{n}{x}", at),
        lambda n, x: history.record(
            f"f{n}", x, "schedule", at, status=Status.MISSED, at=at, reason=x
        ),
        lambda n, x: history.mark_stopped(f"f{n}", x, at),
        lambda n, x: history.save_tool_state(x, {f"f{n}": {}}, [], at),
    ]
    count = 0
    for write in writers:
        for size in (200, 20, 1):  # big rows first, then the crumbs of space they leave
            while True:
                count += 1
                before = history.failed_writes
                with contextlib.suppress(HistoryError):
                    write(count, "x" * size)
                if history.failed_writes > before:
                    break


def test_retries_stop_at_the_limit_and_notify_once(tmp_path: Path) -> None:
    """retries = 2 and every attempt fails: exactly 3 attempts — no 4th — and one failure
    reported after the last (not one per attempt)."""
    config = make_config(tmp_path, 'retries = 2\nretry_delay = "1s"')
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(1))
    reports: list[str] = []
    history = History.open(config.daemon.state_dir)
    runner = Runner(
        engine,
        config.daemon,
        engine.clock,
        "ops:1",
        history,
        listeners=[Hooks(report=lambda spec, report: reports.append(report.status))],
    )
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    assert [e["attempt"] for e in events(logs, "run.failed")] == [1, 2, 3]
    assert [e["attempt"] for e in events(logs, "run.retrying")] == [1, 2]
    assert engine.created() == 3
    assert reports == ["started", "failed"]


def test_a_run_exactly_at_its_starting_deadline_still_starts(tmp_path: Path) -> None:
    """Late by exactly starting_deadline: it starts (only later than the deadline is missed)."""
    config = make_config(tmp_path, 'starting_deadline = "1m"')
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], engine.clock.now() - timedelta(minutes=1))
        assert runner.join(10)
    assert events(logs, "run.missed") == []
    assert [e["lag_s"] for e in events(logs, "run.started")] == [60.0]


@pytest.mark.parametrize("status", ["skipped", "cancelled"])
def test_no_notification_for_a_skipped_or_cancelled_run(tmp_path: Path, status: str) -> None:
    """A skipped or cancelled run is neither a success nor a failure: the notifier hears of
    it, but sends nothing — no webhook, no ping."""
    notifier = Notifier("box", "cron", FakeClock())  # not started: whatever it queues stays
    spec = NotifySpec.model_validate(
        {"webhook": "http://h/hook", "ping": "http://h/ping", "on": ["failure", "success",
         "recovery", "missed"], "cooldown": 0}
    )  # fmt: skip
    notifier.report(spec, RunReport(job="j", run_id="r1", status="failed"))
    queued = notifier._queue.qsize()
    notifier.report(spec, RunReport(job="j", run_id="r2", status=status))
    assert notifier._queue.qsize() == queued
