"""The demo stack (compose.yaml) with Debian's docker-compose 1.29: up, each job succeeds
once (seen through `docker exec <cron> crontainer history`), down."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration

CRON = "crontainer-demo-cron"
JOBS = {"backup", "ship-logs", "rotate-logs"}


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/test.sh installs it)"
    return subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), *args],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture
def stack(engine: docker.DockerClient) -> Iterator[None]:
    compose("down", "-v", "--remove-orphans")  # what an interrupted run left
    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        yield
    finally:
        down = compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
    assert not engine.containers.list(all=True, filters={"name": "crontainer-demo"})


def history() -> list[dict[str, object]]:
    done = subprocess.run(
        ["docker", "exec", CRON, "crontainer", "history", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return json.loads(done.stdout) if done.returncode == 0 else []


def test_the_demo_stack_backs_up_ships_and_rotates(stack: None) -> None:
    deadline = time.monotonic() + 180
    while True:
        rows = history()
        done = {str(r["job"]) for r in rows if r["status"] == "succeeded"}
        if done >= JOBS:
            break
        failed = [r for r in rows if r["status"] not in ("succeeded", "running")]
        assert not failed, failed
        assert time.monotonic() < deadline, f"only {sorted(done)} succeeded; rows: {rows}"
        time.sleep(1)
    jobs = subprocess.run(
        ["docker", "exec", CRON, "crontainer", "jobs", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = json.loads(jobs.stdout)
    assert set(listed) == JOBS
    assert all(entry["last_status"] == "succeeded" for entry in listed.values())
