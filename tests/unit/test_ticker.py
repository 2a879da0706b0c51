"""The timing loop: fires at scheduled times with the nominal time, never twice, jitter bounded,
disabled jobs never, and a stepped wall clock neither floods nor silences jobs."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from scheduler.settings import JobEntry, load_config
from scheduler.ticker import MAX_SLEEP_S, Ticker

from .fakes import FakeClock
from .helpers import wait_for

START = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


def entries(tmp_path: Path, jobs: str) -> dict[str, JobEntry]:
    path = tmp_path / "c.toml"
    path.write_text(jobs)
    return dict(load_config(path, {}).jobs)


def job(name: str, schedule: str, extra: str = "") -> str:
    return f'[jobs.{name}]\nkind = "run"\nimage = "i"\nschedule = "{schedule}"\n{extra}\n'


def minute(m: int, second: float = 0) -> datetime:
    return datetime(2026, 1, 5, 12, m, tzinfo=UTC) + timedelta(seconds=second)


class Recorder:
    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime]] = []

    def __call__(self, entry: JobEntry, at: datetime) -> None:
        self.fired.append((entry.name, at))


def test_fires_on_schedule_with_the_nominal_time(tmp_path: Path) -> None:
    """Each due job fires once with its scheduled time; tick says how long to sleep."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *") + job("b", "*/2 * * * *")))
    assert ticker.tick(clock.now()) == 30.0
    assert fired.fired == []
    assert ticker.tick(clock.pass_until(minute(1, 0.003))) == MAX_SLEEP_S
    assert fired.fired == [("a", minute(1))]
    ticker.tick(clock.pass_until(minute(1, 1)))
    assert fired.fired == [("a", minute(1))], "fired twice for one scheduled time"
    ticker.tick(clock.pass_until(minute(2)))
    assert sorted(fired.fired[1:]) == [("a", minute(2)), ("b", minute(2))]


def test_a_late_loop_fires_once_not_once_per_missed_time(tmp_path: Path) -> None:
    """Ten missed minutes give one run (for the first missed time), then the schedule resumes."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    ticker.tick(clock.pass_until(minute(10, 30)))
    assert fired.fired == [("a", minute(1))]
    assert ticker.next_runs() == {"a": minute(11)}


def test_planned_gives_each_scheduled_entry_with_its_next_time(tmp_path: Path) -> None:
    """The loop's own entries (the ones it fires) and their next times; a disabled job is not
    there."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    jobs = entries(tmp_path, job("a", "*/5 * * * *") + job("off", "* * * * *", "enabled = false"))
    ticker.set_jobs(jobs)
    planned = ticker.planned()
    assert list(planned) == ["a"]
    assert planned["a"][0] is jobs["a"]
    assert planned["a"][1] == minute(5)


def test_jitter_delays_within_bounds_and_keeps_the_nominal_time(tmp_path: Path) -> None:
    """A run with jitter starts between its time and time+jitter, recorded at its time."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired, rng=random.Random(7))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *", 'jitter = "20s"')))
    delay = ticker.tick(clock.pass_until(minute(1)))
    assert fired.fired == []
    assert 0 < delay <= 20
    ticker.tick(clock.pass_until(minute(1, delay)))
    assert fired.fired == [("a", minute(1))]


def test_set_jobs_replaces_the_job_set(tmp_path: Path) -> None:
    """Jobs no longer configured stop firing."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    ticker.set_jobs(entries(tmp_path, job("b", "* * * * *")))
    ticker.tick(clock.pass_until(minute(1)))
    assert fired.fired == [("b", minute(1))]


