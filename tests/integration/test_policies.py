"""Run policies on the real engine, judged from the recorded history (not wall-clock counts)."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from datetime import datetime

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import Daemon, Event, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def span(row: Event) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(row["started_at"]), datetime.fromisoformat(row["finished_at"])


def overlaps(a: Event, b: Event) -> bool:
    (s1, e1), (s2, e2) = span(a), span(b)
    return s1 < e2 and s2 < e1


def stop(daemon: Daemon, engine: docker.DockerClient) -> None:
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )


def test_concurrency_forbid_allow_replace(start_daemon: Start, engine: docker.DockerClient) -> None:
    """A job longer than its period: forbid never overlaps and records skips; allow overlaps;
    replace stops the old run before each new one starts."""
    daemon = start_daemon(
        run_job("forbid", ["sleep", "3"], schedule="@every 2s", concurrency="forbid")
        + run_job("allow", ["sleep", "3"], schedule="@every 2s", concurrency="allow")
        + run_job(
            "replace", ["sleep", "30"], schedule="@every 2s", concurrency="replace", stop_grace="1s"
        ),
        daemon='max_concurrent_runs = 32\nshutdown_grace = "2s"',
    )
    daemon.log.wait_for(
        event("run.cancelled", job="replace", reason="replaced"), timeout=40, count=2
    )
    daemon.log.wait_for(event("run.skipped", job="forbid"), timeout=40, count=2)
    daemon.log.wait_for(event("run.succeeded", job="forbid"), timeout=40, count=2)
    daemon.log.wait_for(event("run.succeeded", job="allow"), timeout=40, count=2)
    stop(daemon, engine)

    forbid = daemon.history("forbid")
    ran = [r for r in forbid if r["status"] == "succeeded"]
    skipped = [r for r in forbid if r["status"] == "skipped"]
    assert len(ran) >= 2
    assert len(skipped) >= 2
    assert all(r["reason"] == "previous run still running" for r in skipped)
    assert not any(overlaps(a, b) for a, b in itertools.combinations(ran, 2))
    for skip in skipped:  # each skip fell due while a recorded run was running
        due = datetime.fromisoformat(skip["scheduled_at"])
        assert any(
            span(r)[0] <= due <= span(r)[1] for r in forbid if r["started_at"] and r["finished_at"]
        )

    allow = [r for r in daemon.history("allow") if r["started_at"] and r["finished_at"]]
    assert any(overlaps(a, b) for a, b in itertools.combinations(allow, 2))
    assert not [r for r in daemon.history("allow") if r["status"] == "skipped"]

    replace = [r for r in daemon.history("replace") if r["started_at"] and r["finished_at"]]
    replaced = [r for r in replace if r["reason"] == "replaced"]
    assert len(replaced) >= 2
    for old, new in itertools.pairwise(sorted(replace, key=lambda r: r["started_at"])):
        assert old["status"] == "cancelled"
        assert span(new)[0] >= span(old)[1], "a new run started before the replaced one ended"


def test_timeout_kills_a_container_ignoring_sigterm_and_the_next_run_is_on_time(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """sleep as PID 1 ignores SIGTERM: killed after timeout + stop_grace; the next run starts on schedule."""
    daemon = start_daemon(
        run_job("hangs", ["sleep", "300"], schedule="@every 4s", timeout="1s", stop_grace="1s")
    )
    ends = daemon.log.wait_for(event("run.timed_out", job="hangs"), timeout=40, count=2)
    starts = daemon.log.matching(event("run.started", job="hangs"))
    stop(daemon, engine)
    assert [e["exit_code"] for e in ends] == [137, 137]  # killed: SIGTERM was ignored
    assert all(e["duration_s"] >= 1 + 1 for e in ends)  # timeout, then stop_grace
    first, second = (datetime.fromisoformat(s["scheduled_at"]) for s in starts[:2])
    assert (second - first).total_seconds() == 4  # the next due time, not skipped
    assert starts[1]["trigger"] == "schedule"
    assert not daemon.log.matching(event("run.skipped", job="hangs"))
    assert not daemon.log.matching(event("run.missed", job="hangs"))
    events = daemon.log.events
    assert events.index(ends[0]) < events.index(starts[1])  # the hung run ended first
    rows = [r for r in daemon.history("hangs") if r["status"] == "timed_out"]
    assert len(rows) >= 2
    assert all(r["reason"] == "timeout" for r in rows)


def test_retries_until_success_with_a_counter_in_a_volume(
    start_daemon: Start, engine: docker.DockerClient, make_volume: Callable[[str], str]
) -> None:
    """Failing twice then succeeding: one run, attempts 1 and 2 failed, attempt 3 succeeded."""
    volume = make_volume("crontainer-test-counter")
    script = "n=$(cat /v/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /v/count; echo attempt $n; [ $n -ge 3 ]"
    daemon = start_daemon(
        run_job(
            "flaky",
            ["sh", "-c", script],
            schedule="@yearly",
            run_on_start=True,
            retries=4,
            retry_delay="0.5s",
            volumes=[f"{volume}:/v"],
        )
    )
    done = daemon.log.wait_for(event("run.succeeded", job="flaky"), timeout=60)[0]
    stop(daemon, engine)
    assert done["attempt"] == 3
    rows = [r for r in daemon.history("flaky") if r["run_id"] == done["run_id"]]
    assert [(r["attempt"], r["status"], r["exit_code"]) for r in rows] == [
        (1, "failed", 1),
        (2, "failed", 1),
        (3, "succeeded", 0),
    ]
    assert len({r["container_id"] for r in rows}) == 3
    assert [
        e["delay_s"] for e in daemon.log.matching(event("run.retrying", run_id=done["run_id"]))
    ] == [0.5, 1.0]
    assert rows[2]["output_tail"] == "attempt 3"


def test_catch_up_runs_once_within_the_deadline_after_downtime(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Down over a scheduled time: catch_up with a wide deadline runs once; a narrow deadline or
    catch_up = false does not."""
    jobs = (
        run_job("wide", "true", schedule="@every 10s", catch_up=True, starting_deadline="1h")
        + run_job("narrow", "true", schedule="@every 10s", catch_up=True, starting_deadline="1s")
        + run_job("off", "true", schedule="@every 10s")
    )
    first = start_daemon(jobs)
    first.log.wait_for(event("run.succeeded", job="off"), timeout=30)
    last_due = max(
        datetime.fromisoformat(e["scheduled_at"]) for e in first.log.matching(event("run.started"))
    )
    stop(first, engine)
    # Stay down until the next due time (last_due + 10 s) is 3 s in the past.
    time.sleep(max(0.0, last_due.timestamp() + 13 - time.time()))
    second = start_daemon(jobs, name=first.name)
    caught = second.log.wait_for(event("run.succeeded", job="wide"), timeout=20)[0]
    # Catch-up is decided once, before daemon.started: every decision is logged by then.
    second.log.wait_for(event("daemon.started"))
    decided = [e for e in second.log.events if e.get("event", "").startswith("job.catch_up")]
    assert [(e["event"], e["job"]) for e in decided] == [
        ("job.catch_up", "wide"),
        ("job.catch_up_skipped", "narrow"),
    ]
    stop(second, engine)
    runs = second.log.matching(event("run.started", trigger="catch_up"))
    assert [(r["job"], r["run_id"]) for r in runs] == [("wide", caught["run_id"])]
    assert datetime.fromisoformat(runs[0]["scheduled_at"]) > last_due
    skipped = second.log.matching(event("job.catch_up_skipped", job="narrow"))
    assert len(skipped) == 1
    assert skipped[0]["late_s"] > 1
    recorded = [r for r in second.history() if r["trigger"] == "catch_up"]
    assert [(r["job"], r["status"]) for r in recorded] == [("wide", "succeeded")]


