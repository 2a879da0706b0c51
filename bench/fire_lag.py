"""Fire lag against the engine's floor: how late a job's command starts after its scheduled
instant, crontainer against the docker SDK called directly at that instant, in one run.

    python bench/fire_lag.py [--samples 20] [--period 2] [--load 0] [--burst 200]
                             [--parallel 16] [--modes run,exec,burst,burst-exec]
                             [--prepare-ahead 1s] [--filler 1000] [--start-floor]

Every figure is the command's own start time, taken inside the container, less the
scheduled instant: both sides pay the container's (or the exec's) start. The command is
``sh -c 'adjtimex | awk … >> /data/<file>'``: busybox's ``date`` has no ``%N`` (it prints
the letters), ``/proc/uptime`` has 10 ms steps and another origin, but busybox's
``adjtimex`` prints the kernel's wall clock (``time.tv_sec`` / ``time.tv_usec``) from the
adjtimex(2) call itself — in nanoseconds when the status has STA_NANO (0x2000), as on this
machine's kernel, else in microseconds — and the host and a container share that clock.

- **floor**: a thread of this process sleeps until the instant as the daemon's ticker does
  (``Event.wait`` of the time left) and then calls docker-py's ``APIClient`` itself:
  ``create_container`` + ``start`` of a busybox container (``run``), or ``exec_create`` +
  ``exec_start`` in a running busybox container (``exec``); the container is removed after
  the sample (not timed).
- **start alone** (``--start-floor``, run mode): the engine's ``start`` of a busybox
  container the SDK created ahead (between the samples): the floor of any scheduler that
  starts a container at the instant. Each side then has its own instant, ``--period``
  apart, in a period of (number of sides) * ``--period``.
- **crontainer**: ``crontainer run`` as a subprocess (JSON log, its own state directory)
  with one job of that kind, ``schedule = "@every <period>s"`` (aligned to the epoch); its
  instants and the floor's alternate, half a period apart. ``--filler N`` configures N
  more run jobs beside it that never fire while the bench runs (once a year, each at its
  own minute): the issue's "with 1,000 jobs configured". Both kinds are prepared ahead
  (``prepare_ahead``: a ``run`` job's container created, an ``exec`` job's exec created,
  leaving only the start to the instant) when ``--prepare-ahead`` is at most the period;
  with the default 5 s and a shorter period nothing is prepared (a run is prepared only
  when it is due at least its lead after the previous one was planned), so this side then
  pays create + start as the floor does.
- **bursts**: ``--burst`` run jobs (and, with ``burst-exec``, as many exec jobs) due at the
  same second (``@with-seconds`` at an instant a few seconds after the daemon started),
  ``max_concurrent_runs = --parallel``: all started? time from the instant to the last
  command's start; how many were prepared ahead — run jobs' containers, exec jobs' execs —
  (``--burst-prepare-ahead``, else ``--prepare-ahead``, else the default 5 s). The floor
  does the same number with ``--parallel`` threads: ``create + start`` only, and ``create +
  attach + start + wait + remove`` (what a daemon's run does while it holds its slot: the
  next run of the burst waits for that slot); for execs
  ``exec_create + exec_start``, and with ``exec_inspect`` after the output (the exit code);
  with ``--start-floor`` also ``start`` alone of as many containers created before the
  instant (what prepared runs leave to the instant).
- ``--load N`` starts N busy processes (``while True: pass``, normal priority) beside it
  for the whole run.

Prints one table per mode: p50 / p95 / max of each side's lag in ms, the ratio
crontainer / floor and the difference, and the daemon's own ``run.started`` lag_s (fire
to the run's thread recording its start). Needs a Docker engine and busybox:latest.
Everything it makes carries the label ``crontainer-bench`` and is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from benchlib import LABEL, ROOT, start_daemon, stop_daemon

from scheduler.docker_engine import DockerEngine

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

IMAGE = "busybox:latest"
STA_NANO = 0x2000
PROBE = (
    "adjtimex | awk '/status/{st=$2} /tv_sec/{s=$2} /tv_usec/{u=$2} "
    "END{print st, s, u}' >> /data/{file}"
)
"""The command of every sample: the kernel's wall clock at its start, one line per run."""