def test_a_disabled_job_never_fires(tmp_path: Path) -> None:
    """enabled = false keeps the job in the config but out of the schedule."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(
        entries(tmp_path, job("off", "* * * * *", "enabled = false") + job("on", "* * * * *"))
    )
    for m in range(1, 4):
        ticker.tick(clock.pass_until(minute(m)))
    assert [name for name, _ in fired.fired] == ["on", "on", "on"]
    assert "off" not in ticker.next_runs()


class NeverSchedule:
    """A schedule with no next time (a cron form has one until the year 9999: a day that
    never comes is refused when it is read)."""

    expression = "0 0 * * *"

    def next_after(self, after: datetime) -> datetime | None:
        return None


def never(tmp_path: Path, name: str, jobs: str = "") -> dict[str, JobEntry]:
    """The entries of ``jobs`` and a job ``name`` whose schedule never fires."""
    found = entries(tmp_path, jobs + job(name, "0 0 * * *"))
    found[name] = JobEntry(name, found[name].job, NeverSchedule())  # type: ignore[arg-type]
    return found


def test_a_schedule_that_never_fires_sleeps_the_maximum(tmp_path: Path) -> None:
    """A schedule without a next time; the loop still wakes regularly."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    with structlog.testing.capture_logs() as logs:
        ticker.set_jobs(never(tmp_path, "a"))
    assert ticker.next_runs() == {"a": None}
    assert "job.schedule_failed" not in [e["event"] for e in logs]  # no time is no failure
    assert ticker.tick(clock.now()) == MAX_SLEEP_S


def test_clock_stepped_back_does_not_silence_jobs(tmp_path: Path) -> None:
    """Wall clock steps back 2 h: the job re-plans from the new time and fires next minute."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    ticker.tick(clock.pass_until(minute(1)))
    clock.jump(-2 * 3600)
    ticker.tick(clock.now())
    earlier = clock.now()
    assert ticker.next_runs()["a"] == (
        earlier.replace(second=0, microsecond=0) + timedelta(minutes=1)
    )
    clock.pass_until(ticker.next_runs()["a"] or earlier)
    ticker.tick(clock.now())
    assert len(fired.fired) == 2
    assert fired.fired[1][1] < fired.fired[0][1]  # fired at the (earlier) new wall time


def test_clock_stepped_forward_fires_once_not_per_skipped_time(tmp_path: Path) -> None:
    """Wall clock steps forward a day: one run per job, then the schedule goes on."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *") + job("b", "@every 10s")))
    clock.jump(86400)
    ticker.tick(clock.now())
    assert sorted(name for name, _ in fired.fired) == ["a", "b"]
    ticker.tick(clock.now())
    assert len(fired.fired) == 2


def test_a_job_that_fails_to_fire_does_not_stop_the_others(tmp_path: Path) -> None:
    """An exception from firing one job is logged; the loop and the other jobs go on."""
    clock, fired = FakeClock(START), Recorder()

    def fire(entry: JobEntry, at: datetime) -> None:
        if entry.name == "bad":
            raise RuntimeError("boom")
        fired(entry, at)

    ticker = Ticker(clock, fire)
    ticker.set_jobs(entries(tmp_path, job("bad", "* * * * *") + job("good", "* * * * *")))
    ticker.tick(clock.pass_until(minute(1)))
    ticker.tick(clock.pass_until(minute(2)))
    assert [name for name, _ in fired.fired] == ["good", "good"]


def test_set_jobs_keeps_unchanged_jobs_times_and_replans_changed_ones(tmp_path: Path) -> None:
    """A reload does not reset the next time (or jitter) of a job that did not change."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder(), rng=random.Random(1))
    ticker.set_jobs(
        entries(tmp_path, job("same", "*/5 * * * *", 'jitter = "30s"') + job("edit", "*/5 * * * *"))
    )
    before = ticker.next_runs()
    due_before = ticker._slots["same"].due
    clock.pass_until(minute(3))
    ticker.set_jobs(
        entries(tmp_path, job("same", "*/5 * * * *", 'jitter = "30s"') + job("edit", "*/2 * * * *"))
    )
    assert ticker.next_runs()["same"] == before["same"]
    assert ticker._slots["same"].due == due_before
    assert ticker.next_runs()["edit"] == minute(4)


# --- exact outcomes: jitter, sleeps, events, the loop ----------------------------------


def test_jitter_is_the_generators_draw_from_zero_to_the_jitter(tmp_path: Path) -> None:
    """The delay after the nominal time is exactly rng.uniform(0, jitter), drawn from the
    generator given; after firing, the next time draws again from the same generator."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired, rng=random.Random(7))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *", 'jitter = "20s"')))
    draws = random.Random(7)
    first = draws.uniform(0, 20)
    assert ticker.tick(clock.pass_until(minute(1))) == pytest.approx(first)
    ticker.tick(clock.pass_until(minute(1, first)))
    assert fired.fired == [("a", minute(1))]
    second = draws.uniform(0, 20)
    assert ticker.tick(clock.pass_until(minute(2))) == pytest.approx(second)
    ticker.tick(clock.pass_until(minute(2, second)))
    assert fired.fired == [("a", minute(1)), ("a", minute(2))]


