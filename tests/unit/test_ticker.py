"""The timing loop: fires at scheduled times with the nominal time, never twice, jitter bounded,
disabled jobs never, and a stepped wall clock neither floods nor silences jobs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.settings import JobEntry, load_config
from scheduler.ticker import MAX_SLEEP_S, Ticker

from .fakes import FakeClock

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


def test_a_schedule_that_never_fires_sleeps_the_maximum(tmp_path: Path) -> None:
    """February 30th never comes; the loop still wakes regularly."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    ticker.set_jobs(entries(tmp_path, job("a", "0 0 30 2 *")))
    assert ticker.next_runs() == {"a": None}
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
