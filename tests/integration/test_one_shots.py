"""One-shot (``@at``) jobs on the real engine, across daemon restarts on one state directory:
each instant runs exactly once, and ``crontainer jobs`` shows it done."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import Daemon, event, run_job
from .helpers import cli

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def stop(daemon: Daemon, engine: docker.DockerClient) -> None:
    """SIGTERM, exit 0, and none of the daemon's containers left."""
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )


def at(moment: datetime) -> str:
    """An ``@at`` schedule for ``moment``, in whole seconds with a non-UTC offset."""
    shown = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return "@at " + shown.astimezone(timezone(timedelta(hours=2))).isoformat()


def scheduled(daemon: Daemon, job: str) -> dict[str, object]:
    """The ``job.scheduled`` event of ``job`` at the daemon's start."""
    found: dict[str, object] = daemon.log.wait_for(event("job.scheduled", job=job))[0]
    return found


def test_an_at_job_runs_exactly_once_across_a_restart(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """An @at a few seconds ahead runs once (trigger schedule) and is done; the next daemon
    on the same state directory neither runs nor catches it up (catch_up = true), plans no
    next run, and `crontainer jobs` shows it done with its outcome."""
    schedule = at(datetime.now(UTC) + timedelta(seconds=7))  # after the start-up
    jobs = run_job("once", ["echo", "one shot"], schedule=schedule, catch_up=True)
    first = start_daemon(jobs)
    ran = first.log.wait_for(event("run.succeeded", job="once"), timeout=25)[0]
    done = first.log.wait_for(event("job.one_shot_done", job="once"))[0]
    stop(first, engine)
    instant = datetime.fromisoformat(schedule.removeprefix("@at "))
    assert (done["outcome"], done["run_id"]) == ("succeeded", ran["run_id"])
    assert datetime.fromisoformat(done["at"]) == instant
    rows = first.history("once")
    assert [(r["run_id"], r["trigger"], r["status"]) for r in rows] == [
        (ran["run_id"], "schedule", "succeeded")
    ]
    assert datetime.fromisoformat(rows[0]["scheduled_at"]) == instant

    second = start_daemon(jobs, name=first.name)
    second.log.wait_for(event("daemon.started"))
    assert scheduled(second, "once")["next_run"] is None
    shown = json.loads(cli(second, "jobs", "--json"))["once"]
    table = cli(second, "jobs")
    stop(second, engine)
    assert shown["next_run"] is None
    assert shown["one_shot"]["done"] is True
    assert (shown["one_shot"]["outcome"], shown["one_shot"]["run_id"]) == (
        "succeeded",
        ran["run_id"],
    )
    assert "done: succeeded" in next(line for line in table.splitlines() if line.startswith("once"))
    assert second.log.matching(lambda e: e.get("event", "").startswith(("run.", "job.catch"))) == []
    assert len(second.history("once")) == 1


def test_a_past_at_job_is_caught_up_once_and_not_again(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """An @at in the past that never ran: with catch_up it runs once at the start (trigger
    catch_up); without it, it is done as missed; a second start runs neither."""
    schedule = at(datetime.now(UTC) - timedelta(hours=1))
    jobs = run_job("late", ["echo", "caught up"], schedule=schedule, catch_up=True) + run_job(
        "off", ["echo", "never"], schedule=schedule
    )
    first = start_daemon(jobs)
    ran = first.log.wait_for(event("run.succeeded", job="late"), timeout=20)[0]
    first.log.wait_for(event("job.one_shot_done", job="late"))
    missed = first.log.wait_for(event("job.one_shot_missed", job="off"))[0]
    stop(first, engine)
    assert (missed["outcome"], missed["reason"], missed["run_id"]) == (
        "missed",
        "catch_up_off",
        None,
    )
    assert [e["job"] for e in first.log.matching(event("job.catch_up"))] == ["late"]
    rows = first.history()
    assert [(r["job"], r["run_id"], r["trigger"]) for r in rows] == [
        ("late", ran["run_id"], "catch_up")
    ]

    second = start_daemon(jobs, name=first.name)
    second.log.wait_for(event("daemon.started"))
    shown = json.loads(cli(second, "jobs", "--json"))
    stop(second, engine)
    assert second.log.matching(lambda e: e.get("event", "").startswith(("run.", "job.catch"))) == []
    assert second.log.matching(lambda e: e.get("event", "").startswith("job.one_shot")) == []
    assert [(r["job"], r["run_id"]) for r in second.history()] == [("late", ran["run_id"])]
    assert (shown["late"]["one_shot"]["outcome"], shown["off"]["one_shot"]["outcome"]) == (
        "succeeded",
        "missed",
    )
    assert shown["off"]["one_shot"]["reason"] == "catch_up_off"
