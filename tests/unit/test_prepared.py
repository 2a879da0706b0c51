"""Runs prepared ahead (prepare_ahead): the ticker prepares a run job's next run its lead
before its due time, the runner's dispatch takes it and the first attempt only starts it;
every prepared container that is not started is removed, with the reason."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from jobs.plan import PullPolicy
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_RUN,
    ContainerInfo,
    ExitStatus,
)
from scheduler.engine_health import EngineHealth
from scheduler.errors import ConfigError, EngineError
from scheduler.recovery import settle
from scheduler.runner import Dispatched, Runner
from scheduler.runs import Status
from scheduler.settings import Config, JobEntry, load_config
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
    row,
    wait_for,
)

AHEAD = SCHEDULED - timedelta(seconds=5)
"""When the run of SCHEDULED is prepared (the default prepare_ahead, 5 s)."""


def prepared(
    runner: Runner, entry: JobEntry, logs: Logs, at: datetime = SCHEDULED
) -> dict[str, object]:
    """Prepare ``entry``'s run of ``at`` and wait until it is ready; its run.prepared event."""
    runner.preparations.prepare(entry, at, at)
    wait_for(lambda: bool(events(logs, "run.prepared")))
    (event,) = events(logs, "run.prepared")
    return dict(event)


def discarded(logs: Logs) -> list[tuple[str, str]]:
    """(container_id, reason) of each run.prepared_discarded, once the removals are done."""
    return [
        (str(e["container_id"]), str(e["reason"])) for e in events(logs, "run.prepared_discarded")
    ]


def setup(
    tmp_path: Path,
    job: str = "",
    health: EngineHealth | None = None,
    daemon: str = "",
    jobs: str = "",
) -> tuple[Config, FakeEngine, Runner, Heard]:
    config = make_config(tmp_path, job=job, daemon=daemon, jobs=jobs)
    engine, heard = FakeEngine(FakeClock(AHEAD)), Heard()
    runner = make_runner(config, engine, heard, engine_health=health)
    return config, engine, runner, heard


# --- the key -----------------------------------------------------------------------------


def test_prepare_ahead_defaults_to_five_seconds_and_is_bounded(tmp_path: Path) -> None:
    """A run job prepares 5 s ahead unless told; 0 turns it off; more than 10m is refused,
    naming the key."""
    config = make_config(tmp_path)
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine, Heard())
    assert runner.preparations.lead(config.jobs["j"]) == 5.0
    off = make_config(tmp_path, job='prepare_ahead = "0s"')
    assert runner.preparations.lead(off.jobs["j"]) == 0.0
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, job='prepare_ahead = "11m"')
    assert any("jobs.j.prepare_ahead" in error for error in caught.value.errors)


def test_only_run_jobs_are_prepared(tmp_path: Path) -> None:
    """A job of another kind has no lead (and no prepare_ahead key)."""
    config = make_config(
        tmp_path,
        jobs='[jobs.x]\nkind = "exec"\ncontainer = "app"\ncommand = "true"\nschedule = "@daily"\n',
    )
    runner = make_runner(config, FakeEngine(FakeClock()), Heard())
    assert runner.preparations.lead(config.jobs["x"]) == 0.0


# --- the ticker's hook -----------------------------------------------------------------


class FakePreparer:
    """Records what the ticker asks; every job's lead is ``lead``."""

    def __init__(self, lead: float) -> None:
        self.leads = lead
        self.prepared: list[tuple[str, datetime, datetime, datetime]] = []
        self.retained: list[list[str]] = []
        self.now: datetime | None = None

    def lead(self, entry: JobEntry) -> float:
        return self.leads

    def prepare(self, entry: JobEntry, scheduled_at: datetime, due: datetime) -> None:
        assert self.now is not None
        self.prepared.append((entry.name, scheduled_at, due, self.now))

    def retain(self, entries: Mapping[str, JobEntry]) -> None:
        self.retained.append(sorted(entries))


START = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


def ticker_entries(tmp_path: Path, jobs: str) -> dict[str, JobEntry]:
    path = tmp_path / "t.toml"
    path.write_text(jobs)
    return dict(load_config(path, {}).jobs)


def run_job(name: str, schedule: str, extra: str = "") -> str:
    return f'[jobs.{name}]\nkind = "run"\nimage = "i"\nschedule = "{schedule}"\n{extra}\n'


