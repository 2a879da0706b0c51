"""Runs that never start (missed, skipped, failed to start), the global cap and its slots,
and what each of them tells: the Dispatched answer, the history row, the event, the metrics
hook and the notification."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from scheduler.clock import SystemClock
from scheduler.engine import ExitStatus
from scheduler.engine_health import EngineHealth
from scheduler.notify import RunReport
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
    row,
    wait_for,
)

# --- runs that never start: one row, one event, one metric, one report --------------------


def assert_unstarted(
    runner: Runner,
    heard: Heard,
    logs: Logs,
    dispatched: Dispatched,
    status: Status,
    reason: str,
    report_error: str | None,
    **fields: object,
) -> None:
    """The run the answer names is recorded, logged, counted and reported, with its reason."""
    at = runner.clock.now()
    assert dispatched == Dispatched(dispatched.run_id, status, reason)
    recorded = row(runner, dispatched.run_id)
    assert (recorded.attempt, recorded.job, recorded.trigger, recorded.scheduled_at) == (
        1,
        "j",
        "schedule",
        SCHEDULED,
    )
    assert (recorded.status, recorded.reason, recorded.started_at, recorded.finished_at) == (
        status.value,
        reason,
        None,
        at,
    )
    (event,) = events(logs, f"run.{status.value}")
    expected = {
        "event": f"run.{status.value}",
        "log_level": "warning",
        "job": "j",
        "run_id": dispatched.run_id,
        "reason": reason,
        "scheduled_at": SCHEDULED.isoformat(),
        "trigger": "schedule",
        **fields,
    }
    assert {k: event[k] for k in expected} == expected
    assert ("j", status.value, at, None) in heard.ended
    assert (
        None,
        RunReport(
            job="j",
            run_id=dispatched.run_id,
            status=status.value,
            reason=reason,
            error=report_error,
            scheduled_at=SCHEDULED.isoformat(),
            trigger="schedule",
        ),
    ) in heard.reports


def test_a_run_due_while_the_engine_is_away_is_missed_at_once(tmp_path: Path) -> None:
    """Engine down: dispatch answers missed/engine_unavailable for the run it recorded, logs
    run.missed with the engine's error, counts and reports it, and touches no engine."""
    config = make_config(tmp_path)
    engine, heard = FakeEngine(FakeClock()), Heard()
    health = EngineHealth()
    runner = make_runner(config, engine, heard, engine_health=health)
    health.down("engine gone: connection refused")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        dispatched = runner.dispatch(config.jobs["j"], SCHEDULED)
    assert_unstarted(
        runner,
        heard,
        logs,
        dispatched,
        Status.MISSED,
        "engine_unavailable",
        "engine gone: connection refused",
        error="engine gone: connection refused",
    )
    assert heard.ended == [("j", "missed", SCHEDULED, None)]
    assert engine.calls == []
    assert runner.active() == 0


def test_forbid_answers_skipped_naming_the_running_run(tmp_path: Path) -> None:
    """concurrency = forbid: the second run is skipped (no error in its report), and the
    answer, the row and run.skipped name it; running_run_id names the first."""
    config = make_config(tmp_path)
    engine, heard = FakeEngine(FakeClock(), exit_status=None, blocking=True), Heard()
    runner = make_runner(config, engine, heard)
    started = threading.Event()
    engine.on_start = started.set
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        first = runner.dispatch(config.jobs["j"], SCHEDULED)
        assert first == Dispatched(first.run_id)
        assert started.wait(5)
        second = runner.dispatch(config.jobs["j"], SCHEDULED)
        runner.cancel_all()
        ended(runner)
    assert second.run_id != first.run_id
    assert_unstarted(
        runner,
        heard,
        logs,
        second,
        Status.SKIPPED,
        "previous run still running",
        None,
        running_run_id=first.run_id,
    )
    assert engine.created() == 1


