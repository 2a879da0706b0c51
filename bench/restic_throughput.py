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

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchlib import LABEL, Daemon, arguments, docker, fill, logs, scene

if TYPE_CHECKING:
    import argparse

PASSWORD = "bench-restic-password"  # noqa: S105 - the benchmark's throwaway repositories'

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


def summary(output: str) -> dict[str, Any]:
    """The summary message of `restic backup --json`'s output."""
    for line in reversed(output.splitlines()):
        if '"message_type":"summary"' in line.replace(" ", ""):
            value: dict[str, Any] = json.loads(line)
            return value
    raise RuntimeError(f"no summary in restic's output: {output[-2000:]}")


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
        if "Serving restic REST API" in logs(name):
            return f"rest:http://{name}:8000"
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start: {logs(name)}")


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
        daemon = Daemon(config, Path(tmp), {"BENCH_RESTIC_PASSWORD": PASSWORD})
        try:
            for run, kind in ((1, "full"), (2, "second")):
                ways = ["cron", "hand"] if number % 2 == 0 else ["hand", "cron"]
                for way in ways:
                    if way == "cron":
                        took, event = daemon.trigger("bench", run)
                        restic_s = float(event["restic_duration_s"])
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
    args = arguments()
    tag = uuid.uuid4().hex[:8]
    names = {
        "data": f"bench-data-{tag}",
        "repos": f"bench-repos-{tag}",
        "network": f"bench-net-{tag}",
        "server": f"bench-rest-{tag}",
        "fill": f"bench-fill-{tag}",
    }
    volumes = [names["data"], names["repos"]]
    with scene(volumes, names["network"], [names["fill"], names["server"]]):
        began = time.monotonic()
        counts = fill(args.image, names["data"], args.mb, names["fill"])
        fill_s = time.monotonic() - began
        base = start_server(args.image, names["network"], names["repos"], names["server"])
        rounds = [one_round(args, names, base, n) for n in range(args.rounds)]
    head = {"data_mib": args.mb, "small_files": counts[0], "other_files": counts[1]}
    print(json.dumps({**head, "fill_s": round(fill_s, 1), **report(rounds)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
