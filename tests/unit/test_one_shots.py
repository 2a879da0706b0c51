"""One-shot (``@at``) schedules: what is read and refused, and the claim-once, done-with-its-
outcome rule over the state database, on a hand-driven clock."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from scheduler.cli import main
from scheduler.engine import ExitStatus
from scheduler.engine_health import EngineHealth
from scheduler.history import History
from scheduler.notify import RunReport
from scheduler.one_shots import OneShots
from scheduler.reports import jobs_json, jobs_table
from scheduler.runs import Status
from scheduler.schedule import ScheduleError, parse_schedule
from scheduler.settings import load_config

from .fakes import FakeClock, FakeEngine
from .helpers import CAPTURE, Heard, events, history_of, make_config, make_runner, wait_for
from .helpers import ended as runs_ended

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scheduler.runner import Runner
    from scheduler.settings import Config, JobEntry

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "instant"),
    [
        ("@at 2027-01-01T03:00:00+01:00", datetime(2027, 1, 1, 2, 0, tzinfo=UTC)),
        ("@at 2027-01-01T02:00:00Z", datetime(2027, 1, 1, 2, 0, tzinfo=UTC)),
        ("@AT 2027-01-01t02:00:00z", datetime(2027, 1, 1, 2, 0, tzinfo=UTC)),
        ("@at  2027-01-01 02:00:00-05:30", datetime(2027, 1, 1, 7, 30, tzinfo=UTC)),
        ("@at 2027-01-01T02:00:00.250+00:00", datetime(2027, 1, 1, 2, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_an_rfc3339_time_with_its_offset_is_one_instant(written: str, instant: datetime) -> None:
    """The offset (or Z) fixes the instant; the job's time zone only shows it."""
    schedule = parse_schedule(written, "Europe/Berlin")
    assert schedule.one_shot == instant
    assert schedule.next_after(instant - timedelta(seconds=1)) == instant
    assert schedule.next_after(instant - timedelta(seconds=1)).tzinfo == schedule.zone  # type: ignore[union-attr]
    assert schedule.next_after(instant) is None
    assert schedule.next_times(instant - timedelta(days=400), 3) == [instant]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "@at 2027-01-01T03:00:00",
            (
                "@at: '2027-01-01T03:00:00' has no UTC offset: add one (e.g. "
                "'2027-01-01T03:00:00+01:00', or 'Z' for UTC)"
            ),
        ),
        (
            "@at 2027-02-30T03:00:00Z",
            (
                "@at: '2027-02-30T03:00:00Z' is not a valid date and time (day is out of range for "
                "month)"
            ),
        ),
        (
            "@at 2027-01-01T24:00:00+01:00",
            "@at: '2027-01-01T24:00:00+01:00' is not a valid date and time (hour must be in 0..23)",
        ),
        (
            "@at 2027-01-01T03:00:00+24:00",
            "@at: '2027-01-01T03:00:00+24:00': the UTC offset +24:00 is not one (at most ±23:59)",
        ),
        (
            "@at tomorrow",
            (
                "@at: 'tomorrow' is not an RFC 3339 date and time (write e.g. "
                "'2027-01-01T03:00:00+01:00', or with 'Z' for UTC)"
            ),
        ),
        (
            "@at 2027-01-01",
            (
                "@at: '2027-01-01' is not an RFC 3339 date and time (write e.g. "
                "'2027-01-01T03:00:00+01:00', or with 'Z' for UTC)"
            ),
        ),
        (
            "@at",
            "@at takes a date and time with its UTC offset, as in '@at 2027-01-01T03:00:00+01:00'",
        ),
    ],
)
def test_a_bad_at_time_is_refused_saying_what_is_wrong(written: str, message: str) -> None:
    """No offset, a date or time that does not exist, another form: each said."""
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(written)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "2027-01-01T03:00:00Z",
            (
                "'2027-01-01T03:00:00Z' is not a schedule here: to run once at that time, write "
                "'@at 2027-01-01T03:00:00Z'"
            ),
        ),
        (
            "at 2027-01-01 03:00:00",
            (
                "'at 2027-01-01 03:00:00' is not a schedule here: to run once at that time, write "
                "'@at 2027-01-01 03:00:00' (with its UTC offset, e.g. +01:00, or Z for UTC)"
            ),
        ),
    ],
)
def test_a_date_written_as_a_schedule_gets_the_at_form(written: str, message: str) -> None:
    """A bare date and time (or 'at' one) is refused with the @at form to write instead."""
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(written)
    assert str(caught.value) == message


