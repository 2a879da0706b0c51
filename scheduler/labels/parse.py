"""A container's labels as job tables.

``crontainer.jobs.<job>.<key> = <value>``: ``<key>`` is a TOML key of the job (dots go
into tables: ``crontainer.jobs.x.notify.on``); ``<value>`` is read as a TOML value when it
is one (``true``, ``3``, ``["sh", "-c", "…"]``, ``{ on = ["failure"] }``) and taken as
text otherwise (``*/10 * * * *``, ``backup``). Text that reads as a TOML value (``true``)
is written quoted to stay text (``"true"``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "crontainer.jobs."
"""The labels that declare jobs."""
JOB_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}")
"""A label job's own name (the part after the container's): no dots, which separate keys."""
_KEY = re.compile(r"[a-zA-Z0-9_-]+")
MAX_LABEL_VALUE = 64 * 1024
"""A longer value is refused (a label is not a place for a script)."""


@dataclass(slots=True)
class LabelTables:
    """One container's label jobs: each job's table, and what is wrong with the labels of
    a job (by job: (key, reason)) — a job with a problem is left out of ``tables``."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def label_value(text: str) -> object:
    """``text`` as the TOML value it spells, else ``text`` itself."""
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return text
    return parsed["v"] if len(parsed) == 1 and "v" in parsed else text


def job_tables(labels: Mapping[str, str]) -> LabelTables:
    """The job tables ``labels`` declare (labels outside ``crontainer.jobs.`` ignored)."""
    found = LabelTables()
    made: set[int] = set()  # the tables dotted keys made (an inline table is a value)
    for label in sorted(labels):
        if not label.startswith(PREFIX):
            continue
        job, _, key = label.removeprefix(PREFIX).partition(".")
        problem = _problem(job, key, labels[label])
        if problem is not None:
            found.problems.setdefault(job, []).append((key or label, problem))
            continue
        table = found.tables.setdefault(job, {})
        value = label_value(labels[label])
        if (clash := _put(table, key.split("."), value, made)) is not None:
            found.problems.setdefault(job, []).append((key, clash))
    for job in found.problems:
        found.tables.pop(job, None)
    return found


def _problem(job: str, key: str, value: str) -> str | None:
    if not JOB_NAME.fullmatch(job):
        return (
            f"{job!r} is not a job name (a letter or digit, then letters, digits, '_' or '-'; "
            "no dots)"
        )
    if not key:
        return f"no key: write {PREFIX}{job}.<key>, e.g. {PREFIX}{job}.schedule"
    if not all(_KEY.fullmatch(part) for part in key.split(".")):
        return f"{key!r} is not a key (letters, digits, '_' and '-', tables joined by '.')"
    if len(value) > MAX_LABEL_VALUE:
        return f"the value is {len(value)} characters; at most {MAX_LABEL_VALUE} are read"
    return None


def _put(table: dict[str, Any], path: list[str], value: object, made: set[int]) -> str | None:
    """Set ``path`` in ``table`` to ``value``; why not, when a key is both a value and a
    table (``notify = …`` and ``notify.on = …``, an inline table ``notify = { … }`` too:
    as in TOML, it is not extended). ``made``: the ids of the tables dotted keys made."""
    *tables, last = path
    here = table
    for i, part in enumerate(tables):
        if part not in here:
            here[part] = {}
            made.add(id(here[part]))
        inner = here[part]
        if not isinstance(inner, dict) or id(inner) not in made:
            return f"{'.'.join(path[: i + 1])} is given both as a value and as a table"
        here = inner
    if last in here:
        return f"{'.'.join(path)} is given both as a value and as a table"
    here[last] = value
    return None
