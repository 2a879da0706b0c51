"""A notification's title and body: ``{field}`` templates over a run's outcome.

Checked at load (an unknown field is an error naming it), rendered with ``str.format_map``
over text values only: a template can name a field and nothing else — no attribute, no
index, no format spec — so rendering cannot fail or reach into an object.
"""

from __future__ import annotations

import difflib
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

FIELDS: dict[str, str] = {
    "job": "the job's name",
    "status": "how the run ended: failed, timed_out, succeeded, missed",
    "kind": "what is told: failure, success, recovery, missed (the `on` value)",
    "summary": "one line: the status, the exit code, the reason, how long it took",
    "run_id": "the run's id",
    "attempt": "the last attempt's number",
    "exit_code": "the container's exit code",
    "duration": "how long it took, as `12.3s`",
    "duration_s": "how long it took, in seconds",
    "reason": "why it ended so, if said: timeout, missed's reason, …",
    "error": "the error, if one ended it",
    "output": "the last lines of its output (its last 4,000 characters at most)",
    "scheduled_at": "when it was due (RFC 3339)",
    "trigger": "what started it: schedule, start, catch_up, manual, chain…",
    "host": "the daemon's host name",
    "daemon": "the daemon's name",
    "parent_job": "a chained run's: the job whose run's end started it",
    "parent_run_id": "a chained run's: the id of the run whose end started it",
    "parent_status": "a chained run's: how the run that started it ended",
}
"""The fields a template may name, and what each holds (empty when the run has none)."""

DEFAULT_TITLE = "[{daemon}] {job}: {status}"
DEFAULT_BODY = "{summary}\nrun {run_id}, scheduled at {scheduled_at}, on {host}\n{output}"
TITLE_MAX = 250
BODY_MAX = 4000
"""The longest templates accepted (characters)."""


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be rendered (an unknown field, broken braces…), else None."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return "a lone '{' or '}' (write '{{' and '}}' for braces in the text)"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name:
            return "an empty field '{}' (name one: {job}, {status}…)"
        if spec or conversion:
            return f"field {{{name}}}: no format spec or conversion (write {{{name}}})"
        if name not in FIELDS:
            near = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"; did you mean {{{near[0]}}}?" if near else ""
            return f"unknown field {{{name}}} (fields: {', '.join(FIELDS)}){hint}"
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` (checked by ``template_problem``) with each field's text; trailing
    blank space and lines cut (an empty last field leaves none)."""
    return template.format_map(_Values(values)).rstrip()


class _Values(dict[str, str]):
    """The values; a field that none holds renders empty (every name was checked at load)."""

    def __missing__(self, key: str) -> str:
        return ""
