"""Backup retention: exactly the specified set is kept; nothing else is ever touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from jobs.retention import Retention, archive_name, archive_time, future_archives, to_delete

from .helpers import local_zone

START = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)  # a Thursday


def series(days: int, per_day: int = 1, job: str = "db") -> list[str]:
    """One archive at 03:00 UTC (plus more in the same day) for each of ``days`` days."""
    return [
        archive_name(job, START + timedelta(days=d, hours=h), "zstd")
        for d in range(days)
        for h in range(per_day)
    ]


def kept(names: list[str], policy: Retention, good: list[str] | None = None) -> list[str]:
    gone = set(to_delete("db", names, policy, good))
    return sorted(n for n in names if n not in gone)


def test_names_round_trip_and_other_jobs_never_match() -> None:
    """Only this job's exact pattern: 'db' never matches 'db-x' or stray files."""
    name = archive_name("db", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "gzip")
    assert name == "db-20260304T050607Z.tar.gz"
    assert archive_time("db", name) == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    for stray in (
        "db-x-20260304T050607Z.tar.gz",
        "db-20260304T050607Z.tar.gz.sha256",
        "db-20260304T050607Z.tar.zst.partial",
        "notes.txt",
        "db-20261399T000000Z.tar",
        "dbb-20260304T050607Z.tar",
    ):
        assert archive_time("db", stray) is None


def test_keep_last() -> None:
    """keep_last = 3: the three newest."""
    names = series(10)
    assert kept(names, Retention(keep_last=3)) == names[-3:]


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    """Four archives a day for five days, keep_daily = 3: the last archive of the last 3 days."""
    names = series(5, per_day=4)
    assert kept(names, Retention(keep_daily=3)) == [names[11], names[15], names[19]]


def test_days_are_taken_in_the_jobs_time_zone() -> None:
    """Days are local: 23:30 UTC on Jan 1 and 03:00 UTC on Jan 2 are two days in UTC, one day
    (Jan 1, 18:30 and 22:00) in New York, where keep_daily keeps only that day's newest."""
    late = archive_name("db", datetime(2026, 1, 1, 23, 30, tzinfo=UTC), "zstd")
    early = archive_name("db", datetime(2026, 1, 2, 3, 0, tzinfo=UTC), "zstd")
    names = [late, early]
    assert kept(names, Retention(keep_daily=1)) == [early]
    # New York: both are on 2026-01-01 (18:30 and 22:00 local): one day, newest kept
    assert kept(names, Retention(keep_daily=2, timezone="America/New_York")) == [early]
    # UTC: two days
    assert kept(names, Retention(keep_daily=2)) == sorted(names)


def test_weekly_and_monthly_combine_with_last() -> None:
    """90 daily archives: last 2 + newest of the last 4 ISO weeks + newest of the last 3 months."""
    names = series(90)
    result = kept(names, Retention(keep_last=2, keep_weekly=4, keep_monthly=3))
    times = sorted(archive_time("db", n) for n in result)  # type: ignore[type-var]
    expected_last = [START + timedelta(days=88), START + timedelta(days=89)]
    # weeks: newest archive of each of the 4 most recent ISO weeks (Sundays, and the last day)
    last_day = START + timedelta(days=89)  # 2026-03-31, a Tuesday
    sundays = [
        datetime(2026, 3, 29, 3, tzinfo=UTC),
        datetime(2026, 3, 22, 3, tzinfo=UTC),
        datetime(2026, 3, 15, 3, tzinfo=UTC),
    ]
    months = [datetime(2026, 1, 31, 3, tzinfo=UTC), datetime(2026, 2, 28, 3, tzinfo=UTC), last_day]
    assert times == sorted({*expected_last, last_day, *sundays, *months})


def test_the_newest_good_archive_is_always_kept() -> None:
    """If the newest archives lack their checksum, the newest good one survives keep_last = 1."""
    names = series(5)
    good = names[:3]
    assert kept(names, Retention(keep_last=1), good) == [names[2], names[4]]


def test_a_policy_that_would_delete_everything_deletes_nothing() -> None:
    """No good archive and keep rules that select nothing: nothing is deleted."""
    names = series(3)
    assert to_delete("db", names, Retention(keep_last=0), good=[]) == []


def test_no_rule_keeps_everything_and_strays_are_untouched() -> None:
    """An unset policy deletes nothing; files of other jobs are never in the list."""
    names = [*series(5), "db-x-20260101T030000Z.tar.zst", "other-20260101T030000Z.tar"]
    assert to_delete("db", names, Retention()) == []
    gone = to_delete("db", names, Retention(keep_last=1))
    assert gone == series(5)[:4]


def test_names_may_be_any_iterable() -> None:
    """A generator of names (a directory listing) works like a list."""
    names = series(4)
    assert to_delete("db", (n for n in names), Retention(keep_last=1)) == names[:3]


def test_a_future_archive_is_neither_ranked_nor_deleted() -> None:
    """One archive stamped in 2099 (a clock that was once wrong): keep_last = 1 keeps the
    newest real archive, not the future one, and deletes every other real one — the future
    archive itself stays, and is reported."""
    names = series(5)
    future = archive_name("db", datetime(2099, 1, 1, tzinfo=UTC), "zstd")
    now = START + timedelta(days=5)
    gone = to_delete("db", [*names, future], Retention(keep_last=1), now=now)
    assert gone == names[:-1]
    assert future_archives("db", [*names, future], now) == [future]


def test_the_archive_just_made_is_never_deleted() -> None:
    """Even when the policy ranks it out (its clock is behind the others'), the archive a run
    has just made stays."""
    names = series(5)
    just_made = names[0]  # the oldest stamp: this run's clock is behind
    now = START + timedelta(days=5)
    gone = to_delete("db", names, Retention(keep_last=1), now=now, protect=[just_made])
    assert gone == names[1:-1]


def test_a_minute_ahead_is_not_the_future() -> None:
    """A clock a few seconds off does not make an archive 'future': up to and including one
    minute ahead (FUTURE_TOLERANCE) it is ranked as usual; one second more is the future."""
    at_tolerance = archive_name("db", START + timedelta(seconds=60), "zstd")
    beyond = archive_name("db", START + timedelta(seconds=61), "zstd")
    assert future_archives("db", [at_tolerance, beyond], START) == [beyond]


def test_names_are_in_utc_whatever_the_hosts_or_the_times_zone() -> None:
    """The time in a name is UTC even when the process's local zone and the given time's
    zone are not."""
    with local_zone("America/New_York"):
        berlin = datetime(2026, 7, 1, 5, 6, 7, tzinfo=ZoneInfo("Europe/Berlin"))
        assert archive_name("db", berlin, "none") == "db-20260701T030607Z.tar"