def test_the_ticker_wakes_at_due_less_the_lead_and_prepares_that_run(tmp_path: Path) -> None:
    """The loop sleeps until 5 s before the run, hands the preparer that run (scheduled
    time, due time) once, then sleeps until the run is due and fires it."""
    clock, fired = FakeClock(START), []
    preparer = FakePreparer(5.0)
    ticker = Ticker(clock, lambda e, at: fired.append((e.name, at)), preparer=preparer)
    ticker.set_jobs(ticker_entries(tmp_path, run_job("a", "* * * * *")))
    minute = datetime(2026, 1, 5, 12, 1, tzinfo=UTC)
    assert ticker.tick(clock.now()) == pytest.approx(25.0)
    preparer.now = clock.pass_until(minute - timedelta(seconds=5))
    assert ticker.tick(clock.now()) == pytest.approx(5.0)
    assert preparer.prepared == [("a", minute, minute, minute - timedelta(seconds=5))]
    assert ticker.tick(clock.pass_until(minute - timedelta(seconds=2))) == pytest.approx(2.0)
    assert len(preparer.prepared) == 1, "prepared twice"
    ticker.tick(clock.pass_until(minute))
    assert fired == [("a", minute)]


def test_jitter_moves_the_preparation_with_the_due_time(tmp_path: Path) -> None:
    """With jitter the run is prepared its lead before its jittered due time; the scheduled
    time handed over stays the nominal one."""
    clock = FakeClock(START)
    preparer = FakePreparer(5.0)
    ticker = Ticker(clock, lambda e, at: None, rng=random.Random(3), preparer=preparer)
    ticker.set_jobs(ticker_entries(tmp_path, run_job("a", "* * * * *", 'jitter = "20s"')))
    minute = datetime(2026, 1, 5, 12, 1, tzinfo=UTC)
    delay = random.Random(3).uniform(0, 20)
    due = minute + timedelta(seconds=delay)
    assert ticker.tick(clock.now()) == pytest.approx((due - START).total_seconds() - 5)
    preparer.now = clock.pass_until(due - timedelta(seconds=5))
    ticker.tick(clock.now())
    assert preparer.prepared == [("a", minute, due, due - timedelta(seconds=5))]


def test_a_run_due_sooner_than_the_lead_is_not_prepared(tmp_path: Path) -> None:
    """@every 2s with a 5 s lead: every run takes the normal path (never prepared), and the
    loop still wakes only when a run is due."""
    clock, fired = FakeClock(START), []
    preparer = FakePreparer(5.0)
    ticker = Ticker(clock, lambda e, at: fired.append(at), preparer=preparer)
    ticker.set_jobs(ticker_entries(tmp_path, run_job("a", "@every 2s")))
    for _ in range(4):
        preparer.now = clock.now()
        clock.advance(ticker.tick(clock.now()))
    assert preparer.prepared == []
    assert len(fired) == 3


def test_no_preparer_or_no_lead_prepares_nothing(tmp_path: Path) -> None:
    """A lead of 0 (prepare_ahead = 0) leaves the loop's sleeps as they were."""
    clock = FakeClock(START)
    preparer = FakePreparer(0.0)
    ticker = Ticker(clock, lambda e, at: None, preparer=preparer)
    ticker.set_jobs(ticker_entries(tmp_path, run_job("a", "* * * * *")))
    assert ticker.tick(clock.now()) == pytest.approx(30.0)
    preparer.now = clock.now()
    ticker.tick(clock.pass_until(datetime(2026, 1, 5, 12, 1, tzinfo=UTC)))
    assert preparer.prepared == []


def test_set_jobs_tells_the_preparer_the_jobs_in_force(tmp_path: Path) -> None:
    """Each set_jobs (start, reload, label scan) hands the preparer every job now in force."""
    preparer = FakePreparer(5.0)
    ticker = Ticker(FakeClock(START), lambda e, at: None, preparer=preparer)
    ticker.set_jobs(ticker_entries(tmp_path, run_job("a", "@daily") + run_job("b", "@daily")))
    ticker.set_jobs(ticker_entries(tmp_path, run_job("b", "@daily")))
    assert preparer.retained == [["a", "b"], ["b"]]


# --- the claim --------------------------------------------------------------------------