def test_a_past_at_time_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate exits 0 and names the job and its schedule as written; a future time and a
    missing offset (an error, exit 2) are told apart."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.old]\nkind = "run"\nimage = "x"\nschedule = "@at 2020-01-01T03:00:00+01:00"\n'
        '[jobs.new]\nkind = "run"\nimage = "x"\nschedule = "@at 2999-01-01T03:00:00Z"\n'
    )
    assert main(["validate", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        (
            "warning: jobs.old.schedule: '@at 2020-01-01T03:00:00+01:00' is in the past: the job "
            "runs only if that time never came while the daemon ran and catch_up = true (then "
            "once, at its start)"
        )
    ]
    assert "2999-01-01T03:00:00+00:00" in captured.out
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobs.j]\nkind = "run"\nimage = "x"\nschedule = "@at 2027-01-01T03:00:00"\n')
    assert main(["validate", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        (
            "error: jobs.j.schedule: @at: '2027-01-01T03:00:00' has no UTC offset: add one (e.g. "
            "'2027-01-01T03:00:00+01:00', or 'Z' for UTC)"
        )
    ]


def test_validate_warns_of_keys_that_do_not_go_with_the_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """@at with run_on_start (its own, or [defaults]') runs at every start: a warning; so is
    catch_up on a @manual job (nothing to catch up), but not one from [defaults]; both
    still load (exit 0), and the daemon logs them (Config.warnings)."""
    path = tmp_path / "c.toml"
    path.write_text(
        "[defaults]\ncatch_up = true\n"
        '[jobs.once]\nkind = "run"\nimage = "x"\nschedule = "@at 2999-01-01T03:00:00Z"\n'
        "run_on_start = true\n"
        '[jobs.hand]\nkind = "run"\nimage = "x"\nschedule = "@manual"\ncatch_up = true\n'
        '[jobs.plain]\nkind = "run"\nimage = "x"\nschedule = "@manual"\n'
        '[jobs.daily]\nkind = "run"\nimage = "x"\nschedule = "@daily"\nrun_on_start = true\n'
    )
    assert main(["validate", "--config", str(path)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        (
            "warning: jobs.once.run_on_start: the job is a one-shot (@at): run_on_start runs it "
            "again at every start of the daemon (trigger start), besides its instant, which "
            "runs once"
        ),
        "warning: jobs.hand.catch_up: the job is @manual (no fire times): catch_up does nothing",
    ]
    keys = {name: [w.key for w in found] for name, found in load_config(path, {}).warnings.items()}
    assert keys == {"once": ["run_on_start"], "hand": ["catch_up"]}
    path.write_text(
        "[defaults]\nrun_on_start = true\n"
        '[jobs.once]\nkind = "run"\nimage = "x"\nschedule = "@at 2999-01-01T03:00:00Z"\n'
    )
    assert [w.key for w in load_config(path, {}).warnings["once"]] == ["run_on_start"]


# --- claimed once, done with its outcome ------------------------------------------------


class Submitted:
    """A stand-in for Runner.submit: remembers what was handed over."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime, str]] = []

    def __call__(self, entry: JobEntry, scheduled_at: datetime, trigger: str) -> str:
        self.calls.append((entry.name, scheduled_at, trigger))
        return f"r{len(self.calls)}"


def entries(tmp_path: Path, *jobs: tuple[str, str, str]) -> dict[str, JobEntry]:
    """Jobs (name, schedule, extra keys) loaded as the daemon would."""
    text = f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + "".join(
        f'[jobs.{n}]\nkind = "run"\nimage = "i"\nschedule = "{s}"\n{extra}\n'
        for n, s, extra in jobs
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    return dict(load_config(path, {}).jobs)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    opened = History.open(tmp_path / "state")
    yield opened
    opened.close()


def ended(entry: JobEntry, at: datetime, status: str, trigger: str = "schedule") -> RunReport:
    return RunReport(
        job=entry.name, run_id="r1", status=status, scheduled_at=at.isoformat(), trigger=trigger
    )


def logged(logs: list[Any], name: str) -> list[Any]:
    return [e for e in logs if e["event"] == name]


AT = NOW + timedelta(minutes=5)


def test_an_instant_fires_once_and_is_done_with_the_runs_outcome(
    tmp_path: Path, history: History
) -> None:
    """The loop's fire claims the instant and hands the run over; the run's end makes it done
    (job.one_shot_done); a second fire of it, in this daemon or the next, is refused."""
    jobs = entries(tmp_path, ("once", f"@at {AT.isoformat()}", ""))
    entry, clock, submit = jobs["once"], FakeClock(NOW), Submitted()
    shots = OneShots(history, clock, submit)
    with structlog.testing.capture_logs() as logs:
        shots.fire(entry, AT)
        assert submit.calls == [("once", AT, "schedule")]
        assert not history.one_shots()["once", AT].done  # claimed, under way
        shots.report(None, ended(entry, AT, "started"))
        assert not history.one_shots()["once", AT].done
        clock.pass_until(AT + timedelta(seconds=3))
        shots.report(None, ended(entry, AT, "failed"))
        shots.fire(entry, AT)  # the wall clock stepped back over it
        later = OneShots(history, clock, submit)  # a restart
        later.load()
        later.fire(entry, AT)
    assert submit.calls == [("once", AT, "schedule")]
    record = history.one_shots()["once", AT]
    assert (record.outcome, record.run_id, record.done_at) == ("failed", "r1", clock.now())
    assert [(e["job"], e["outcome"], e["at"]) for e in logged(logs, "job.one_shot_done")] == [
        ("once", "failed", AT.isoformat())
    ]
    assert len(logged(logs, "job.one_shot_refused")) == 2


def test_a_run_that_did_not_happen_is_done_as_missed_and_manual_runs_change_nothing(
    tmp_path: Path, history: History
) -> None:
    """A run-now's end leaves the instant alone; a skipped scheduled run makes it done
    (job.one_shot_missed, with the run's reason); a repeating job's runs are not recorded."""
    jobs = entries(tmp_path, ("once", f"@at {AT.isoformat()}", ""), ("daily", "@daily", ""))
    entry, submit = jobs["once"], Submitted()
    shots = OneShots(history, FakeClock(NOW), submit)
    with structlog.testing.capture_logs() as logs:
        shots.report(None, ended(entry, NOW, "succeeded", trigger="manual"))
        shots.report(None, ended(jobs["daily"], NOW, "succeeded"))
        assert history.one_shots() == {}
        shots.fire(jobs["daily"], NOW)
        assert history.one_shots() == {}
        shots.fire(entry, AT)
        report = ended(entry, AT, Status.SKIPPED.value)
        shots.report(None, dataclasses.replace(report, reason="previous run still running"))
    assert history.one_shots()["once", AT].outcome == "skipped"
    (missed,) = logged(logs, "job.one_shot_missed")
    assert (missed["outcome"], missed["reason"]) == ("skipped", "previous run still running")
    assert submit.calls == [("daily", NOW, "schedule"), ("once", AT, "schedule")]


def test_an_edited_time_is_a_new_one_shot(tmp_path: Path, history: History) -> None:
    """Done at one instant, the same job at another instant still runs."""
    first = entries(tmp_path, ("once", f"@at {AT.isoformat()}", ""))["once"]
    later = AT + timedelta(days=1)
    edited = entries(tmp_path, ("once", f"@at {later.isoformat()}", ""))["once"]
    submit = Submitted()
    shots = OneShots(history, FakeClock(NOW), submit)
    shots.fire(first, AT)
    shots.report(None, ended(first, AT, "succeeded"))
    shots.fire(edited, later)
    assert submit.calls == [("once", AT, "schedule"), ("once", later, "schedule")]
    assert set(history.one_shots()) == {("once", AT), ("once", later)}


def test_at_start_a_past_instant_is_caught_up_once_or_done_as_missed(
    tmp_path: Path, history: History
) -> None:
    """Never claimed and past: catch_up runs it (trigger catch_up); past its starting
    deadline, or without catch_up, it is done as missed; a future or disabled one is left to
    the loop; a second start decides nothing again."""
    past = NOW - timedelta(hours=2)
    jobs = entries(
        tmp_path,
        ("caught", f"@at {past.isoformat()}", "catch_up = true"),
        ("late", f"@at {past.isoformat()}", 'catch_up = true\nstarting_deadline = "1h"'),
        ("off", f"@at {past.isoformat()}", ""),
        ("ahead", f"@at {AT.isoformat()}", "catch_up = true"),
        ("disabled", f"@at {past.isoformat()}", "catch_up = true\nenabled = false"),
    )
    submit = Submitted()
    with structlog.testing.capture_logs() as logs:
        shots = OneShots(history, FakeClock(NOW), submit)
        shots.load()
        shots.at_start(jobs, NOW)
        shots.report(None, ended(jobs["caught"], past, "succeeded", trigger="catch_up"))
        again = OneShots(history, FakeClock(NOW), submit)  # a second start
        again.load()
        again.at_start(jobs, NOW)
    assert submit.calls == [("caught", past, "catch_up")]
    done = {job: (r.outcome, r.reason) for (job, _), r in history.one_shots().items()}
    assert done == {
        "caught": ("succeeded", None),
        "late": ("missed", "starting_deadline"),
        "off": ("missed", "catch_up_off"),
    }
    assert [e["job"] for e in logged(logs, "job.catch_up")] == ["caught"]
    (skipped,) = logged(logs, "job.catch_up_skipped")
    assert (skipped["job"], skipped["late_s"], skipped["starting_deadline_s"]) == (
        "late",
        7200.0,
        3600.0,
    )
    assert sorted((e["job"], e["reason"]) for e in logged(logs, "job.one_shot_missed")) == [
        ("late", "starting_deadline"),
        ("off", "catch_up_off"),
    ]


def test_at_start_an_instant_an_earlier_daemon_claimed_follows_its_run(
    tmp_path: Path, history: History
) -> None:
    """Claimed by a daemon that died: a run that ended is its outcome; a run still running
    (adopted) finishes it when it ends; a run that never began is caught up like a missed one."""
    past = NOW - timedelta(minutes=10)
    jobs = entries(
        tmp_path,
        ("ended", f"@at {past.isoformat()}", ""),
        ("adopted", f"@at {past.isoformat()}", ""),
        ("never", f"@at {past.isoformat()}", "catch_up = true"),
    )
    for name in jobs:
        assert history.claim_one_shot(name, past, past)
    for name, run_id in (("ended", "e1"), ("adopted", "a1")):
        history.begin(run_id, 1, name, trigger="schedule", scheduled_at=past, started_at=past)
    history.finish("e1", 1, status=Status.TIMED_OUT, finished_at=past + timedelta(minutes=1))
    submit = Submitted()
    shots = OneShots(history, FakeClock(NOW), submit)
    shots.load()
    shots.at_start(jobs, NOW)
    assert submit.calls == [("never", past, "catch_up")]
    records = history.one_shots()
    assert (records["ended", past].outcome, records["ended", past].run_id) == ("timed_out", "e1")
    assert not records["adopted", past].done
    shots.report(None, ended(jobs["adopted"], past, "succeeded"))  # the adopted run's end
    assert history.one_shots()["adopted", past].outcome == "succeeded"


def test_jobs_shows_a_done_one_shot_with_its_outcome_and_no_next_run(
    tmp_path: Path, history: History
) -> None:
    """NEXT RUN says done and the outcome (running while under way); the JSON has
    next_run null and the one_shot's record; a future one shows its time."""
    past = NOW - timedelta(minutes=10)
    jobs = entries(
        tmp_path,
        ("done", f"@at {past.isoformat()}", ""),
        ("busy", f"@at {past.isoformat()}", ""),
        ("ahead", f"@at {AT.isoformat()}", ""),
    )
    history.claim_one_shot("busy", past, past)
    history.claim_one_shot("done", past, past)
    history.finish_one_shot("done", past, outcome="succeeded", at_time=NOW, run_id="r9")
    marks, shots = history.marks(), history.one_shots()
    lines = jobs_table(jobs, {}, marks, NOW, shots).splitlines()
    assert lines[0].split()[:5] == ["JOB", "KIND", "SCHEDULE", "TIMEZONE", "NEXT"]
    cells = {line.split()[0]: line for line in lines[1:]}
    assert "done: succeeded" in cells["done"]
    assert "running" in cells["busy"]
    assert "2026-06-01 12:05:00+0000" in cells["ahead"]
    report: Any = json.loads(json.dumps(jobs_json(jobs, {}, marks, NOW, shots)))
    assert report["done"]["next_run"] is None
    assert report["done"]["one_shot"] == {
        "at": past.isoformat(),
        "done": True,
        "outcome": "succeeded",
        "reason": None,
        "run_id": "r9",
        "done_at": NOW.isoformat(),
    }
    assert report["ahead"]["next_run"] == AT.isoformat()
    assert report["ahead"]["one_shot"]["done"] is False
    daily: Any = jobs_json(entries(tmp_path, ("daily", "@daily", "")), {}, {}, NOW)
    assert daily["daily"]["one_shot"] is None
    assert daily["daily"]["next_run"] == "2026-06-02T00:00:00+00:00"


def test_a_state_database_refusing_writes_still_runs_the_instant_once(
    tmp_path: Path, history: History
) -> None:
    """A claim that cannot be written runs anyway (logged as history.write_failed), and this
    daemon still never hands the same instant over twice."""
    entry = entries(tmp_path, ("once", f"@at {AT.isoformat()}", ""))["once"]
    submit = Submitted()
    shots = OneShots(history, FakeClock(NOW), submit)
    history.connection.execute("PRAGMA query_only = 1")
    with structlog.testing.capture_logs() as logs:
        shots.fire(entry, AT)
        shots.report(None, ended(entry, AT, "succeeded"))
        shots.fire(entry, AT)
    assert submit.calls == [("once", AT, "schedule")]
    assert history.write_error is not None
    assert len(logged(logs, "history.write_failed")) == 1
    assert len(logged(logs, "job.one_shot_refused")) == 1
    history.connection.execute("PRAGMA query_only = 0")
    assert history.one_shots() == {}


# --- a run that never began leaves its instant claimed ---------------------------------------


def _runner_and_shots(
    tmp_path: Path, job: str, clock: FakeClock, *, blocking: bool, health: EngineHealth | None
) -> tuple[Runner, OneShots, FakeEngine, Config]:
    """A runner on a fake engine, job ``j`` (@daily, lock ``data``) and ``job``'s keys for
    the one-shot ``k`` at ``NOW``; its OneShots listening."""
    config = make_config(
        tmp_path,
        job='lock = "data"',
        jobs=f'[jobs.k]\nkind = "run"\nimage = "img:2"\nschedule = "@at {NOW.isoformat()}"\n{job}',
    )
    engine = FakeEngine(clock, exit_status=None if blocking else ExitStatus(0), blocking=blocking)
    runner = make_runner(config, engine, Heard(), engine_health=health)
    shots = OneShots(
        history_of(runner),
        clock,
        runner.submit,
        engine_health=health,
        jobs=lambda: config.jobs,
    )
    runner.add_listener(shots)
    return runner, shots, engine, config


@pytest.mark.parametrize(
    ("keys", "next_start"),
    [
        ('lock = "data"\ncatch_up = true', [("k", NOW, "catch_up")]),
        ('lock = "data"', []),
    ],
)
def test_a_run_cancelled_before_it_began_leaves_its_instant_to_the_next_start(
    tmp_path: Path, keys: str, next_start: list[tuple[str, datetime, str]]
) -> None:
    """Cancelled (the daemon stopping) while it waited for its lock, the run never began: its
    instant stays claimed, not done (job.one_shot_pending), and the next start decides it
    like one never run: caught up with catch_up, else done as missed (catch_up_off)."""
    clock = FakeClock(NOW)
    runner, shots, engine, config = _runner_and_shots(
        tmp_path, keys, clock, blocking=True, health=None
    )
    history = history_of(runner)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        runner.submit(config.jobs["j"], NOW)  # holds the lock "data"
        wait_for(lambda: engine.names().count("start") == 1)
        shots.fire(config.jobs["k"], NOW)
        wait_for(lambda: bool(events(logs, "run.waiting")))
        runner.cancel_all()
        runs_ended(runner)
    assert [(r.status, r.reason) for r in history.runs("k")] == [("cancelled", "daemon_stopping")]
    assert not history.one_shots()["k", NOW].done
    assert logged(logs, "job.one_shot_done") == []
    (pending,) = logged(logs, "job.one_shot_pending")
    assert (pending["reason"], pending["until"]) == ("daemon_stopping", "next_start")
    submit = Submitted()
    later = NOW + timedelta(minutes=5)
    again = OneShots(history, FakeClock(later), submit)  # the next start
    again.load()
    again.at_start(config.jobs, later)
    assert submit.calls == next_start
    record = history.one_shots()["k", NOW]
    assert (record.done, record.reason) == ((False, None) if next_start else (True, "catch_up_off"))


def test_an_instant_missed_while_the_engine_was_away_runs_when_it_is_back(tmp_path: Path) -> None:
    """With catch_up: the run missed at its time (engine_unavailable) leaves the instant
    claimed; the engine's return hands it over (trigger catch_up) and its run's end makes it
    done."""
    clock = FakeClock(NOW)
    health = EngineHealth()
    health.down("engine restarting")
    keys = 'catch_up = true\nstarting_deadline = "1h"'
    runner, shots, _, config = _runner_and_shots(
        tmp_path, keys, clock, blocking=False, health=health
    )
    history = history_of(runner)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        shots.fire(config.jobs["k"], NOW)
        assert not history.one_shots()["k", NOW].done
        (pending,) = logged(logs, "job.one_shot_pending")
        assert (pending["reason"], pending["until"]) == ("engine_unavailable", "engine_return")
        clock.advance(300)
        health.up()
        runs_ended(runner)
    runs = [(r.trigger, r.status) for r in history.runs("k")]
    assert sorted(runs) == [("catch_up", "succeeded"), ("schedule", "missed")]
    record = history.one_shots()["k", NOW]
    assert (record.done, record.outcome) == (True, "succeeded")
    assert [e["late_s"] for e in logged(logs, "job.catch_up")] == [300.0]


@pytest.mark.parametrize(
    ("keys", "outcome"),
    [
        ('catch_up = true\nstarting_deadline = "1m"', ("missed", "starting_deadline")),
        ("", ("missed", "engine_unavailable")),
    ],
)
def test_an_instant_missed_while_the_engine_was_away_is_done_past_its_deadline_or_without_catch_up(
    tmp_path: Path, keys: str, outcome: tuple[str, str]
) -> None:
    """Back after the starting deadline: done as missed (starting_deadline); without catch_up
    it is done as missed at its time, as the run's reason says."""
    clock = FakeClock(NOW)
    health = EngineHealth()
    health.down("engine restarting")
    runner, shots, _, config = _runner_and_shots(
        tmp_path, keys, clock, blocking=False, health=health
    )
    history = history_of(runner)
    shots.fire(config.jobs["k"], NOW)
    clock.advance(300)
    health.up()
    runs_ended(runner)
    assert [r.trigger for r in history.runs("k")] == ["schedule"]
    record = history.one_shots()["k", NOW]
    assert (record.done, record.outcome, record.reason) == (True, *outcome)


def test_an_instant_missed_while_the_engine_was_away_is_caught_up_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The daemon stopped before the engine came back: the next start hands it over
    (within starting_deadline), as it would an instant never run."""
    clock = FakeClock(NOW)
    health = EngineHealth()
    health.down("engine restarting")
    keys = 'catch_up = true\nstarting_deadline = "1h"'
    runner, shots, _, config = _runner_and_shots(
        tmp_path, keys, clock, blocking=False, health=health
    )
    history = history_of(runner)
    shots.fire(config.jobs["k"], NOW)
    later = NOW + timedelta(minutes=5)
    submit = Submitted()
    again = OneShots(history, FakeClock(later), submit)
    again.load()
    again.at_start(config.jobs, later)
    assert submit.calls == [("k", NOW, "catch_up")]
    assert not history.one_shots()["k", NOW].done