@pytest.mark.parametrize(("at", "sleep"), [(minute(0, 59.7), 0.3), (minute(0, 59), 1.0)])
def test_tick_sleeps_exactly_until_the_next_due_time(
    tmp_path: Path, at: datetime, sleep: float
) -> None:
    """Under a second before the next run the loop sleeps just that (no minimum)."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    assert ticker.tick(clock.pass_until(at)) == pytest.approx(sleep)


def test_set_jobs_tells_what_it_scheduled_and_what_is_disabled(tmp_path: Path) -> None:
    """job.scheduled (job, kind, schedule, timezone, next_run) for each new or changed job
    only, job.disabled for each disabled one; a job that never fires has next_run None."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    first = job("a", "*/5 * * * *", 'timezone = "Europe/Paris"') + job(
        "off", "@daily", "enabled = false"
    )
    with structlog.testing.capture_logs() as logs:
        ticker.set_jobs(never(tmp_path, "never", first))
    assert [(e["event"], e["job"]) for e in logs if e["event"] == "job.disabled"] == [
        ("job.disabled", "off")
    ]
    scheduled = {e["job"]: e for e in logs if e["event"] == "job.scheduled"}
    assert {k: scheduled["a"][k] for k in ("kind", "schedule", "timezone", "next_run")} == {
        "kind": "run",
        "schedule": "*/5 * * * *",
        "timezone": "Europe/Paris",
        "next_run": "2026-01-05T13:05:00+01:00",
    }
    assert scheduled["never"]["next_run"] is None
    assert sorted(scheduled) == ["a", "never"]
    with structlog.testing.capture_logs() as again:
        ticker.set_jobs(entries(tmp_path, first + job("b", "@daily")))
    assert [e["job"] for e in again if e["event"] == "job.scheduled"] == ["b"]


def test_a_kept_job_still_fires_after_a_reload(tmp_path: Path) -> None:
    """A job unchanged by a reload keeps its time and fires at it, as itself."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *") + job("b", "@daily")))
    ticker.tick(clock.pass_until(minute(1)))
    assert fired.fired == [("a", minute(1))]


class BrokenSchedule:
    expression = "* * * * *"

    def next_after(self, after: datetime) -> datetime | None:
        raise ValueError("cannot say")


def test_a_schedule_that_raises_leaves_only_its_job_unscheduled(tmp_path: Path) -> None:
    """job.schedule_failed names the job; it has no next time and never fires; the other
    jobs are scheduled and fire."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired)
    jobs = entries(tmp_path, job("bad", "* * * * *") + job("good", "* * * * *"))
    jobs["bad"] = JobEntry("bad", jobs["bad"].job, BrokenSchedule())  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        ticker.set_jobs(jobs)
        ticker.tick(clock.pass_until(minute(1)))
    assert [(e["event"], e["job"]) for e in logs if e["event"] == "job.schedule_failed"] == [
        ("job.schedule_failed", "bad")
    ]
    assert ticker.next_runs() == {"bad": None, "good": minute(2)}
    assert fired.fired == [("good", minute(1))]