def test_a_prepared_run_is_only_started_at_its_time(tmp_path: Path) -> None:
    """Image, create and attach happen ahead, labelled with the run id the run then has; at
    dispatch only start, wait and remove follow; the run is recorded as usual with that
    container and its lag from the start, not from the create."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    engine.output_chunks = [("stdout", b"hi\n")]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        assert engine.names() == ["ensure_image", "create", "output"]
        run_id = engine.created_labels[LABEL_RUN]
        assert engine.created_labels == {
            LABEL_DAEMON: "d1",
            LABEL_JOB: "j",
            LABEL_RUN: run_id,
            LABEL_ATTEMPT: "1",
        }
        assert made["run_id"] == run_id
        assert made["container_id"] == "c0ffee1"
        assert made["ahead_s"] == 5.0
        engine.clock.pass_until(SCHEDULED + timedelta(seconds=0.25))
        engine.calls.clear()
        dispatched = runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert dispatched == Dispatched(run_id)
    assert engine.names() == ["start", "wait", "remove"]
    recorded = row(runner, run_id)
    assert (recorded.status, recorded.container_id, recorded.output_tail) == (
        "succeeded",
        "c0ffee1",
        "hi",
    )
    (started,) = events(logs, "run.started")
    assert started["lag_s"] == 0.25
    assert discarded(logs) == []


def test_retries_and_other_triggers_take_the_normal_path(tmp_path: Path) -> None:
    """Only attempt 1 of the scheduled run starts the prepared container: attempt 2 creates
    its own; a manual run of the same time leaves the prepared one for its own run."""
    config, engine, runner, _ = setup(tmp_path, job='retries = 1\nretry_delay = "1s"')
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        engine.clock.pass_until(SCHEDULED)
        manual = runner.dispatch(entry, SCHEDULED, trigger="manual")
        ended(runner)
        assert engine.created() == 2  # the manual run made its own
        engine.calls.clear()
        engine.sequence = [ExitStatus(3), ExitStatus(0)]
        scheduled = runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert manual.run_id != made["run_id"]
    assert scheduled.run_id == made["run_id"]
    assert [r.status for r in history_of(runner).runs("j") if r.run_id == scheduled.run_id] == [
        "succeeded",
        "failed",
    ]
    assert engine.names().count("create") == 1  # the retry's
    assert engine.names()[0] == "start"
    assert discarded(logs) == []


def test_a_volumes_from_that_selects_no_container_fails_the_preparation_at_debug(
    tmp_path: Path,
) -> None:
    """volumes_from matches no container ahead of the time: the run at its time reports
    that same problem on the normal path, so the preparation's failure is only debug."""
    config, engine, runner, _ = setup(tmp_path, job='volumes_from = "data"')
    entry = config.jobs["j"]
    engine.missing = {"data"}
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepare_failed")))
    (failed,) = events(logs, "run.prepare_failed")
    assert failed["log_level"] == "debug"
    assert "matched no container" in str(failed["error"])
    assert engine.created() == 0


def test_a_failed_preparation_leaves_the_run_to_the_normal_path(tmp_path: Path) -> None:
    """The image cannot be had ahead: run.prepare_failed, nothing kept; at its time the run
    tries again and its record tells the engine's error."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    engine.fail["ensure_image"] = EngineError("no such image: img:1")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(entry, SCHEDULED, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.prepare_failed")))
        engine.clock.pass_until(SCHEDULED)
        dispatched = runner.dispatch(entry, SCHEDULED)
        ended(runner)
    (failed,) = events(logs, "run.prepare_failed")
    assert (failed["job"], failed["error"]) == ("j", "no such image: img:1")
    assert failed["run_id"] != dispatched.run_id
    assert failed["log_level"] == "warning"
    recorded = row(runner, dispatched.run_id)
    assert (recorded.status, recorded.error) == ("failed", "no such image: img:1")
    assert engine.names().count("ensure_image") == 2
    assert engine.created() == 0


def test_a_preparation_reads_secrets_and_pulls_ahead(tmp_path: Path) -> None:
    """pull = always pulls at the preparation, and a secret file is read then (its value in
    the created container's environment), not at the run's time."""
    secret = tmp_path / "s"
    secret.write_text("hush")
    config, engine, runner, _ = setup(
        tmp_path, job=f'pull = "always"\nenv = {{ TOKEN = {{ file = "{secret}" }} }}'
    )
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        prepared(runner, config.jobs["j"], logs)
    assert ("ensure_image", ("img:1", PullPolicy.ALWAYS)) in engine.calls
    assert engine.created_specs[0].env["TOKEN"] == "hush"  # noqa: S105 - the test's value


# --- what is removed, and why ------------------------------------------------------------


def test_a_run_skipped_by_forbid_removes_its_prepared_container(tmp_path: Path) -> None:
    """concurrency = forbid and a run of the job began after the preparation (a manual
    one) and goes on: the run is skipped under the prepared run's id and its container
    removed (reason: why the run did not start)."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    engine.exit_status, engine.blocking = None, True
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        first = runner.dispatch(entry, SCHEDULED - timedelta(minutes=1), trigger="manual")
        assert started.wait(5)
        engine.clock.pass_until(SCHEDULED)
        second = runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: ("remove", made["container_id"]) in engine.calls)
        runner.cancel_all()
        ended(runner)
    assert second == Dispatched(str(made["run_id"]), Status.SKIPPED, "previous run still running")
    assert row(runner, second.run_id).status == "skipped"
    assert (str(made["container_id"]), "previous run still running") in discarded(logs)
    assert first.run_id != second.run_id