def test_a_run_whose_thread_cannot_start_answers_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the thread limit: dispatch answers failed/thread_start_failed for the recorded run,
    with the error in the event and the report; nothing stays in flight."""
    config = make_config(tmp_path)
    engine, heard = FakeEngine(FakeClock()), Heard()
    runner = make_runner(config, engine, heard)

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        dispatched = runner.dispatch(config.jobs["j"], SCHEDULED)
    assert_unstarted(
        runner,
        heard,
        logs,
        dispatched,
        Status.FAILED,
        "thread_start_failed",
        "can't start new thread",
        error="can't start new thread",
    )
    assert runner.active() == 0
    assert runner.running_by_job() == {}


def test_missed_runs_keep_only_the_newest_history_limit_rows(tmp_path: Path) -> None:
    """history_limit = 2 applies to runs that never started too: of three missed runs the
    newest two stay, by identity; another job's rows are not touched."""
    config = make_config(tmp_path, "history_limit = 2")
    engine, heard = FakeEngine(FakeClock()), Heard()
    health = EngineHealth()
    runner = make_runner(config, engine, heard, engine_health=health)
    history_of(runner).record(
        "other", "k", "schedule", SCHEDULED, status=Status.MISSED, at=SCHEDULED, reason="x"
    )
    health.down("down")
    ids = []
    for n in range(3):
        ids.append(runner.dispatch(config.jobs["j"], SCHEDULED + timedelta(minutes=n)).run_id)
        engine.clock.advance(60)
    assert sorted(r.run_id for r in history_of(runner).runs("j")) == sorted(ids[1:])
    assert [r.run_id for r in history_of(runner).runs("k")] == ["other"]


@pytest.mark.parametrize(
    ("trigger", "remembered"),
    [("schedule", True), ("catch_up", True), ("start", True), ("manual", False)],
)
def test_only_scheduled_times_are_remembered_for_catch_up(
    tmp_path: Path, trigger: str, remembered: bool
) -> None:
    """A run for a scheduled time (schedule, catch_up, start) records it as the job's last
    scheduled time; a manual run is no scheduled time and records none. The row keeps the
    trigger."""
    config = make_config(tmp_path)
    engine, heard = FakeEngine(FakeClock()), Heard()
    health = EngineHealth()
    runner = make_runner(config, engine, heard, engine_health=health)
    health.down("down")  # recorded at once, no thread
    assert runner.submit(config.jobs["j"], SCHEDULED, trigger=trigger) is None
    assert [r.trigger for r in history_of(runner).runs("j")] == [trigger]
    marks = history_of(runner).marks()["j"]
    assert marks.last_scheduled_at == (SCHEDULED if remembered else None)


def test_a_run_submitted_without_a_trigger_is_a_scheduled_one(tmp_path: Path) -> None:
    """submit's default trigger is schedule: in run.started, the row and the report."""
    config = make_config(tmp_path)
    engine, heard = FakeEngine(FakeClock()), Heard()
    runner = make_runner(config, engine, heard)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        run_id = runner.submit(config.jobs["j"], SCHEDULED)
        ended(runner)
    assert run_id is not None
    assert [e["trigger"] for e in events(logs, "run.started")] == ["schedule"]
    assert row(runner, run_id).trigger == "schedule"
    assert [r.trigger for _, r in heard.reports] == ["schedule", "schedule"]
    assert history_of(runner).marks()["j"].last_scheduled_at == SCHEDULED


def test_running_by_job_counts_runs_in_flight_per_job(tmp_path: Path) -> None:
    """Two runs of j (allow) and one of k in flight: {j: 2, k: 1}, each in a daemon thread
    (one stuck in the engine never keeps the process from exiting); none once they ended."""
    config = make_config(
        tmp_path,
        'concurrency = "allow"',
        jobs='[jobs.k]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n',
    )
    engine, heard = FakeEngine(FakeClock(), exit_status=None, blocking=True), Heard()
    runner = make_runner(config, engine, heard)
    for name in ("j", "j", "k"):
        assert runner.submit(config.jobs[name], SCHEDULED) is not None
    wait_for(lambda: engine.names().count("start") == 3)
    assert runner.running_by_job() == {"j": 2, "k": 1}
    assert runner.active() == 3
    assert len(runner.active_ids()) == 3
    # a run stuck in the engine must never hold the process open at exit
    assert all(r.thread is not None and r.thread.daemon for r in runner.active_runs().values())
    runner.cancel_all()
    ended(runner)
    assert runner.running_by_job() == {}
    assert runner.active_ids() == frozenset()


