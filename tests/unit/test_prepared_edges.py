"""Runs prepared ahead, at their edges: a preparation the concurrency rule would only throw
away, a reload between the ticker's pick and the preparation, the engine's return with
prepared containers the engine lists, and a stop while preparations hang."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from jobs.plan import PullPolicy
from scheduler import prepared as prepared_module
from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_JOB, LABEL_RUN, ContainerInfo
from scheduler.errors import EngineError
from scheduler.recovery import settle
from scheduler.runner import Runner
from scheduler.runs import Status
from scheduler.settings import Config, JobEntry

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

AHEAD = SCHEDULED - timedelta(seconds=5)


def setup(tmp_path: Path, job: str = "", jobs: str = "") -> tuple[Config, FakeEngine, Runner]:
    config = make_config(tmp_path, job=job, jobs=jobs)
    engine = FakeEngine(FakeClock(AHEAD))
    return config, engine, make_runner(config, engine, Heard())


def made(runner: Runner, entry: JobEntry, logs: Logs) -> str:
    """Prepare ``entry``'s run of SCHEDULED, wait until it is ready; its container id."""
    before = len(events(logs, "run.prepared"))
    runner.preparations.prepare(entry, SCHEDULED, SCHEDULED)
    wait_for(lambda: len(events(logs, "run.prepared")) > before)
    return str(events(logs, "run.prepared")[-1]["container_id"])


def discarded(logs: Logs) -> list[tuple[str, str]]:
    return [
        (str(e["container_id"]), str(e["reason"])) for e in events(logs, "run.prepared_discarded")
    ]


def run_in_flight(runner: Runner, engine: FakeEngine, entry: JobEntry) -> str:
    """A manual run of ``entry`` that goes on until cancelled; its run id."""
    engine.exit_status, engine.blocking = None, True
    started = threading.Event()
    engine.on_start = started.set
    run_id = runner.dispatch(entry, SCHEDULED - timedelta(minutes=1), trigger="manual").run_id
    assert started.wait(5)
    return run_id


# --- the concurrency rule ---------------------------------------------------------------


def test_a_forbid_job_whose_runs_overlap_is_not_prepared(tmp_path: Path) -> None:
    """concurrency = forbid and a run that goes on across the job's next times: the first
    run it blocks was prepared (nothing told yet that it would be skipped) and its container
    removed; while that same run goes on, nothing more is prepared (no container made and
    removed at every fire), and the runs are skipped as always. Once it has ended, the next
    run is prepared again."""
    config, engine, runner = setup(tmp_path)
    entry = config.jobs["j"]
    times = [SCHEDULED + timedelta(minutes=n) for n in range(3)]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_in_flight(runner, engine, entry)
        first = made(runner, entry, logs)
        engine.clock.pass_until(times[0])
        skipped = [runner.dispatch(entry, times[0])]
        runner.preparations.prepare(entry, times[1], times[1])
        engine.clock.pass_until(times[1])
        skipped.append(runner.dispatch(entry, times[1]))
        runner.cancel_all()
        ended(runner)
        runner.preparations.prepare(entry, times[2], times[2])
        wait_for(lambda: len(events(logs, "run.prepared")) == 2)
        runner.stop_preparing()  # waits for any preparation under way
    assert [(r.status, r.reason) for r in skipped] == [
        (Status.SKIPPED, "previous run still running")
    ] * 2
    assert engine.created() == 3  # the run in flight's, the first skipped run's, the last
    last = str(events(logs, "run.prepared")[-1]["container_id"])
    assert discarded(logs) == [
        (first, "previous run still running"),
        (last, "daemon_stopping"),
    ]