def test_a_failure_to_fire_is_logged_with_the_job_and_its_time(tmp_path: Path) -> None:
    """job.fire_failed (an error) names the job and the scheduled time it failed for."""
    clock = FakeClock(START)

    def fire(entry: JobEntry, at: datetime) -> None:
        raise RuntimeError("boom")

    ticker = Ticker(clock, fire)
    ticker.set_jobs(entries(tmp_path, job("bad", "* * * * *")))
    with structlog.testing.capture_logs() as logs:
        ticker.tick(clock.pass_until(minute(1)))
    failed = [e for e in logs if e["event"] == "job.fire_failed"]
    assert [(e["job"], e["scheduled_at"], e["log_level"]) for e in failed] == [
        ("bad", minute(1).isoformat(), "error")
    ]


@pytest.mark.parametrize(
    ("step", "jumped"),
    [(4.999, None), (5.0, 5.0), (-5.0, -5.0), (-4.999, None), (-7200.12345, -7200.123)],
)
def test_a_wall_clock_step_of_five_seconds_or_more_is_a_jump(
    tmp_path: Path, step: float, jumped: float | None
) -> None:
    """clock.jumped when the wall clock moved at least 5 s more or less than real time, with
    the difference to the millisecond; time that passes normally is no jump."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    ticker.set_jobs(entries(tmp_path, job("a", "@daily")))
    with structlog.testing.capture_logs() as logs:
        ticker.tick(clock.now())
        clock.advance(20)  # both clocks: no jump
        ticker.tick(clock.now())
        clock.jump(step)
        ticker.tick(clock.now())
    seconds = [e["seconds"] for e in logs if e["event"] == "clock.jumped"]
    assert seconds == ([] if jumped is None else [jumped])


def test_a_step_back_replans_with_jitter_and_a_step_forward_keeps_the_plan(
    tmp_path: Path,
) -> None:
    """After a backward step a jittered job is planned again (from the new time, with its
    jitter); after a forward step that left it not yet due, its time is kept."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired, rng=random.Random(3))
    ticker.set_jobs(entries(tmp_path, job("a", "@hourly", 'jitter = "10s"')))
    ticker.tick(clock.now())
    clock.jump(-3 * 3600)
    ticker.tick(clock.now())
    assert ticker.next_runs() == {"a": datetime(2026, 1, 5, 10, 0, tzinfo=UTC)}
    clock.jump(600)
    ticker.tick(clock.now())
    assert ticker.next_runs() == {"a": datetime(2026, 1, 5, 10, 0, tzinfo=UTC)}
    assert fired.fired == []


class CountingClock(FakeClock):
    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.monotonic_calls = 0

    def monotonic(self) -> float:
        self.monotonic_calls += 1
        return super().monotonic()


def test_the_loop_wakes_by_itself_when_a_job_is_due_and_ends_at_stop(tmp_path: Path) -> None:
    """run() ticks, sleeps until the next due time, wakes without a nudge and fires; stop()
    ends it."""
    clock, fired = CountingClock(minute(0, 59.95)), Recorder()
    ticker = Ticker(clock, fired)
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    loop = threading.Thread(target=ticker.run, daemon=True)
    loop.start()
    wait_for(lambda: clock.monotonic_calls >= 1)  # the first tick has read the time
    clock.advance(0.05)  # now due; only a wake after the computed sleep can see it
    wait_for(lambda: fired.fired == [("a", minute(1))])
    ticker.stop()
    loop.join(10)
    assert not loop.is_alive()


class Waits(threading.Event):
    """The loop's wake event: records each sleep asked for and returns at once; the
    ``stop``-th sleep stops the ticker."""

    def __init__(self, ticker: Ticker, stop: int) -> None:
        super().__init__()
        self.ticker, self.stop, self.asked = ticker, stop, list[float | None]()

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout)
        if len(self.asked) >= self.stop:
            self.ticker.stop()
        return super().wait(0)


def test_the_time_spent_firing_is_taken_off_the_sleep_after_it(tmp_path: Path) -> None:
    """Firing (here 0.3 s of it) is part of the wait until the next due time: the loop
    sleeps what is left, so the next job is not late by the time the last one took to fire."""
    clock, fired = FakeClock(minute(0, 59.5)), Recorder()

    def slow(entry: JobEntry, at: datetime) -> None:
        fired(entry, at)
        clock.advance(0.3)

    ticker = Ticker(clock, slow)
    ticker.set_jobs(entries(tmp_path, job("a", "@every 1s") + job("b", "* * * * *")))
    clock.pass_until(minute(1))
    waits = Waits(ticker, stop=1)
    ticker._wake = waits
    ticker.run()
    assert fired.fired == [("a", minute(1)), ("b", minute(1))]
    assert waits.asked == [pytest.approx(0.4)]  # a is due again at 12:01:01; 0.6 s went firing


