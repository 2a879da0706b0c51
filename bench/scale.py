"""The daemon at scale: start-up, memory and idle CPU with 1, 1,000 and 10,000 jobs (issue #19).

    python bench/scale.py [--jobs 1,1000,10000] [--idle 60] [--settle 5] [--rounds 1]
                          [--scrape] [--json] [--tree DIR ...] [--python PATH]

For each N: writes a config of N jobs — mostly rare ones, as a real host has them: `run` and
`exec` jobs on busybox (`true`) with daily and weekly cron schedules at varied times, 5 %
`@hourly`, 5 % `@every 1h`, 5 % of the daily ones in another time zone — and starts the
daemon as users do (`python -m scheduler run --config FILE`, a subprocess, JSON log to a
file) against the local engine. The exec jobs act on one busybox container the bench starts
(and removes at the end). Nothing is due while it is measured: the cron times are drawn away
from the next half hour, and a round that would cross the top of an hour (where the hourly
jobs fire) waits until that hour has begun.

Per N it prints:

- start-up: seconds from the process's start to its `daemon.started` line (that line's own
  timestamp less the time just before the process was made), and the CPU seconds the
  process spent to get there (utime + stime from /proc/PID/stat);
- RSS at `daemon.started` and its peak so far (VmRSS, VmHWM), and RSS after the idle window;
- CPU seconds over the idle window (IDLE seconds, starting SETTLE seconds after
  `daemon.started`, so that the work the start leaves behind is counted apart: "settle
  CPU"), and that as a share of one core;
- with --scrape: one GET /metrics after the idle window, its wall time and the daemon's CPU;
- the engine's part: just before each daemon, the bench makes a container as the daemon's
  lock is made (busybox `cat`, create + attach + start, docker SDK) and times it — the
  start-up's floor on this engine, which no change to the daemon's CPU moves;
- the interpreter's part: just before each daemon, a bare `python -c "import docker,
  apscheduler, pydantic_settings, structlog"` (the daemon's interpreter, its fixed
  dependencies, none of our code): its wall and CPU seconds and its peak RSS — the floor of
  any Python daemon built on them. `floor_startup_s` is it plus the engine's part: what a
  daemon that did nothing else than import them and take its lock would need.

ROUNDS > 1 starts each N that many times and prints the median of each figure. --tree DIR
runs that checkout's daemon instead of this one's; given more than once, the trees take turns
for each N in each round (which goes first swaps every round): before/after in one run. Each
tree's modules are compiled first (`compileall`), as the image's are at its build: with
PYTHONDONTWRITEBYTECODE a checkout's would be compiled again at every start.
The machine is shared: compare figures of one run, not across runs; start-up wall time
includes the engine's work (the lock container), which the CPU figures do not.
Needs the engine and busybox:latest (scripts/engine.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import docker
from benchlib import LABEL, ROOT, start_daemon, stop_daemon
from benchlib import docker as docker_cli

if TYPE_CHECKING:
    from collections.abc import Iterator

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")
AWAY_MIN = 30
"""No cron time is drawn within this many minutes from now (in the job's zone)."""


def _cron_time(rng: random.Random, zone: str, now: datetime) -> tuple[int, int]:
    """An (hour, minute) whose next time in ``zone`` is at least AWAY_MIN minutes away."""
    local = now.astimezone(ZoneInfo(zone))
    minute_now = local.hour * 60 + local.minute
    while True:
        hour, minute = rng.randrange(24), rng.randrange(60)
        if (hour * 60 + minute - minute_now) % 1440 >= AWAY_MIN:
            return hour, minute


def job_table(i: int, rng: random.Random, target: str, now: datetime) -> str:
    """Job ``i``'s TOML table: the mix the module's docstring describes."""
    draw = rng.random()
    kind = "exec" if rng.random() < 0.4 else "run"
    zone = "UTC"
    if draw < 0.05:
        schedule = "@hourly"
    elif draw < 0.10:
        schedule = "@every 1h"
    else:
        if draw < 0.15:
            zone = ZONES[i % len(ZONES)]
        hour, minute = _cron_time(rng, zone, now)
        if draw < 0.75:
            schedule = f"{minute} {hour} * * *"
        else:
            schedule = f"{minute} {hour} * * {rng.randrange(7)}"
    lines = [f"[jobs.j{i:05d}]", f'kind = "{kind}"', f'schedule = "{schedule}"']
    if zone != "UTC":
        lines.append(f'timezone = "{zone}"')
    if kind == "exec":
        lines.append(f'container = "{target}"')
    else:
        lines.append('image = "busybox:latest"')
    lines.append('command = "true"')
    return "\n".join(lines) + "\n"


def write_config(path: Path, n: int, name: str, target: str) -> None:
    """A config of ``n`` jobs (the same ones for the same ``n``) for daemon ``name``."""
    rng = random.Random(n)  # noqa: S311 - a benchmark's mix, not cryptography
    now = datetime.now(UTC)
    state = path.parent
    head = (
        f'[daemon]\nname = "{name}"\nlog_format = "json"\nstate_dir = "{state}/state"\n'
        f'heartbeat_file = "{state}/beat"\nops_image = "busybox:latest"\n'
        'http = "127.0.0.1:0"\n\n'
    )
    path.write_text(head + "\n".join(job_table(i, rng, target, now) for i in range(n)))


def cpu_s(pid: int) -> float:
    """The process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of the process, KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


class LogTail:
    """The daemon's JSON log, read on from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.lines = 0

    def read(self) -> Iterator[dict[str, Any]]:
        with self._path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
            self._offset += len(data)
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        for chunk in chunks:
            self.lines += 1
            if chunk.startswith(b"{") and (b'"daemon.' in chunk or b'"http.listening' in chunk):
                yield json.loads(chunk)


def _wait_outside_the_hour(seconds: float) -> None:
    """Sleep until the next ``seconds`` hold no top of an hour (the hourly jobs fire then)."""
    now = datetime.now(UTC)
    top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if now + timedelta(seconds=seconds) >= top:
        wait = (top - now).total_seconds() + 20
        print(f"  (waiting {wait:.0f} s: the hourly jobs fire at {top:%H:%M} UTC)", flush=True)
        time.sleep(wait)


def engine_floor_s(api: Any) -> float:  # noqa: ANN401 - docker.APIClient
    """Seconds to create, attach and start a container as the daemon's lock is made."""
    began = time.monotonic()
    created = api.create_container(
        "busybox:latest",
        ["cat"],
        stdin_open=True,
        labels={LABEL: "scale"},
        host_config=api.create_host_config(auto_remove=True, network_mode="none"),
    )
    sock = api.attach_socket(created["Id"], params={"stdin": 1, "stream": 1})
    api.start(created["Id"])
    took = time.monotonic() - began
    sock.close()
    with contextlib.suppress(docker.errors.APIError):
        api.remove_container(created["Id"], force=True)
    return took


FLOOR_IMPORTS = "import docker, apscheduler, pydantic_settings, structlog"
"""The daemon's fixed dependencies, imported by a bare interpreter: the floor."""


def import_floor(python: str) -> dict[str, float]:
    """Wall and CPU seconds and peak RSS of ``python -c FLOOR_IMPORTS``."""
    began = time.monotonic()
    pid = os.posix_spawn(python, [python, "-c", FLOOR_IMPORTS], os.environ)
    _, status, usage = os.wait4(pid, 0)
    took = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{python} -c {FLOOR_IMPORTS!r} failed")
    return {
        "floor_import_s": took,
        "floor_import_cpu_s": usage.ru_utime + usage.ru_stime,
        "floor_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
    }


def one_round(n: int, args: argparse.Namespace, target: str, tree: Path) -> dict[str, float]:
    """Start a daemon with ``n`` jobs, measure it, stop it."""
    _wait_outside_the_hour(n / 1000 * 3 + 30 + args.settle + args.idle + 30)
    floor = engine_floor_s(args.api)
    bare = import_floor(args.python)
    with tempfile.TemporaryDirectory(prefix="crontainer-scale-") as tmp:
        config = Path(tmp) / "scale.toml"
        write_config(config, n, f"bench-scale-{os.getpid()}-{n}", target)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as out:
            began = time.time()
            process = start_daemon(config, out, cwd=tree, python=args.python)
        try:
            figures = measure(process, LogTail(log), began, args)
            floors = {"floor_startup_s": floor + bare["floor_import_s"], **bare}
            return {"engine_floor_s": floor, **floors, **figures}
        finally:
            stop_daemon(process, 120)


def measure(
    process: subprocess.Popen[bytes], tail: LogTail, began: float, args: argparse.Namespace
) -> dict[str, float]:
    """The figures of one started daemon (see the module's docstring)."""
    pid, port, started = process.pid, None, None
    deadline = time.monotonic() + 600
    while started is None:
        if process.poll() is not None or time.monotonic() > deadline:
            msg = f"the daemon exited or did not start: {tail.lines} lines logged"
            raise RuntimeError(msg)
        for event in tail.read():
            if event["event"] == "http.listening":
                port = event["port"]
            elif event["event"] == "daemon.failed":
                raise RuntimeError(f"the daemon says {event}")
            elif event["event"] == "daemon.started":
                started = event
        time.sleep(0.02)
    figures: dict[str, float] = {
        "startup_s": datetime.fromisoformat(started["timestamp"]).timestamp() - began,
        "startup_cpu_s": cpu_s(pid),
    }
    mem = memory_kib(pid)
    figures["rss_start_mib"] = mem["VmRSS"] / 1024
    figures["rss_peak_mib"] = mem["VmHWM"] / 1024
    time.sleep(args.settle)
    before = cpu_s(pid)
    figures["settle_cpu_s"] = before - figures["startup_cpu_s"]
    lines = tail.lines
    time.sleep(args.idle)
    figures["idle_cpu_s"] = cpu_s(pid) - before
    figures["idle_cpu_pct"] = 100 * figures["idle_cpu_s"] / args.idle
    for _ in tail.read():
        pass
    figures["idle_lines"] = tail.lines - lines
    figures["rss_idle_mib"] = memory_kib(pid)["VmRSS"] / 1024
    if args.scrape and port is not None:
        cpu = cpu_s(pid)
        wall = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as r:
            r.read()
        figures["scrape_s"] = time.monotonic() - wall
        figures["scrape_cpu_s"] = cpu_s(pid) - cpu
    return figures


@contextlib.contextmanager
def exec_target() -> Iterator[str]:
    """A running busybox container for the exec jobs, removed at the end."""
    name = f"crontainer-bench-scale-{os.getpid()}"
    docker_cli("run", "-d", "--label", LABEL, "--name", name, "busybox:latest", "sleep", "86400")
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


ORDER = (
    "engine_floor_s", "floor_import_s", "floor_startup_s", "startup_s",
    "floor_import_cpu_s", "startup_cpu_s", "floor_rss_mib", "rss_start_mib", "rss_peak_mib",
    "settle_cpu_s", "idle_cpu_s", "idle_cpu_pct", "rss_idle_mib", "idle_lines", "scrape_s",
    "scrape_cpu_s",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1,1000,10000", help="the Ns, comma-separated")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="pause before it, seconds")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--scrape", action="store_true", help="time one GET /metrics")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a checkout whose daemon runs (default: this one); given twice or more, the "
        "trees alternate in each round (before/after in one run)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the daemon's interpreter (a venv without the dev tools: structlog imports rich "
        "when it is installed, the image has none)",
    )
    args = parser.parse_args()
    args.api = docker.APIClient(**docker.utils.kwargs_from_env())
    trees: list[Path] = args.tree or [ROOT]
    sizes = [int(n) for n in args.jobs.split(",")]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    # The image's modules are compiled at its build (pip); a checkout's are compiled here
    # once, or every start would compile them again under PYTHONDONTWRITEBYTECODE.
    for tree in trees:
        subprocess.run(
            [args.python, "-m", "compileall", "-q", "scheduler", "jobs"], cwd=tree, check=True
        )
    with exec_target() as target:
        for r in range(args.rounds):
            for n in sizes:
                for tree in trees if r % 2 == 0 else trees[::-1]:
                    key = (tree.name, n)
                    print(f"round {r + 1}, {n} jobs, {tree} ...", file=sys.stderr, flush=True)
                    runs.setdefault(key, []).append(one_round(n, args, target, tree))
                    print(f"  {runs[key][-1]}", file=sys.stderr, flush=True)
    result = {
        key: {name: round(statistics.median(f[name] for f in found), 3) for name in found[0]}
        for key, found in runs.items()
    }
    if args.json:
        print(json.dumps({f"{tree} {n}": row for (tree, n), row in result.items()}, indent=2))
        return 0
    keys = [(tree.name, n) for n in sizes for tree in trees]
    print(f"{'figure':<16}" + "".join(f"{f'{tree} {n:,}':>22}" for tree, n in keys))
    for name in ORDER:
        if name in result[keys[0]]:
            print(f"{name:<16}" + "".join(f"{result[key][name]:>22.3f}" for key in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
