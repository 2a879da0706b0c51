"""Execs prepared ahead (an exec job's prepare_ahead): the ticker has the exec created its
lead before the run's due time, the run's first attempt only starts it; an exec the engine
refuses to start falls back to a new one, and one not started is kept for the job's next
run (the engine cannot delete it) unless the job or its container changed."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from scheduler.engine import ContainerInfo
from scheduler.engine_health import EngineHealth
from scheduler.errors import ConfigError, EngineConflictError, EngineError, EngineNotFoundError
from scheduler.exec_ahead import Preparers
from scheduler.runner import Runner
from scheduler.runs import Status
from scheduler.settings import Config, JobEntry
from scheduler.ticker import Ticker

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

EXEC = '[jobs.x]\nkind = "exec"\ncontainer = "app"\ncommand = "work"\nschedule = "0 12 * * *"\n'
APP = ContainerInfo(id="c-app-1", name="app", state="running", labels={})


class AheadEngine(FakeEngine):
    """Execs get ids of their own (x1, x2, …); a start of an id in ``refused`` is refused
    with that error, as the engine refuses an exec whose container is gone or stopped."""

    def __init__(self) -> None:
        super().__init__(FakeClock(SCHEDULED - timedelta(seconds=5)))
        self.selectable = [APP]
        self.made = 0
        self.refused: dict[str, Exception] = {}

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: Mapping[str, str],
    ) -> str:
        super().exec_create(container, command, user=user, workdir=workdir, env=env)
        self.made += 1
        return f"x{self.made}"

    def exec_output(self, exec_id: str) -> Iterator[tuple[str, bytes]]:
        if exec_id in self.refused:
            self.calls.append(("exec_output", exec_id))
            raise self.refused[exec_id]
        return super().exec_output(exec_id)

    def creates(self) -> list[str]:
        """The container each exec was created in, in order."""
        return [str(arg[0]) for name, arg in self.calls if name == "exec_create"]  # type: ignore[index]

    def starts(self) -> list[str]:
        """The exec ids started (or refused), in order."""
        return [str(arg) for name, arg in self.calls if name == "exec_output"]


def setup(
    tmp_path: Path, job: str = "", health: EngineHealth | None = None
) -> tuple[Config, AheadEngine, Runner, JobEntry]:
    config = make_config(tmp_path, jobs=EXEC + job)
    engine = AheadEngine()
    runner = make_runner(config, engine, Heard(), engine_health=health)
    return config, engine, runner, config.jobs["x"]


def prepared(runner: Runner, entry: JobEntry, logs: Logs, count: int = 1) -> dict[str, object]:
    """Prepare ``entry``'s run of SCHEDULED and wait for the ``count``-th run.exec_prepared."""
    runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
    wait_for(lambda: len(events(logs, "run.exec_prepared")) >= count)
    return dict(events(logs, "run.exec_prepared")[count - 1])


def unused(logs: Logs) -> list[tuple[str, str]]:
    return [(str(e["exec_id"]), str(e["reason"])) for e in events(logs, "run.exec_unused")]


# --- the key -----------------------------------------------------------------------------


def test_an_exec_jobs_lead_is_its_prepare_ahead(tmp_path: Path) -> None:
    """5 s by default, 0 turns it off, at most 10 minutes; a run job gets no exec lead."""
    config, _, runner, entry = setup(tmp_path)
    assert runner.execs_ahead.lead(entry) == 5.0
    assert runner.execs_ahead.lead(config.jobs["j"]) == 0.0
    assert runner.preparer.lead(entry) == 5.0
    off = make_config(tmp_path, jobs=EXEC + 'prepare_ahead = "0s"\n')
    assert runner.execs_ahead.lead(off.jobs["x"]) == 0.0
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, jobs=EXEC + 'prepare_ahead = "11m"\n')
    assert any("jobs.x.prepare_ahead" in error for error in caught.value.errors)


# --- prepared, then started ----------------------------------------------------------------


