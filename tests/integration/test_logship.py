"""Job kind logship on the real engine, with real receivers: every line arrives at least
once, in order per file, across rotations, a sink that is down, a killed shipping container
and a killed daemon; rsyslog receives RFC 5424 over UDP and TCP."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest

from tests.receiver import PostReceiver, serving

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    ROOT,
    TEST_LABELS,
    Daemon,
    event,
    output_of,
    toml_value,
    unique,
)

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
LABELS = TEST_LABELS
OPS = f'ops_image = "{PROJECT_IMAGE}"'
LOG_DIR = "/var/log/app"


def logship_job(name: str, sink: dict[str, object], **keys: object) -> str:
    table: dict[str, object] = {"kind": "logship", "schedule": "@yearly", "run_on_start": True}
    table.update(keys)
    text = f"[jobs.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    return (
        text
        + f"[jobs.{name}.sink]\n"
        + "".join(f"{k} = {toml_value(v)}\n" for k, v in sink.items())
        + "\n"
    )


def sh(container: Any, script: str) -> None:
    code, out = container.exec_run(["sh", "-c", script])
    assert code == 0, out


def append(container: Any, first: int, last: int, name: str = "app.log") -> None:
    sh(container, f"seq {first} {last} | sed 's/^/line /' >> {LOG_DIR}/{name}")


def shipped(engine: docker.DockerClient, volume: str, name: str = "out.ndjson") -> list[Any]:
    command = ["sh", "-c", f"cat /o/{name} 2>/dev/null || true"]
    out = output_of(engine, BUSYBOX, command, volumes=[f"{volume}:/o:ro"])
    return [json.loads(line) for line in out.splitlines()]


def numbers(records: list[Any]) -> list[int]:
    return [int(str(r["line"]).split()[-1]) for r in records]


def trigger(daemon: Daemon, job: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "trigger", job, "--state-dir", str(daemon.state_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip


def run_again(daemon: Daemon, job: str, count: int, timeout: float = 60) -> dict[str, Any]:
    """Trigger ``job`` and wait for its ``count``-th ending (succeeded or failed)."""
    done = trigger(daemon, job)
    assert done.returncode == 0, done.stderr
    ended = daemon.log.wait_for(
        lambda e: e.get("event") in ("run.succeeded", "run.failed") and e.get("job") == job,
        timeout=timeout,
        count=count,
    )
    return ended[count - 1]


def test_files_ship_exactly_once_across_rename_and_copytruncate_rotation(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    out = make_volume("crontainer-test-shipped")
    logs = make(BUSYBOX, ["sleep", "600"], name=unique("t-logs"), volumes=[LOG_DIR])
    append(logs, 1, 1000)
    daemon = start_daemon(
        logship_job(
            "ship",
            {"type": "file", "volume": out, "path": "out.ndjson", "batch_lines": 100},
            volumes_from=logs.name,
            paths=[f"{LOG_DIR}/*.log"],
            # the ops container hardened: the tool writes only to its sink volume
            read_only=True,
            cap_drop=["ALL"],
            no_new_privileges=True,
            pids_limit=64,
        ),
        daemon=OPS,
    )
    first = daemon.log.wait_for(event("run.succeeded", job="ship"), timeout=60)[0]
    assert first["lines"] == 1000
    assert numbers(shipped(engine, out)) == list(range(1, 1001))

    # rename rotation: lines written before the rename are shipped from the renamed file
    append(logs, 1001, 1500)
    sh(logs, f"mv {LOG_DIR}/app.log {LOG_DIR}/app.log.1")
    append(logs, 1501, 2000)
    second = run_again(daemon, "ship", 2)
    assert second["event"] == "run.succeeded", second
    assert numbers(shipped(engine, out)) == list(range(1, 2001))

    # copytruncate: the rest comes from the copy, then the truncated file from its start
    append(logs, 2001, 2500)
    sh(logs, f"cp {LOG_DIR}/app.log {LOG_DIR}/app.log.2 && : > {LOG_DIR}/app.log")
    append(logs, 2501, 3000)
    third = run_again(daemon, "ship", 3)
    assert third["event"] == "run.succeeded", third
    assert numbers(shipped(engine, out)) == list(range(1, 3001))

    # a line without its newline waits for it
    sh(logs, f"printf 'line 3001' >> {LOG_DIR}/app.log")
    fourth = run_again(daemon, "ship", 4)
    assert fourth["lines"] == 0
    sh(logs, f"printf '\\n' >> {LOG_DIR}/app.log")
    fifth = run_again(daemon, "ship", 5)
    assert fifth["lines"] == 1
    records = shipped(engine, out)
    assert numbers(records) == list(range(1, 3002))
    assert {r["job"] for r in records} == {"ship"}
    assert {r["source"] for r in records} == {
        f"{LOG_DIR}/app.log",
        f"{LOG_DIR}/app.log.1",
        f"{LOG_DIR}/app.log.2",
    }
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


class Receiver(PostReceiver):
    """An HTTP sink the test steers: ``status`` to answer, ``delay`` before answering; with
    ``hold_after`` set, a batch beyond that many waits for ``gate`` before it is taken."""

    status: ClassVar[int] = 200
    delay: ClassVar[float] = 0.0
    hold_after: ClassVar[int | None] = None
    gate: ClassVar[threading.Event] = threading.Event()
    batches: ClassVar[list[list[dict[str, Any]]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def take(self, body: bytes) -> int:
        time.sleep(self.delay)
        if self.hold_after is not None and len(self.batches) >= self.hold_after:
            assert self.gate.wait(60), "the test never let the held batch go"
        status = self.status
        if status == 200:
            with self.lock:
                self.batches.append([json.loads(line) for line in body.splitlines()])
        return status


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.status, Receiver.delay, Receiver.batches = 200, 0.0, []
    Receiver.hold_after, Receiver.gate = None, threading.Event()
    with serving(Receiver) as port:
        yield f"http://127.0.0.1:{port}/ingest"


def received() -> list[int]:
    with Receiver.lock:
        return [n for batch in Receiver.batches for n in numbers(batch)]


def wait_batches(count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(Receiver.batches) < count:
        assert time.monotonic() < deadline, f"only {len(Receiver.batches)} batches arrived"
        time.sleep(0.05)


def shipping_container(engine: docker.DockerClient, daemon: Daemon) -> Any:
    deadline = time.monotonic() + 30
    while True:
        found = engine.containers.list(filters={"label": f"crontainer.daemon={daemon.name}"})
        running = [c for c in found if c.labels.get("crontainer.job") == "ship"]
        if running:
            return running[0]
        assert time.monotonic() < deadline, "no shipping container"
        time.sleep(0.05)


def assert_at_least_once(lines: list[int], last: int, batch: int) -> None:
    counts = Counter(lines)
    assert set(counts) == set(range(1, last + 1)), "a line is missing"
    assert len(lines) - last <= batch, f"{len(lines) - last} duplicates (one batch is {batch})"


def test_http_sink_down_then_back_and_a_killed_shipping_container(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    receiver: str,
) -> None:
    """Lines wait while the sink answers 503; a kill -9 mid-batch re-sends one batch at most."""
    logs = make(BUSYBOX, ["sleep", "600"], name=unique("t-logs"), volumes=[LOG_DIR])
    append(logs, 1, 3000)
    Receiver.status = 503
    sink = {
        "type": "http",
        "url": receiver,
        "batch_lines": 100,
        "retries": 1,
        "retry_delay": "100ms",
        "headers": {"Authorization": {"env": "SHIP_TOKEN"}},
    }
    daemon = start_daemon(
        logship_job(
            "ship", sink, volumes_from=logs.name, paths=[f"{LOG_DIR}/*.log"], network="host"
        ),
        daemon=OPS,
        env={"SHIP_TOKEN": "Bearer s3cret-token"},
    )
    failed = daemon.log.wait_for(event("run.failed", job="ship"), timeout=60)[0]
    assert "status 503" in failed["error"]
    assert "gave up after 2 attempts" in failed["error"]
    assert received() == []

    Receiver.status, Receiver.hold_after = 200, 5
    assert trigger(daemon, "ship").returncode == 0
    container = shipping_container(engine, daemon)
    assert container.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]  # not the daemon's
    wait_batches(5)  # the 6th is held: the kill lands mid-batch, whatever the machine's pace
    container.kill()  # SIGKILL
    killed = daemon.log.wait_for(event("run.failed", job="ship"), timeout=60, count=2)[1]
    assert killed["exit_code"] == 137
    Receiver.hold_after = None
    Receiver.gate.set()
    assert 5 <= len(Receiver.batches) <= 6  # of 30
    done = run_again(daemon, "ship", 3)
    assert done["event"] == "run.succeeded", done
    assert_at_least_once(received(), 3000, 100)
    assert not any("s3cret-token" in line for line in daemon.log.raw)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_killed_daemon_resumes_from_its_checkpoints(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    receiver: str,
) -> None:
    """kill -9 of the daemon mid-run: the tool stops before its next batch; the successor
    takes the checkpoints the tool reported meanwhile from its container's log, and ships
    the rest — every line exactly once."""
    logs = make(BUSYBOX, ["sleep", "600"], name=unique("t-logs"), volumes=[LOG_DIR])
    append(logs, 1, 3000)
    Receiver.hold_after = 5
    jobs = logship_job(
        "ship",
        {"type": "http", "url": receiver, "batch_lines": 100},
        volumes_from=logs.name,
        paths=[f"{LOG_DIR}/*.log"],
        network="host",
    )
    first = start_daemon(jobs, daemon=OPS)
    container = shipping_container(engine, first)
    wait_batches(5)  # the 6th is held until the daemon is dead
    first.proc.kill()
    first.proc.wait(10)
    Receiver.hold_after = None
    Receiver.gate.set()  # the 6th is taken; the tool then sees its stdin closed
    assert container.wait(timeout=30)["StatusCode"] == 1  # stopped: the daemon is gone
    assert len(Receiver.batches) < 30  # it stopped before shipping everything
    second = start_daemon(jobs.replace("run_on_start = true\n", ""), name=first.name, daemon=OPS)
    second.log.wait_for(event("daemon.started"), timeout=30)
    assert second.log.matching(event("run.checkpoints_recovered", container_id=container.id))
    done = run_again(second, "ship", 1)
    assert done["event"] == "run.succeeded", done
    assert sorted(received()) == list(range(1, 3001))
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def test_container_output_ships_from_its_checkpoint_across_a_daemon_restart(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    out = make_volume("crontainer-test-shipped")
    app = make(
        BUSYBOX,
        ["sh", "-c", "i=1; while true; do echo line $i; i=$((i+1)); sleep 0.01; done"],
        name=unique("t-web"),
    )
    lines_logged(app, 10)
    jobs = logship_job(
        "ship",
        {"type": "file", "volume": out, "path": "out.ndjson"},
        containers=[app.name],
    )
    first = start_daemon(jobs, daemon=OPS)
    one = first.log.wait_for(event("run.succeeded", job="ship"), timeout=60)[0]
    first.signal(signal.SIGTERM)
    assert first.wait_exit(60) == 0
    lines_logged(app, one["lines"] + 10)  # new lines for the second daemon's run
    second = start_daemon(jobs, name=first.name, daemon=OPS)
    two = second.log.wait_for(event("run.succeeded", job="ship"), timeout=60)[0]
    records = shipped(engine, out)
    assert one["lines"] > 0
    assert two["lines"] > 0
    assert numbers(records) == list(range(1, len(records) + 1))  # no gap, no duplicate
    assert {r["source"] for r in records} == {f"container:{app.name}:stdout"}
    assert all(r["stream"] == "stdout" for r in records)
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def lines_logged(container: Any, count: int, timeout: float = 30) -> None:
    """Wait until ``container`` has written at least ``count`` lines to its stdout."""
    deadline = time.monotonic() + timeout
    while container.logs(stdout=True, stderr=False).count(b"\n") < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines logged"
        time.sleep(0.1)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def rsyslog() -> Iterator[tuple[int, int, Path]]:
    """Debian's rsyslogd on 127.0.0.1 (UDP and TCP), writing what it parsed to a file."""
    binary = shutil.which("rsyslogd")
    assert binary, "rsyslogd is not installed (scripts/test.sh installs it)"
    work = Path(tempfile.mkdtemp(prefix="crontainer-rsyslog-"))
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    received = work / "received.log"
    (work / "rsyslog.conf").write_text(
        f'global(workDirectory="{work}")\n'
        'module(load="imudp")\nmodule(load="imtcp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{udp}")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{tcp}")\n'
        'template(name="fields" type="string" '
        'string="%inputname%|%hostname%|%app-name%|%structured-data%|%msg%\\n")\n'
        f'*.* action(type="omfile" file="{received}" template="fields")\n'
    )
    proc = subprocess.Popen(
        [binary, "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", tcp)) == 0:
                break
        assert time.monotonic() < deadline, "rsyslogd did not start listening"
        time.sleep(0.1)
    yield udp, tcp, received
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(work, ignore_errors=True)


