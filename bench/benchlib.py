"""What the end-to-end benchmarks share: docker on the command line, the mixed data they fill a
volume with, and a crontainer daemon run as a subprocess whose job they trigger and time."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ROOT = Path(__file__).resolve().parents[1]
LABEL = "crontainer-bench"

FILL = r"""
import os, random, sys
total = int(sys.argv[1]) * 1024 * 1024
rng = random.Random(16)
table = b"abcdefghijklmnopqrstuvwxyz012345" * 8
def text(size):
    lines = size // 66 + 1
    noise = os.urandom(20 * lines).translate(table)
    prefix, suffix = b"2026-12-03T05:00:00Z INFO GET /api/items/", b" 200 ms=12\n"
    body = b"".join(prefix + noise[20 * i : 20 * i + 20] + suffix for i in range(lines))
    return body[:size]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
made = i = 0
while made < total * 0.45:
    size = rng.randint(1024, 32 * 1024)
    write(f"/data/small/{i // 500:03d}/log-{i:06d}.txt", text(size))
    made, i = made + size, i + 1
small = i
while made < total * 0.80:
    size = rng.randint(2 << 20, 8 << 20)
    write(f"/data/medium/app-{i:06d}.log", text(size))
    made, i = made + size, i + 1
while made < total:
    size = min(64 << 20, total - made)
    write(f"/data/large/blob-{i:06d}.bin", os.urandom(size))
    made, i = made + size, i + 1
print(small, i - small)
"""
"""The mix, by bytes: 45 % small text files (1-32 KiB, each distinct, log lines that zstd
compresses about 3 times), 35 % medium text files (2-8 MiB, the same kind of lines), 20 %
large random files (64 MiB, incompressible). Prints the counts of small and other files."""


def arguments() -> argparse.Namespace:
    """The benchmarks' command line: ``--mb`` of data, ``--rounds``, the ``--image``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=os.environ.get("CRONTAINER_IMAGE", "crontainer:latest"))
    return parser.parse_args()


@contextlib.contextmanager
def scene(volumes: list[str], network: str, containers: list[str]) -> Iterator[None]:
    """``volumes`` and ``network`` made (labelled), and removed at the end with the
    ``containers`` the benchmark made, whatever happened."""
    try:
        for volume in volumes:
            docker("volume", "create", "--label", LABEL, volume)
        docker("network", "create", "--label", LABEL, network)
        yield
    finally:
        for container in containers:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
        for volume in volumes:
            subprocess.run(
                ["docker", "volume", "rm", "-f", volume], capture_output=True, check=False
            )


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def logs(name: str) -> str:
    """A container's log, both streams (rclone logs on stderr)."""
    said = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
    return said.stdout + said.stderr


def fill(image: str, volume: str, mb: int, name: str) -> tuple[int, int]:
    """``volume`` filled with ``mb`` MiB of FILL's mix; the counts of small and other files."""
    counts = docker(
        "run", "--rm", "--label", LABEL, "--name", name, "-v", f"{volume}:/data", image,
        "python3", "-c", FILL, str(mb),
    ).split()  # fmt: skip
    return int(counts[0]), int(counts[1])


def start_daemon(
    config: Path,
    out: IO[Any],
    *,
    cwd: Path = ROOT,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``crontainer run --config CONFIG`` as users start it, from the checkout ``cwd``, its
    output into ``out``. The daemon refuses CRONTAINER_* variables it does not know
    (CRONTAINER_IMAGE): none of this environment's are passed, only ``env``."""
    given = {k: v for k, v in os.environ.items() if not k.startswith("CRONTAINER_")}
    return subprocess.Popen(
        [python, "-m", "scheduler", "run", "--config", str(config)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**given, **(env or {})},
    )


def stop_daemon(process: subprocess.Popen[bytes], wait: float) -> None:
    """SIGTERM to a daemon still running; a kill if it has not ended within ``wait``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Daemon:
    """`crontainer run` as a subprocess, its JSON log in a file, and a job to trigger."""

    def __init__(self, config: str, state: Path, env: dict[str, str] | None = None) -> None:
        self.state = state
        path = state / "bench.toml"
        path.write_text(config)
        self.log = state / "daemon.log"
        with self.log.open("w") as out:
            self.process = start_daemon(path, out, env=env)
        try:
            self.wait_for("daemon.started", 1)
        except BaseException:  # Ctrl-C too: no daemon is left behind
            self.process.kill()
            self.process.wait()
            raise

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, name: str, count: int, seconds: float = 1800) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [e for e in self.events() if e["event"] == name]
            failed = [e for e in self.events() if e["event"] in ("run.failed", "daemon.failed")]
            if failed:
                raise RuntimeError(f"the daemon says {failed[-1]}")
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"no {name} #{count} in {seconds} s")

    def trigger(self, job: str, number: int) -> tuple[float, dict[str, Any]]:
        """Trigger ``job`` (the daemon's ``number``-th run): seconds from its
        ``job.triggered`` to its ``run.succeeded`` (both the daemon's own timestamps, so
        neither the CLI's start nor the reading of its log counts), and that event."""
        subprocess.run(
            [sys.executable, "-m", "scheduler", "trigger", job, "--state-dir", str(self.state)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        triggered = self.wait_for("job.triggered", number)[-1]
        succeeded = self.wait_for("run.succeeded", number)[-1]
        began = datetime.fromisoformat(triggered["timestamp"])
        ended = datetime.fromisoformat(succeeded["timestamp"])
        return (ended - began).total_seconds(), succeeded

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
