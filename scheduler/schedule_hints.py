"""What to write instead, for a schedule in a form this daemon does not read: English
(``"every day at 3"``, ``"daily"``) and Quartz's cron (seconds first, ``?``, a year last, as
Spring and Java schedulers write it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

FIELDS = "minute hour day-of-month month day-of-week"
_WORDS = frozenset(
    {
        "every",
        "each",
        "daily",
        "hourly",
        "weekly",
        "monthly",
        "yearly",
        "annually",
        "midnight",
        "noon",
        "at",
        "once",
        "day",
        "days",
        "hour",
        "hours",
        "minute",
        "minutes",
        "min",
        "mins",
        "second",
        "seconds",
        "sec",
        "secs",
        "week",
        "weeks",
        "month",
        "months",
        "am",
        "pm",
        "morning",
        "evening",
        "night",
        "manual",
        "manually",
        "never",
        "none",
        "demand",
        "on-demand",
        "triggered",
        "chained",
    }
)
"""Words of a schedule written in English (none is a cron name of a month or a day)."""
_MACRO_WORDS = {
    "hourly": "@hourly",
    "daily": "@daily",
    "midnight": "@daily",
    "weekly": "@weekly",
    "monthly": "@monthly",
    "yearly": "@yearly",
    "annually": "@yearly",
}
_MANUAL_WORDS = frozenset(
    {"manual", "manually", "never", "none", "on demand", "on-demand", "triggered", "chained"}
)
"""What people write for a job with no schedule of its own."""
_UNITS = {"s": "s", "sec": "s", "second": "s", "m": "m", "min": "m", "minute": "m"}
_UNITS |= {"h": "h", "hour": "h", "d": "d", "day": "d", "w": "w", "week": "w"}
_EVERY = re.compile(r"every\s+(\d+)?\s*([a-z]+?)s?")
_AT = re.compile(r"(?:(?:every|each)\s+day\s+|daily\s+)?at\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?")
EXAMPLES = (
    "'@daily' (every day at 00:00), '0 3 * * *' (every day at 03:00), '*/15 * * * *' "
    "(every 15 minutes), '@every 1h'"
)


def english(text: str, readable: Callable[[str], bool]) -> str | None:
    """A hint for a schedule written in English, else None (not English); it suggests only
    schedules that ``readable`` says are ones."""
    words = text.lower().split()
    if not _WORDS.intersection(words):
        return None
    said = " ".join(words)
    suggested = [(s, note) for s, note in _suggestions(said) if readable(s)]
    if suggested:
        instead = " or ".join(f"{s!r}{note}" for s, note in suggested)
        return f"{text!r} is not a schedule here: write {instead}"
    return f"{text!r} is not a schedule here: write cron fields or a macro, e.g. {EXAMPLES}"


def _suggestions(said: str) -> list[tuple[str, str]]:
    """Schedules that mean the English ``said`` (lower case, single spaces), the plainest
    first, each with a note on what it means; none when no pattern fits."""
    if said in _MACRO_WORDS:
        return [(_MACRO_WORDS[said], "")]
    if said in _MANUAL_WORDS:
        return [("@manual", " (runs only when chained or triggered)")]
    every = _EVERY.fullmatch(said)
    unit = _UNITS.get(every.group(2)) if every else None
    if every and unit:
        count = int(every.group(1) or 1)
        return [(f"@every {count}{unit}", ""), *((step, "") for step in _cron_step(count, unit))]
    at = _AT.fullmatch(said)
    if at:
        hour, minute = int(at.group(1)), int(at.group(2) or 0)
        hour += 12 if at.group(3) == "pm" and hour < 12 else 0  # noqa: PLR2004 - noon
        hour -= 12 if at.group(3) == "am" and hour == 12 else 0  # noqa: PLR2004 - midnight
        return [
            (
                f"{minute} {hour} * * *",
                f" (every day at {hour:02}:{minute:02} in the job's timezone)",
            )
        ]
    return []


def _cron_step(count: int, unit: str) -> list[str]:
    """The cron step form of "every ``count`` minutes or hours", only where it is the same
    interval all along: a step restarts at each hour (day), so it is exact only for a count
    that divides 60 (24); '*/7' runs at :56 and then :00 again."""
    per = {"m": 60, "h": 24}.get(unit)
    if per is None or not 1 < count < per or per % count:
        return []
    return [f"*/{count} * * * *" if unit == "m" else f"0 */{count} * * *"]


_QUARTZ_DAYS = {
    str(n): name for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)
}


def _quartz_weekdays(field: str) -> str:
    """Quartz's day-of-week field (1-7 from Sunday) with day names, which cron reads the
    same (cron numbers from 0 = Sunday, so 1 is Monday there)."""
    parts = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        base = re.sub(r"\d+", lambda m: _QUARTZ_DAYS.get(m.group(), m.group()), base)
        parts.append(base + slash + step)
    return ",".join(parts)


def quartz(fields: list[str], readable: Callable[[str], bool]) -> str | None:
    """A hint for a Quartz expression (6 or 7 fields with ``?``, or 7 fields), else None;
    the expression to write instead only when ``readable`` says it is one."""
    if not ("?" in fields or len(fields) == 7) or len(fields) not in (5, 6, 7):  # noqa: PLR2004
        return None
    if len(fields) == 5:  # noqa: PLR2004 - a '?' in a 5-field expression
        return "'?' is Quartz's 'no specific value': here write '*' instead"
    second, minute, hour, dom, month, dow, *year = fields
    dom = "*" if dom == "?" else dom
    days = "*" if dow == "?" else _quartz_weekdays(dow)
    five = f"{minute} {hour} {dom} {month} {days}"
    instead = five if second == "0" else f"@with-seconds {second} {five}"
    notes = [f"here write {instead!r}"] if readable(instead) else []
    if year and year[0] not in ("*", "?"):
        notes.append(f"there is no year field: it fires every year ({year[0]!r} is left out)")
    if dow not in (days, "?"):
        notes.append("Quartz numbers the days of the week 1-7 from Sunday, cron 1 = Monday")
    if "?" in (second, minute, hour, month):
        notes.append("'?' stands only for a day of the month or of the week, in Quartz too")
    if re.search(r"[LW#]", re.sub(r"[A-Z]{3}", "", " ".join(fields).upper())):  # not names
        notes.append("'L', 'W' and '#' are Quartz's own: cron has no such field values")
    if not notes or not notes[0].startswith("here"):
        notes.append(f"write 5 cron fields ({FIELDS}) or '@with-seconds' and 6")
    said = "seconds first, '?' for no value" + (", a year last" if year else "")
    return f"a Quartz expression ({said}); " + "; ".join(notes)