def test_the_run_starts_the_exec_made_ahead_and_creates_none(tmp_path: Path) -> None:
    """The preparation resolves the selector and creates the exec in that container; at
    the run's time the only exec call is its start, and the run succeeds."""
    _, engine, runner, entry = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        event = prepared(runner, entry, logs)
        assert (event["exec_id"], event["container_id"], event["reused"]) == ("x1", APP.id, False)
        assert engine.creates() == [APP.id]
        runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert engine.creates() == [APP.id]
    assert engine.starts() == ["x1"]
    (record,) = history_of(runner).runs("x")
    assert record.status == Status.SUCCEEDED


@pytest.mark.parametrize("trigger", ["manual", "retry_of_another_time"])
def test_a_run_not_of_the_prepared_time_creates_its_own(tmp_path: Path, trigger: str) -> None:
    """A manual run, or a scheduled run of another time, takes the normal path; the
    prepared exec stays for the run it was made for."""
    _, engine, runner, entry = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        if trigger == "manual":
            runner.dispatch(entry, SCHEDULED, trigger="manual")
        else:
            runner.dispatch(entry, SCHEDULED - timedelta(days=1))
        ended(runner)
        assert engine.starts() == ["x2"]
        runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert engine.starts() == ["x2", "x1"]
    assert engine.creates() == ["c-app-1", "app"]


@pytest.mark.parametrize(
    "error",
    [EngineConflictError("container is not running"), EngineNotFoundError("no such exec")],
)
def test_a_start_the_engine_refuses_falls_back_to_a_new_exec(
    tmp_path: Path, error: Exception
) -> None:
    """The container was stopped or replaced since: the prepared exec is given up
    (run.exec_unused, start_refused) and the run creates and starts one as usual."""
    _, engine, runner, entry = setup(tmp_path)
    engine.refused["x1"] = error
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert engine.starts() == ["x1", "x2"]
    assert engine.creates() == [APP.id, "app"]
    assert unused(logs) == [("x1", "start_refused")]
    (record,) = history_of(runner).runs("x")
    assert record.status == Status.SUCCEEDED


def test_a_failed_preparation_leaves_the_run_to_the_normal_path(tmp_path: Path) -> None:
    """No container matches at the preparation: run.prepare_failed says why, nothing is
    held, and the run at its time reports its own error."""
    _, engine, runner, entry = setup(tmp_path)
    engine.selectable, engine.missing = [], {"app"}
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepare_failed")))
        runner.dispatch(entry, SCHEDULED)
        ended(runner)
    (failed,) = events(logs, "run.prepare_failed")
    assert "matched no container" in str(failed["error"])
    assert failed["log_level"] == "debug"  # the run at its time says it, at its level
    assert engine.creates() == ["app"]
    (record,) = history_of(runner).runs("x")
    assert record.status == Status.FAILED
    assert "matched no container" in str(record.error)


@pytest.mark.parametrize(
    "selectable",
    [
        [ContainerInfo(id="c-app-1", name="app", state="exited", labels={})],
        [
            ContainerInfo(id="c-app-1", name="app-1", state="running", labels={"app": "1"}),
            ContainerInfo(id="c-app-2", name="app-2", state="running", labels={"app": "1"}),
        ],
    ],
    ids=["not_running", "ambiguous"],
)
def test_a_preparation_that_cannot_select_its_container_logs_at_debug(
    tmp_path: Path, selectable: list[ContainerInfo]
) -> None:
    """A container that does not run, or several that match: the same problem the run at
    its time reports on the normal path, so the preparation's failure is only debug."""
    config = make_config(tmp_path, jobs=EXEC.replace('"app"', '"label=app"'))
    engine = AheadEngine()
    runner = make_runner(config, engine, Heard())
    entry = config.jobs["x"]
    engine.selectable = [
        ContainerInfo(id=c.id, name=c.name, state=c.state, labels={"app": "1"}) for c in selectable
    ]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepare_failed")))
    (failed,) = events(logs, "run.prepare_failed")
    assert failed["log_level"] == "debug"
    assert "exactly one" in str(failed["error"])
    assert engine.creates() == []


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (EngineNotFoundError("No such container: c-app-1"), "debug"),
        (EngineConflictError("Container c-app-1 is not running"), "debug"),
        (EngineError("the engine said 500: out of memory"), "warning"),
    ],
)
def test_an_exec_creation_refused_for_its_container_is_debug_else_warning(
    tmp_path: Path, error: EngineError, level: str
) -> None:
    """The container went away or stopped between its selection and the exec's creation:
    debug, as a selection failure; any other engine error stays a warning."""
    _, engine, runner, entry = setup(tmp_path)
    engine.fail["exec_create"] = error
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepare_failed")))
    (failed,) = events(logs, "run.prepare_failed")
    assert (failed["log_level"], failed["error"]) == (level, str(error))


