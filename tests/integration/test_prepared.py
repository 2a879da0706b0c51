"""prepare_ahead on the real engine: a run job's container is made ahead and only started at
its time; one that will not be started is removed (a reload, a stop, a kill -9 then the
next start)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime

import docker
import docker.errors
import pytest

from scheduler.engine import LABEL_DAEMON, LABEL_RUN

from .conftest import Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def gone(engine: docker.DockerClient, container_id: str) -> bool:
    """The engine no longer knows the container."""
    try:
        engine.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


def test_a_prepared_container_is_started_at_its_time_and_recorded_as_usual(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """@every 2s with prepare_ahead 1s: the run is prepared (a created container labelled
    with the run's id), then that very container runs at the run's time: its output and
    outcome are the run's, recorded with its scheduled time and a start not before it; at
    SIGTERM the next prepared container is removed, nothing of the daemon's is left."""
    daemon = start_daemon(
        run_job("hello", ["echo", "hello ahead"], schedule="@every 2s", prepare_ahead="1s")
    )
    made = daemon.log.wait_for(event("run.prepared", job="hello"))[0]
    container = engine.containers.get(made["container_id"])
    assert container.status == "created"
    assert container.labels[LABEL_RUN] == made["run_id"]
    done = daemon.log.wait_for(event("run.succeeded", run_id=made["run_id"]))[0]
    assert done["container_id"] == made["container_id"]
    daemon.log.wait_for(event("run.output", run_id=made["run_id"], line="hello ahead"))
    began = daemon.log.wait_for(event("run.started", run_id=made["run_id"]))[0]
    assert began["attempt"] == 1
    assert began["lag_s"] >= 0
    daemon.log.wait_for(event("run.prepared", job="hello"), count=2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    (row,) = [r for r in daemon.history("hello") if r["run_id"] == made["run_id"]]
    assert (row["status"], row["container_id"], row["output_tail"]) == (
        "succeeded",
        made["container_id"],
        "hello ahead",
    )
    assert datetime.fromisoformat(row["started_at"]) >= datetime.fromisoformat(row["scheduled_at"])
    started = {e["run_id"] for e in daemon.log.matching(event("run.started"))}
    discarded = {e["run_id"] for e in daemon.log.matching(event("run.prepared_discarded"))}
    for each in daemon.log.matching(event("run.prepared")):  # started, or removed
        assert (each["run_id"] in started) != (each["run_id"] in discarded), each
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )


def test_a_reload_that_removes_the_job_removes_its_prepared_container(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Prepared 4 s ahead of its run (@every 5s), the job is removed from the file: its
    container is removed at the reload (reason job_removed), and that run never happens."""
    daemon = start_daemon(
        run_job("later", ["echo", "never"], schedule="@every 5s", prepare_ahead="4s")
        + run_job("other", ["true"], schedule="@every 1h"),
    )
    made = daemon.log.wait_for(event("run.prepared", job="later"))[0]
    assert not gone(engine, made["container_id"])
    text = daemon.config.read_text()
    daemon.config.write_text(
        text[: text.index("[jobs.later]")] + text[text.index("[jobs.other]") :]
    )
    daemon.signal(signal.SIGHUP)
    dropped = daemon.log.wait_for(event("run.prepared_discarded", run_id=made["run_id"]))[0]
    assert dropped["reason"] == "job_removed"
    assert gone(engine, made["container_id"])
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert not daemon.log.matching(event("run.started", run_id=made["run_id"]))
    assert not daemon.log.matching(event("run.prepared", job="later"))[1:]


def test_a_container_prepared_before_a_kill_9_is_removed_at_the_next_start(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """kill -9 with a prepared container: it stays (created, our labels, a run id without a
    record); the next daemon of that name removes it at start (run.orphan_removed)."""
    jobs = run_job("later", ["echo", "x"], schedule="@every 5s", prepare_ahead="4s")
    first = start_daemon(jobs)
    made = first.log.wait_for(event("run.prepared", job="later"))[0]
    first.proc.kill()  # SIGKILL: no clean-up by the daemon
    first.proc.wait(10)
    assert engine.containers.get(made["container_id"]).status == "created"
    second = start_daemon(jobs, name=first.name)
    removed = second.log.wait_for(event("run.orphan_removed", container_id=made["container_id"]))
    assert removed[0]["reason"] == "settled_after_restart"
    assert gone(engine, made["container_id"])
    second.log.wait_for(event("run.started", job="later"))  # the job is in the history
    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0
    assert [r for r in second.history("later") if r["run_id"] == made["run_id"]] == []
