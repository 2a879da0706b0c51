"""Job kinds exec and signal on the real engine."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import docker
import pytest

from .conftest import BUSYBOX, TEST_LABELS, Daemon, event, run_job, unique

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
Container = Any  # docker-py's Container: the library has no type hints


@pytest.fixture
def app(engine: docker.DockerClient) -> Iterator[Container]:
    """A running busybox 'app' that records the HUPs it gets and runs until removed."""
    script = "trap 'echo got-HUP >> /tmp/signals' HUP; while true; do sleep 0.2; done"
    container = engine.containers.run(
        BUSYBOX,
        ["sh", "-c", script],
        name=unique("t-app"),
        detach=True,
        labels={**TEST_LABELS, "role": "app"},
    )
    yield container
    container.remove(force=True)


def job(name: str, kind: str, schedule: str = "@every 2s", **keys: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[jobs.{name}]\nkind = "{kind}"\nschedule = "{schedule}"\n{lines}\n'


def test_exec_streams_output_and_the_exit_code_decides(start_daemon: Start, app: Container) -> None:
    """Lines arrive as they are printed; user, workdir and env apply; exit 5 fails."""
    daemon = start_daemon(
        job(
            "talk",
            "exec",
            container=f'"{app.name}"',
            command="""["sh", "-c", "echo first; sleep 2; echo $X; pwd; id -u"]""",
            user='"65534"',
            workdir='"/tmp"',
            env='{ X = "from-env" }',
            schedule="@yearly",
            run_on_start="true",
        )
        + job("fails", "exec", container=f'"{app.name}"', command="\"sh -c 'exit 5'\"")
    )
    done = daemon.log.wait_for(event("run.succeeded", job="talk"), timeout=30)[0]
    lines = daemon.log.matching(event("run.output", run_id=done["run_id"]))
    assert [e["line"] for e in lines] == ["first", "from-env", "/tmp", "65534"]
    first, second = (datetime.fromisoformat(e["timestamp"]) for e in lines[:2])
    assert (second - first).total_seconds() > 1.5, "output was not streamed as it came"
    failed = daemon.log.wait_for(event("run.failed", job="fails"))[0]
    assert failed["exit_code"] == 5
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_exec_timeout_kills_the_command_and_its_children(
    start_daemon: Start, app: Container
) -> None:
    """The API cannot kill an exec: the daemon signals the exec's process group instead."""
    stubborn = "trap '' TERM; sleep 300 & sleep 301; wait"
    daemon = start_daemon(
        job(
            "hangs",
            "exec",
            container=f'"{app.name}"',
            command=f'["sh", "-c", "{stubborn}"]',
            timeout='"1s"',
            stop_grace='"1s"',
            schedule="@yearly",
            run_on_start="true",
        )
    )
    ended = daemon.log.wait_for(event("run.timed_out", job="hangs"), timeout=40)[0]
    assert ended["reason"] == "timeout"
    assert ended["duration_s"] >= 1  # its timeout
    deadline = time.monotonic() + 10
    while "sleep 30" in (top := app.exec_run(["ps"]).output.decode()):
        assert time.monotonic() < deadline, f"the exec's processes survived:\n{top}"
        time.sleep(0.2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_exec_in_a_stopped_container_fails_clearly(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """A container that is not running: run.failed saying so."""
    stopped = engine.containers.create(
        BUSYBOX, ["true"], name=unique("t-stopped"), labels=TEST_LABELS
    )
    try:
        daemon = start_daemon(job("x", "exec", container=f'"{stopped.name}"', command='"true"'))
        failed = daemon.log.wait_for(event("run.failed", job="x"))[0]
        assert "is not running" in failed["error"]
        assert stopped.name in failed["error"] or stopped.id in failed["error"]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(30) == 0
    finally:
        stopped.remove(force=True)


def test_exec_by_a_short_id_prefix_never_reaches_that_container(
    start_daemon: Start, app: Container
) -> None:
    """A name goes to the engine's exec call as it is, but a few hex digits are looked up
    first: the engine alone would take them as the app's id prefix. The run fails as the
    selector says (only the exact name, the id or 12+ of its hex digits select) and the app
    gets no exec."""
    prefix = app.id[:5]
    daemon = start_daemon(
        job(
            "prefix",
            "exec",
            schedule="@yearly",
            run_on_start="true",
            container=f'"{prefix}"',
            command='"touch /tmp/reached"',
        )
    )
    failed = daemon.log.wait_for(event("run.failed", job="prefix"))[0]
    assert f"exec container '{prefix}' matched no container" in failed["error"]
    assert app.exec_run(["ls", "/tmp/reached"]).exit_code != 0
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_signal_by_name_and_label_and_restart(start_daemon: Start, app: Container) -> None:
    """HUP reaches the app by name and by label; restart restarts it."""
    started_before = app.attrs["State"]["StartedAt"]
    daemon = start_daemon(
        job(
            "hup-name",
            "signal",
            containers=f'["{app.name}"]',
            schedule="@every 30s",
            run_on_start="true",
        )
        + job(
            "hup-label",
            "signal",
            containers='["label=role=app"]',
            signal='"SIGHUP"',
            schedule="@every 3s",
        )
    )
    daemon.log.wait_for(event("run.succeeded", job="hup-name"), timeout=20)
    # Signals that arrive together coalesce; the label job repeats, so both reach the app.
    daemon.log.wait_for(event("run.succeeded", job="hup-label"), timeout=20)
    sent = daemon.log.matching(event("run.signal_sent"))
    assert {(e["container"], e["signal"]) for e in sent} == {(app.name, "SIGHUP")}
    deadline = time.monotonic() + 10
    while app.exec_run(["cat", "/tmp/signals"]).output.decode().count("got-HUP") < 2:
        assert time.monotonic() < deadline, "the app did not get both HUPs"
        time.sleep(0.2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    restarter = start_daemon(
        job(
            "bounce",
            "signal",
            containers=f'["{app.name}"]',
            restart="true",
            stop_grace='"1s"',
            schedule="@every 30s",
            run_on_start="true",
        )
    )
    restarter.log.wait_for(event("run.succeeded", job="bounce"), timeout=30)
    app.reload()
    assert app.status == "running"
    assert app.attrs["State"]["StartedAt"] != started_before
    restarter.signal(signal.SIGTERM)
    assert restarter.wait_exit(30) == 0


def test_signal_to_a_missing_container_fails_clearly(start_daemon: Start, app: Container) -> None:
    """A missing name and an empty label selection fail the run with both reasons; the present
    container still gets its signal."""
    daemon = start_daemon(
        job(
            "partly",
            "signal",
            containers=f'["{app.name}", "t-no-such-container", "label=role=nobody"]',
            run_on_start="true",
            schedule="@every 30s",
        )
    )
    failed = daemon.log.wait_for(event("run.failed", job="partly"), timeout=20)[0]
    assert "t-no-such-container" in failed["error"]
    assert "no running container matches 'label=role=nobody'" in failed["error"]
    assert daemon.log.matching(event("run.signal_sent", container=app.name))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_hardening_reaches_the_container(start_daemon: Start) -> None:
    """read_only, cap_drop, no_new_privileges and pids_limit, seen from inside the container."""
    probe = (
        "touch /probe 2>/dev/null && echo rootfs=writable || echo rootfs=read-only; "
        "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; "
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"
    )
    daemon = start_daemon(
        run_job(
            "hard",
            ["sh", "-c", probe],
            schedule="@yearly",
            run_on_start=True,
            read_only=True,
            cap_drop=["ALL"],
            no_new_privileges=True,
            pids_limit=32,
        )
    )
    daemon.log.wait_for(event("run.succeeded", job="hard"), timeout=60)
    lines = [e["line"] for e in daemon.log.matching(event("run.output", job="hard"))]
    assert "rootfs=read-only" in lines
    assert any(line.split() == ["CapEff:", "0000000000000000"] for line in lines), lines
    assert any(line.split() == ["NoNewPrivs:", "1"] for line in lines), lines
    assert "32" in lines
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
