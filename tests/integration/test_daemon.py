"""The daemon as a subprocess against the real engine: runs, failures, timeouts, shutdown."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import pytest

from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_RUN

from .conftest import BUSYBOX, TEST_LABEL, TEST_LABELS, TEST_SESSION, Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def ours(engine: docker.DockerClient, daemon: Daemon) -> list[str]:
    """Containers labelled as made by this daemon."""
    found = engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"})
    return [c.name for c in found]


def test_success_failure_and_missing_image_side_by_side(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Exit 0 succeeds, exit 3 fails with exit_code 3, a missing image fails clearly; others go on."""
    daemon = start_daemon(
        run_job("ok", ["sh", "-c", "echo hello from ok; echo to stderr >&2"])
        + run_job("exits-3", "sh -c 'exit 3'")
        + run_job("no-image", image="crontainer-test/no-such-image:never")
    )
    log = daemon.log
    log.wait_for(event("daemon.started", jobs=3))
    ok = log.wait_for(event("run.succeeded", job="ok"))[0]
    assert ok["exit_code"] == 0
    assert ok["container_id"]
    outputs = log.matching(event("run.output", job="ok", run_id=ok["run_id"]))
    assert {(o["stream"], o["line"]) for o in outputs} == {
        ("stdout", "hello from ok"),
        ("stderr", "to stderr"),
    }
    failed = log.wait_for(event("run.failed", job="exits-3"))[0]
    assert failed["exit_code"] == 3
    missing = log.wait_for(event("run.failed", job="no-image"))[0]
    assert "crontainer-test/no-such-image:never" in missing["error"]
    assert "could not be pulled" in missing["error"]
    # The failing jobs do not stop the good one: it succeeds again after them.
    seen = len(log.matching(event("run.succeeded", job="ok")))
    log.wait_for(event("run.succeeded", job="ok"), count=seen + 2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert ours(engine, daemon) == []


def test_pull_never_fails_without_pulling(start_daemon: Start) -> None:
    """pull = "never" and an absent image: a clear error naming the policy."""
    daemon = start_daemon(run_job("never", image="crontainer-test/absent:1", pull="never"))
    failed = daemon.log.wait_for(event("run.failed", job="never"))[0]
    assert (
        failed["error"]
        == "image 'crontainer-test/absent:1' is not present on the engine and pull = 'never'"
    )
    daemon.signal()
    assert daemon.wait_exit(30) == 0


def test_sigterm_stops_a_long_run_within_the_grace_and_leaves_nothing(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """A 60 s job at SIGTERM: exit 0 within shutdown_grace + stop_grace + a few s, no container left."""
    daemon = start_daemon(
        run_job("long", ["sleep", "60"], stop_grace="2s"), daemon='shutdown_grace = "3s"'
    )
    started = daemon.log.wait_for(event("run.started", job="long"))[0]
    # While it runs, the container carries the daemon's labels.
    deadline = time.monotonic() + 20
    while not (
        found := engine.containers.list(filters={"label": f"{LABEL_RUN}={started['run_id']}"})
    ):
        assert time.monotonic() < deadline, "the run's container never appeared"
        time.sleep(0.2)
    labels = found[0].labels
    assert labels[LABEL_DAEMON] == daemon.name
    assert labels[LABEL_JOB] == "long"
    assert labels[TEST_LABEL] == TEST_SESSION
    assert found[0].name == f"{daemon.name}-long-{started['run_id']}"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0  # a hang guard: the job alone would take 60 s
    names = [e.get("event") for e in daemon.log.events]
    assert names.index("daemon.stopping") < names.index("daemon.cancelling_runs")
    assert names.index("daemon.cancelling_runs") < names.index("daemon.stopped")
    stopping, cancelling = (
        datetime.fromisoformat(daemon.log.matching(event(name))[0]["timestamp"])
        for name in ("daemon.stopping", "daemon.cancelling_runs")
    )
    assert (cancelling - stopping).total_seconds() >= 3  # it waited the whole shutdown_grace
    cancelled = daemon.log.matching(event("run.cancelled", run_id=started["run_id"]))
    assert [c["reason"] for c in cancelled] == ["daemon_stopping"]
    assert cancelled[0]["exit_code"] in (137, 143)  # stopped, not run to its end
    assert ours(engine, daemon) == []
    assert not daemon.heartbeat.exists()


def test_sigterm_lets_a_short_run_finish(start_daemon: Start) -> None:
    """A run that ends within shutdown_grace is not cancelled: it succeeds, then the daemon exits 0."""
    daemon = start_daemon(
        run_job("short", ["sh", "-c", "sleep 2; echo finished"]), daemon='shutdown_grace = "20s"'
    )
    started = daemon.log.wait_for(event("run.started", job="short"))[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert daemon.log.matching(event("run.succeeded", run_id=started["run_id"]))
    assert not daemon.log.matching(event("run.cancelled"))


def test_timeout_stops_then_kills(start_daemon: Start, engine: docker.DockerClient) -> None:
    """A container ignoring SIGTERM (sleep as PID 1) is killed after timeout + stop_grace."""
    daemon = start_daemon(run_job("hangs", ["sleep", "300"], timeout="2s", stop_grace="1s"))
    timed_out = daemon.log.wait_for(event("run.timed_out", job="hangs"), timeout=40)[0]
    assert timed_out["reason"] == "timeout"
    assert timed_out["exit_code"] == 137  # killed: SIGTERM was ignored
    assert timed_out["duration_s"] >= 2 + 1  # timeout, then stop_grace
    stopping = daemon.log.matching(event("run.stopping", run_id=timed_out["run_id"]))
    assert stopping[0]["stop_signal"] == "SIGTERM"
    assert daemon.log.events.index(stopping[0]) < daemon.log.events.index(timed_out)
    daemon.signal()
    assert daemon.wait_exit(30) == 0
    assert ours(engine, daemon) == []


def test_memory_limit_kill_is_reported_as_oom(start_daemon: Start) -> None:
    """A container killed for memory fails with reason oom_killed."""
    hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"
    daemon = start_daemon(run_job("hog", ["sh", "-c", hog], memory="16MiB"))
    failed = daemon.log.wait_for(event("run.failed", job="hog"), timeout=60)[0]
    assert failed["reason"] == "oom_killed"
    assert failed["exit_code"] == 137
    daemon.signal()
    assert daemon.wait_exit(30) == 0


def test_container_settings_reach_the_container(
    start_daemon: Start, engine: docker.DockerClient, make_volume: Callable[[str], str]
) -> None:
    """env, workdir, user, named volumes (ro and rw) and entrypoint are applied."""
    src, dst = make_volume("crontainer-test-src"), make_volume("crontainer-test-dst")
    engine.containers.run(
        BUSYBOX,
        ["sh", "-c", "echo seeded > /v/file"],
        volumes=[f"{src}:/v"],
        remove=True,
        labels=TEST_LABELS,
    )
    script = (
        'echo "greeting=$GREETING"; echo "cwd=$(pwd)"; echo "uid=$(id -u)"; '
        "cat /in/file; (echo x > /in/new) 2>/dev/null || echo in-is-read-only; "
        "echo written > /out/result"
    )
    daemon = start_daemon(
        run_job(
            "settings",
            [script],
            entrypoint=["/bin/sh", "-c"],
            env={"GREETING": "hi there"},
            workdir="/tmp",
            user="0",
            volumes=[f"{src}:/in:ro", f"{dst}:/out"],
            network="none",
        )
    )
    done = daemon.log.wait_for(event("run.succeeded", job="settings"))[0]
    lines = [e["line"] for e in daemon.log.matching(event("run.output", run_id=done["run_id"]))]
    assert lines == ["greeting=hi there", "cwd=/tmp", "uid=0", "seeded", "in-is-read-only"]
    daemon.signal()
    assert daemon.wait_exit(30) == 0
    out = engine.containers.run(
        BUSYBOX,
        ["cat", "/out/result"],
        volumes=[f"{dst}:/out"],
        remove=True,
        labels=TEST_LABELS,
    )
    assert out == b"written\n"


def test_engine_unreachable_at_start_exits_1(start_daemon: Start, tmp_path: object) -> None:
    """No engine: engine.unavailable once, bounded retries for engine_wait, then exit 1."""
    daemon = start_daemon(
        run_job("x", schedule="@daily"),
        daemon='engine_wait = "2s"',
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert daemon.wait_exit(30) == 1  # a hang guard; engine_wait bounds the retries
    daemon.log.wait_for(event("daemon.failed", reason="engine_unavailable"), timeout=5)
    assert len(daemon.log.matching(event("engine.unavailable"))) == 1
    assert not daemon.log.matching(event("daemon.started"))


def test_an_unusable_state_dir_exits_1_with_the_reason(start_daemon: Start, tmp_path: Path) -> None:
    """state_dir is a file: daemon.failed (reason state_dir) naming it, exit 1, no run."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    daemon = start_daemon(run_job("x", "true"), daemon=f'state_dir = "{blocker}/state"')
    assert daemon.wait_exit(30) == 1
    failed = daemon.log.wait_for(event("daemon.failed"))[0]
    assert failed["reason"] == "state_dir"
    assert str(blocker) in failed["error"]
    assert not daemon.log.matching(event("run.started"))


def test_a_lock_that_cannot_be_taken_exits_1_with_the_reason(start_daemon: Start) -> None:
    """The lock container's image is missing and cannot be pulled: daemon.failed (reason lock)."""
    daemon = start_daemon(
        run_job("x", "true"), daemon='ops_image = "crontainer-test/no-such-ops:1"'
    )
    assert daemon.wait_exit(30) == 1
    failed = daemon.log.wait_for(event("daemon.failed"))[0]
    assert failed["reason"] == "lock"
    assert "crontainer-test/no-such-ops:1" in failed["error"]
    assert not daemon.log.matching(event("run.started"))
