"""restic backup through crontainer versus the same `restic backup` by hand, same image, same data.

    python bench/restic_throughput.py [--mb 1024] [--rounds 5] [--image crontainer:latest]

Fills a named volume with MB megabytes of mixed files (see FILL), starts a REST server
(`rclone serve restic` in a container of the image, on a user-defined network of its own),
then, ROUNDS times, against two new repositories of the round (initialised first, untimed):

- crontainer: a daemon (`python -m scheduler run`, `ops_image` = the image) with one
  backup job (`volumes`: the data volume at /data, `repository`: the round's first
  repository, password from its environment, `network`), triggered with `crontainer
  trigger`; timed from the daemon's `job.triggered` to its `run.succeeded` (both the
  daemon's own timestamps, so neither the CLI's start nor the reading of its log counts),
  with the tool's `restic_duration_s` (restic's own `total_duration`) beside it;
- by hand: `docker run --rm --network NET -v DATA:/data:ro -e RESTIC_PASSWORD=…
  IMAGE restic -r rest:http://SERVER:8000/REPO backup --json --host bench /data`
  (the password in the environment, the host fixed as the tool fixes it, so the second
  run finds its parent snapshot), timed from `docker run` to its exit, restic's own
  `total_duration` beside it.

Each way backs up twice per round: a full backup into its new repository, then a second
one (deduplicated: nothing changed) into the same repository. The two ways alternate
within each round (which one goes first swaps every round), so the machine's noise
falls on both; the figures are medians over the rounds, and the ratio by-hand /
crontainer (1 is parity; the target is at least 0.95) is the median of the rounds' own
ratios. Needs the engine and the image (scripts/engine.sh makes both; CRONTAINER_IMAGE
names another tag). The daemon runs from this checkout (the project's venv).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-restic-password"  # noqa: S105 - the benchmark's throwaway repositories'
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

CONFIG = """[daemon]
name = "bench-restic"
log_format = "json"
state_dir = "{state}"
heartbeat_file = "{state}/heartbeat"
ops_image = "{image}"
http = ""

[jobs.bench]
kind = "backup"
schedule = "@yearly"
volumes = ["{data}:/data"]
repository = "{repository}"
password = {{ env = "BENCH_RESTIC_PASSWORD" }}
network = "{network}"
"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def summary(output: str) -> dict[str, Any]:
    """The summary message of `restic backup --json`'s output."""
    for line in reversed(output.splitlines()):
        if '"message_type":"summary"' in line.replace(" ", ""):
            value: dict[str, Any] = json.loads(line)
            return value
    raise RuntimeError(f"no summary in restic's output: {output[-2000:]}")