# --- not started: kept, or left unused ----------------------------------------------------


def test_an_exec_not_started_serves_the_next_run(tmp_path: Path) -> None:
    """A run missed (the engine was away at its time) did not start the prepared exec: the
    next preparation finds the same container and uses it again (no second create)."""
    health = EngineHealth()
    _, engine, runner, entry = setup(tmp_path, health=health)
    later = SCHEDULED + timedelta(days=1)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        health.down("engine gone")
        runner.dispatch(entry, SCHEDULED)
        ended(runner)
        health.up()
        runner.execs_ahead.prepare(entry, later, later)
        wait_for(lambda: len(events(logs, "run.exec_prepared")) == 2)
        runner.dispatch(entry, later)
        ended(runner)
    assert [e["reused"] for e in events(logs, "run.exec_prepared")] == [False, True]
    assert engine.creates() == [APP.id]
    assert engine.starts() == ["x1"]
    assert unused(logs) == []
    statuses = sorted(r.status for r in history_of(runner).runs("x"))
    assert statuses == [Status.MISSED, Status.SUCCEEDED]


def test_a_replaced_container_gets_a_new_exec(tmp_path: Path) -> None:
    """The selector finds another container at the next preparation: the held exec is
    left unused (new_container) and a new one is made in the new container."""
    _, engine, runner, entry = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        engine.selectable = [ContainerInfo(id="c-app-2", name="app", state="running", labels={})]
        prepared(runner, entry, logs, count=2)
    assert engine.creates() == [APP.id, "c-app-2"]
    assert unused(logs) == [("x1", "new_container")]


@pytest.mark.parametrize(
    ("change", "reason"),
    [("removed", "job_removed"), ("changed", "job_changed"), ("disabled", "job_disabled")],
)
def test_a_job_removed_or_changed_leaves_its_exec_unused(
    tmp_path: Path, change: str, reason: str
) -> None:
    """A reload that removes, changes or disables the job: the held exec will never be
    started (run.exec_unused with the reason); a run of the new definition makes its own."""
    config, engine, runner, entry = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        jobs = dict(config.jobs)
        if change == "removed":
            del jobs["x"]
        else:
            extra = "enabled = false\n" if change == "disabled" else 'user = "nobody"\n'
            (tmp_path / "new").mkdir()
            jobs["x"] = make_config(tmp_path / "new", jobs=EXEC + extra).jobs["x"]
        runner.preparer.retain(jobs)
        if change == "changed":
            runner.dispatch(jobs["x"], SCHEDULED)
            ended(runner)
    assert unused(logs) == [("x1", reason)]
    if change == "changed":
        assert engine.starts() == ["x2"]