def test_a_long_forbid_run_that_ends_in_time_leaves_the_next_run_prepared(
    tmp_path: Path,
) -> None:
    """forbid, and the previous run still runs at the preparation but was never in the way
    of a run (it ends before the next time): the next run is prepared and starts it."""
    config, engine, runner = setup(tmp_path)
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_in_flight(runner, engine, entry)
        container = made(runner, entry, logs)
        runner.cancel_all()
        ended(runner)
        engine.clock.pass_until(SCHEDULED)
        engine.blocking = False
        run = runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: ("start", container) in engine.calls)
        runner.cancel_all()
        ended(runner)
        runner.stop_preparing()
    assert run.status is None
    assert discarded(logs) == []


@pytest.mark.parametrize("policy", ["allow", "replace"])
def test_other_concurrency_rules_prepare_beside_a_run_in_flight(
    tmp_path: Path, policy: str
) -> None:
    """allow and replace start the next run while (or after stopping) the previous one:
    its container is prepared as usual and the run starts it."""
    config, engine, runner = setup(tmp_path, job=f'concurrency = "{policy}"')
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_in_flight(runner, engine, entry)
        container = made(runner, entry, logs)
        engine.clock.pass_until(SCHEDULED)
        run = runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: ("start", container) in engine.calls)
        runner.cancel_all()
        ended(runner)
        runner.stop_preparing()
    assert run.status is None
    assert discarded(logs) == []


# --- a reload between the ticker's pick and the preparation ------------------------------


@pytest.mark.parametrize("change", [None, "enabled = false", 'command = "true"'])
def test_a_preparation_of_a_job_a_reload_took_away_makes_nothing(
    tmp_path: Path, change: str | None
) -> None:
    """The ticker picked the run, then a reload removed, disabled or changed the job (its
    retain came first) and only then the preparation is asked for: nothing is made, and
    the run of the new definition is prepared as usual."""
    config, engine, runner = setup(tmp_path)
    runner.preparations.retain(config.jobs)
    now = {} if change is None else dict(make_config(tmp_path, job=change).jobs)
    runner.preparations.retain(now)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(config.jobs["j"], SCHEDULED, SCHEDULED)
        if "j" in now and now["j"].job.enabled:
            made(runner, now["j"], logs)
        runner.stop_preparing()
    fresh = 1 if "j" in now and now["j"].job.enabled else 0
    assert engine.created() == fresh
    assert [e["reason"] for e in events(logs, "run.prepared_discarded")] == [
        "daemon_stopping"
    ] * fresh


# --- the engine's return ------------------------------------------------------------------


def slow_removal(engine: FakeEngine) -> None:
    """``engine``'s removals end only once the engine has listed its containers (a removal
    still under way while the settling lists them), and take the container off the list."""
    listed = threading.Event()
    real_list, real_remove = engine.list_containers, engine.remove

    def list_containers(labels: Mapping[str, str]) -> list[ContainerInfo]:
        found = real_list(labels)
        listed.set()
        return found

    def remove(container_id: str) -> None:
        assert listed.wait(10)
        real_remove(container_id)
        engine.containers = [c for c in engine.containers if c.id != container_id]

    engine.list_containers = list_containers  # type: ignore[method-assign]
    engine.remove = remove  # type: ignore[method-assign]


def test_the_engine_returning_removes_a_prepared_container_once(tmp_path: Path) -> None:
    """After an outage the engine lists the prepared container (created, our labels, a run
    id without a record): the preparations remove it (engine_returned) and settling leaves
    it to them — one removal, no orphan warning."""
    config, engine, runner = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        container = made(runner, config.jobs["j"], logs)
        (ready,) = events(logs, "run.prepared")
        labels = {
            LABEL_DAEMON: "d1",
            LABEL_JOB: "j",
            LABEL_RUN: str(ready["run_id"]),
            LABEL_ATTEMPT: "1",
        }
        engine.containers = [ContainerInfo(container, "d1-j-x", "created", labels)]
        slow_removal(engine)
        settle(
            engine, history_of(runner), runner, jobs=config.jobs, daemon="d1", clock=engine.clock
        )
        runner.finish_preparing()  # the removals under way are done
    assert engine.calls.count(("remove", container)) == 1
    assert events(logs, "run.orphan_removed") == []
    assert discarded(logs) == [(container, "engine_returned")]