def test_burst_of_fifty_jobs_at_the_cap_loses_nothing(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """50 jobs due at the same second, max_concurrent_runs = 8: each run is started or recorded
    with a reason, and never more than 8 run at once."""
    jobs = "".join(
        run_job(
            f"b{i:02d}", "true", schedule="@with-seconds 0,20,40 * * * * *", starting_deadline="6s"
        )
        for i in range(50)
    )
    daemon = start_daemon(jobs, daemon="max_concurrent_runs = 8")
    daemon.log.wait_for(
        lambda e: e.get("event") in ("run.succeeded", "run.missed"), timeout=60, count=50
    )
    stop(daemon, engine)
    rows = daemon.history()
    first_due = min(r["scheduled_at"] for r in rows)
    burst = [r for r in rows if r["scheduled_at"] == first_due]
    assert sorted(r["job"] for r in burst) == [f"b{i:02d}" for i in range(50)]
    assert {r["status"] for r in burst} <= {"succeeded", "missed", "cancelled"}
    assert all(r["reason"] for r in burst if r["status"] != "succeeded")
    assert any(r["status"] == "succeeded" for r in burst)
    ran = [r for r in burst if r["started_at"] and r["finished_at"]]
    for row in ran:  # at no start were 8 others running already
        start = span(row)[0]
        assert (
            sum(1 for other in ran if other is not row and span(other)[0] <= start < span(other)[1])
            < 8
        )
