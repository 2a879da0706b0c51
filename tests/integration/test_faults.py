"""Faults on the real engine: a second daemon, kill -9 mid-run, runs that ended meanwhile."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import Daemon, PrivateEngine, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def ours(engine: docker.DockerClient, name: str) -> list[str]:
    return [
        c.name
        for c in engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={name}"})
    ]


def test_a_second_daemon_with_the_same_name_refuses_and_a_killed_ones_lock_frees(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Same [daemon] name on the same engine: exit 1 with a clear error; after kill -9 of the
    holder, a successor starts."""
    jobs = run_job("tick", "true", schedule="@every 2s")
    first = start_daemon(jobs)
    first.log.wait_for(event("daemon.started"))
    second = start_daemon(jobs, name=first.name)
    assert second.wait_exit(30) == 1
    failed = second.log.wait_for(event("daemon.failed"))[0]
    assert failed["reason"] == "already_running"
    assert f"{first.name}.lock" in failed["error"]
    assert not second.log.matching(event("run.started"))
    first.proc.kill()  # SIGKILL: no clean-up by the daemon
    first.proc.wait(10)
    third = start_daemon(jobs, name=first.name)
    third.log.wait_for(event("daemon.started"), timeout=20)
    third.log.wait_for(event("run.succeeded", job="tick"))
    third.signal(signal.SIGTERM)
    assert third.wait_exit(30) == 0
    assert ours(engine, first.name) == []


def test_kill_9_mid_run_then_restart_adopts_the_run_and_records_its_true_outcome(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """The successor waits for the container the dead daemon started, records exit 0, removes it."""
    jobs = run_job(
        "slow", ["sh", "-c", "sleep 4; echo finished"], schedule="@every 1h", run_on_start=True
    )
    first = start_daemon(jobs)
    started = first.log.wait_for(event("run.started", job="slow"))[0]
    deadline = time.monotonic() + 15
    while not (
        found := engine.containers.list(filters={"label": f"crontainer.run_id={started['run_id']}"})
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    found[0].pause()  # it cannot end before the successor is there to adopt it
    first.proc.kill()
    first.proc.wait(10)
    second = start_daemon(
        run_job("slow", ["sh", "-c", "sleep 4; echo finished"], schedule="@every 1h"),
        name=first.name,
    )
    adopted = second.log.wait_for(event("run.adopted", run_id=started["run_id"]), timeout=20)[0]
    found[0].unpause()
    assert adopted["attempt"] == 1
    done = second.log.wait_for(event("run.succeeded", run_id=started["run_id"]), timeout=20)[0]
    assert done["exit_code"] == 0
    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0
    rows = [r for r in second.history("slow") if r["run_id"] == started["run_id"]]
    assert [(r["attempt"], r["status"], r["exit_code"]) for r in rows] == [(1, "succeeded", 0)]
    assert ours(engine, first.name) == []


def test_a_run_that_ended_while_the_daemon_was_dead_is_settled_from_its_exit_code(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """kill -9 mid-run; the container exits 3 meanwhile; the successor records failed/3 and
    removes it."""
    first = start_daemon(
        run_job("short", ["sh", "-c", "sleep 2; exit 3"], schedule="@every 1h", run_on_start=True)
    )
    started = first.log.wait_for(event("run.started", job="short"))[0]
    deadline = time.monotonic() + 15
    while not (
        found := engine.containers.list(filters={"label": f"crontainer.run_id={started['run_id']}"})
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first.proc.kill()
    first.proc.wait(10)
    found[0].wait(timeout=30)  # it ends while no daemon watches
    second = start_daemon(run_job("short", "true", schedule="@every 1h"), name=first.name)
    settled = second.log.wait_for(event("run.settled", run_id=started["run_id"]), timeout=20)[0]
    assert (settled["status"], settled["exit_code"]) == ("failed", 3)
    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0
    rows = [r for r in second.history("short") if r["run_id"] == started["run_id"]]
    assert [(r["status"], r["exit_code"], r["reason"]) for r in rows] == [
        ("failed", 3, "settled_after_restart")
    ]
    assert ours(engine, first.name) == []


def test_engine_restart_while_jobs_run_every_two_seconds(
    start_daemon: Start, private_engine: PrivateEngine
) -> None:
    """dockerd restarts under the daemon: engine.unavailable once, engine.available, the schedule
    goes on; every due time is recorded once (nothing doubled), nothing left running or leaked."""
    daemon = start_daemon(
        run_job("tick", ["sh", "-c", "sleep 1; echo ok"], schedule="@every 2s"),
        daemon='ops_image = "busybox:latest"\nshutdown_grace = "5s"',
        env={"DOCKER_HOST": private_engine.host},
    )
    log = daemon.log
    log.wait_for(event("run.succeeded", job="tick"), timeout=30, count=2)
    private_engine.restart()
    log.wait_for(event("engine.unavailable"), timeout=30)
    back = log.wait_for(event("engine.available"), timeout=60)[0]
    mark = log.events.index(back)
    deadline = time.monotonic() + 30
    while sum(1 for e in log.events[mark:] if e.get("event") == "run.succeeded") < 2:
        assert time.monotonic() < deadline, "the schedule did not go on after the engine came back"
        time.sleep(0.2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert len(log.matching(event("engine.unavailable"))) == 1
    rows = daemon.history("tick")
    assert rows
    assert all(
        r["status"] in {"succeeded", "failed", "missed", "cancelled", "skipped"} for r in rows
    ), rows
    missed = [r for r in rows if r["status"] == "missed"]
    assert all(r["reason"] == "engine_unavailable" for r in missed)
    due_times = [(r["scheduled_at"], r["attempt"]) for r in rows]
    assert len(due_times) == len(set(due_times)), "a due time was run twice"
    leftovers = private_engine.client.containers.list(
        all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}
    )
    assert leftovers == []
