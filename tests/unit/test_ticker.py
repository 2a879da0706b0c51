"""The timing loop: fires at scheduled times with the nominal time, never twice, jitter bounded."""

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


def test_fires_on_schedule_with_the_nominal_time(tmp_path: Path) -> None:
    """Each due job fires once with its scheduled time; tick says how long to sleep."""
    fired: list[tuple[str, datetime]] = []
    ticker = Ticker(FakeClock(START), lambda e, at: fired.append((e.name, at)))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *") + job("b", "*/2 * * * *")))
    minute = datetime(2026, 1, 5, 12, 1, tzinfo=UTC)
    assert ticker.tick(START) == 30.0
    assert fired == []
    assert ticker.tick(minute + timedelta(milliseconds=3)) == MAX_SLEEP_S
    assert fired == [("a", minute)]
    ticker.tick(minute + timedelta(seconds=1))
    assert fired == [("a", minute)], "fired twice for one scheduled time"
    two = datetime(2026, 1, 5, 12, 2, tzinfo=UTC)
    ticker.tick(two)
    assert sorted(fired[1:]) == [("a", two), ("b", two)]


def test_a_late_loop_fires_once_not_once_per_missed_time(tmp_path: Path) -> None:
    """Ten missed minutes give one run (for the first missed time), then the schedule resumes."""
    fired: list[datetime] = []
    ticker = Ticker(FakeClock(START), lambda e, at: fired.append(at))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    late = datetime(2026, 1, 5, 12, 10, 30, tzinfo=UTC)
    ticker.tick(late)
    assert fired == [datetime(2026, 1, 5, 12, 1, tzinfo=UTC)]
    assert ticker.next_runs() == {"a": datetime(2026, 1, 5, 12, 11, tzinfo=UTC)}


def test_jitter_delays_within_bounds_and_keeps_the_nominal_time(tmp_path: Path) -> None:
    """A run with jitter starts between its time and time+jitter, recorded at its time."""
    fired: list[datetime] = []
    ticker = Ticker(FakeClock(START), lambda e, at: fired.append(at), rng=random.Random(7))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *", 'jitter = "20s"')))
    minute = datetime(2026, 1, 5, 12, 1, tzinfo=UTC)
    delay = ticker.tick(minute)
    assert fired == []
    assert 0 < delay <= 20
    ticker.tick(minute + timedelta(seconds=delay))
    assert fired == [minute]


def test_set_jobs_replaces_the_job_set(tmp_path: Path) -> None:
    """Jobs no longer configured stop firing."""
    fired: list[str] = []
    clock = FakeClock(START)
    ticker = Ticker(clock, lambda e, at: fired.append(e.name))
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    ticker.set_jobs(entries(tmp_path, job("b", "* * * * *")))
    ticker.tick(datetime(2026, 1, 5, 12, 1, tzinfo=UTC))
    assert fired == ["b"]


def test_a_schedule_that_never_fires_sleeps_the_maximum(tmp_path: Path) -> None:
    """February 30th never comes; the loop still wakes regularly."""
    ticker = Ticker(FakeClock(START), lambda e, at: None)
    ticker.set_jobs(entries(tmp_path, job("a", "0 0 30 2 *")))
    assert ticker.next_runs() == {"a": None}
    assert ticker.tick(START) == MAX_SLEEP_S