# --- the global cap ----------------------------------------------------------------------


class Slots(threading.Condition):
    """The runner's slot condition, recording each wait's timeout. Its first ``spurious``
    waits return at once: Condition.wait may wake without a notify, and a queued run must
    then just look again."""

    def __init__(self, spurious: int = 0) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self.spurious = spurious

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) <= self.spurious:
            return False
        return super().wait(timeout)


def capped(
    tmp_path: Path, job: str, cap: int, slots: Slots
) -> tuple[Config, FakeEngine, Runner, Heard]:
    config = make_config(
        tmp_path, f'concurrency = "allow"\n{job}', daemon=f"max_concurrent_runs = {cap}"
    )
    engine, heard = FakeEngine(FakeClock(), exit_status=None, blocking=True), Heard()
    runner = make_runner(config, engine, heard)
    runner.slots.condition = slots
    return config, engine, runner, heard


def test_the_cap_lets_exactly_that_many_run_and_queues_the_next_once(tmp_path: Path) -> None:
    """max_concurrent_runs = 2: two runs start, the third waits (run.queued once, with
    running = 2, however often it wakes) and never starts before a slot frees."""
    slots = Slots(spurious=3)
    config, engine, runner, _ = capped(tmp_path, "", 2, slots)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        for _ in range(3):
            runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: len(slots.timeouts) > slots.spurious)  # woke spuriously, waits again
        wait_for(lambda: engine.names().count("start") == 2)
        runner.cancel_all()
        ended(runner)
    queued = events(logs, "run.queued")
    assert [(e["running"], e["max_concurrent_runs"]) for e in queued] == [(2, 2)]
    assert slots.timeouts == [None] * len(slots.timeouts)  # no starting_deadline: no bound
    assert engine.names().count("create") == 2


def test_a_finished_run_frees_exactly_its_slot(tmp_path: Path) -> None:
    """max_concurrent_runs = 1: after a run ended the next starts at once (not queued); while
    that one runs a third is queued again."""
    config, engine, runner, _ = capped(tmp_path, "", 1, Slots())
    engine.sequence = [ExitStatus(0)]
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], SCHEDULED)  # ends at once (the sequence)
        ended(runner)
        second = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: engine.names().count("start") == 2)
        third = runner.submit(config.jobs["j"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "run.queued")))
        assert engine.names().count("start") == 2
        runner.cancel_all()
        ended(runner)
    assert [e["run_id"] for e in events(logs, "run.queued")] == [third]
    assert second != third
    assert row(runner, str(third)).started_at is None


def test_a_queued_run_waits_only_for_what_is_left_of_its_starting_deadline(
    tmp_path: Path,
) -> None:
    """starting_deadline = 60s, scheduled 20.5 s ago: it waits 39.5 s for a slot; at 59.7 s
    late it waits the last 0.3 s; past the deadline (60.1234 s late) it is missed with lag_s
    to the millisecond and the deadline, and never started."""
    slots = Slots()
    config, engine, runner, heard = capped(tmp_path, 'starting_deadline = "60s"', 1, slots)
    clock = engine.clock
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], clock.now())
        wait_for(lambda: engine.names().count("start") == 1)
        queued = runner.submit(config.jobs["j"], clock.now() - timedelta(seconds=20.5))
        wait_for(lambda: len(slots.timeouts) == 1)
        clock.advance(39.2)
        with slots:
            slots.notify_all()
        wait_for(lambda: len(slots.timeouts) == 2)
        clock.advance(0.4234)
        with slots:
            slots.notify_all()
        wait_for(lambda: bool(events(logs, "run.missed")))
        runner.cancel_all()
        ended(runner)
    assert slots.timeouts == [pytest.approx(39.5), pytest.approx(0.3)]
    (missed,) = events(logs, "run.missed")
    assert (missed["run_id"], missed["reason"]) == (queued, "starting_deadline")
    assert (missed["lag_s"], missed["starting_deadline_s"]) == (60.123, 60.0)
    assert row(runner, str(queued)).status == "missed"
    assert engine.names().count("create") == 1
    assert [s for j, s, _, d in heard.ended if d is None] == ["missed"]


