"""Each run's whole output kept in a volume, on the real engine: the file the daemon writes
(here, on the engine's host: output_dir = "engine"), crontainer logs, --follow of a
running job, on = "failure"."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from .conftest import ROOT, Daemon, cli_environ, event, run_job
from .helpers import cli, run_cli

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def fields(line: str) -> tuple[str, str]:
    """A file line's stream and text (its time dropped)."""
    _, stream, text = line.split(" ", 2)
    return stream, text


def test_output_kept_printed_followed_and_on_failure(
    start_daemon: Start, engine: docker.DockerClient, make_volume: Callable[[str], str]
) -> None:
    """Both streams in order in <volume>/<job>/<run_id>.log; `logs JOB latest` prints it;
    `logs --follow` of a running job prints its lines as they come (before the run ends)
    and exits at its end; on = "failure" keeps only the failed run's file."""
    volume = make_volume("t-output")
    mountpoint = Path(engine.volumes.get(volume).attrs["Mountpoint"])
    kept = {"volume": volume}
    only_failed = {"volume": volume, "on": "failure"}
    talk = "echo out1; sleep 0.3; echo err1 >&2; sleep 0.3; echo out2"
    ticks = "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done"
    daemon = start_daemon(
        run_job("talk", ["sh", "-c", talk], "@yearly", run_on_start=True, output=kept)
        + run_job("ticks", ["sh", "-c", ticks], "@yearly", output=kept)
        + run_job("good", ["true"], "@yearly", run_on_start=True, output=only_failed)
        + run_job(
            "bad", ["sh", "-c", "echo no; exit 4"], "@yearly", run_on_start=True, output=only_failed
        ),
        daemon='output_dir = "engine"',
    )
    talked = daemon.log.wait_for(event("run.succeeded", job="talk"), timeout=60)[0]
    daemon.log.wait_for(event("run.succeeded", job="good"), timeout=60)
    bad = daemon.log.wait_for(event("run.failed", job="bad"), timeout=60)[0]

    path = mountpoint / "talk" / f"{talked['run_id']}.log"
    lines = path.read_text().splitlines()
    assert [fields(line) for line in lines[:3]] == [
        ("stdout", "out1"),
        ("stderr", "err1"),
        ("stdout", "out2"),
    ]
    assert fields(lines[3]) == (
        "meta",
        "end status=succeeded exit_code=0 dropped_lines=0 dropped_bytes=0",
    )
    assert len(lines) == 4
    assert cli(daemon, "logs", "talk", "latest") == path.read_text()

    assert list((mountpoint / "good").iterdir()) == []
    assert [p.name for p in (mountpoint / "bad").iterdir()] == [f"{bad['run_id']}.log"]
    said = run_cli(daemon, "logs", "good")
    assert said.returncode == 1
    assert "has no output file" in said.stderr

    cli(daemon, "trigger", "ticks")
    started = daemon.log.wait_for(event("run.started", job="ticks"), timeout=60)[0]
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scheduler",
            "logs",
            "ticks",
            "--follow",
            "--config",
            str(daemon.config),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_environ(),
    )
    assert follower.stdout is not None
    got: list[tuple[str, bool]] = []  # each line, and whether the job's container ran then
    run_label = {"label": f"crontainer.run_id={started['run_id']}"}

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            running = engine.containers.list(filters={**run_label, "status": "running"})
            got.append((line.rstrip("\n"), bool(running)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert follower.wait(60) == 0
    reader.join(10)
    daemon.log.wait_for(event("run.succeeded", run_id=started["run_id"]), timeout=10)
    texts = [fields(line) for line, _ in got]
    assert texts[:6] == [("stdout", f"tick {i}") for i in range(1, 7)]
    assert texts[6][0] == "meta"
    assert texts[6][1].startswith("end status=succeeded exit_code=0")
    assert len(texts) == 7
    assert got[0][1], "the first line came only once the job's container had ended"
    assert (mountpoint / "ticks" / f"{started['run_id']}.log").is_file()

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_an_unmounted_output_volume_stops_the_start(start_daemon: Start, tmp_path: Path) -> None:
    """A job whose output volume is not at <output_dir>/<volume>: daemon.failed naming the
    job, the volume and the mount to make; exit 1."""
    daemon = start_daemon(
        run_job("talk", ["true"], "@yearly", output={"volume": "cron-output"}),
        daemon=f'output_dir = "{tmp_path}/nothing"',
    )
    failed = daemon.log.wait_for(event("daemon.failed", reason="output"), timeout=60)[0]
    assert failed["errors"] == [
        (
            f"jobs.talk.output.volume: volume 'cron-output' is not mounted at "
            f"{tmp_path}/nothing/cron-output (mount it there: "
            f"-v cron-output:{tmp_path}/nothing/cron-output)"
        )
    ]
    assert daemon.wait_exit(30) == 1
