"""Jobs in container labels at scale: start-up, the cost of a resync, and a burst (issue #18).

    python bench/label_discovery.py [--containers 500] [--burst 100] [--idle 60] [--scans 10]

Creates CONTAINERS busybox containers (`sleep`, created and not started unless --start:
discovery lists containers in any state), each with two label jobs — an exec job
(`0 3 * * *`) and a signal job (`0 4 * * *`) — and a label unique to this run, which
every daemon takes as its `label_filter`. Then, against the local engine:

1. start-up: three daemons (`crontainer run` as subprocesses, JSON logs), started one
   after the other — labels off; labels on with the default `label_resync` (60 s);
   labels on with `label_resync = "5s"` — each timed from its process start to its
   `labels.applied` (trigger start: one scan) and to `daemon.started`, with its count
   of `job.scheduled` lines;
2. idle: the three side by side for IDLE seconds, nothing changing: the CPU seconds each
   spends (utime + stime from /proc) and its RSS at the end (1,000 label jobs vs 0);
   the engine's container events in that time are counted too, anyone's (this engine is
   shared). They cost the labelled daemons nothing here: since d7cadb4 the engine sends a
   daemon only the events of containers its `label_filter` lets in (this run's label), and
   the daemon ignores those of its own runs' containers — without a `label_filter`, every
   other container's event would be a scan;
3. burst, daemon: with only the 60-s daemon left, BURST more labelled containers are
   started `docker compose up`-like (`docker run -d`, 16 at once): seconds from the
   burst's start until the daemon's `labels.applied` holds them all, and how many
   `labels.applied` lines it took (a scan that changes nothing logs none);
4. scans, in this process: `LabelWatch.scan()` against the same containers with the
   same rules, SCANS times each (p50 / p95, wall and this process's CPU): cold (a new
   watch, every container's jobs parsed and validated), warm (the same watch again,
   nothing changed: the memo's case, a resync or an event that changes no job) and the
   engine's list call alone;
5. burst, in this process: the burst containers removed, a LabelWatch (resync 1 h)
   started and BURST new containers started the same way; every scan it makes is
   counted, and the time until one holds them all.

Every container the run made is removed at the end, on failure or on Ctrl-C (they all
carry the run's label). Needs the engine and busybox:latest (scripts/engine.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchlib import LABEL, Daemon, docker

from scheduler.docker_engine import DockerEngine
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Rules
from scheduler.labels.watch import SETTLE_S, LabelWatch, filter_selector
from scheduler.logs import configure

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")
RUN_LABEL = "crontainer-bench.run"
"""The label (``=<run id>``) that every container of one run carries: the daemons' filter."""
JOB_LABELS = {
    "crontainer.jobs.tick.schedule": "0 3 * * *",
    "crontainer.jobs.tick.command": "date",
    "crontainer.jobs.hup.kind": "signal",
    "crontainer.jobs.hup.schedule": "0 4 * * *",
}
JOBS_PER_CONTAINER = 2
PARALLEL = 16
"""Docker commands at once (set-up, and the burst)."""

CONFIG = """[daemon]
name = "{name}"
log_format = "json"
state_dir = "{state}"
heartbeat_file = "{state}/heartbeat"
ops_image = "busybox:latest"
http = ""
labels = {labels}
label_filter = ["{filter}"]
label_resync = "{resync}"
"""

VARIANTS = {"off": ("false", "60s"), "resync_60s": ("true", "60s"), "resync_5s": ("true", "5s")}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--scans", type=int, default=10)
    parser.add_argument("--starts", type=int, default=3, help="start-up rounds")
    parser.add_argument("--start", action="store_true", help="start the CONTAINERS too")
    return parser.parse_args()


def create(run: str, names: list[str], *, start: bool) -> float:
    """``names`` made in PARALLEL threads (started with ``start``); the seconds it took."""
    labels = [LABEL, f"{RUN_LABEL}={run}", *(f"{k}={v}" for k, v in JOB_LABELS.items())]
    flags = [arg for label in labels for arg in ("--label", label)]
    verb = ["run", "-d"] if start else ["create"]

    def one(name: str) -> None:
        docker(*verb, "--name", name, *flags, "busybox:latest", "sleep", "999999999")

    began = time.monotonic()
    parallel(one, names, PARALLEL)
    return time.monotonic() - began


def remove(names: list[str]) -> None:
    def one(batch: list[str]) -> None:
        subprocess.run(["docker", "rm", "-f", *batch], capture_output=True, check=False)

    parallel(one, [names[i : i + 25] for i in range(0, len(names), 25)], 4)


def parallel(call: Callable[[T], None], items: list[T], threads: int) -> None:
    """``call`` on each item, ``threads`` at once; on a failure or Ctrl-C the ones not
    begun are dropped (the cleanup need not wait for them)."""
    pool = ThreadPoolExecutor(threads)
    try:
        list(pool.map(call, items))
    finally:
        pool.shutdown(cancel_futures=True)