class BlockingCreate(AheadEngine):
    """exec_create waits for ``go`` once ``entered`` is set: a reload can come in between."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.go = threading.Event(), threading.Event()

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: Mapping[str, str],
    ) -> str:
        self.entered.set()
        self.go.wait(10)
        return super().exec_create(container, command, user=user, workdir=workdir, env=env)


@pytest.mark.parametrize(
    ("change", "reason"),
    [("removed", "job_removed"), ("changed", "job_changed"), ("disabled", "job_disabled")],
)
def test_an_exec_made_while_a_reload_changes_its_job_is_not_held(
    tmp_path: Path, change: str, reason: str
) -> None:
    """A reload comes while the exec is being created: it was made for a definition no
    longer in force, so it is left unused at once (not held for a run that will not come,
    nor started by one of another definition), and the job's current definition gets no
    exec of the old one."""
    config = make_config(tmp_path, jobs=EXEC)
    engine = BlockingCreate()
    runner = make_runner(config, engine, Heard())
    entry = config.jobs["x"]
    jobs = dict(config.jobs)
    if change == "removed":
        del jobs["x"]
    else:
        extra = "enabled = false\n" if change == "disabled" else 'user = "nobody"\n'
        (tmp_path / "new").mkdir()
        jobs["x"] = make_config(tmp_path / "new", jobs=EXEC + extra).jobs["x"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparer.retain(config.jobs)
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        assert engine.entered.wait(10)
        runner.preparer.retain(jobs)
        engine.go.set()
        wait_for(lambda: bool(events(logs, "run.exec_unused", "run.exec_prepared")))
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)  # the old definition again
        if change == "changed":
            runner.dispatch(jobs["x"], SCHEDULED)
            ended(runner)
        runner.stop_preparing()
    assert events(logs, "run.exec_prepared") == []
    assert unused(logs) == [("x1", reason)]
    assert engine.creates() == ([APP.id, "app"] if change == "changed" else [APP.id])


def test_a_stop_leaves_held_execs_unused_and_prepares_no_more(tmp_path: Path) -> None:
    """At the daemon's stop what is held is said to be unused (the engine keeps it until
    its container is removed); a preparation after it does nothing."""
    _, engine, runner, entry = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, entry, logs)
        runner.stop_preparing()
        runner.execs_ahead.prepare(entry, SCHEDULED, SCHEDULED)
        runner.finish_preparing()
    assert unused(logs) == [("x1", "daemon_stopping")]
    assert engine.creates() == [APP.id]


# --- the ticker's hook -----------------------------------------------------------------


def test_the_ticker_prepares_an_exec_job_its_lead_ahead(tmp_path: Path) -> None:
    """Through the runner's preparer the ticker has an exec job's exec made 5 s before its
    time and fires the run that starts it; a run job's preparation is not asked for it."""
    _, engine, runner, entry = setup(tmp_path)
    clock = engine.clock
    clock.wall = SCHEDULED - timedelta(seconds=30)
    ticker = Ticker(clock, runner.submit, random.Random(1), preparer=runner.preparer)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        ticker.set_jobs({"x": entry})
        assert ticker.tick(clock.now()) == 25.0  # wakes at the preparation
        clock.pass_until(SCHEDULED - timedelta(seconds=5))
        assert ticker.tick(clock.now()) == 5.0
        wait_for(lambda: bool(events(logs, "run.exec_prepared")))
        clock.pass_until(SCHEDULED)
        ticker.tick(clock.now())
        ended(runner)
    assert engine.starts() == ["x1"]
    assert engine.creates() == [APP.id]
    assert events(logs, "run.prepared") == []


def test_preparers_hand_each_job_to_the_parts_that_lead_it() -> None:
    """The ticker's one preparer asks every part for a job's lead (the longest counts),
    prepares it with those that lead it, and tells every part the jobs in force."""

    class Part:
        def __init__(self, lead: float) -> None:
            self._lead, self.prepared, self.retained = lead, 0, 0

        def lead(self, entry: JobEntry) -> float:
            return self._lead

        def prepare(self, entry: JobEntry, scheduled_at: object, due: object) -> None:
            self.prepared += 1

        def retain(self, entries: Mapping[str, JobEntry]) -> None:
            self.retained += 1

    none, some = Part(0.0), Part(3.0)
    both = Preparers(none, some)
    entry: JobEntry = None  # type: ignore[assignment]  # the parts never look at it
    assert both.lead(entry) == 3.0
    both.prepare(entry, SCHEDULED, SCHEDULED)
    both.retain({})
    assert (none.prepared, some.prepared) == (0, 1)
    assert (none.retained, some.retained) == (1, 1)
