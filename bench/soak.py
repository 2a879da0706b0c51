"""The soak (issue #19): the daemon for MINUTES at RATE runs a second of mixed run and exec jobs.

    python bench/soak.py [--minutes 30] [--rate 5] [--sample 30] [--warmup 2] [--window 5]
                         [--out FILE.json] [--keep DIR] [--python PATH]

It starts the daemon as users do (`python -m scheduler run --config FILE`, a subprocess, JSON
log to a file) against the local engine, with a config whose jobs together fire about RATE
runs a second (the nominal rate is printed; at 5: 3.3 run + 1.75 exec runs a second):

- `run` jobs on busybox: prepared ahead with the default `prepare_ahead` (`@every 6s`), with
  a short one (`@every 2s`, `prepare_ahead = "1s"`) and on a `@with-seconds` cron; not
  prepared (`prepare_ahead = "0s"`, `@every 1s`); failing with exit 1, prepared and not; one
  that times out (`sleep 30` under `timeout = "2s"`, killed after `stop_grace = "1s"`);
- `exec` jobs into one long-running busybox container the bench starts (and removes):
  `true`, an `echo`, and one that exits 1.

A RATE above 5 repeats that mix (round(RATE / 5) copies); below 5 it stretches every period
(round(5 / RATE) times). `history_limit` is the maximum, so no row is pruned, and
`starting_deadline = "20s"` (all jobs): a run that waits longer than that for a slot (the
default `max_concurrent_runs`, 16, while a loaded engine is slow) is recorded `missed`, as a
host with such a rate would set it — without it the queue, and its threads, grow for as long
as the engine is slower than the rate.

Every SAMPLE seconds (default 30, shorter for a short run) it records the daemon's RSS
(VmRSS of /proc/PID/status), its open fds (/proc/PID/fd; the least of five reads 0.1 s apart,
so that one run's sockets in flight do not count), threads, CPU seconds, the containers that
carry its `crontainer.daemon` label (by state: running, created, exited), the history rows and
the runs started since the last sample.

At the end: SIGTERM, the daemon's exit code, the containers left with its label (at its exit
and 10 s later: the lock container may take a moment), and the history (read-only, as
`crontainer history` reads it) against the log: every run id of `run.started`, `run.skipped`,
`run.missed`, `run.queued` and each outcome event has a row, each attempt `run.started` logged
has a row with an outcome, no row is left `running`, and the outcome counts match the events'.
Growth: the mean of the samples in the last WINDOW minutes less the mean of those in the first
WINDOW minutes after a WARMUP (2 min; both shrink for a short run), for RSS and fds.
Goals checked: RSS growth < 5 MiB, fd growth < 1, 0 containers left, every run recorded.
It prints a table of the samples and the checks, and writes them as JSON (--out).
The machine is shared: the figures are of this run; the rate achieved is printed beside the
nominal one (a loaded engine makes `forbid` jobs skip runs — they are recorded `skipped`).
Needs the engine and busybox:latest (scripts/engine.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchlib import LABEL, start_daemon, stop_daemon
from benchlib import docker as docker_cli

if TYPE_CHECKING:
    from collections.abc import Iterator

TICKS = os.sysconf("SC_CLK_TCK")
BASE_RATE = 5
OUTCOMES = ("succeeded", "failed", "timed_out", "skipped", "missed", "cancelled")
FIRED = ("run.started", "run.queued", *(f"run.{o}" for o in OUTCOMES))

ALLOW = 'concurrency = "allow"'
"""On the jobs not prepared: a loaded engine makes a run take longer than its period, and
`forbid` (the default, kept on the prepared ones) would skip the next one."""
FAIL = 'command = ["sh", "-c", "echo failing >&2; exit 1"]'
PREP_1S = 'prepare_ahead = "1s"'
NO_PREP = 'prepare_ahead = "0s"'
# (name, kind, period s, extra TOML lines): the mix at BASE_RATE (about 5.0 runs a second).
MIX: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    *((f"run-prep-{i}", "run", 6, ('command = "true"',)) for i in range(3)),
    ("run-prep-short", "run", 2, ('command = "echo prepared"', PREP_1S)),
    ("run-prep-cron", "run", 3, ('command = "true"', 'prepare_ahead = "2s"')),
    ("run-prep-fail", "run", 2, (FAIL, PREP_1S)),
    ("run-plain", "run", 1, ('command = "true"', NO_PREP, ALLOW)),
    ("run-plain-fail", "run", 3, (FAIL, NO_PREP, ALLOW)),
    ("run-timeout", "run", 10, ('command = "sleep 30"', 'timeout = "2s"', 'stop_grace = "1s"')),
    ("exec-true", "exec", 1, ('command = "true"', ALLOW)),
    ("exec-echo", "exec", 2, ('command = "echo hello"', ALLOW)),
    ("exec-fail", "exec", 4, (FAIL, ALLOW)),
)


def write_config(path: Path, name: str, target: str, rate: float) -> float:
    """The soak's config for daemon ``name``; returns its nominal runs per second."""
    copies = max(1, round(rate / BASE_RATE))
    stretch = max(1, round(BASE_RATE / rate))
    state = path.parent
    text = (
        f'[daemon]\nname = "{name}"\nlog_format = "json"\nstate_dir = "{state}/state"\n'
        f'heartbeat_file = "{state}/beat"\nops_image = "busybox:latest"\n'
        'http = "127.0.0.1:0"\n\n[defaults]\nhistory_limit = 100000\nstarting_deadline = "20s"\n\n'
    )
    nominal = 0.0
    for copy in range(copies):
        for job, kind, period, lines in MIX:
            seconds = period * stretch
            if job == "run-prep-cron":
                schedule = f"@with-seconds {copy % seconds}-59/{seconds} * * * * *"
            else:
                schedule = f"@every {seconds}s"
            head = [f"[jobs.{job}-{copy}]", f'kind = "{kind}"', f'schedule = "{schedule}"']
            head.append(f'container = "{target}"' if kind == "exec" else 'image = "busybox:latest"')
            text += "\n".join((*head, *lines)) + "\n\n"
            nominal += 1 / seconds
    path.write_text(text)
    return nominal


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of the process."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            found[key] = int(value.split()[0])
    return found


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def fds(pid: int) -> int:
    """The least of five counts of the open fds, 0.1 s apart."""
    counts = []
    for _ in range(5):
        counts.append(sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()))
        time.sleep(0.1)
    return min(counts)