def test_a_run_past_its_starting_deadline_removes_its_prepared_container(
    tmp_path: Path,
) -> None:
    """The run cannot start within its starting_deadline (the cap's path): missed, and the
    prepared container is removed on the run's own thread (reason starting_deadline)."""
    config, engine, runner, _ = setup(tmp_path, job='starting_deadline = "1s"')
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        engine.clock.pass_until(SCHEDULED + timedelta(seconds=2))  # a late loop
        dispatched = runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert row(runner, dispatched.run_id).status == "missed"
    assert discarded(logs) == [(str(made["container_id"]), "starting_deadline")]
    assert engine.names().count("start") == 0
    assert ("remove", made["container_id"]) in engine.calls


def test_a_run_due_while_the_engine_is_away_discards_its_prepared_container(
    tmp_path: Path,
) -> None:
    """The engine went away after the preparation: the run is missed, its container's
    removal is tried (and fails: the orphan logic removes it when the engine is back)."""
    health = EngineHealth()
    config, engine, runner, _ = setup(tmp_path, health=health)
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        health.down("engine gone")
        engine.fail["remove"] = EngineError("engine gone")
        engine.clock.pass_until(SCHEDULED)
        dispatched = runner.dispatch(entry, SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.cleanup_failed")))
    assert dispatched == Dispatched(str(made["run_id"]), Status.MISSED, "engine_unavailable")
    assert discarded(logs) == [(str(made["container_id"]), "engine_unavailable")]


def test_nothing_is_prepared_while_the_engine_is_away(tmp_path: Path) -> None:
    """A preparation due during an outage does nothing (the run at its time says why)."""
    health = EngineHealth()
    config, engine, runner, _ = setup(tmp_path, health=health)
    health.down("engine gone")
    runner.preparations.prepare(config.jobs["j"], SCHEDULED, SCHEDULED)
    runner.stop_preparing()
    assert engine.calls == []


def test_the_engine_coming_back_removes_what_was_prepared_before(tmp_path: Path) -> None:
    """Settling after an outage drops every prepared run (reason engine_returned) and
    removes its container; the run at its time takes the normal path."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, entry, logs)
        settle(
            engine,
            history_of(runner),
            runner,
            jobs=config.jobs,
            daemon="d1",
            clock=engine.clock,
        )
        wait_for(lambda: ("remove", made["container_id"]) in engine.calls)
        engine.clock.pass_until(SCHEDULED)
        engine.calls.clear()
        dispatched = runner.dispatch(entry, SCHEDULED)
        ended(runner)
    assert discarded(logs) == [(str(made["container_id"]), "engine_returned")]
    assert dispatched.run_id != made["run_id"]
    assert engine.names()[:2] == ["ensure_image", "create"]


def test_a_label_job_whose_container_stopped_removes_its_prepared_container(
    tmp_path: Path,
) -> None:
    """The label gate: the declaring container is not running, the run is skipped and the
    prepared container removed (reason container_not_running)."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    labelled = JobEntry(
        entry.name,
        entry.job,
        entry.schedule,
        container=ContainerInfo(id="app1", name="app", state="exited", labels={}),
    )
    engine.not_running.add("app1")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, labelled, logs)
        engine.clock.pass_until(SCHEDULED)
        dispatched = runner.dispatch(labelled, SCHEDULED)
        ended(runner)
    assert row(runner, dispatched.run_id).reason == "container_not_running"
    assert discarded(logs) == [(str(made["container_id"]), "container_not_running")]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (None, "job_removed"),
        ("enabled = false", "job_disabled"),
        ('command = "true"', "job_changed"),
    ],
)
def test_a_reload_that_removes_disables_or_changes_the_job_removes_it(
    tmp_path: Path, change: str | None, reason: str
) -> None:
    """retain (a reload, a label scan): the job's prepared container is removed at once."""
    config, engine, runner, _ = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, config.jobs["j"], logs)
        jobs = {} if change is None else dict(make_config(tmp_path, job=change).jobs)
        runner.preparations.retain(jobs)
        wait_for(lambda: ("remove", made["container_id"]) in engine.calls)
        runner.preparations.retain(config.jobs)  # nothing is left to remove
    assert discarded(logs) == [(str(made["container_id"]), reason)]
    assert runner.preparations.take(config.jobs["j"], SCHEDULED) is None
    assert engine.streams[0].closed  # the engine would keep it open: it never started


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (None, "job_removed"),
        ("enabled = false", "job_disabled"),
        ('command = "true"', "job_changed"),
    ],
)
def test_a_reload_while_the_container_is_made_removes_it_once_made(
    tmp_path: Path, change: str | None, reason: str
) -> None:
    """A reload comes while the container is being created: it was made for a definition
    no longer in force, so it is removed once made and no run takes it."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    creating, release = threading.Event(), threading.Event()
    real_create = engine.create

    def slow_create(spec: object, *, name: str, labels: Mapping[str, str]) -> str:
        creating.set()
        assert release.wait(10)
        return real_create(spec, name=name, labels=labels)  # type: ignore[arg-type]

    engine.create = slow_create  # type: ignore[method-assign]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.retain(config.jobs)
        runner.preparations.prepare(entry, SCHEDULED, SCHEDULED)
        assert creating.wait(10)
        jobs = {} if change is None else dict(make_config(tmp_path, job=change).jobs)
        runner.preparations.retain(jobs)
        release.set()
        wait_for(lambda: bool(discarded(logs)))
        taken = runner.preparations.take(jobs.get("j", entry), SCHEDULED)
    assert taken is None
    assert events(logs, "run.prepared") == []
    ((container_id, why),) = discarded(logs)
    assert why == reason
    wait_for(lambda: ("remove", container_id) in engine.calls)


def test_an_unchanged_job_keeps_its_prepared_run(tmp_path: Path) -> None:
    """A reload that leaves the job as it was keeps the prepared container for its run."""
    config, _, runner, _ = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, config.jobs["j"], logs)
        runner.preparations.retain(dict(make_config(tmp_path).jobs))
        taken = runner.preparations.take(config.jobs["j"], SCHEDULED)
    assert taken is not None
    assert taken.run_id == made["run_id"]
    assert discarded(logs) == []


def test_a_stop_removes_prepared_runs_and_prepares_no_more(tmp_path: Path) -> None:
    """stop_preparing (the daemon stops): each prepared container is removed before it
    returns (reason daemon_stopping), and a later preparation does nothing."""
    config, engine, runner, _ = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, config.jobs["j"], logs)
        runner.stop_preparing()
        assert ("remove", made["container_id"]) in engine.calls
        engine.calls.clear()
        runner.preparations.prepare(config.jobs["j"], SCHEDULED, SCHEDULED)
    assert discarded(logs) == [(str(made["container_id"]), "daemon_stopping")]
    assert engine.calls == []


def test_a_preparation_not_ready_at_its_time_is_removed_when_made(tmp_path: Path) -> None:
    """The create is still under way when the run is due: the run takes the normal path,
    and the late container is removed once made (reason not_ready)."""
    config, engine, runner, _ = setup(tmp_path)
    entry = config.jobs["j"]
    release = threading.Event()
    real_create = engine.create
    creating = threading.Event()

    def slow_create(spec: object, *, name: str, labels: Mapping[str, str]) -> str:
        if not creating.is_set():
            creating.set()
            assert release.wait(10)
        return real_create(spec, name=name, labels=labels)  # type: ignore[arg-type]

    engine.create = slow_create  # type: ignore[method-assign]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.preparations.prepare(entry, SCHEDULED, SCHEDULED)
        assert creating.wait(10)
        engine.clock.pass_until(SCHEDULED)
        assert runner.preparations.take(entry, SCHEDULED) is None
        release.set()
        wait_for(lambda: bool(discarded(logs)))
    (late,) = discarded(logs)
    assert late[1] == "not_ready"
    wait_for(lambda: ("remove", late[0]) in engine.calls)


def test_a_run_never_taken_expires(tmp_path: Path) -> None:
    """A prepared run whose time passed a minute ago without being taken (a clock stepped
    back re-planned the job) is removed at the next preparation (reason expired)."""
    config, engine, runner, _ = setup(tmp_path)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, config.jobs["j"], logs)
        engine.clock.advance(120)
        runner.preparations.retain(config.jobs)
        wait_for(lambda: bool(discarded(logs)))
    assert discarded(logs) == [(str(made["container_id"]), "expired")]


def test_a_take_of_another_job_removes_a_run_left_behind(tmp_path: Path) -> None:
    """A run prepared for a job that no run takes (a reload took the job away while it was
    being made) goes at the next take of any job, once its time is a minute past: a daemon
    whose other jobs are never prepared again does not keep it."""
    config, engine, runner, _ = setup(
        tmp_path,
        jobs='[jobs.k]\nkind = "run"\nimage = "busybox"\ncommand = "true"\nschedule = "@daily"\n',
    )
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        made = prepared(runner, config.jobs["j"], logs)
        assert runner.preparations.take(config.jobs["k"], SCHEDULED) is None
        assert discarded(logs) == []  # its time has not passed: it may still be taken
        engine.clock.advance(120)
        assert runner.preparations.take(config.jobs["k"], SCHEDULED) is None
        wait_for(lambda: bool(discarded(logs)))
    assert discarded(logs) == [(str(made["container_id"]), "expired")]
    assert ("remove", made["container_id"]) in engine.calls


def test_a_container_prepared_before_a_kill_is_an_orphan_at_the_next_start(
    tmp_path: Path,
) -> None:
    """kill -9 after a preparation: a created container with our labels whose run id has
    no record is removed by the next start's settling (run.orphan_removed), never waited
    for or stopped."""
    config = make_config(tmp_path)
    labels = {LABEL_DAEMON: "d1", LABEL_JOB: "j", LABEL_RUN: "r-prepared", LABEL_ATTEMPT: "1"}
    engine = FakeEngine(
        FakeClock(), containers=[ContainerInfo("c-prep", "d1-j-r-prepared", "created", labels)]
    )
    runner = make_runner(config, engine, Heard())
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        settle(
            engine, history_of(runner), runner, jobs=config.jobs, daemon="d1", clock=engine.clock
        )
    assert [n for n in engine.names() if n != "list_containers"] == ["remove"]
    (orphan,) = events(logs, "run.orphan_removed")
    assert (orphan["container_id"], orphan["reason"]) == ("c-prep", "settled_after_restart")
    assert history_of(runner).runs("j") == []


def test_defaults_set_prepare_ahead_for_run_jobs_only(tmp_path: Path) -> None:
    """[defaults] prepare_ahead = "0s" turns preparing off for every run job; a job of
    another kind in the same file is not refused for it."""
    config = make_config(
        tmp_path,
        daemon='[defaults]\nprepare_ahead = "0s"\n',
        jobs='[jobs.x]\nkind = "exec"\ncontainer = "app"\ncommand = "true"\nschedule = "@daily"\n',
    )
    runner = make_runner(config, FakeEngine(FakeClock()), Heard())
    assert runner.preparations.lead(config.jobs["j"]) == 0.0
    assert runner.preparations.lead(config.jobs["x"]) == 0.0


def test_a_container_whose_start_fails_has_its_output_stream_closed(tmp_path: Path) -> None:
    """The start is refused: the container is removed and its attached stream closed from
    this side (the engine never ends it), so the run does not wait out the output drain."""
    config, engine, runner, _ = setup(tmp_path)
    engine.fail["start"] = EngineError("start refused")
    runner.dispatch(config.jobs["j"], SCHEDULED, trigger="manual")
    ended(runner)
    assert engine.streams[0].closed
    assert engine.names()[-1] == "remove"


def test_a_started_container_leaves_its_stream_to_the_engine(tmp_path: Path) -> None:
    """A container that ran: its stream ends with it; nothing is closed from this side."""
    config, engine, runner, _ = setup(tmp_path)
    runner.dispatch(config.jobs["j"], SCHEDULED, trigger="manual")
    ended(runner)
    assert not engine.streams[0].closed
