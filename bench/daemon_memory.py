"""Memory of a running daemon over many runs: RSS sampled from /proc while jobs fire.

    python bench/daemon_memory.py [--seconds 120] [--jobs 5]

Starts `crontainer run` as a subprocess against the local engine with JOBS jobs
firing every second (busybox `true`), samples the daemon's resident memory
every second, and prints the RSS after warm-up, the peak, the final value and
the number of finished runs. Growth between the first and the last third of
the run is the figure that matters: a leak shows up as a steady climb.
Needs a Docker engine and busybox:latest (scripts/engine.sh makes both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        jobs = "".join(
            f'[jobs.j{i}]\nkind = "run"\nschedule = "@every 1s"\nimage = "busybox:latest"\n'
            f'command = "true"\nhistory_limit = 5\n'
            for i in range(args.jobs)
        )
        config.write_text(
            f'[daemon]\nname = "bench-memory"\nlog_format = "json"\nstate_dir = "{tmp}/state"\n'
            f'heartbeat_file = "{tmp}/beat"\nops_image = "busybox:latest"\n{jobs}'
        )
        log = Path(tmp) / "daemon.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
            samples: list[int] = []
            try:
                for _ in range(args.seconds):
                    time.sleep(1)
                    samples.append(rss_kib(proc.pid))
            finally:
                proc.terminate()
                proc.wait(60)
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    finished = sum(
        1 for e in events if e["event"] in ("run.succeeded", "run.failed", "run.skipped")
    )
    third = max(1, len(samples) // 3)
    first, last = samples[third : 2 * third], samples[-third:]
    report = {
        "seconds": args.seconds,
        "jobs": args.jobs,
        "runs_finished": finished,
        "rss_kib_after_warmup": samples[min(5, len(samples) - 1)],
        "rss_kib_peak": max(samples),
        "rss_kib_final": samples[-1],
        "rss_kib_mean_middle_third": round(sum(first) / len(first)),
        "rss_kib_mean_last_third": round(sum(last) / len(last)),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