def containers(daemon: str) -> Counter[str]:
    """The containers with the daemon's label, by state."""
    out = docker_cli(
        "ps", "-a", "--filter", f"label=crontainer.daemon={daemon}", "--format", "{{.State}}"
    )
    return Counter(out.split())


def history(db: Path) -> list[tuple[str, int, str]]:
    """(run_id, attempt, status) of every row, read-only as `crontainer history` reads it."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT run_id, attempt, status FROM runs").fetchall()


class Tail:
    """The daemon's JSON log, read on from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.events: list[dict[str, Any]] = []
        self.junk = 0

    def read(self) -> list[dict[str, Any]]:
        with self._path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        new = []
        for chunk in chunks:
            try:
                new.append(json.loads(chunk))
            except ValueError:
                self.junk += 1
        self.events.extend(new)
        return new


@contextlib.contextmanager
def exec_target() -> Iterator[str]:
    """A running busybox container for the exec jobs, removed at the end."""
    name = f"crontainer-bench-soak-{os.getpid()}"
    docker_cli("run", "-d", "--label", LABEL, "--name", name, "busybox:latest", "sleep", "86400")
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def sample(pid: int, daemon: str, db: Path, began: float, started: int) -> dict[str, Any]:
    status = proc_status(pid)
    states = containers(daemon)
    return {
        "t_s": round(time.monotonic() - began, 1),
        "rss_mib": round(status["VmRSS"] / 1024, 2),
        "fds": fds(pid),
        "threads": status["Threads"],
        "cpu_s": round(cpu_s(pid), 2),
        "running": states.get("running", 0),
        "created": states.get("created", 0),
        "exited": sum(n for s, n in states.items() if s not in ("running", "created")),
        "rows": len(history(db)),
        "started": started,
    }


