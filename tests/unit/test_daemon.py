"""The whole daemon in-process against a scripted engine: start-up (catch-up, run_on_start),
a reload, run-now, and the drain at SIGTERM — signals sent to its thread, not the process."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from scheduler.admin import request_trigger
from scheduler.daemon import Daemon
from scheduler.history import History
from scheduler.reload import ConfigWatcher
from scheduler.schedule import latest_fire, parse_schedule
from scheduler.settings import load_config

from .fakes import FakeClock, FakeEngine

HEAD = (
    '[daemon]\nname = "d"\nhttp = ""\nconfig_poll = "0"\nshutdown_grace = "1s"\n'
    'state_dir = "{state}"\nheartbeat_file = "{state}/beat"\n'
)


def job(name: str, schedule: str, **keys: object) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[jobs.{name}]\nkind = "run"\nimage = "i"\nschedule = "{schedule}"\n{extra}'


@dataclass
class Running:
    """A daemon serving in a thread of the test; ``logs`` are its events so far."""

    daemon: Daemon
    thread: threading.Thread
    engine: FakeEngine
    path: Path
    logs: list[Any]
    code: list[int]

    def signal(self, signo: signal.Signals) -> None:
        assert self.thread.ident is not None
        signal.pthread_kill(self.thread.ident, signo)  # to the daemon's thread only

    def wait_for(self, name: str, count: int = 1, **keys: object) -> list[Any]:
        """The events ``name`` (with ``keys``), once ``count`` of them are logged."""
        found: list[Any] = []
        done = threading.Event()

        def check() -> bool:
            found[:] = [
                e
                for e in list(self.logs)
                if e["event"] == name and all(e.get(k) == v for k, v in keys.items())
            ]
            return len(found) >= count

        for _ in range(200):  # up to 10 s
            if check():
                return found
            done.wait(0.05)
        pytest.fail(f"{count} of {name} {keys} never logged: {[e['event'] for e in self.logs]}")


@contextlib.contextmanager
def running(
    tmp_path: Path, jobs: str, engine: FakeEngine | None = None, top: str = ""
) -> Iterator[Running]:
    """Start the daemon with ``jobs`` (and ``top``: top-level keys, before any table); at
    the end SIGTERM it and wait for its exit code."""
    path = tmp_path / "c.toml"
    path.write_text(top + HEAD.format(state=tmp_path / "state") + jobs)
    engine = engine or FakeEngine(FakeClock())
    daemon = Daemon(load_config(path, {}), lambda: engine)
    code: list[int] = []
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        thread = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
        thread.start()
        handle = Running(daemon, thread, engine, path, logs, code)
        try:
            handle.wait_for("daemon.started")
            yield handle
        finally:
            if thread.is_alive():
                handle.signal(signal.SIGTERM)
            thread.join(30)
    assert not thread.is_alive(), "the daemon did not stop"


def seed(tmp_path: Path, job_name: str, last_scheduled: datetime) -> None:
    """A state database where ``job_name`` was last due at ``last_scheduled``."""
    history = History.open(tmp_path / "state")
    history.record_fire(job_name, last_scheduled)
    history.close()


def test_catch_up_runs_the_latest_missed_time_once(tmp_path: Path) -> None:
    """Down for about three hours of an hourly job: one catch-up run, for the latest missed
    hour (not the first); a job past its starting deadline and one without catch_up do not
    run; run_on_start runs its job once with trigger 'start'."""
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    for name in ("wide", "narrow", "off"):
        seed(tmp_path, name, hour - timedelta(hours=3))
    jobs = (
        job("wide", "0 * * * *", catch_up="true", starting_deadline='"2h"')
        + job("narrow", "0 * * * *", catch_up="true", starting_deadline='"1ms"')
        + job("off", "0 * * * *")
        + job("boot", "@yearly", run_on_start="true")
    )
    with running(tmp_path, jobs) as daemon:
        daemon.wait_for("run.succeeded", job="wide")
        daemon.wait_for("run.succeeded", job="boot")
        caught = daemon.wait_for("job.catch_up")
        skipped = daemon.wait_for("job.catch_up_skipped")
    # The latest hour missed when the daemon decided (between the two clock readings) — never
    # the first hour missed.
    seeded, schedule = hour - timedelta(hours=3), parse_schedule("0 * * * *")
    latest = {latest_fire(schedule, seeded, moment) for moment in (now, datetime.now(UTC))}
    assert [e["job"] for e in caught] == ["wide"]
    missed_at = datetime.fromisoformat(caught[0]["missed_at"])
    assert missed_at in latest
    assert missed_at >= hour
    assert [e["job"] for e in skipped] == ["narrow"]
    started = [(e["job"], e["trigger"]) for e in daemon.logs if e["event"] == "run.started"]
    assert sorted(started) == [("boot", "start"), ("wide", "catch_up")]
    assert daemon.code == [0]


def test_sighup_applies_a_changed_file_and_keeps_a_broken_one_out(tmp_path: Path) -> None:
    """SIGHUP with a new job: config.reloaded names it and it runs; a broken file next:
    config.invalid, the running jobs stay; run_on_start does not run again."""
    with running(tmp_path, job("boot", "@yearly", run_on_start="true")) as daemon:
        daemon.wait_for("run.succeeded", job="boot")
        text = daemon.path.read_text()
        daemon.path.write_text(text + job("every", "@every 1s"))
        daemon.signal(signal.SIGHUP)
        (reloaded,) = daemon.wait_for("config.reloaded")
        assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == (["every"], [], [])
        daemon.wait_for("run.succeeded", job="every")
        daemon.path.write_text(text + "[jobs.broken\n")
        daemon.signal(signal.SIGHUP)
        (invalid,) = daemon.wait_for("config.invalid")
        assert invalid["kept"] == "running config"
        runs = len(daemon.wait_for("run.succeeded", job="every"))
        daemon.wait_for("run.succeeded", count=runs + 1, job="every")  # the old config runs on
    assert [
        e["job"] for e in daemon.logs if e["event"] == "run.started" and e["trigger"] == "start"
    ] == ["boot"]


def test_a_reload_warns_of_a_service_job_added_on_an_engine_that_is_no_manager(
    tmp_path: Path,
) -> None:
    """A service job added by a reload, the engine no Swarm manager: daemon.not_swarm_manager
    names it, as the start would; a reload that leaves it as it was warns no more."""
    engine = FakeEngine(FakeClock(), manager=False)
    with running(tmp_path, job("boot", "@yearly"), engine) as daemon:
        daemon.wait_for("daemon.started")
        text = daemon.path.read_text()
        service = '[jobs.svc]\nkind = "service"\nimage = "busybox"\nschedule = "@yearly"\n'
        daemon.path.write_text(text + service)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")
        (warned,) = daemon.wait_for("daemon.not_swarm_manager")
        assert warned["jobs"] == ["svc"]
        daemon.path.write_text(text + service + job("other", "@yearly"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded", count=2)
    assert len([e for e in daemon.logs if e["event"] == "daemon.not_swarm_manager"]) == 1


def test_run_now_through_the_admin_socket(tmp_path: Path) -> None:
    """202 with the run id; 404 for an unknown job; 409 while the job's run still runs."""
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    with running(tmp_path, job("slow", "@yearly", stop_grace='"1s"'), engine) as daemon:
        state = tmp_path / "state"
        status, body = request_trigger(state, "slow")
        assert status == 202
        daemon.wait_for("run.started", run_id=body["run_id"], trigger="manual")
        assert request_trigger(state, "nope")[0] == 404
        status, body = request_trigger(state, "slow")
        assert (status, body["error"]) == (
            409,
            "skipped: the previous run is still running (concurrency = forbid)",
        )