# --- join: on the runner's clock -----------------------------------------------------------


class ReleasingClock(FakeClock):
    """Releases the run's container at the joiner's (the test thread's) second reading of
    the time once armed: join has then looked at the runs in flight once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.armed = False
        self.readings = 0

    def monotonic(self) -> float:
        if self.armed and threading.current_thread() is threading.main_thread():
            self.readings += 1
            if self.readings == 2:
                self.release.set()
        return super().monotonic()


class HeldEngine(FakeEngine):
    """A container that ends (exit 0) once the clock releases it."""

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        assert isinstance(self.clock, ReleasingClock)
        self.calls.append(("wait", timeout))
        assert self.clock.release.wait(10)
        return ExitStatus(0)


def held_run(tmp_path: Path) -> tuple[Runner, ReleasingClock, Heard]:
    config = make_config(tmp_path)
    clock = ReleasingClock()
    engine, heard = HeldEngine(clock), Heard()
    runner = make_runner(config, engine, heard)
    runner.submit(config.jobs["j"], SCHEDULED)
    wait_for(lambda: "wait" in engine.names())
    clock.armed = True
    return runner, clock, heard


@pytest.mark.parametrize("timeout", [0.5, 0.001])
def test_join_waits_while_its_timeout_lasts_on_the_runners_clock(
    tmp_path: Path, timeout: float
) -> None:
    """join(t), t > 0, is True once every run ended, however many real waits that takes,
    while t seconds have not passed on the runner's clock (a fake one here, that never
    moves)."""
    runner, _, heard = held_run(tmp_path)
    assert runner.join(timeout) is True
    assert [s for _, s, _, _ in heard.ended] == ["succeeded"]


def test_join_gives_up_when_its_timeout_has_passed(tmp_path: Path) -> None:
    """join(0) with a run in flight is False at once (the run is let go only after join
    looked); a run that outlasts join(0.2) on a real clock makes it False."""
    runner, _, _ = held_run(tmp_path)
    assert runner.join(0) is False
    ended(runner)
    (tmp_path / "b").mkdir()
    config = make_config(tmp_path / "b")
    blocked = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    runner = make_runner(config, blocked, Heard(), SystemClock())
    runner.submit(config.jobs["j"], SCHEDULED)
    wait_for(lambda: "wait" in blocked.names())
    assert runner.join(0.2) is False  # still blocked: the timeout passed first
    runner.cancel_all()
    assert runner.join(10) is True


class JoinSpy:
    """Stands for a run's thread and records how long a joiner was willing to wait."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.timeouts: list[float | None] = []

    def join(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)
        self.thread.join(timeout)


def test_a_replacing_run_waits_for_the_old_one_a_bounded_time(tmp_path: Path) -> None:
    """concurrency = replace: the new run waits for the old one at most the old job's
    stop_grace (3 s) + the post-stop wait (30 s) + a 5 s margin = 38 s, never without bound."""
    config = make_config(tmp_path, 'concurrency = "replace"')
    engine, heard = FakeEngine(FakeClock(), exit_status=None, blocking=True), Heard()
    runner = make_runner(config, engine, heard)
    first = runner.submit(config.jobs["j"], SCHEDULED)
    wait_for(lambda: "wait" in engine.names())
    old = runner.active_runs()[str(first)]
    assert old.thread is not None
    spy = JoinSpy(old.thread)
    old.thread = spy  # type: ignore[assignment]
    runner.submit(config.jobs["j"], SCHEDULED)
    wait_for(lambda: len(spy.timeouts) > 0)
    assert spy.timeouts[0] == 38.0
    runner.cancel_all()
    ended(runner)
