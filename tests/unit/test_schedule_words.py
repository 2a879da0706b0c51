"""Schedules in words (the status page's "schedule in words"): every form the config
accepts, said from the values the scheduler reads."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from scheduler.schedule import parse_schedule
from scheduler.schedule_words import duration_words, schedule_words

WORDS = [
    # 5-field cron: steps, ranges, lists, names
    ("* * * * *", "every minute"),
    ("*/5 * * * *", "every 5 minutes"),
    ("0-59/5 * * * *", "every 5 minutes"),
    ("5/15 * * * *", "every 15 minutes from minute 5"),
    ("10-40/5 * * * *", "every 5 minutes from minute 10 through minute 40"),
    ("10-20 * * * *", "every minute from minute 10 through minute 20"),
    ("0,30 * * * *", "at minutes 0 and 30 of every hour"),
    ("0,20,45 * * * *", "at minutes 0, 20 and 45 of every hour"),
    ("0 3 * * *", "at 03:00 every day"),
    ("30 2 * * mon-fri", "at 02:30, on Monday through Friday"),
    ("0 1,13 * * *", "at 01:00 and 13:00 every day"),
    ("0 2,5,9,14,20 * * *", "at 02:00, 05:00, 09:00, 14:00 and 20:00 every day"),
    ("0 */2 * * *", "at minute 0, every 2 hours"),
    ("0 9-17/2 * * *", "at minute 0, every 2 hours from 09:00 through 17:00"),
    ("*/5 9-17 * * mon-fri", "every 5 minutes, between 09:00 and 17:59, on Monday through Friday"),
    ("15 * * * 1,3,5", "at minute 15 of every hour, on Monday, Wednesday and Friday"),
    ("0 0 * * 7", "at 00:00, on Sunday"),
    ("0 0 * * 0", "at 00:00, on Sunday"),
    ("0 0 * * 5-7", "at 00:00, on Friday through Sunday"),
    ("0 0 1,15 * *", "at 00:00, on days 1 and 15 of the month"),
    ("0 0 1-31/10 * *", "at 00:00, every 10 days of the month"),
    ("0 12 * JAN-MAR,dec *", "at 12:00 every day, in January through March and December"),
    ("0 0 1 * mon", "at 00:00, on day 1 of the month or on Monday"),  # Vixie: either day
    ("0 0 */2 * mon", "at 00:00, every 2 days of the month, if also on Monday"),  # both
    # seconds
    ("@with-seconds */10 * * * * *", "every 10 seconds"),
    ("@with-seconds 30 * * * * *", "at second 30 of every minute"),
    ("@with-seconds 15 0 12 * * *", "at 12:00:15 every day"),
    # macros
    ("@hourly", "at minute 0 of every hour"),
    ("@daily", "at 00:00 every day"),
    ("@midnight", "at 00:00 every day"),
    ("@weekly", "at 00:00, on Sunday"),
    ("@monthly", "at 00:00, on day 1 of the month"),
    ("@yearly", "at 00:00, on day 1 of the month, in January"),
    ("@annually", "at 00:00, on day 1 of the month, in January"),
    # the daemon's own forms
    ("@every 1s", "every second"),
    ("@every 10m", "every 10 minutes"),
    ("@every 1h30m", "every 1 hour 30 minutes"),
    ("@every 2d", "every 2 days"),
    ("@manual", "never on its own: only when chained or triggered"),
    ("@at 2027-01-01T03:00:00+01:00", "once, at 2027-01-01 02:00:00 UTC"),
    ("  @EVERY   5m ", "every 5 minutes"),
]


@pytest.mark.parametrize(("expression", "words"), WORDS)
def test_schedule_in_words(expression: str, words: str) -> None:
    """Each accepted form reads as the times it fires at (the table is also checked to be
    made of schedules the config accepts)."""
    parse_schedule(expression)
    assert schedule_words(expression) == words


def test_at_is_said_in_the_jobs_zone() -> None:
    """An @at instant is said in the job's time zone, with the zone's name."""
    zone = ZoneInfo("Europe/Berlin")
    words = schedule_words("@at 2027-07-01T03:00:00Z", zone)
    assert words == "once, at 2027-07-01 05:00:00 CEST"


def test_a_wall_clock_is_named_unless_utc() -> None:
    """Cron forms fire on the zone's wall clock: the zone is said (not for UTC, nor for
    @every, which counts real time)."""
    berlin = ZoneInfo("Europe/Berlin")
    assert schedule_words("0 3 * * *", berlin) == "at 03:00 every day, Europe/Berlin time"
    assert schedule_words("@daily", ZoneInfo("UTC")) == "at 00:00 every day"
    assert schedule_words("@every 5m", berlin) == "every 5 minutes"


def test_durations_in_words() -> None:
    """Whole units, the largest first; a single one without "1"."""
    assert duration_words(90) == "1 minute 30 seconds"
    assert duration_words(3600) == "hour"
    assert duration_words(7200) == "2 hours"
    assert duration_words(0.5) == "0.5 seconds"