def probe(file: str) -> list[str]:
    return ["sh", "-c", PROBE.replace("{file}", file)]


def parse_probe(line: str) -> int:
    """A probe line (status, seconds, micro- or nanoseconds) as UNIX nanoseconds."""
    status, seconds, fraction = (int(x) for x in line.split())
    return seconds * 1_000_000_000 + (fraction if status & STA_NANO else fraction * 1000)


# --- the scene: a volume, a running container to exec in, the daemon -------------------


@dataclass
class Scene:
    api: Any
    tag: str
    volume: str = ""
    target: str = ""
    containers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.volume = f"{self.tag}-data"
        self.target = f"{self.tag}-target"

    def make(self) -> None:
        self.api.create_volume(self.volume, labels={LABEL: "1"})
        created = self.api.create_container(
            IMAGE,
            ["sleep", "86400"],
            name=self.target,
            labels={LABEL: "1"},
            volumes=["/data"],
            host_config=self.api.create_host_config(binds=[f"{self.volume}:/data:rw"]),
        )
        self.api.start(created["Id"])

    def read(self, file: str) -> list[int]:
        """The probe lines of ``file`` in the volume, as UNIX nanoseconds."""
        exec_id = self.api.exec_create(self.target, ["sh", "-c", f"cat /data/{file} || true"])
        text = self.api.exec_start(exec_id).decode()
        return [parse_probe(line) for line in text.splitlines() if line.strip()]

    def clean(self) -> None:
        for container in self.api.containers(
            all=True, filters={"label": f"{LABEL}-run={self.tag}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(container["Id"], force=True)
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_container(self.target, force=True)
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_volume(self.volume, force=True)


class Daemon:
    """``crontainer run`` with a config of ``jobs``; its JSON log in the state directory."""

    def __init__(
        self, scene: Scene, state: Path, jobs: str, parallel: int, root: Path = ROOT
    ) -> None:
        state.mkdir(parents=True, exist_ok=True)
        config = state / "bench.toml"
        name = scene.tag if root == ROOT else f"{scene.tag}-compare"
        config.write_text(
            f'[daemon]\nname = "{name}"\nlog_format = "json"\nstate_dir = "{state}"\n'
            f'heartbeat_file = "{state}/heartbeat"\nops_image = "{IMAGE}"\nhttp = ""\n'
            f"max_concurrent_runs = {parallel}\n\n{jobs}"
        )
        self.log = state / "daemon.log"
        with self.log.open("w") as out:
            self.process = start_daemon(config, out, cwd=root)
        try:
            self.wait_for(lambda events: any(e["event"] == "daemon.started" for e in events), 120)
        except BaseException:
            self.stop()
            raise

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if done(self.events()):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"the daemon did not get there in {seconds} s; see {self.log}")

    def stop(self) -> None:
        stop_daemon(self.process, 60)


# --- the floor ------------------------------------------------------------------------


def sleep_until(instant_ns: int) -> None:
    """Wait for the instant as the daemon's ticker does: one timed ``Event.wait`` of what is
    left, again if it woke early."""
    waiter = threading.Event()
    while (left := instant_ns - time.time_ns()) > 0:
        waiter.wait(left / 1e9)


def create_probe(scene: Scene, file: str) -> str:
    """A busybox container (not started) that runs the probe into ``file``; its id."""
    api = scene.api
    created = api.create_container(
        IMAGE,
        probe(file),
        labels={LABEL: "1", f"{LABEL}-run": scene.tag},
        volumes=["/data"],
        host_config=api.create_host_config(binds=[f"{scene.volume}:/data:rw"]),
    )
    return str(created["Id"])


def floor_run(scene: Scene, file: str) -> str:
    """create + start of a busybox container running the probe; its id."""
    container_id = create_probe(scene, file)
    scene.api.start(container_id)
    return container_id


def floor_run_whole(scene: Scene, file: str) -> None:
    """What a daemon's run does while it holds its slot: create, attach the output, start,
    wait, remove."""
    container_id = create_probe(scene, file)
    frames = scene.api.attach(container_id, stdout=True, stderr=True, stream=True, logs=True)
    scene.api.start(container_id)
    for _ in frames:
        pass
    finish_run(scene, container_id)


def floor_exec(scene: Scene, file: str, *, whole: bool = False) -> None:
    """exec_create + exec_start of the probe in the running container, output read to its
    end; ``whole``: then its exit code asked for too (``exec_inspect``), as a daemon's run
    does while it holds its slot."""
    exec_id = scene.api.exec_create(scene.target, probe(file))
    for _ in scene.api.exec_start(exec_id, stream=True, demux=True):
        pass
    if whole:
        scene.api.exec_inspect(exec_id)


def start_ahead(scene: Scene, container_id: str) -> str:
    """start of a container created ahead; its id."""
    scene.api.start(container_id)
    return container_id


def finish_run(scene: Scene, container_id: str) -> None:
    scene.api.wait(container_id, timeout=60)
    scene.api.remove_container(container_id, v=True, force=True)


# --- one mode: the floor and the daemon alternating -------------------------------------


@dataclass
class Lags:
    floor: dict[int, float]
    cron: dict[int, float]
    daemon_lag_ms: list[float]
    expected: int
    other: dict[int, float] = field(default_factory=dict)
    """``--compare``'s daemon (another checkout), a third of the period after ours."""
    start: dict[int, float] = field(default_factory=dict)
    """``--start-floor``: the SDK's start alone of a container it created ahead."""

    @property
    def floor_ms(self) -> list[float]:
        return list(self.floor.values())

    @property
    def cron_ms(self) -> list[float]:
        return list(self.cron.values())

    @property
    def paired_ms(self) -> list[float]:
        """crontainer's lag at instant k less the floor's half a period later: the machine's
        load changes less in between than over the whole run."""
        return [self.cron[k] - self.floor[k] for k in self.cron if k in self.floor]


def lags(times_ns: list[int], period_ns: int, offset_ns: int) -> dict[int, float]:
    """Each time less the latest instant of its side (``offset`` + k * ``period``) before
    it, in ms, by k."""
    return {(t - offset_ns) // period_ns: ((t - offset_ns) % period_ns) / 1e6 for t in times_ns}


def job_body(
    scene: Scene, kind: str, file: str, args: argparse.Namespace, *, ours: bool = True
) -> str:
    """A job's keys but its schedule: a ``run`` of busybox with the scene's volume, or an
    ``exec`` in the scene's container, running the probe into ``file``. An exec job of
    ``--compare``'s daemon (not ``ours``) gets no ``prepare_ahead``: the code before it
    refuses the key for exec jobs."""
    if kind == "run":
        body = f'kind = "run"\nimage = "{IMAGE}"\nvolumes = ["{scene.volume}:/data"]\n'
        body += prepared(args)
    else:
        body = f'kind = "exec"\ncontainer = "{scene.target}"\n'
        body += prepared(args) if ours else ""
    return body + f"command = {json.dumps(probe(file))}\n"


def filler(count: int) -> str:
    """``count`` run jobs that never fire during a bench: once a year (1 January), each at a
    minute of its own."""
    return "".join(
        f'[jobs.filler{i:05d}]\nkind = "run"\nimage = "{IMAGE}"\ncommand = "true"\n'
        f'schedule = "{i % 60} {i // 60 % 24} 1 1 *"\n\n'
        for i in range(count)
    )


def prepared(args: argparse.Namespace) -> str:
    """The jobs' ``prepare_ahead`` line: none unless ``--prepare-ahead`` (so a
    ``--compare`` checkout from before the key still reads the config)."""
    return f'prepare_ahead = "{args.prepare_ahead}"\n' if args.prepare_ahead else ""


def alternate(scene: Scene, mode: str, args: argparse.Namespace, state: Path) -> Lags:
    """``args.samples`` samples each: the daemon's job at every k * period, the floor half
    a period later. With ``--compare`` or ``--start-floor`` each side has its own instant,
    ``--period`` apart: the daemon's, the other daemon's, the floor's, the start alone's."""
    compare = args.compare
    start_floor = args.start_floor and mode == "run"
    sides = 2 + bool(compare) + bool(start_floor)
    period_ns = (sides * args.period if sides > 2 else args.period) * 1_000_000_000
    step = period_ns // sides
    half = step * (1 + bool(compare))  # the floor's instant in the period
    cron_file, floor_file, start_file = f"cron-{mode}.log", f"floor-{mode}.log", "start-run.log"

    def config(file: str, schedule: str, *, ours: bool = True) -> str:
        body = job_body(scene, mode, file, args, ours=ours)
        jobs = f'[jobs.lag]\nschedule = "{schedule}"\nhistory_limit = 5\n{body}\n'
        return jobs + filler(args.filler)

    daemon = Daemon(
        scene, state / mode, config(cron_file, f"@every {period_ns // 10**9}s"), args.parallel
    )
    other = None
    if compare:
        every = sides * args.period
        if 60 % every:
            raise SystemExit(f"--compare needs {sides} * --period to divide 60 s, not {every}")
        seconds = ",".join(str(s) for s in range(args.period, 60, every))
        other = Daemon(
            scene,
            state / f"{mode}-compare",
            config(f"cmp-{mode}.log", f"@with-seconds {seconds} * * * * *", ours=False),
            args.parallel,
            root=Path(compare).resolve(),
        )
    try:
        # The first instant of each side after a warm-up period; samples before it are dropped.
        start = (time.time_ns() // period_ns + 2) * period_ns
        warm = start - period_ns + half
        sleep_until(warm)  # one untimed floor call: docker-py's connection, the engine's caches
        work = floor_run if mode == "run" else floor_exec
        leftover = work(scene, f"warm-{mode}.log")
        if mode == "run":
            finish_run(scene, str(leftover))
        for k in range(args.samples):
            sleep_until(start + k * period_ns + half)
            made = work(scene, floor_file)
            if mode == "run":
                finish_run(scene, str(made))
            if start_floor:
                ahead = create_probe(scene, start_file)
                sleep_until(start + k * period_ns + half + step)
                scene.api.start(ahead)
                finish_run(scene, ahead)
        end = start + args.samples * period_ns
        sleep_until(end + half)  # the daemon's last sample ended
    finally:
        daemon.stop()
        if other is not None:
            other.stop()
    cron = [t for t in scene.read(cron_file) if start <= t < end]
    floor = scene.read(floor_file)
    started = [
        e
        for e in daemon.events()
        if e["event"] == "run.started"
        and start <= datetime.fromisoformat(e["scheduled_at"]).timestamp() * 1e9 < end
    ]
    return Lags(
        floor=lags(floor, period_ns, half),
        cron=lags(cron, period_ns, 0),
        daemon_lag_ms=[e["lag_s"] * 1000 for e in started],
        expected=args.samples,
        other={}
        if other is None
        else lags(
            [t for t in scene.read(f"cmp-{mode}.log") if start <= t < end],
            period_ns,
            step,
        ),
        start={} if not start_floor else lags(scene.read(start_file), period_ns, half + step),
    )


# --- bursts -----------------------------------------------------------------------------


@dataclass
class Burst:
    what: str
    started: int
    first_ms: float
    p50_ms: float
    last_ms: float
    note: str = ""


def summarize_burst(what: str, times_ns: list[int], instant_ns: int, note: str = "") -> Burst:
    ms = sorted((t - instant_ns) / 1e6 for t in times_ns)
    if not ms:
        return Burst(what, 0, float("nan"), float("nan"), float("nan"), note)
    return Burst(what, len(ms), ms[0], statistics.median(ms), ms[-1], note)


def next_instant(lead_s: float) -> int:
    return (int(time.time()) + int(lead_s) + 1) * 1_000_000_000


def burst_floor(scene: Scene, args: argparse.Namespace, kind: str, variant: str) -> Burst:
    """``count`` calls at one instant on ``parallel`` threads: the pool's threads exist
    before the instant, as the daemon's ticker thread does."""
    count, parallel, file = args.burst, args.parallel, f"burst-floor-{kind}-{variant}.log"
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: None, range(parallel)))  # the threads started
        if variant == "ahead":  # created before the instant, as prepared runs are
            ahead = iter(list(pool.map(lambda _: create_probe(scene, file), range(count))))
        instant = next_instant(2)
        sleep_until(instant)
        if kind == "exec":
            whole = variant == "whole"
            work: Callable[[int], object] = lambda _: floor_exec(scene, file, whole=whole)  # noqa: E731
        elif variant == "whole":
            work = lambda _: floor_run_whole(scene, file)  # noqa: E731
        elif variant == "ahead":
            work = lambda _: start_ahead(scene, next(ahead))  # noqa: E731
        else:
            work = lambda _: floor_run(scene, file)  # noqa: E731
        made = list(pool.map(work, range(count)))
        if kind == "run" and variant in {"start", "ahead"}:
            list(pool.map(lambda cid: finish_run(scene, str(cid)), made))
    labels = {
        ("run", "start"): "create+start",
        ("run", "whole"): "create+attach+start+wait+remove",
        ("run", "ahead"): "start alone (created ahead)",
        ("exec", "start"): "exec_create+exec_start",
        ("exec", "whole"): "exec_create+exec_start+exec_inspect",
    }
    what = f"floor, {kind}: {labels[kind, variant]}"
    return summarize_burst(what, scene.read(file), instant)


def burst_daemon(scene: Scene, args: argparse.Namespace, kind: str, state: Path) -> Burst:
    """``count`` jobs of ``kind`` due at one second, ``max_concurrent_runs = parallel``; both
    kinds prepared ahead (a run job's container, an exec job's exec) with the burst's
    ``prepare_ahead``."""
    count, file = args.burst, f"burst-cron-{kind}.log"
    ahead = burst_ahead(args)
    # the daemon's start with that many jobs on a busy machine, then the preparations
    lead = 8 + count / 50 + args.filler / 200 + ahead
    instant = next_instant(lead)
    moment = datetime.fromtimestamp(instant / 1e9, UTC)
    when = f"@with-seconds {moment.second} {moment.minute} {moment.hour} * * *"
    burst_args = argparse.Namespace(**{**vars(args), "prepare_ahead": args.burst_prepare_ahead})
    body = job_body(scene, kind, file, burst_args if args.burst_prepare_ahead else args)
    jobs = "".join(f'[jobs.b{i:04d}]\nschedule = "{when}"\n{body}\n' for i in range(count))
    daemon = Daemon(scene, state / f"burst-{kind}", jobs + filler(args.filler), args.parallel)
    try:
        if time.time_ns() > instant - 500_000_000:
            raise RuntimeError("the daemon started too late for the burst's instant")
        ended = ("run.succeeded", "run.failed", "run.skipped", "run.missed", "run.timed_out")
        daemon.wait_for(
            lambda events: sum(e["event"] in ended for e in events) >= count, 120 + count
        )
    finally:
        daemon.stop()
    events = daemon.events()
    counts = {name: sum(e["event"] == name for e in events) for name in ended}
    note = ", ".join(f"{k.removeprefix('run.')} {v}" for k, v in counts.items() if v)
    note += "; " + (preparation_note(events) if kind == "run" else exec_note(events))
    what = f"crontainer, {kind} jobs"
    return summarize_burst(what, scene.read(file), instant, note)


def burst_ahead(args: argparse.Namespace) -> float:
    """The burst's jobs' prepare_ahead in seconds (``--burst-prepare-ahead``, else
    ``--prepare-ahead``, else the default 5 s); only whole seconds and minutes are read."""
    text = args.burst_prepare_ahead or args.prepare_ahead or "5s"
    number = float(text.rstrip("sm"))
    return number * 60 if text.endswith("m") else number


def preparation_note(events: list[dict[str, Any]]) -> str:
    """How many of a burst's runs were prepared ahead, how many of those started, and why
    the others were removed."""
    made = [e for e in events if e["event"] == "run.prepared"]
    ids = {e["run_id"] for e in made}
    started = sum(e["event"] == "run.started" and e.get("run_id") in ids for e in events)
    reasons: dict[str, int] = {}
    for e in events:
        if e["event"] == "run.prepared_discarded":
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    failed = sum(e["event"] == "run.prepare_failed" for e in events)
    note = f"prepared {len(made)}, of them started {started}"
    if reasons:
        note += ", removed " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    return note + (f", prepare_failed {failed}" if failed else "")


def exec_note(events: list[dict[str, Any]]) -> str:
    """How many of a burst's execs were created ahead, and why any were left unused (or a
    start refused: the run then created its own)."""
    made = sum(e["event"] == "run.exec_prepared" for e in events)
    reasons: dict[str, int] = {}
    for e in events:
        if e["event"] == "run.exec_unused":
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    failed = sum(e["event"] == "run.prepare_failed" for e in events)
    note = f"execs prepared {made}"
    if reasons:
        note += ", unused " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    return note + (f", prepare_failed {failed}" if failed else "")


# --- the report --------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(mode: str, result: Lags) -> str:
    floor, cron = result.floor_ms, result.cron_ms
    rows = [
        f"\n{mode}: fire lag, ms (the command's own start less the scheduled instant)",
        "| side | samples | p50 | p95 | max |",
        "|---|---|---|---|---|",
    ]
    for name, values in (("floor (SDK)", floor), ("crontainer", cron)):
        rows.append(
            f"| {name} | {len(values)}/{result.expected} | {pct(values, 0.5):.1f} | "
            f"{pct(values, 0.95):.1f} | {max(values, default=float('nan')):.1f} |"
        )
    rows.append(
        f"| crontainer / floor | | {pct(cron, 0.5) / pct(floor, 0.5):.2f}x | "
        f"{pct(cron, 0.95) / pct(floor, 0.95):.2f}x | |"
    )
    rows.append(
        f"| crontainer - floor | | {pct(cron, 0.5) - pct(floor, 0.5):+.1f} | "
        f"{pct(cron, 0.95) - pct(floor, 0.95):+.1f} | |"
    )
    paired = result.paired_ms
    rows.append(
        f"| crontainer - floor, paired | {len(paired)} | {pct(paired, 0.5):+.1f} | "
        f"{pct(paired, 0.95):+.1f} | |"
    )
    if result.other:
        other = list(result.other.values())
        versus = [result.cron[k] - result.other[k] for k in result.cron if k in result.other]
        against = [result.other[k] - result.floor[k] for k in result.other if k in result.floor]
        rows += [
            (
                f"| compared daemon (--compare) | {len(other)}/{result.expected} | "
                f"{pct(other, 0.5):.1f} | {pct(other, 0.95):.1f} | {max(other):.1f} |"
            ),
            (
                f"| compared - floor, paired | {len(against)} | {pct(against, 0.5):+.1f} | "
                f"{pct(against, 0.95):+.1f} | |"
            ),
            (
                f"| crontainer - compared, paired | {len(versus)} | {pct(versus, 0.5):+.1f} | "
                f"{pct(versus, 0.95):+.1f} | |"
            ),
        ]
    if result.start:
        alone = list(result.start.values())
        paired = [result.cron[k] - result.start[k] for k in result.cron if k in result.start]
        rows += [
            (
                f"| floor: start alone (created ahead) | {len(alone)}/{result.expected} | "
                f"{pct(alone, 0.5):.1f} | {pct(alone, 0.95):.1f} | {max(alone):.1f} |"
            ),
            (
                f"| start alone / floor | | {pct(alone, 0.5) / pct(floor, 0.5):.2f}x | "
                f"{pct(alone, 0.95) / pct(floor, 0.95):.2f}x | |"
            ),
            (
                f"| crontainer / start alone | | {pct(cron, 0.5) / pct(alone, 0.5):.2f}x | "
                f"{pct(cron, 0.95) / pct(alone, 0.95):.2f}x | |"
            ),
            (
                f"| crontainer - start alone, paired | {len(paired)} | {pct(paired, 0.5):+.1f} | "
                f"{pct(paired, 0.95):+.1f} | |"
            ),
        ]
    daemon = result.daemon_lag_ms
    rows.append(
        f"| daemon's run.started lag_s | {len(daemon)} | {pct(daemon, 0.5):.1f} | "
        f"{pct(daemon, 0.95):.1f} | {max(daemon, default=float('nan')):.1f} |"
    )
    return "\n".join(rows)


def burst_table(bursts: list[Burst], count: int, parallel: int) -> str:
    rows = [
        f"\nbursts: {count} due at one second, parallelism {parallel}; ms from the instant",
        "| who | started | first | p50 | last | notes |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {b.what} | {b.started}/{count} | {b.first_ms:.0f} | {b.p50_ms:.0f} | "
        f"{b.last_ms:.0f} | {b.note} |"
        for b in bursts
    ]
    return "\n".join(rows)


@contextlib.contextmanager
def load(processes: int) -> Iterator[None]:
    """``processes`` busy loops at normal priority for the duration."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="samples per side and mode")
    parser.add_argument("--period", type=int, default=2, help="seconds between a side's runs")
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the bench")
    parser.add_argument("--burst", type=int, default=200, help="jobs due at once in a burst")
    parser.add_argument("--parallel", type=int, default=16, help="max_concurrent_runs")
    parser.add_argument("--modes", default="run,exec,burst,burst-exec")
    parser.add_argument(
        "--prepare-ahead",
        metavar="DURATION",
        help="the run and exec jobs' prepare_ahead (e.g. 1s; 0s turns it off; unset: the "
        "default, which a period shorter than it never reaches; --compare's exec job never "
        "gets it)",
    )
    parser.add_argument(
        "--burst-prepare-ahead",
        metavar="DURATION",
        help="the burst's run and exec jobs' prepare_ahead (default: --prepare-ahead): a burst "
        "needs time to create all its containers (or execs) ahead",
    )
    parser.add_argument(
        "--filler",
        type=int,
        default=0,
        metavar="N",
        help="N more run jobs configured in each daemon, none due during the bench",
    )
    parser.add_argument(
        "--start-floor",
        action="store_true",
        help="run mode: also the SDK's start alone of a container created ahead",
    )
    parser.add_argument("--keep", action="store_true", help="keep the daemons' state and logs")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also a daemon from another checkout (a worktree of main: before/after in one "
        "run); the run and exec modes then take a period of 3 * --period",
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    # The SDK's client as the daemon makes it: one connection pool for the engine's socket
    # (docker-py's own adapter keeps a pool per URL and closes one another thread still
    # uses when a burst's 16 threads reach more than 25 URLs: scheduler/docker_engine.py).
    api = DockerEngine.connect(timeout=60)._api  # noqa: SLF001
    scene = Scene(api, f"lag{os.getpid()}")
    state = Path(tempfile.mkdtemp(prefix="fire-lag-"))
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; load {args.load}")
    outputs: list[str] = []
    try:
        scene.make()
        with load(args.load):
            for mode in ("run", "exec"):
                if mode in modes:
                    outputs.append(table(mode, alternate(scene, mode, args, state)))
                    print(outputs[-1], flush=True)
            bursts: list[Burst] = []
            if "burst" in modes:
                bursts.append(burst_floor(scene, args, "run", "start"))
                bursts.append(burst_daemon(scene, args, "run", state))
                bursts.append(burst_floor(scene, args, "run", "whole"))
                if args.start_floor:
                    bursts.append(burst_floor(scene, args, "run", "ahead"))
            if "burst-exec" in modes:
                bursts.append(burst_floor(scene, args, "exec", "start"))
                bursts.append(burst_daemon(scene, args, "exec", state))
                bursts.append(burst_floor(scene, args, "exec", "whole"))
            if bursts:
                outputs.append(burst_table(bursts, args.burst, args.parallel))
                print(outputs[-1], flush=True)
    finally:
        scene.clean()
        if args.keep:
            print(f"state and logs kept in {state}")
        else:
            subprocess.run(["rm", "-rf", str(state)], check=False)
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