def syslog_lines(received: Path, count: int, timeout: float = 30) -> list[list[str]]:
    """The received messages split into input|host|app|structured data|msg, once ``count``
    have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        lines = received.read_text().splitlines() if received.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [line.split("|", 4) for line in lines]
        time.sleep(0.1)


def test_syslog_over_udp_and_tcp_to_rsyslog_and_stdout_through_the_log_driver(
    start_daemon: Start,
    make: Callable[..., Any],
    rsyslog: tuple[int, int, Path],
) -> None:
    udp, tcp, received = rsyslog
    logs = make(BUSYBOX, ["sleep", "600"], name=unique("t-logs"), volumes=[LOG_DIR])
    append(logs, 1, 300, "a.log")
    append(logs, 1, 200, "b.log")
    files = {"volumes_from": logs.name, "paths": [f"{LOG_DIR}/*.log"], "network": "host"}
    jobs = logship_job(
        "udp",
        {"type": "syslog", "address": f"udp://127.0.0.1:{udp}", "app_name": "ship-udp"},
        **files,
    ) + logship_job(
        "tcp",
        {"type": "syslog", "address": f"tcp://127.0.0.1:{tcp}", "facility": "local3",
         "app_name": "ship-tcp", "batch_lines": 64},
        **files,
    )  # fmt: skip
    daemon = start_daemon(jobs, daemon=OPS)
    for job in ("udp", "tcp"):
        done = daemon.log.wait_for(event("run.succeeded", job=job), timeout=60)[0]
        assert done["lines"] == 500
    messages = syslog_lines(received, 1000)
    for app, input_name in (("ship-udp", "imudp"), ("ship-tcp", "imtcp")):
        mine = [m for m in messages if m[2] == app]
        assert {m[0] for m in mine} == {input_name}
        for name, last in (("a.log", 300), ("b.log", 200)):
            source = f'[crontainer@32473 source="{LOG_DIR}/{name}" job="{app[5:]}"]'
            in_file = [m for m in mine if m[3] == source]
            assert [int(m[4].split()[-1]) for m in in_file] == list(range(1, last + 1))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0

    # The stdout sink: the records go to the shipping container's log driver (syslog here).
    driver = logship_job(
        "out",
        {"type": "stdout"},
        **files,
        log_driver="syslog",
        # TCP: Docker's syslog driver does not pace UDP, and a burst would overflow the
        # receiver's buffer — that would test Docker, not the tool.
        log_options={"syslog-address": f"tcp://127.0.0.1:{tcp}", "tag": "ship-out"},
    )
    again = start_daemon(driver, daemon=OPS)
    again.log.wait_for(event("run.succeeded", job="out"), timeout=60)
    carried = [m for m in syslog_lines(received, 1500) if "ship-out" in m[2]]
    # The driver carries stderr too: the tool's control lines, which are not records.
    records = [json.loads(m[4]) for m in carried if not m[4].lstrip().startswith("@crontainer")]
    assert sorted((r["source"], int(r["line"].split()[-1])) for r in records) == sorted(
        [(f"{LOG_DIR}/a.log", n) for n in range(1, 301)]
        + [(f"{LOG_DIR}/b.log", n) for n in range(1, 201)]
    )
    assert not [e for e in again.log.events if e.get("event") == "run.output"]
    again.signal(signal.SIGTERM)
    assert again.wait_exit(60) == 0