def growth(samples: list[dict[str, Any]], key: str, warmup: float, window: float) -> float:
    """Mean of ``key`` over the last ``window`` s less its mean over the first ``window`` s
    after ``warmup``."""
    end = samples[-1]["t_s"]
    first = [s[key] for s in samples if warmup <= s["t_s"] < warmup + window]
    last = [s[key] for s in samples if s["t_s"] > end - window]
    if not first or not last:
        return float("nan")
    return statistics.mean(last) - statistics.mean(first)


def audit(events: list[dict[str, Any]], rows: list[tuple[str, int, str]]) -> dict[str, Any]:
    """The log's runs against the history's rows."""
    by_id: dict[str, set[str]] = {}
    for run_id, _attempt, status in rows:
        by_id.setdefault(run_id, set()).add(status)
    attempts = {(run_id, attempt): status for run_id, attempt, status in rows}
    fired = {e["run_id"] for e in events if e["event"] in FIRED and "run_id" in e}
    started = [(e["run_id"], e.get("attempt", 1)) for e in events if e["event"] == "run.started"]
    logged = Counter(e["event"].removeprefix("run.") for e in events if e["event"] in FIRED)
    recorded = Counter(status for _run, _attempt, status in rows)
    return {
        "fired": len(fired),
        "fired_without_row": sorted(fired - by_id.keys())[:20],
        "fired_without_row_count": len(fired - by_id.keys()),
        "started_attempts": len(started),
        "started_without_outcome": [
            f"{r}#{a}" for r, a in started if attempts.get((r, a)) in (None, "running")
        ][:20],
        "rows_running": recorded.get("running", 0),
        "rows_not_in_log": len(by_id.keys() - fired),
        "outcomes_logged": {o: logged.get(o, 0) for o in OUTCOMES},
        "outcomes_recorded": {o: recorded.get(o, 0) for o in OUTCOMES},
        "prepared": sum(e["event"] == "run.prepared" for e in events),
        "prepare_failed": sum(e["event"] == "run.prepare_failed" for e in events),
        "discarded": dict(
            Counter(e.get("reason") for e in events if e["event"] == "run.prepared_discarded")
        ),
        "errors": Counter(
            e["event"] for e in events if e.get("level") in ("error", "critical")
        ).most_common(10),
        "warnings": Counter(e["event"] for e in events if e["level"] == "warning").most_common(9),
    }


def leftovers(daemon: str) -> tuple[int, int]:
    """Containers with the daemon's label at once, and 10 s later."""
    now = sum(containers(daemon).values())
    time.sleep(10)
    return now, sum(containers(daemon).values())


