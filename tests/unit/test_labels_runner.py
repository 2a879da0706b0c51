"""The runner's gate for label jobs (Runner.containers): a label job whose container does not
run is skipped before anything is made; the config's jobs are never checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from scheduler.engine import ContainerInfo
from scheduler.errors import EngineNotFoundError, EngineUnavailableError
from scheduler.labels.parse import PREFIX
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Rules, scan

from .fakes import FakeClock, FakeEngine
from .helpers import CAPTURE, SCHEDULED, Heard, ended, events, history_of, make_config, make_runner

if TYPE_CHECKING:
    from pathlib import Path

    from scheduler.runner import Runner

APP = ContainerInfo(
    "ab" * 32,
    "app",
    "running",
    {f"{PREFIX}ping.schedule": "@hourly", f"{PREFIX}ping.command": '"work"'},
)


def label_jobs() -> LabelJobs:
    found = scan([APP], Rules(LABEL_KINDS, (), {}))
    assert list(found.jobs) == ["app.ping"]
    return found


def runner_for(tmp_path: Path, engine: FakeEngine) -> tuple[Runner, Heard]:
    """A runner (label jobs carry their container: the scan puts it in)."""
    heard = Heard()
    runner = make_runner(make_config(tmp_path), engine, heard)
    return runner, heard


def test_a_label_job_of_a_stopped_container_is_skipped(tmp_path: Path) -> None:
    """The container is not running: run.skipped reason container_not_running with the
    container's name, recorded skipped; nothing is exec'd or created."""
    engine = FakeEngine(FakeClock(), not_running={APP.id})
    runner, heard = runner_for(tmp_path, engine)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_id = runner.submit(label_jobs().jobs["app.ping"], SCHEDULED)
        ended(runner)
    (skipped,) = events(logs, "run.skipped")
    assert (skipped["job"], skipped["run_id"], skipped["reason"], skipped["container"]) == (
        "app.ping",
        run_id,
        "container_not_running",
        "app",
    )
    assert events(logs, "run.started") == []
    assert engine.names() == ["is_running"]
    assert engine.calls == [("is_running", APP.id)]
    (row,) = history_of(runner).runs("app.ping")
    assert (row.run_id, row.status, row.reason) == (run_id, "skipped", "container_not_running")
    assert [(job, status) for job, status, _, _ in heard.ended] == [("app.ping", "skipped")]


def test_a_label_job_whose_container_is_gone_is_skipped(tmp_path: Path) -> None:
    """The engine has no such container (removed since the last scan): skipped too."""
    engine = FakeEngine(FakeClock(), fail={"is_running": EngineNotFoundError("no such container")})
    runner, _ = runner_for(tmp_path, engine)
    runner.submit(label_jobs().jobs["app.ping"], SCHEDULED)
    ended(runner)
    (row,) = history_of(runner).runs("app.ping")
    assert (row.status, row.reason) == ("skipped", "container_not_running")
    assert engine.names() == ["is_running"]


def test_an_engine_that_does_not_answer_is_no_reason_to_skip(tmp_path: Path) -> None:
    """is_running fails for another reason (the engine away): not container_not_running —
    the run goes on and meets the outage as any run does (here: its exec fails)."""
    engine = FakeEngine(
        FakeClock(),
        fail={
            "is_running": EngineUnavailableError("engine away"),
            "exec_create": EngineUnavailableError("engine away"),
        },
    )
    runner, _ = runner_for(tmp_path, engine)
    runner.submit(label_jobs().jobs["app.ping"], SCHEDULED)
    ended(runner)
    (row,) = history_of(runner).runs("app.ping")
    assert (row.status, row.reason) == ("failed", "engine_unavailable")
    assert engine.names() == ["is_running", "exec_create"]


def test_a_label_job_of_a_running_container_runs(tmp_path: Path) -> None:
    """The container runs: the command is exec'd in it by its id (the engine takes the id
    as it is, so nothing is selected first), the run succeeds."""
    engine = FakeEngine(FakeClock(), selectable=[APP])
    runner, _ = runner_for(tmp_path, engine)
    runner.submit(label_jobs().jobs["app.ping"], SCHEDULED)
    ended(runner)
    assert engine.names()[:2] == ["is_running", "exec_create"]
    assert "select" not in engine.names()
    (made,) = [arg for name, arg in engine.calls if name == "exec_create"]
    assert made[0] == APP.id  # type: ignore[index]
    assert made[1][-1] == "work"  # type: ignore[index]
    (row,) = history_of(runner).runs("app.ping")
    assert row.status == "succeeded"


def test_a_config_job_is_never_checked(tmp_path: Path) -> None:
    """A job of the config (its entry has no container): no is_running, it runs as before —
    even with label jobs known and every container reported stopped."""
    engine = FakeEngine(FakeClock(), not_running={APP.id, "app"})
    runner, _ = runner_for(tmp_path, engine)
    config = make_config(tmp_path)
    runner.submit(config.jobs["j"], SCHEDULED)
    ended(runner)
    assert "is_running" not in engine.names()
    assert "create" in engine.names()
    (row,) = history_of(runner).runs("j")
    assert row.status == "succeeded"