@contextlib.contextmanager
def containers_of(run: str) -> Iterator[None]:
    """Every container labelled with ``run`` is removed at the end, whatever happened
    (SIGTERM is taken as Ctrl-C)."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        left = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={run}").split()
        remove(left)
        print(f"removed {len(left)} containers", file=sys.stderr)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def at(event: dict[str, Any]) -> float:
    """An event's timestamp as seconds since the epoch."""
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def start_daemon(run: str, state: Path, variant: str) -> tuple[Daemon, dict[str, Any]]:
    """One daemon of ``variant``, started; its start-up figures."""
    labels, resync = VARIANTS[variant]
    config = CONFIG.format(
        name=f"bench-labels-{variant}",
        state=state,
        labels=labels,
        filter=f"{RUN_LABEL}={run}",
        resync=resync,
    )
    began = time.time()
    daemon = Daemon(config, state)
    events = daemon.events()
    started = next(e for e in events if e["event"] == "daemon.started")
    applied = [e for e in events if e["event"] == "labels.applied"]
    return daemon, {
        "to_labels_applied_s": at(applied[0]) - began if applied else None,
        "labels_applied_jobs": applied[0]["jobs"] if applied else 0,
        "to_daemon_started_s": at(started) - began,
        "job_scheduled_lines": sum(1 for e in events if e["event"] == "job.scheduled"),
    }


def start_daemons(run: str, tmp: Path, rounds: int, daemons: dict[str, Daemon]) -> dict[str, Any]:
    """Each variant started one after the other, ``rounds`` times (all but the last round's
    stopped again); the medians of their start-up figures. ``daemons``: the running ones."""
    found: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for round_ in range(rounds):
        for variant in VARIANTS:
            state = tmp / f"{variant}-{round_}"
            state.mkdir()
            daemons[variant], figures = start_daemon(run, state, variant)
            found[variant].append(figures)
            if round_ < rounds - 1:
                daemons.pop(variant).stop()
    report: dict[str, Any] = {}
    for variant, rows in found.items():
        report[variant] = {"rounds": rounds}
        for key in rows[0]:
            values = [row[key] for row in rows]
            if key.endswith("_s") and values[0] is not None:
                report[variant][key] = round(statistics.median(values), 2)
                report[variant][key[:-2] + "_all_s"] = [round(v, 2) for v in values]
            else:
                report[variant][key] = values[-1]
    return report


def count_events(since: float, until: float) -> int:
    """The engine's container events (the actions a label watch follows) in that time."""
    said = docker(
        "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
        "--filter", "type=container", "--filter", "event=start", "--filter", "event=die",
        "--filter", "event=destroy", "--filter", "event=rename", "--format", "{{.Action}}",
    )  # fmt: skip
    return len(said.split())


def idle(daemons: dict[str, Daemon], seconds: int) -> dict[str, Any]:
    """CPU seconds of each daemon over ``seconds`` with nothing changing; RSS at the end."""
    time.sleep(10)  # the start-up's garbage, the first resyncs of the 5-s daemon
    pids = {v: d.process.pid for v, d in daemons.items()}
    lines = {v: len(d.events()) for v, d in daemons.items()}
    began = time.time()
    cpu = {v: cpu_seconds(pid) for v, pid in pids.items()}
    time.sleep(seconds)
    ended = time.time()
    report: dict[str, Any] = {
        v: {
            "cpu_s": round(cpu_seconds(pid) - cpu[v], 2),
            "rss_kib": rss_kib(pid),
            "log_lines": len(daemons[v].events()) - lines[v],
        }
        for v, pid in pids.items()
    }
    report["engine_container_events"] = count_events(began, ended)
    report["rss_ratio_1000_jobs_vs_0"] = round(
        report["resync_60s"]["rss_kib"] / report["off"]["rss_kib"], 2
    )
    return report


def burst_daemon(run: str, daemon: Daemon, names: list[str], total: int) -> dict[str, Any]:
    """``names`` started like ``docker compose up``; until the daemon holds ``total`` jobs."""
    before = len(daemon.events())
    began = time.time()
    took = create(run, names, start=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        applied = [e for e in daemon.events()[before:] if e["event"] == "labels.applied"]
        if applied and applied[-1]["jobs"] == total:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"the daemon never held {total} jobs")
    time.sleep(5)  # scans that follow the last events
    applied = [e for e in daemon.events()[before:] if e["event"] == "labels.applied"]
    whole = next(e for e in applied if e["jobs"] == total)
    return {
        "burst_commands_s": round(took, 2),
        "last_container_event_s": round(last_event(run, began) - began, 2),
        "to_all_applied_s": round(at(whole) - began, 2),
        "labels_applied_lines": len(applied),
        "labels_applied_before_all": applied.index(whole) + 1,
        "triggers": sorted({e["trigger"] for e in applied}),
    }


