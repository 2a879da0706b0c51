"""Exclusive locks on the real engine: two jobs on one lock, due at the same instants, never
run at the same time — judged by the times their containers wrote from inside."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from typing import Any

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import BUSYBOX, Daemon, Event, event, output_of, run_job

pytestmark = pytest.mark.integration

COLLISIONS = 30
"""Instants at which both jobs are due."""

NOW = "adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf \"%d.%06d\", s, u }'"
"""The wall clock to the microsecond, read inside the container (busybox's date has no %N)."""

SCRIPT = (
    f'echo "$HOSTNAME start $({NOW})" >> /data/log; sleep 0.3; '
    f'echo "$HOSTNAME end $({NOW})" >> /data/log'
)
"""A run: its start and end times, under its container's short id, in the shared volume."""

FIRES = ("run.started", "run.skipped", "run.missed")
"""What a fired run becomes first: started (attempt 1), skipped (forbid) or missed."""


def first_of(job: str) -> Callable[[Event], bool]:
    """Predicate: the first event of a run of ``job`` the daemon dispatched."""
    return lambda e: e.get("event") in FIRES and e.get("job") == job and e.get("attempt", 1) == 1


def fired(daemon: Daemon, job: str) -> list[Event]:
    """Each run of ``job`` the daemon dispatched, as its first event."""
    return daemon.log.matching(first_of(job))


def intervals(log: str) -> dict[str, tuple[float, float]]:
    """(start, end) by container short id, from the lines the runs wrote."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for line in log.splitlines():
        host, what, at = line.split()
        (starts if what == "start" else ends)[host] = float(at)
    assert set(starts) == set(ends), "a run wrote its start and not its end"
    return {host: (starts[host], ends[host]) for host in starts}


def test_two_jobs_on_one_lock_never_overlap_and_every_run_is_recorded(
    start_daemon: Callable[..., Daemon],
    engine: docker.DockerClient,
    make_volume: Callable[[str], str],
) -> None:
    """Jobs a and b, both every second on the lock ``shared`` (a's runs prepared ahead, b's
    not), collide 30 times: no two runs' intervals (written from inside the containers)
    overlap; every run dispatched is in the history, as it ended: succeeded ones with their
    container's interval, the others skipped (forbid: the job's last run still waiting or
    running) or missed at their deadline with reason lock:shared, each with its event; both
    jobs ran for the same instant several times (one waited for the other: run.waiting);
    nothing is left on the engine."""
    volume = make_volume("crontainer-test-locks")
    common: dict[str, Any] = {
        "schedule": "@every 1s",
        "volumes": [f"{volume}:/data"],
        "starting_deadline": "3s",
        "history_limit": 1000,  # every run kept
    }
    daemon = start_daemon(
        run_job("a", ["sh", "-c", SCRIPT], lock="shared", prepare_ahead="500ms", **common)
        + run_job("b", ["sh", "-c", SCRIPT], lock=["shared"], prepare_ahead="0s", **common),
        daemon='shutdown_grace = "5s"',
    )
    for job in ("a", "b"):
        daemon.log.wait_for(first_of(job), timeout=COLLISIONS + 30, count=COLLISIONS)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )

    spans = intervals(
        output_of(engine, BUSYBOX, ["cat", "/data/log"], volumes={volume: {"bind": "/data"}})
    )
    ordered = sorted(spans.values())
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert end <= start, f"two runs overlapped: one ended at {end}, the next began at {start}"

    rows = {r["run_id"]: r for r in daemon.history() if r["job"] in ("a", "b")}
    due = {job: {e["scheduled_at"] for e in fired(daemon, job)} for job in ("a", "b")}
    assert len(due["a"] & due["b"]) >= COLLISIONS
    succeeded = 0
    for job in ("a", "b"):
        for first in fired(daemon, job):
            row = rows[first["run_id"]]  # every run dispatched is recorded
            assert row["scheduled_at"] == first["scheduled_at"]
            if first["event"] == "run.skipped":
                assert (row["status"], row["reason"]) == ("skipped", "previous run still running")
            elif first["event"] == "run.missed":
                assert (row["status"], row["reason"]) == ("missed", "lock:shared")
                assert first["reason"] == "lock:shared"
            else:
                assert row["status"] in ("succeeded", "cancelled"), row  # cancelled: at the stop
                host = row["container_id"][:12]
                assert host in spans, f"run {row['run_id']} left no times in the volume"
                succeeded += row["status"] == "succeeded"
    started = [e for job in ("a", "b") for e in fired(daemon, job) if e["event"] == "run.started"]
    assert len(spans) == len(started)  # no container ran outside a recorded run
    ran = {
        job: {r["scheduled_at"] for r in rows.values() if r["job"] == job and r["started_at"]}
        for job in ("a", "b")
    }
    assert len(ran["a"] & ran["b"]) >= 3  # due together, both ran: one after the other
    assert succeeded >= 6
    assert daemon.log.matching(event("run.waiting", lock="shared"))
    assert daemon.log.matching(event("run.prepared", job="a"))


def test_a_run_waiting_past_its_deadline_is_missed_and_its_prepared_container_removed(
    start_daemon: Callable[..., Daemon], engine: docker.DockerClient
) -> None:
    """holder runs 4 s on the lock at start; short (every second, starting_deadline 1s, its
    runs prepared ahead) waits, and is missed with reason lock:shared naming holder's run,
    its prepared container removed with that reason; once holder has ended short runs
    again; nothing is left on the engine."""
    daemon = start_daemon(
        run_job("holder", ["sleep", "4"], schedule="@yearly", run_on_start=True, lock="shared")
        + run_job(
            "short",
            ["true"],
            lock="shared",
            starting_deadline="1s",
            prepare_ahead="500ms",
            history_limit=1000,
        ),
    )
    held = daemon.log.wait_for(event("run.started", job="holder"), timeout=30)[0]
    misses = daemon.log.wait_for(
        event("run.missed", job="short", reason="lock:shared"), timeout=30, count=2
    )
    daemon.log.wait_for(event("run.prepared_discarded", job="short", reason="lock:shared"))
    done = daemon.log.wait_for(event("run.succeeded", job="holder"), timeout=30)[0]
    after = daemon.log.wait_for(event("run.succeeded", job="short"), timeout=30)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )

    assert all(m["holder_run_id"] == held["run_id"] for m in misses)
    rows = {r["run_id"]: r for r in daemon.history("short")}
    for miss in misses:
        assert (rows[miss["run_id"]]["status"], rows[miss["run_id"]]["reason"]) == (
            "missed",
            "lock:shared",
        )
    events = daemon.log.events
    assert events.index(done) < events.index(after)
    (holder_row,) = [r for r in daemon.history("holder") if r["status"] == "succeeded"]
    for row in rows.values():
        if row["status"] == "succeeded":
            assert row["started_at"] >= holder_row["finished_at"]
