"""Exclusive locks in the runner: a run whose job's lock is held waits (holding no slot of
the cap) and starts when it is released; past its starting deadline it is missed, reason
``lock:<name>``; a stop cancels it; a prepared container of a run that waited is started,
or removed when the run misses (an exec created ahead is kept for the next run); a
reload's new lock applies to later runs only; an adopted run holds its job's lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_RUN, ContainerInfo, ExitStatus
from scheduler.errors import EngineUnavailableError
from scheduler.history import RunRecord
from scheduler.locks import Holder
from scheduler.recovery import settle
from scheduler.runner import Dispatched, Runner
from scheduler.runs import Status
from scheduler.settings import Config

from .fakes import FakeClock, FakeEngine
from .helpers import (
    CAPTURE,
    SCHEDULED,
    Heard,
    Logs,
    ended,
    events,
    history_of,
    make_config,
    make_runner,
    wait_for,
)
from .test_exec_ahead import EXEC, AheadEngine

K = '[jobs.k]\nkind = "run"\nimage = "img:2"\nschedule = "@daily"\nstop_grace = "1s"\n'


def locked(
    tmp_path: Path, k: str = "", clock: FakeClock | None = None, j_lock: str = "data"
) -> tuple[Config, FakeEngine, Runner, Heard]:
    """Jobs j and k sharing the lock ``data``; containers that run until stopped."""
    config = make_config(tmp_path, job=f'lock = "{j_lock}"', jobs=f'{K}lock = ["data"]\n{k}')
    engine = FakeEngine(clock or FakeClock(), exit_status=None, blocking=True)
    heard = Heard()
    return config, engine, make_runner(config, engine, heard), heard


def record(runner: Runner, job: str, run_id: str | None) -> RunRecord:
    (found,) = [r for r in history_of(runner).runs(job) if r.run_id == run_id]
    return found


def test_a_run_waits_for_a_lock_another_jobs_run_holds_then_starts(tmp_path: Path) -> None:
    """j runs holding data; k's run logs run.waiting naming j's run, creates nothing and
    holds no slot (it is in flight all the same); when j's run ends, k's starts."""
    config, engine, runner, _ = locked(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        second = runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        assert engine.names().count("create") == 1
        assert runner.slots.held() == 1
        assert runner.locks.waiting() == {"k": 1}
        assert runner.running_by_job() == {"j": 1, "k": 1}
        engine.stop("c0ffee1", 1.0)  # j's container ends
        wait_for(lambda: engine.names().count("start") == 2)
        assert runner.locks.held()["data"].run_id == second
        runner.cancel_all()
        ended(runner)
    (waiting,) = events(logs, "run.waiting")
    assert (waiting["job"], waiting["run_id"], waiting["locks"], waiting["lock"]) == (
        "k",
        second,
        ["data"],
        "data",
    )
    assert (waiting["holder_job"], waiting["holder_run_id"]) == ("j", first)
    assert record(runner, "j", first).status == "failed"  # stopped: exit 143
    assert record(runner, "k", second).started_at is not None
    assert runner.locks.held() == {}


def test_a_run_waiting_past_its_starting_deadline_is_missed_naming_the_lock(
    tmp_path: Path,
) -> None:
    """k's starting_deadline is 30s: 31.12345 s after its time, still waiting, it is missed
    with reason lock:data, the holder, its lag (to the millisecond) and the deadline; never
    created; recorded and heard as missed."""
    config, engine, runner, heard = locked(tmp_path, 'starting_deadline = "30s"')
    clock = engine.clock
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], clock.now())
        wait_for(lambda: engine.names().count("start") == 1)
        second = runner.submit(config.jobs["k"], clock.now())
        wait_for(lambda: bool(events(logs, "run.waiting")))
        clock.advance(31.12345)
        runner.locks.wake_all()
        wait_for(lambda: bool(events(logs, "run.missed")))
        assert runner.locks.waiting() == {}
        runner.cancel_all()
        ended(runner)
    (missed,) = events(logs, "run.missed")
    assert (missed["run_id"], missed["reason"]) == (second, "lock:data")
    assert (missed["holder_job"], missed["holder_run_id"]) == ("j", first)
    assert (missed["lag_s"], missed["starting_deadline_s"]) == (31.123, 30.0)
    recorded = record(runner, "k", second)
    assert (recorded.status, recorded.reason, recorded.started_at) == (
        "missed",
        "lock:data",
        None,
    )
    assert engine.names().count("create") == 1
    assert [(j, s) for j, s, _, d in heard.ended if d is None] == [("k", "missed")]


def test_a_run_already_past_its_deadline_is_missed_though_its_lock_is_free(
    tmp_path: Path,
) -> None:
    """k's run dispatched 2.5 s after its time with a 1 s deadline (a late loop), its lock
    free: missed, reason starting_deadline (it waited for no lock: no holder), never
    created, the lock not taken."""
    config, engine, runner, _ = locked(tmp_path, 'starting_deadline = "1s"')
    clock = engine.clock
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        late = runner.submit(config.jobs["k"], clock.now() - timedelta(seconds=2.5))
        ended(runner)
    (missed,) = events(logs, "run.missed")
    assert (missed["run_id"], missed["reason"], missed["lag_s"]) == (late, "starting_deadline", 2.5)
    assert "holder_run_id" not in missed
    assert events(logs, "run.waiting") == []
    assert record(runner, "k", late).status == "missed"
    assert engine.created() == 0
    assert runner.locks.held() == {}


def test_a_stop_cancels_a_waiting_run_as_it_does_a_queued_one(tmp_path: Path) -> None:
    """cancel_all (the end of shutdown_grace): the waiting run is recorded cancelled, reason
    daemon_stopping, never created; no lock is left held."""
    config, engine, runner, _ = locked(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        second = runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        runner.cancel_all()
        ended(runner)
    recorded = record(runner, "k", second)
    assert (recorded.status, recorded.reason, recorded.started_at) == (
        "cancelled",
        "daemon_stopping",
        None,
    )
    assert engine.names().count("create") == 1
    assert runner.locks.held() == {}


def test_a_waiting_run_is_in_flight_for_its_jobs_forbid_policy(tmp_path: Path) -> None:
    """k's next run while one of its runs waits for the lock: skipped (forbid), naming the
    waiting run."""
    config, engine, runner, _ = locked(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        waiting = runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        later = runner.dispatch(config.jobs["k"], SCHEDULED + timedelta(days=1))
        runner.cancel_all()
        ended(runner)
    assert later == Dispatched(later.run_id, Status.SKIPPED, "previous run still running")
    (skipped,) = events(logs, "run.skipped")
    assert skipped["running_run_id"] == waiting


def test_a_reload_changes_the_lock_of_later_runs_only(tmp_path: Path) -> None:
    """j's run holds data; a reload moves j to the lock other: k still waits for j's run in
    flight, which keeps data until it ends; j's next run (the new definition) takes other."""
    config, engine, runner, _ = locked(tmp_path)
    reloaded = make_config(tmp_path, job='lock = "other"\nconcurrency = "allow"', jobs=K)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        third = runner.submit(reloaded.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 2)
        held = runner.locks.held()
        assert (held["data"].run_id, held["other"].run_id) == (first, third)
        assert runner.locks.waiting() == {"k": 1}
        runner.cancel_all()
        ended(runner)


