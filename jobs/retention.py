"""Which backup archives to delete: ``keep_last`` and per-period rules, like restic's forget.

Archives are named ``<job>-<UTC time YYYYmmddTHHMMSSZ>.tar[.zst|.gz][.age]`` (``.age``:
encrypted; a job's encrypted and plain archives are ranked together). A policy keeps the
union of:

- ``keep_last``: the N newest archives;
- ``keep_daily`` / ``keep_weekly`` / ``keep_monthly``: for each of the N most
  recent days (ISO weeks, months) that have archives, the newest archive of
  that period, periods taken in the job's time zone.

Safety rules: only names of this job's exact pattern are ever considered; the
archive a run has just made and the newest good archive (complete, with its
checksum) are always kept; and when the policy would keep nothing, nothing is
deleted. A policy with no rule set keeps everything.

An archive whose time lies in the future (more than ``FUTURE_TOLERANCE`` ahead:
made while the clock was wrong) is neither ranked nor deleted: counted as the
newest, one such archive would make every new archive the one deleted. It is
reported (``future_archives``), so the operator can look at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

TIME_FORMAT = "%Y%m%dT%H%M%SZ"
FUTURE_TOLERANCE = timedelta(minutes=1)
"""An archive stamped later than now plus this is from a clock that was wrong."""
SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}
AGE_SUFFIX = ".age"
"""What an encrypted archive's name ends with, after the compression's suffix."""


def needs_key(archive: str) -> str:
    """The error of an encrypted archive to restore with nothing that decrypts it."""
    said = "is encrypted: give the age identity file that decrypts it with --identity FILE"
    return f"{archive} {said}"


_STAMP = re.compile(r"(\d{8}T\d{6}Z)(\.tar(?:\.zst|\.gz)?(?:\.age)?)")


def archive_name(job: str, when: datetime, compression: str, *, encrypted: bool = False) -> str:
    """``<job>-<UTC time>.tar[.zst|.gz][.age]``."""
    suffix = SUFFIXES[compression] + (AGE_SUFFIX if encrypted else "")
    return f"{job}-{when.astimezone(UTC).strftime(TIME_FORMAT)}{suffix}"


def archive_time(job: str, filename: str) -> datetime | None:
    """The time in an archive name of exactly this job's pattern, else None."""
    prefix = f"{job}-"
    if not filename.startswith(prefix):
        return None
    match = _STAMP.fullmatch(filename[len(prefix) :])
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Archive:
    """One archive of a job; ``good`` when it is complete and has its checksum."""

    name: str
    time: datetime
    good: bool = True


@dataclass(frozen=True, slots=True)
class Retention:
    """The keep rules of one job; None means the rule is not used."""

    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    timezone: str = "UTC"

    @property
    def is_set(self) -> bool:
        """False when no rule is given: then everything is kept."""
        return any(
            n is not None
            for n in (self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly)
        )


def _newest_per_period(
    archives: list[Archive], count: int, period: Callable[[datetime], tuple[int, ...]]
) -> set[str]:
    """The newest archive of each of the ``count`` most recent periods that have one."""
    kept: set[str] = set()
    seen: list[tuple[int, ...]] = []
    for archive in archives:  # newest first
        key = period(archive.time)
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.append(key)
        kept.add(archive.name)
    return kept


def future_archives(job: str, names: Iterable[str], now: datetime) -> list[str]:
    """The archives of ``job`` stamped in the future (a clock that was wrong), oldest first."""
    limit = now + FUTURE_TOLERANCE
    stamped = [(t, n) for n in names if (t := archive_time(job, n)) is not None and t > limit]
    return [n for _, n in sorted(stamped)]


def to_delete(
    job: str,
    names: Iterable[str],
    policy: Retention,
    good: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
    protect: Iterable[str] = (),
) -> list[str]:
    """The archive names of ``job`` that ``policy`` deletes, oldest first.

    ``good``: the names that are complete (have their checksum); default: all.
    ``protect``: names never deleted (the archive just made). ``now``: what "the future"
    is measured from (default: the clock's now).
    """
    names = list(names)
    good_names = set(names if good is None else good)
    future = set(future_archives(job, names, now or datetime.now(UTC)))
    archives = sorted(
        (
            Archive(n, t, n in good_names)
            for n in names
            if (t := archive_time(job, n)) is not None and n not in future
        ),
        key=lambda a: a.time,
        reverse=True,
    )
    if not policy.is_set or not archives:
        return []
    kept = _kept_by_rules(archives, policy)
    newest_good = next((a for a in archives if a.good), None)
    if newest_good is not None:
        kept.add(newest_good.name)
    kept.update(protect)
    if not kept:
        return []  # a policy that would delete everything deletes nothing
    return [a.name for a in reversed(archives) if a.name not in kept]


def _kept_by_rules(archives: list[Archive], policy: Retention) -> set[str]:
    """The names ``policy``'s rules keep of ``archives`` (newest first): the ``keep_last``
    newest, and the newest of each of the most recent days, weeks and months, in the
    policy's time zone."""
    zone = ZoneInfo(policy.timezone)

    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone)

    kept: set[str] = set()
    if policy.keep_last:
        kept.update(a.name for a in archives[: policy.keep_last])
    rules: list[tuple[int | None, Callable[[datetime], tuple[int, ...]]]] = [
        (policy.keep_daily, lambda t: (local(t).year, local(t).month, local(t).day)),
        (policy.keep_weekly, lambda t: tuple(local(t).isocalendar())[:2]),
        (policy.keep_monthly, lambda t: (local(t).year, local(t).month)),
    ]
    for count, period in rules:
        if count:
            kept |= _newest_per_period(archives, count, period)
    return kept