def last_event(run: str, since: float) -> float:
    """When the last of the run's containers was created or started, since ``since``."""
    said = docker(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", "type=container", "--filter", f"label={RUN_LABEL}={run}",
        "--filter", "event=create", "--filter", "event=start", "--format", "{{.TimeNano}}",
    )  # fmt: skip
    return max(int(t) for t in said.split()) / 1e9


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def scans(engine: DockerEngine, run: str, rules: Rules, count: int) -> dict[str, Any]:
    """``LabelWatch.scan()`` ``count`` times each way, wall and CPU time of this process:
    cold (a new watch: every container parsed, as every scan was before the memo), warm
    (the same watch again: nothing changed), and the engine's list call alone."""
    selector = filter_selector([f"{RUN_LABEL}={run}"])
    times: dict[str, list[float]] = {}
    jobs = 0

    def timed(way: str, call: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        times.setdefault(f"{way}_wall", []).append(time.perf_counter() - wall)
        times.setdefault(f"{way}_cpu", []).append(time.process_time() - cpu)

    for _ in range(count):
        watch = LabelWatch(engine, [f"{RUN_LABEL}={run}"], 3600, lambda: rules, _no)
        timed("cold", watch.scan)
        timed("warm", watch.scan)
        timed("list_call", lambda: engine.select(selector))
        jobs = len(watch.scan().jobs)
    return {
        "jobs": jobs,
        **{
            way: {
                "p50_ms": round(statistics.median(values) * 1000, 1),
                "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            }
            for way, values in times.items()
        },
    }


def _no(found: LabelJobs, trigger: str) -> None:
    """A watch's ``apply`` that takes nothing."""


def burst_watch(
    engine: DockerEngine, run: str, rules: Rules, names: list[str], total: int
) -> dict[str, Any]:
    """A LabelWatch in this process; ``names`` started as a burst; every scan it makes."""
    seen: list[tuple[float, str, int]] = []
    changed = threading.Event()

    def apply(found: LabelJobs, trigger: str) -> None:
        seen.append((time.time(), trigger, len(found.jobs)))
        changed.set()

    watch = LabelWatch(engine, [f"{RUN_LABEL}={run}"], 3600, lambda: rules, apply)
    watch.start()
    time.sleep(1)  # the event stream followed
    try:
        began = time.time()
        took = create(run, names, start=True)
        deadline = time.monotonic() + 300
        while not any(jobs == total for _, _, jobs in seen) and time.monotonic() < deadline:
            changed.wait(1)
            changed.clear()
        time.sleep(5)  # scans that follow the last events
    finally:
        watch.stop()
    whole = next((i for i, (_, _, jobs) in enumerate(seen) if jobs == total), None)
    if whole is None:
        raise RuntimeError(f"no scan held {total} jobs: {seen}")
    return {
        "burst_commands_s": round(took, 2),
        "last_container_event_s": round(last_event(run, began) - began, 2),
        "to_all_scanned_s": round(seen[whole][0] - began, 2),
        "scans": len(seen),
        "scans_before_all": whole + 1,
        "scan_triggers": sorted({t for _, t, _ in seen}),
        "jobs_per_scan": [jobs for _, _, jobs in seen],
        "settle_s": SETTLE_S,
    }


def main() -> int:
    args = arguments()
    run = uuid.uuid4().hex[:10]
    prefix = f"bench-lbl-{run}"
    base = [f"{prefix}-{i:04d}" for i in range(args.containers)]
    first = [f"{prefix}-b1-{i:04d}" for i in range(args.burst)]
    second = [f"{prefix}-b2-{i:04d}" for i in range(args.burst)]
    total = (args.containers + args.burst) * JOBS_PER_CONTAINER
    report: dict[str, Any] = {"containers": args.containers, "burst": args.burst}
    configure("json", stream=io.StringIO())  # this process's own watch: quiet
    rules = Rules(kinds=LABEL_KINDS, allow=(), defaults={})
    with containers_of(run), tempfile.TemporaryDirectory() as tmp:
        report["setup_s"] = round(create(run, base, start=args.start), 1)
        daemons: dict[str, Daemon] = {}
        try:
            report["startup"] = start_daemons(run, Path(tmp), args.starts, daemons)
            report["idle"] = idle(daemons, args.idle)
            for variant in ("off", "resync_5s"):
                daemons.pop(variant).stop()
            report["burst_daemon"] = burst_daemon(run, daemons["resync_60s"], first, total)
        finally:
            for daemon in daemons.values():
                daemon.stop()
        remove(first)
        engine = DockerEngine.connect(30)
        try:
            report["scans"] = scans(engine, run, rules, args.scans)
            report["burst_watch"] = burst_watch(engine, run, rules, second, total)
        finally:
            engine.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