def test_settling_still_removes_a_prepared_container_whose_removal_failed(
    tmp_path: Path,
) -> None:
    """A prepared container whose removal failed during the outage (the run was missed) is
    no longer the preparations' to remove: settling removes it as an orphan."""
    config, engine, runner = setup(tmp_path)
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        container = made(runner, entry, logs)
        (ready,) = events(logs, "run.prepared")
        taken = runner.preparations.take(entry, SCHEDULED)
        assert taken is not None
        engine.fail["remove"] = EngineError("engine gone")
        runner.preparations.discard(taken, "engine_unavailable", wait=True)
        del engine.fail["remove"]
        labels = {LABEL_DAEMON: "d1", LABEL_JOB: "j", LABEL_RUN: str(ready["run_id"])}
        engine.containers = [ContainerInfo(container, "d1-j-x", "created", labels)]
        settle(
            engine, history_of(runner), runner, jobs=config.jobs, daemon="d1", clock=engine.clock
        )
    assert engine.calls.count(("remove", container)) == 2  # the failed one, then settle's
    (orphan,) = events(logs, "run.orphan_removed")
    assert orphan["container_id"] == container


# --- a stop while preparations hang -------------------------------------------------------


def hanging_pulls(engine: FakeEngine, release: threading.Event) -> threading.Semaphore:
    """``ensure_image`` of image ``slow`` waits for ``release``; each that began counts up
    the returned semaphore."""
    began = threading.Semaphore(0)
    real = engine.ensure_image

    def ensure_image(image: str, policy: PullPolicy, auth: object = None) -> None:
        if image == "slow":
            began.release()
            assert release.wait(30)
        real(image, policy)

    engine.ensure_image = ensure_image  # type: ignore[method-assign]
    return began


SLOW_JOBS = "".join(
    f'[jobs.s{i}]\nkind = "run"\nimage = "slow"\ncommand = "true"\nschedule = "@daily"\n'
    for i in range(prepared_module.WORKERS)
)


def test_a_stop_removes_prepared_containers_while_every_preparation_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every preparation thread waits on an image pull that does not end: the stop still
    removes the container already prepared (its removal does not queue behind them)."""
    monkeypatch.setattr(prepared_module, "CLOSE_WAIT_S", 0.2)
    config, engine, runner = setup(tmp_path, jobs=SLOW_JOBS)
    release = threading.Event()
    try:
        with structlog.testing.capture_logs(processors=CAPTURE) as logs:
            container = made(runner, config.jobs["j"], logs)
            began = hanging_pulls(engine, release)
            for i in range(prepared_module.WORKERS):
                runner.preparations.prepare(config.jobs[f"s{i}"], SCHEDULED, SCHEDULED)
            for _ in range(prepared_module.WORKERS):
                assert began.acquire(timeout=10)
            runner.stop_preparing(wait=False)
            runner.finish_preparing()
            wait_for(lambda: ("remove", container) in engine.calls)
    finally:
        release.set()
    assert discarded(logs) == [(container, "daemon_stopping")]


def test_a_removal_not_done_when_the_stop_ends_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal the engine does not answer within the stop's wait: the stop goes on, and
    says which container it leaves (run.cleanup_failed; the next start removes it)."""
    monkeypatch.setattr(prepared_module, "CLOSE_WAIT_S", 0.05)
    config, engine, runner = setup(tmp_path)
    release = threading.Event()
    real = engine.remove

    def remove(container_id: str) -> None:
        assert release.wait(30)
        real(container_id)

    engine.remove = remove  # type: ignore[method-assign]
    try:
        with structlog.testing.capture_logs(processors=CAPTURE) as logs:
            container = made(runner, config.jobs["j"], logs)
            runner.stop_preparing()
            (left,) = events(logs, "run.cleanup_failed")
    finally:
        release.set()
    assert left["container_id"] == container
    assert "next start" in str(left["error"])
