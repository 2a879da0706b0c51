"""The config file's TOML as tables: each ``[jobs.NAME]`` parsed by itself, texts shared.

``tomllib.loads`` of a whole file keeps, while it parses, its bookkeeping of every table
and key defined (to refuse a second definition): for 10,000 jobs twice the document it
returns (13.5 MiB at the peak for 6.8 MiB of tables), and the daemon's memory stays at its
peak. ``toml_tables`` parses the part above the first ``[jobs.NAME]`` line, then each job's
part (its header line up to the next one) by itself, and replaces each job's texts by the
equal ones already read (``same_strings``): the same tables, at a third of the peak. Any
part that does not parse by itself, or that defines more than its own job (a sub-table of
another job, ``[defaults]`` below the jobs, a name given twice, ``jobs`` above the first
header), and the whole file is parsed as one: the same result or the same error, with its
line, as before.

Why the parts give what the whole does: a part is cut at a line that, the part before it
having parsed by itself, stands at the top level of the file (not inside a multi-line
string, array or table, which would have left that part unterminated); and each part
defines only ``jobs.NAME``, a different NAME each, so no definition meets another.
"""

from __future__ import annotations

import re
import tomllib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

_JOB_HEADER = re.compile(
    r'^\[jobs\.(?:([A-Za-z0-9_-]+)|"([A-Za-z0-9_.-]+)")\][ \t]*(?:#[^\r\n]*)?\r?$', re.MULTILINE
)
"""A job's header line: ``[jobs.NAME]`` or ``[jobs."NAME"]``, maybe a comment after it."""


def toml_tables(text: str) -> dict[str, Any]:
    """``text`` as ``tomllib.loads`` reads it (its error too), each job's texts shared."""
    headers = list(_JOB_HEADER.finditer(text))
    if not headers:
        return tomllib.loads(text)
    seen: dict[str, str] = {}
    try:
        document = tomllib.loads(text[: headers[0].start()])
        if "jobs" in document:
            return tomllib.loads(text)
        jobs: dict[str, Any] = {}
        ends = [header.start() for header in headers[1:]] + [len(text)]
        for header, end in zip(headers, ends, strict=True):
            name = header[1] or header[2]
            part = tomllib.loads(text[header.start() : end])
            tables = part.get("jobs")
            if len(part) != 1 or not isinstance(tables, dict) or list(tables) != [name]:
                return tomllib.loads(text)
            if name in jobs:
                return tomllib.loads(text)
            jobs[seen.setdefault(name, name)] = same_strings(tables[name], seen)
    except tomllib.TOMLDecodeError:
        return tomllib.loads(text)
    document["jobs"] = jobs
    return document


def same_strings(table: Mapping[str, Any], seen: dict[str, str]) -> dict[str, Any]:
    """``table`` (a job's, as read) with each string, key or value, replaced by the equal
    one ``seen`` holds (added when new): the jobs of one config then share one object per
    distinct text (their keys, image, kind, container, user, schedule, the words of their
    commands) instead of one each, as a TOML parser makes them."""

    def same(value: object) -> object:
        if isinstance(value, str):
            return seen.setdefault(value, value)
        if isinstance(value, list):
            return [same(item) for item in value]
        if isinstance(value, dict):
            return {seen.setdefault(key, key): same(item) for key, item in value.items()}
        return value

    return {seen.setdefault(key, key): same(value) for key, value in table.items()}