def soak(args: argparse.Namespace, tmp: Path, target: str) -> dict[str, Any]:
    daemon = f"bench-soak-{os.getpid()}"
    config = tmp / "soak.toml"
    nominal = write_config(config, daemon, target, args.rate)
    db = tmp / "state" / "crontainer.db"
    log = tmp / "daemon.log"
    total = args.minutes * 60
    every = args.sample or min(30.0, max(5.0, total / 12))
    warmup = min(args.warmup * 60, total / 4)
    window = min(args.window * 60, (total - warmup) / 2)
    print(
        f"soak: {args.minutes} min, nominal {nominal:.2f} runs/s, sample every {every:.0f} s, "
        f"warm-up {warmup:.0f} s, windows {window:.0f} s; state in {tmp}",
        file=sys.stderr,
        flush=True,
    )
    tail = Tail(log)
    samples: list[dict[str, Any]] = []
    began_utc = datetime.now(UTC).isoformat(timespec="seconds")
    with log.open("wb") as out:
        process = start_daemon(config, out, python=args.python)
    try:
        deadline = time.monotonic() + 120
        while not any(e["event"] == "daemon.started" for e in tail.read()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        began = time.monotonic()
        started = 0
        while True:
            now = time.monotonic() - began
            if process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {log.read_text()[-3000:]}")
            started += sum(e["event"] == "run.started" for e in tail.read())
            samples.append(sample(process.pid, daemon, db, began, started))
            print(f"  {samples[-1]}", file=sys.stderr, flush=True)
            if now >= total:
                break
            time.sleep(max(0.0, min(every * len(samples), total) - (time.monotonic() - began)))
    finally:
        stopped = time.monotonic()
        stop_daemon(process, 120)
    stop_s = time.monotonic() - stopped
    left_now, left_later = leftovers(daemon)
    tail.read()
    checks = audit(tail.events, history(db))
    ran_s = samples[-1]["t_s"]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "began_utc": began_utc,
        "minutes": args.minutes,
        "nominal_runs_per_s": round(nominal, 2),
        "fired_runs_per_s": round(checks["fired"] / ran_s, 2) if ran_s else 0,
        "started_runs_per_s": round(samples[-1]["started"] / ran_s, 2) if ran_s else 0,
        "warmup_s": warmup,
        "window_s": window,
        "rss_growth_mib": round(growth(samples, "rss_mib", warmup, window), 2),
        "fd_growth": round(growth(samples, "fds", warmup, window), 2),
        "thread_growth": round(growth(samples, "threads", warmup, window), 2),
        "daemon_exit": process.returncode,
        "stop_s": round(stop_s, 1),
        "containers_left_at_exit": left_now,
        "containers_left_10s_later": left_later,
        "unparsed_log_lines": tail.junk,
        "log_lines": len(tail.events),
        "audit": checks,
        "samples": samples,
    }
    result["goals"] = {
        "rss_growth_below_5_mib": result["rss_growth_mib"] < 5,
        "fd_growth_below_1": result["fd_growth"] < 1,
        "no_container_left": left_later == 0,
        "every_run_recorded": not checks["fired_without_row_count"]
        and not checks["started_without_outcome"]
        and not checks["rows_running"]
        and checks["outcomes_logged"] == checks["outcomes_recorded"],
        "daemon_exit_0": process.returncode == 0,
    }
    return result


def machine() -> str:
    engine = docker_cli("version", "--format", "{{.Server.Version}}").strip()
    load = os.getloadavg()
    return (
        f"{platform.machine()} {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, engine {engine}, load at end {load[0]:.2f}"
    )


def report(result: dict[str, Any]) -> None:
    cols = ("t_s", "rss_mib", "fds", "threads", "cpu_s", "running", "created", "exited",
            "rows", "started")  # fmt: skip
    print(" ".join(f"{c:>9}" for c in cols))
    for s in result["samples"]:
        print(" ".join(f"{s[c]:>9}" for c in cols))
    a = result["audit"]
    print()
    for key in ("command", "machine", "began_utc", "nominal_runs_per_s", "fired_runs_per_s",
                "started_runs_per_s",
                "warmup_s", "window_s", "rss_growth_mib", "fd_growth", "thread_growth",
                "daemon_exit", "stop_s", "containers_left_at_exit", "containers_left_10s_later",
                "log_lines", "unparsed_log_lines"):  # fmt: skip
        print(f"{key:<28}{result[key]}")
    for key in ("fired", "started_attempts", "fired_without_row_count", "started_without_outcome",
                "rows_running", "rows_not_in_log", "outcomes_logged", "outcomes_recorded",
                "prepared", "prepare_failed", "discarded", "errors", "warnings"):  # fmt: skip
        print(f"{key:<28}{a[key]}")
    print()
    for goal, met in result["goals"].items():
        print(f"{goal:<28}{'met' if met else 'NOT MET'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=5.0, help="runs a second, about")
    parser.add_argument("--sample", type=float, help="seconds between samples (default 30)")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes not compared")
    parser.add_argument("--window", type=float, default=5.0, help="minutes compared, each end")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--keep", type=Path, help="copy the config, log and state here")
    parser.add_argument("--python", default=sys.executable, help="the daemon's interpreter")
    args = parser.parse_args()
    if args.rate <= 0 or args.minutes <= 0:
        parser.error("--rate and --minutes must be more than 0")
    with exec_target() as target, tempfile.TemporaryDirectory(prefix="crontainer-soak-") as tmp:
        try:
            result = soak(args, Path(tmp), target)
        finally:
            if args.keep:
                shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
    report(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(result["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