def test_sigterm_lets_runs_finish_within_the_grace_then_stops_the_rest(tmp_path: Path) -> None:
    """A run that does not end by itself: SIGTERM waits shutdown_grace, then stops it (it is
    cancelled, daemon_stopping), releases the lock, and exits 0."""
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    jobs = job("hangs", "@yearly", run_on_start="true", stop_grace='"1s"')
    with running(tmp_path, jobs, engine) as daemon:
        daemon.wait_for("run.started", job="hangs")
        daemon.signal(signal.SIGTERM)
        daemon.thread.join(30)
    names = [e["event"] for e in daemon.logs]
    assert names.index("daemon.stopping") < names.index("daemon.cancelling_runs")
    assert names.index("daemon.cancelling_runs") < names.index("daemon.stopped")
    cancelled = [e for e in daemon.logs if e["event"] == "run.cancelled"]
    assert [e["reason"] for e in cancelled] == ["daemon_stopping"]
    assert "stop" in engine.names()
    assert daemon.code == [0]
    assert not (tmp_path / "state" / "beat").exists()


def test_the_config_file_is_read_every_config_poll_not_at_every_engine_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main loop wakes for the engine's check (every 2 s); with config_poll = 1h the
    file is not read again meanwhile (it was read at each wake: 10,000 jobs' worth)."""
    reads: list[int] = []
    digest = ConfigWatcher._digest

    def counted(watcher: ConfigWatcher) -> str | None:
        reads.append(1)
        return digest(watcher)

    monkeypatch.setattr(ConfigWatcher, "_digest", counted)
    path = tmp_path / "c.toml"
    path.write_text(
        HEAD.replace('config_poll = "0"', 'config_poll = "1h"').format(state=tmp_path / "state")
        + job("a", "@yearly")
    )
    engine = FakeEngine(FakeClock())
    daemon = Daemon(load_config(path, {}), lambda: engine)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
    with structlog.testing.capture_logs():
        thread.start()
        _count_reads_while_pinged(engine, reads, thread)
    assert code == [0]


def _count_reads_while_pinged(
    engine: FakeEngine, reads: list[int], thread: threading.Thread
) -> None:
    try:
        pings = threading.Event()
        for _ in range(200):  # up to 20 s: two checks after the start's ping
            if engine.names().count("ping") >= 3:
                break
            pings.wait(0.1)
        assert engine.names().count("ping") >= 3
        assert reads == [1]  # the watcher's first look, at the start of the loop
    finally:
        assert thread.ident is not None
        signal.pthread_kill(thread.ident, signal.SIGTERM)
        thread.join(30)


def test_sigterm_removes_the_container_prepared_for_the_next_run(tmp_path: Path) -> None:
    """A run job prepared ahead (every second, 0.8 s ahead): at SIGTERM its container,
    which no run started, is removed (run.prepared_discarded, reason daemon_stopping)."""
    engine = FakeEngine(FakeClock())
    jobs = job("tick", "@with-seconds * * * * * *", prepare_ahead='"0.8s"')
    with running(tmp_path, jobs, engine) as daemon:
        daemon.wait_for("run.prepared", job="tick")
        daemon.signal(signal.SIGTERM)
        daemon.thread.join(30)
    started = {e["run_id"] for e in daemon.logs if e["event"] == "run.started"}
    last = [e for e in daemon.logs if e["event"] == "run.prepared"][-1]
    assert last["run_id"] not in started
    discarded = [e for e in daemon.logs if e["event"] == "run.prepared_discarded"]
    assert [(e["run_id"], e["reason"]) for e in discarded] == [(last["run_id"], "daemon_stopping")]
    assert ("remove", last["container_id"]) in engine.calls
    assert daemon.code == [0]


def test_an_at_job_runs_once_and_a_restart_finds_it_done(tmp_path: Path) -> None:
    """The loop fires an @at job at its instant through the one-shot claim; the next daemon on
    the same state directory plans no run for it and does not catch it up."""
    instant = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    jobs = job("once", f"@at {instant.isoformat()}", catch_up="true")
    with running(tmp_path, jobs) as first:
        (ran,) = first.wait_for("run.succeeded", job="once")
        (done,) = first.wait_for("job.one_shot_done", job="once")
    assert (done["outcome"], done["run_id"]) == ("succeeded", ran["run_id"])
    with running(tmp_path, jobs) as second:
        (planned,) = second.wait_for("job.scheduled", job="once")
    assert planned["next_run"] is None
    assert [e["event"] for e in second.logs if e["event"].startswith(("run.", "job.catch"))] == []
    history = History.open(tmp_path / "state")
    try:
        assert [(r.run_id, r.trigger) for r in history.runs("once")] == [
            (ran["run_id"], "schedule")
        ]
    finally:
        history.close()
