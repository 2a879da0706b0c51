"""One run against a scripted engine: outcome, labels, and removal on every path."""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from jobs.plan import PullPolicy
from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_RUN, ExitStatus
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.runner import Runner
from scheduler.settings import Config, load_config

from .fakes import FakeClock, FakeEngine

SCHEDULED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(
        '[daemon]\nname = "d1"\n'
        '[jobs.j]\nkind = "run"\nimage = "img:1"\nschedule = "@daily"\n'
        'timeout = "10m"\nstop_grace = "3s"\npull = "always"\n'
    )
    return load_config(path, {})


def run_once(config: Config, engine: FakeEngine) -> list[MutableMapping[str, Any]]:
    runner = Runner(engine, config.daemon, engine.clock, "ops:1")
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
    assert engine.created_labels == {LABEL_DAEMON: "d1", LABEL_JOB: "j", LABEL_RUN: run_id}
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
    assert end["container_id"] == "c0ffee"


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
    runner = Runner(engine, config.daemon, engine.clock, "ops:1")
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
    path = tmp_path / "c.toml"
    path.write_text(
        "[daemon]\nmax_concurrent_runs = 1\n"
        '[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\nstop_grace = "1s"\n'
    )
    config = load_config(path, {})
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    runner = Runner(engine, config.daemon, engine.clock, "ops:1")
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
    cancelled = [e for e in logs if e["event"] == "run.cancelled"]
    assert sorted(e.get("started", True) for e in cancelled) == [False, True]
    assert engine.names().count("create") == 1
    assert engine.names().count("remove") == 1
