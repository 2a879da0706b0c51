"""Execs prepared ahead on the real engine (20.10): the run starts the very exec created
ahead; an exec created before its container restarted is gone (the engine drops a
container's execs when it stops), and the run falls back to a new one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest
import structlog

from scheduler.clock import SystemClock
from scheduler.docker_engine import DockerEngine
from scheduler.history import History
from scheduler.runner import Runner
from scheduler.settings import load_config

from .conftest import BUSYBOX, TEST_LABELS, unique

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    """Wait (bounded) for ``check`` to hold."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


@pytest.fixture
def app(engine: docker.DockerClient) -> Iterator[Any]:
    """A running busybox container to exec in; removed after the test."""
    container = engine.containers.run(
        BUSYBOX, ["sleep", "3600"], name=unique("t-ahead"), detach=True, labels=TEST_LABELS
    )
    yield container
    container.remove(force=True)


def test_the_run_starts_the_exec_made_ahead_and_a_restart_between_falls_back(
    tmp_path: Path, engine: docker.DockerClient, app: Any
) -> None:
    """Prepared, then run: the engine shows the prepared exec started and ended (exit 0).
    Prepared, the container restarted, then run: the engine refuses that exec's start (it
    dropped it), run.exec_unused says start_refused, and the run succeeds with a new exec."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "{unique("ahead")}"\nstate_dir = "{tmp_path}/state"\n\n'
        f'[jobs.x]\nkind = "exec"\nschedule = "0 0 1 1 *"\ncontainer = "{app.name}"\n'
        'command = ["sh", "-c", "echo ahead"]\n'
    )
    config = load_config(path, {})
    entry = config.jobs["x"]
    history = History.open(config.daemon.state_dir)
    runner = Runner(DockerEngine.connect(60), config.daemon, SystemClock(), BUSYBOX, history)
    logs: list[Any] = []

    def named(name: str) -> list[Any]:
        return [e for e in logs if e["event"] == name]

    def run_once(number: int, *, restart: bool) -> dict[str, Any]:
        """Prepare the run of now, (restart the container,) run it; its run.exec_prepared."""
        at = datetime.now(UTC)
        runner.execs_ahead.prepare(entry, at, at)
        wait_until(lambda: len(named("run.exec_prepared")) == number, 30)
        made: dict[str, Any] = named("run.exec_prepared")[-1]
        if restart:
            app.restart(timeout=0)
        runner.dispatch(entry, at)
        wait_until(lambda: runner.active() == 0, 60)
        return made

    try:
        with structlog.testing.capture_logs() as captured:
            logs = captured
            first = run_once(1, restart=False)
            assert engine.api.exec_inspect(first["exec_id"])["ExitCode"] == 0
            made = run_once(2, restart=True)
        runner.stop_preparing()
    finally:
        history.close()
    (refused,) = [e for e in logs if e["event"] == "run.exec_unused"]
    assert (refused["exec_id"], refused["reason"]) == (made["exec_id"], "start_refused")
    succeeded = [e for e in logs if e["event"] == "run.succeeded"]
    assert len(succeeded) == 2
    lines = [e["line"] for e in logs if e["event"] == "run.output"]
    assert lines == ["ahead", "ahead"]