def test_a_run_adopted_at_start_holds_its_jobs_lock_until_it_ends(tmp_path: Path) -> None:
    """A run an earlier daemon left running, adopted: it holds j's lock at once, so k's run
    waits for it (run.waiting names it); its end releases the lock."""
    config, engine, runner, _ = locked(tmp_path)
    history = history_of(runner)
    history.begin("r1", 1, "j", trigger="schedule", scheduled_at=SCHEDULED, started_at=SCHEDULED)
    (left,) = history.in_flight()
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.adopt(config.jobs["j"], left, "c-alive", [])
        assert runner.locks.held()["data"].run_id == "r1"
        runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        assert engine.created() == 0
        engine.stop("c-alive", 1.0)  # the adopted container ends
        wait_for(lambda: engine.names().count("start") == 1)
        runner.cancel_all()
        ended(runner)
    (waiting,) = events(logs, "run.waiting")
    assert (waiting["holder_job"], waiting["holder_run_id"]) == ("j", "r1")
    assert runner.locks.held() == {}


# --- prepared runs ------------------------------------------------------------------------

AHEAD = SCHEDULED - timedelta(seconds=5)


def test_a_prepared_run_that_waited_starts_its_prepared_container(tmp_path: Path) -> None:
    """k's run was prepared (its container created ahead); it waits for j's lock, then its
    first attempt starts that very container: nothing more is created, nothing discarded."""
    config, engine, runner, _ = locked(tmp_path, clock=FakeClock(AHEAD))
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(config.jobs["k"], SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepared")))
        engine.clock.pass_until(SCHEDULED)
        runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        second = runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        j_container = f"c0ffee{engine.created()}"
        engine.stop(j_container, 1.0)
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    (made,) = events(logs, "run.prepared")
    assert made["run_id"] == second
    starts = [arg for name, arg in engine.calls if name == "start"]
    assert starts == [j_container, made["container_id"]]
    assert engine.created() == 2
    assert events(logs, "run.prepared_discarded") == []


def test_a_prepared_run_that_misses_waiting_removes_its_container(tmp_path: Path) -> None:
    """k's prepared run waits past its starting_deadline: missed (lock:data), and its
    container is removed, with that reason, never started."""
    config, engine, runner, _ = locked(
        tmp_path, 'starting_deadline = "10s"', clock=FakeClock(AHEAD)
    )
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(config.jobs["k"], SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepared")))
        engine.clock.pass_until(SCHEDULED)
        runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        engine.clock.advance(11)
        runner.locks.wake_all()
        wait_for(lambda: bool(events(logs, "run.prepared_discarded")))
        runner.cancel_all()
        ended(runner)
    (made,) = events(logs, "run.prepared")
    (gone,) = events(logs, "run.prepared_discarded")
    assert (gone["container_id"], gone["reason"]) == (made["container_id"], "lock:data")
    assert ("remove", made["container_id"]) in engine.calls
    assert ("start", made["container_id"]) not in engine.calls


def test_an_exec_made_ahead_for_a_run_that_missed_waiting_serves_the_next_run(
    tmp_path: Path,
) -> None:
    """An exec job's run, its exec created ahead, waits for a held lock past its
    starting_deadline: missed (lock:data), the exec not started and not left unused; once
    the lock is free the next run's preparation reuses it and the run starts it."""
    config = make_config(tmp_path, jobs=EXEC + 'lock = "data"\nstarting_deadline = "10s"\n')
    engine = AheadEngine()
    runner = make_runner(config, engine, Heard())
    entry = config.jobs["x"]
    other = Holder("other", "r0")
    assert runner.locks.claim(other, ("data",)) == ["data"]
    later = SCHEDULED + timedelta(days=1)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: len(events(logs, "run.exec_prepared")) == 1)
        engine.clock.pass_until(SCHEDULED)
        runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        engine.clock.advance(11)
        runner.locks.wake_all()
        ended(runner)
        runner.locks.release(other)
        runner.execs_ahead.prepare(entry, later, later)
        wait_for(lambda: len(events(logs, "run.exec_prepared")) == 2)
        engine.clock.pass_until(later)
        runner.dispatch(entry, later)
        ended(runner)
    (missed,) = events(logs, "run.missed")
    assert (missed["reason"], missed["holder_run_id"]) == ("lock:data", "r0")
    assert [e["reused"] for e in events(logs, "run.exec_prepared")] == [False, True]
    assert engine.starts() == ["x1"]
    assert events(logs, "run.exec_unused") == []
    statuses = sorted(r.status for r in history_of(runner).runs("x"))
    assert statuses == [Status.MISSED, Status.SUCCEEDED]


# --- an engine outage ---------------------------------------------------------------------


@dataclass
class CutOffEngine(FakeEngine):
    """The engine goes away during the first wait (the container runs on)."""

    cut: bool = True

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        if self.cut:
            self.cut = False
            self.calls.append(("wait", timeout))
            raise EngineUnavailableError("connection reset")
        return super().wait(container_id, timeout)


def cut_off(tmp_path: Path, logs: Logs) -> tuple[Config, CutOffEngine, Runner, str]:
    """j's run, holding lock data, is cut off by an engine outage; then k's run is due."""
    config = make_config(tmp_path, job='lock = "data"', jobs=f'{K}lock = ["data"]\n')
    engine = CutOffEngine(FakeClock(), exit_status=None, blocking=True)
    runner = make_runner(config, engine, Heard())
    first = runner.submit(config.jobs["j"], SCHEDULED)
    assert first is not None
    wait_for(lambda: bool(events(logs, "run.interrupted")))
    wait_for(lambda: runner.active() == 0)
    runner.submit(config.jobs["k"], SCHEDULED)
    wait_for(lambda: bool(events(logs, "run.waiting")))
    return config, engine, runner, first


def engine_back(runner: Runner, config: Config, engine: FakeEngine) -> None:
    """The engine is back: the watch's settling."""
    busy = runner.active_ids()
    settle(engine, history_of(runner), runner, jobs=config.jobs, daemon="d", clock=engine.clock,
           busy=busy)  # fmt: skip


def test_a_run_cut_off_by_an_outage_keeps_its_lock_into_its_adoption(tmp_path: Path) -> None:
    """j's run loses the engine while its container runs: it keeps lock data (k's run waits,
    naming it); the settling adopts the container under the same run id, which takes the
    lock over without a word; k starts only once that container ended."""
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        config, engine, runner, first = cut_off(tmp_path, logs)
        assert runner.locks.held() == {"data": Holder("j", first)}
        assert engine.names().count("start") == 1
        engine.containers = [
            ContainerInfo("c0ffee1", "c0ffee1", "running",
                          {LABEL_DAEMON: "d", LABEL_RUN: first, LABEL_ATTEMPT: "1"}),
        ]  # fmt: skip
        engine_back(runner, config, engine)
        wait_for(lambda: bool(events(logs, "run.adopted")))
        assert runner.locks.held() == {"data": Holder("j", first)}
        assert engine.names().count("start") == 1
        engine.stop("c0ffee1", 1.0)
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    (waiting,) = events(logs, "run.waiting")
    assert (waiting["job"], waiting["holder_run_id"]) == ("k", first)
    assert events(logs, "run.locks_not_claimed") == []
    assert runner.locks.held() == {}


def test_a_run_cut_off_whose_container_is_gone_at_the_return_gives_its_lock_back(
    tmp_path: Path,
) -> None:
    """The container of the run cut off is gone when the engine is back: the settling
    records it failed (interrupted) and its lock is released — k's run starts."""
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        config, engine, runner, first = cut_off(tmp_path, logs)
        engine.containers = []
        engine_back(runner, config, engine)
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    assert (record(runner, "j", first).status, record(runner, "j", first).reason) == (
        "failed",
        "interrupted",
    )
    assert runner.locks.held() == {}


def test_a_run_cut_off_that_a_settling_passed_by_gives_its_lock_back_when_it_ends(
    tmp_path: Path,
) -> None:
    """The engine is back and settled while the cut-off run's thread is still in hand (so the
    settling skipped it): when that thread ends, its lock goes back at once — parked, it
    would wait for a settling that never comes, and k would never run."""
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        config = make_config(tmp_path, job='lock = "data"', jobs=f'{K}lock = ["data"]\n')
        engine = CutOffEngine(FakeClock(), exit_status=None, blocking=True)
        runner = make_runner(config, engine, Heard())
        release = threading.Event()
        recorded = runner._recorder.interrupted

        def slow_interrupted(*args: Any) -> None:  # the thread lingers after the outage
            recorded(*args)
            release.wait(10)

        runner._recorder.interrupted = slow_interrupted  # type: ignore[method-assign,assignment]
        first = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.interrupted")))
        engine.containers = []
        engine_back(runner, config, engine)  # j's run is still in hand: skipped
        runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        release.set()
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    assert first is not None
    assert runner.locks.held() == {}


def test_an_adopted_run_that_cannot_take_its_lock_says_so(tmp_path: Path) -> None:
    """A run adopted while another run holds its job's lock: run.locks_not_claimed names the
    lock and its holder (the two may overlap); the holder keeps it."""
    config, _, runner, _ = locked(tmp_path)
    history = history_of(runner)
    history.begin("r1", 1, "j", trigger="schedule", scheduled_at=SCHEDULED, started_at=SCHEDULED)
    (left,) = history.in_flight()
    other = Holder("other", "r0")
    runner.locks.claim(other, ("data",))
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.adopt(config.jobs["j"], left, "c-alive", [])
        runner.cancel_all()
        ended(runner)
    (told,) = events(logs, "run.locks_not_claimed")
    assert (told["run_id"], told["locks"], told["holder_run_ids"], told["log_level"]) == (
        "r1",
        ["data"],
        ["r0"],
        "warning",
    )
    assert runner.locks.held() == {"data": other}


def test_a_prepared_container_of_a_run_still_waiting_is_dropped_when_the_engine_returns(
    tmp_path: Path,
) -> None:
    """k's prepared run waits for j's lock when the engine comes back: its prepared
    container (made before the outage) is removed, reason engine_returned; when the lock is
    free k's run creates a container of its own and starts it."""
    config, engine, runner, _ = locked(tmp_path, clock=FakeClock(AHEAD))
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(config.jobs["k"], SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepared")))
        engine.clock.pass_until(SCHEDULED)
        runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 1)
        runner.submit(config.jobs["k"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        j_container = f"c0ffee{engine.created()}"
        engine_back(runner, config, engine)
        wait_for(lambda: bool(events(logs, "run.prepared_discarded")))
        engine.stop(j_container, 1.0)
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    (made,) = events(logs, "run.prepared")
    (gone,) = events(logs, "run.prepared_discarded")
    assert (gone["container_id"], gone["reason"]) == (made["container_id"], "engine_returned")
    starts = [arg for name, arg in engine.calls if name == "start"]
    assert made["container_id"] not in starts
    assert engine.created() == 3


def test_an_exec_made_ahead_for_a_run_still_waiting_is_dropped_when_the_engine_returns(
    tmp_path: Path,
) -> None:
    """An exec job's run, its exec created ahead (x1), waits for a held lock when the engine
    comes back: x1 is dropped (run.exec_unused, engine_returned), never started; once the
    lock is free the run creates an exec of its own (x2) and starts it."""
    config = make_config(tmp_path, jobs=EXEC + 'lock = "data"\n')
    engine = AheadEngine()
    runner = make_runner(config, engine, Heard())
    entry = config.jobs["x"]
    other = Holder("other", "r0")
    runner.locks.claim(other, ("data",))
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: len(events(logs, "run.exec_prepared")) == 1)
        engine.clock.pass_until(SCHEDULED)
        runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        engine_back(runner, config, engine)
        runner.locks.release(other)
        ended(runner)
    (unused,) = events(logs, "run.exec_unused")
    assert (unused["exec_id"], unused["reason"]) == ("x1", "engine_returned")
    assert engine.starts() == ["x2"]
    assert [r.status for r in history_of(runner).runs("x")] == [Status.SUCCEEDED]