class CountingSchedule:
    """A schedule that says every minute and counts how often it is asked."""

    expression = "* * * * *"

    def __init__(self) -> None:
        self.asked = 0

    def next_after(self, after: datetime) -> datetime | None:
        self.asked += 1
        return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def test_jobs_sharing_a_schedule_are_planned_with_one_next_time_each_set(tmp_path: Path) -> None:
    """Planning a job set asks each shared schedule once, not once per job; every job gets
    that time, and a later set (a reload changing the jobs) asks again."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    shared, other = CountingSchedule(), CountingSchedule()
    found = entries(tmp_path, job("a", "@daily") + job("b", "@daily") + job("c", "@daily"))
    jobs = {
        "a": JobEntry("a", found["a"].job, shared),  # type: ignore[arg-type]
        "b": JobEntry("b", found["b"].job, shared),  # type: ignore[arg-type]
        "c": JobEntry("c", found["c"].job, other),  # type: ignore[arg-type]
    }
    ticker.set_jobs(jobs)
    assert (shared.asked, other.asked) == (1, 1)
    assert ticker.next_runs() == {"a": minute(1), "b": minute(1), "c": minute(1)}
    changed = entries(tmp_path, job("a", "@daily", "retries = 1") + job("b", "@daily"))
    ticker.set_jobs(
        {
            "a": JobEntry("a", changed["a"].job, shared),  # type: ignore[arg-type]
            "b": JobEntry("b", changed["b"].job, shared),  # type: ignore[arg-type]
        }
    )
    assert shared.asked == 2  # a changed: planned again; b kept its time
    assert ticker.next_runs() == {"a": minute(1), "b": minute(1)}


def test_jobs_due_together_ask_their_shared_schedule_once(tmp_path: Path) -> None:
    """When jobs sharing a schedule fire at one tick, their next time is asked once for all
    of them (not once per job), and each job fires and gets that time."""
    clock = FakeClock(START)
    fired = Recorder()
    ticker = Ticker(clock, fired)
    shared = CountingSchedule()
    found = entries(tmp_path, "".join(job(name, "@daily") for name in "abc"))
    ticker.set_jobs(
        {name: JobEntry(name, entry.job, shared) for name, entry in found.items()}  # type: ignore[arg-type]
    )
    assert shared.asked == 1
    ticker.tick(clock.pass_until(minute(1)))
    assert sorted(name for name, _ in fired.fired) == ["a", "b", "c"]
    assert shared.asked == 2  # the set, then the tick
    assert ticker.next_runs() == {"a": minute(2), "b": minute(2), "c": minute(2)}


def test_jobs_planned_together_share_their_due_instants(tmp_path: Path) -> None:
    """Jobs of one schedule planned by one set_jobs hold one due time object between them
    (not one each: 48 bytes a job at 10,000 jobs), and a job with jitter its own; each
    still fires at its own time."""
    clock, fired = FakeClock(START), Recorder()
    ticker = Ticker(clock, fired, rng=random.Random(1))
    ticker.set_jobs(
        entries(
            tmp_path,
            job("a", "*/5 * * * *")
            + job("b", "*/5 * * * *")
            + job("c", "*/5 * * * *", 'timezone = "Europe/Berlin"')
            + job("d", "*/5 * * * *", 'jitter = "30s"'),
        )
    )
    slots = ticker._slots
    assert slots["a"].due is slots["b"].due
    assert slots["c"].due is slots["a"].due  # the same instant from another zone's schedule
    assert slots["d"].due != slots["a"].due
    ticker.tick(clock.pass_until(minute(5)))
    assert sorted(fired.fired) == [("a", minute(5)), ("b", minute(5)), ("c", minute(5))]