class Daemon:
    """`crontainer run` as a subprocess, its JSON log in a file, and a job to trigger."""

    def __init__(self, config: str, state: Path) -> None:
        self.state = state
        path = state / "bench.toml"
        path.write_text(config)
        self.log = state / "daemon.log"
        # The daemon refuses CRONTAINER_* variables it does not know (CRONTAINER_IMAGE).
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTAINER_")}
        env["BENCH_RESTIC_PASSWORD"] = PASSWORD
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "run", "--config", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        self.wait_for("daemon.started", 1)

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

    def backup(self, number: int) -> tuple[float, float]:
        """Trigger the job (its ``number``-th run): seconds from ``job.triggered`` to
        ``run.succeeded``, and the tool's ``restic_duration_s``."""
        subprocess.run(
            [sys.executable, "-m", "scheduler", "trigger", "bench", "--state-dir", str(self.state)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        triggered = self.wait_for("job.triggered", number)[-1]
        succeeded = self.wait_for("run.succeeded", number)[-1]
        began = datetime.fromisoformat(triggered["timestamp"])
        ended = datetime.fromisoformat(succeeded["timestamp"])
        return (ended - began).total_seconds(), float(succeeded["restic_duration_s"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)


def by_hand(image: str, network: str, data: str, repository: str) -> tuple[float, float]:
    """`restic backup` in a container of the image: seconds from `docker run` to its exit,
    and restic's own total_duration."""
    began = time.monotonic()
    output = docker(
        "run", "--rm", "--label", LABEL, "--network", network, "-v", f"{data}:/data:ro",
        "-e", f"RESTIC_PASSWORD={PASSWORD}", image,
        "restic", "-r", repository, "backup", "--json", "--host", "bench", "/data",
    )  # fmt: skip
    took = time.monotonic() - began
    return took, float(summary(output)["total_duration"])


def start_server(image: str, network: str, repos: str, name: str) -> str:
    """`rclone serve restic` on ``network``; the base URL of its repositories."""
    docker(
        "run", "-d", "--label", LABEL, "--name", name, "--network", network,
        "-v", f"{repos}:/repos", image, "rclone", "serve", "restic", "--addr", ":8000", "/repos",
    )  # fmt: skip
    for _ in range(100):
        if "Serving restic REST API" in _logs(name):
            return f"rest:http://{name}:8000"
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start: {_logs(name)}")


def _logs(name: str) -> str:
    """A container's log, both streams (rclone logs on stderr)."""
    said = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
    return said.stdout + said.stderr


def init(image: str, network: str, repositories: list[str]) -> None:
    """Create the round's repositories (untimed: both ways start from an empty one)."""
    script = " && ".join(f"restic -r {r} init" for r in repositories)
    docker(
        "run", "--rm", "--label", LABEL, "--network", network,
        "-e", f"RESTIC_PASSWORD={PASSWORD}", image, "sh", "-c", script,
    )  # fmt: skip


def one_round(
    args: argparse.Namespace, names: dict[str, str], base: str, number: int
) -> dict[str, float]:
    """Full and second backups both ways into the round's new repositories; crontainer
    goes first in even rounds, by hand in odd ones."""
    cron_repo, hand_repo = f"{base}/cron-{number}", f"{base}/hand-{number}"
    init(args.image, names["network"], [cron_repo, hand_repo])
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-restic-") as tmp:
        config = CONFIG.format(
            state=tmp, image=args.image, data=names["data"], repository=cron_repo,
            network=names["network"],
        )  # fmt: skip
        daemon = Daemon(config, Path(tmp))
        try:
            for run, kind in ((1, "full"), (2, "second")):
                ways = ["cron", "hand"] if number % 2 == 0 else ["hand", "cron"]
                for way in ways:
                    if way == "cron":
                        took, restic_s = daemon.backup(run)
                    else:
                        took, restic_s = by_hand(
                            args.image, names["network"], names["data"], hand_repo
                        )
                    figures[f"{kind}_{way}_s"] = took
                    figures[f"{kind}_{way}_restic_s"] = restic_s
        finally:
            daemon.stop()
    docker("exec", names["server"], "rm", "-rf", f"/repos/cron-{number}", f"/repos/hand-{number}")
    print(json.dumps({"round": number, **{k: round(v, 2) for k, v in figures.items()}}))
    return figures


def report(rounds: list[dict[str, float]]) -> dict[str, object]:
    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 2)

    out: dict[str, object] = {"rounds": len(rounds)}
    for kind in ("full", "second"):
        for way in ("hand", "cron"):
            out[f"{kind}_{way}_median_s"] = median(f"{kind}_{way}_s")
            out[f"{kind}_{way}_restic_median_s"] = median(f"{kind}_{way}_restic_s")
        ratios = [r[f"{kind}_hand_s"] / r[f"{kind}_cron_s"] for r in rounds]
        out[f"{kind}_ratio_hand_to_cron"] = round(statistics.median(ratios), 3)
        out[f"{kind}_ratios"] = [round(x, 3) for x in ratios]
        overhead = [r[f"{kind}_cron_s"] - r[f"{kind}_cron_restic_s"] for r in rounds]
        out[f"{kind}_cron_outside_restic_backup_median_s"] = round(statistics.median(overhead), 2)
        overhead = [r[f"{kind}_hand_s"] - r[f"{kind}_hand_restic_s"] for r in rounds]
        out[f"{kind}_hand_outside_restic_backup_median_s"] = round(statistics.median(overhead), 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=os.environ.get("CRONTAINER_IMAGE", "crontainer:latest"))
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    names = {
        "data": f"bench-data-{tag}",
        "repos": f"bench-repos-{tag}",
        "network": f"bench-net-{tag}",
        "server": f"bench-rest-{tag}",
        "fill": f"bench-fill-{tag}",
    }
    try:
        for volume in (names["data"], names["repos"]):
            docker("volume", "create", "--label", LABEL, volume)
        docker("network", "create", "--label", LABEL, names["network"])
        began = time.monotonic()
        counts = docker(
            "run", "--rm", "--label", LABEL, "--name", names["fill"],
            "-v", f"{names['data']}:/data", args.image,
            "python3", "-c", FILL, str(args.mb),
        ).split()  # fmt: skip
        fill_s = time.monotonic() - began
        base = start_server(args.image, names["network"], names["repos"], names["server"])
        rounds = [one_round(args, names, base, n) for n in range(args.rounds)]
    finally:
        for container in (names["fill"], names["server"]):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(
            ["docker", "network", "rm", names["network"]], capture_output=True, check=False
        )
        for volume in (names["data"], names["repos"]):
            subprocess.run(
                ["docker", "volume", "rm", "-f", volume], capture_output=True, check=False
            )
    head = {"data_mib": args.mb, "small_files": int(counts[0]), "other_files": int(counts[1])}
    print(json.dumps({**head, "fill_s": round(fill_s, 1), **report(rounds)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
