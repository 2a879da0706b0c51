"""``docs/reference.md``, written from the code: the config's keys (the models), the log
events (``scheduler.events``), the metrics (``scheduler.metrics``, as a scrape shows them)
and the exit codes (``scheduler.exits``). The same code gives the same text, byte for byte."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobs.kinds import KINDS
from jobs.run import RunJob
from jobs.selectors import FORMS as SELECTOR_FORMS
from jobs.units import DURATION_HELP, SIZE_HELP
from scheduler.events import EVENTS
from scheduler.exits import CODES, COMMANDS
from scheduler.metrics import Live, Metrics
from scheduler.reference.keys import SECRET, daemon_tables, job_tables, secret_forms, top_table
from scheduler.runs import Status
from scheduler.schedule import parse_schedule
from scheduler.settings import JobEntry
from scheduler.settings.entries import MERGED_TABLES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scheduler.events import Event
    from scheduler.reference.keys import Table

COMMAND = "python -m scheduler.reference > docs/reference.md"
"""How docs/reference.md is written (the staleness test names it)."""


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def text(words: str) -> str:
    """Markdown of plain words: ``<`` and ``>`` outside code spans escaped (GitHub would take
    ``<name>`` for an HTML tag and drop it)."""
    parts = words.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(words: str) -> str:
    return text(words).replace("|", "\\|").replace("\n", " ")


def heading(table: Table) -> str:
    """A table's heading: its path as code, then which form of it."""
    return f"`{table.path}`" + (f", {table.qualifier}" if table.qualifier else "")


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _default(text: str) -> str:
    return text if text in ("required", "none") else _code(text)


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(head)
    return [_row(*head), "|" + "---|" * len(head), *(_row(*r) for r in rows)]


def _keys(table: Table) -> list[str]:
    rows = [
        (f"`{k.name}`", k.type, _default(k.default), k.description, _code(k.example))
        for k in table.rows()
    ]
    return _table(("key", "type", "default", "meaning", "example"), rows)


def config_section() -> list[str]:
    """The config's tables, each with its keys."""
    daemon, jobs = [top_table(), *daemon_tables()], job_tables()
    kinds = ", ".join(f"`{k}`" for k in KINDS)
    lines = [
        "## Config keys",
        "",
        (
            f"Types: a **duration** is {DURATION_HELP}; a **size** is {SIZE_HELP}. A "
            f"**{SECRET}** is given as text in the file, or read when it is used from the "
            'daemon\'s environment (`{ env = "NAME" }`) or from a file the daemon can read, '
            'such as a Docker secret (`{ file = "/run/secrets/x" }`); it is never logged. '
            f"A **container selector** is {SELECTOR_FORMS}. Unknown keys are errors in every "
            "table. A key's example is given where its default does not show its form."
        ),
        "",
        *(f"- [{heading(t)}](#{slug(heading(t))})" for t in daemon),
        "- [`[defaults]`](#defaults)",
        *(f"- [{heading(t)}](#{slug(heading(t))})" for t in jobs),
        "- [Secrets given by reference](#secrets-given-by-reference)",
        "",
    ]
    for table in daemon:
        lines += _section(table)
    lines += [
        "### `[defaults]`",
        "",
        f"Any key of `[jobs.<name>]` of any kind ({kinds}) but `kind`: it applies to every "
        "job whose kind has the key and that does not set it itself. These tables merge key "
        "by key with a job's own (the job's entry wins): "
        + ", ".join(f"`{t}`" for t in sorted(MERGED_TABLES))
        + "; other keys are replaced by the job's value. From the environment: "
        "`CRONTAINER_DEFAULTS__<KEY>` (and `CRONTAINER_DAEMON__<KEY>` for `[daemon]`).",
        "",
    ]
    for table in jobs:
        lines += _section(table)
    lines += ["### Secrets given by reference", ""]
    for table in secret_forms():
        lines += [f"`{table.path}`: {text(table.intro)}", "", *_keys(table), ""]
    return lines


def _section(table: Table) -> list[str]:
    return [f"### {heading(table)}", "", text(table.intro), "", *_keys(table), ""]


def _fields(event: Event) -> str:
    shown = []
    for field in event.fields:
        name, colon, note = field.partition(":")
        shown.append(f"`{name.strip()}`" + (f" ({note.strip()})" if colon else ""))
    return ", ".join(shown)


def events_section() -> list[str]:
    """Every log event: level, fields, meaning."""
    rows = ((f"`{e.name}`", " or ".join(e.levels), _fields(e), e.meaning) for e in EVENTS)
    return [
        "## Log events",
        "",
        (
            "One JSON object per line on stdout. Every line has `event`, `level` and "
            "`timestamp` (UTC, ISO 8601); the fields below follow. A run's events carry `job` "
            "and `run_id`. An `exception` field holds a traceback."
        ),
        "",
        *_table(("event", "level", "fields", "meaning"), rows),
        "",
    ]


def _sample_metrics() -> Metrics:
    """The daemon's metrics with one job that has run once: every family has samples, so
    each shows its labels."""
    at = datetime(2000, 1, 1, tzinfo=UTC)
    job = RunJob.model_validate({"kind": "run", "schedule": "@daily", "image": "x", "lock": "data"})
    entry = JobEntry("job", job, parse_schedule("@daily", "UTC"))
    live = Live(
        jobs=lambda: {"job": entry},
        running=lambda: {"job": 0},
        now=lambda: at,
        engine_error=lambda: None,
    )
    metrics = Metrics(live)
    metrics.seed("job", at, at)
    metrics.ended("job", Status.SUCCEEDED, at, 1.0)
    metrics.reloaded(applied=True)
    return metrics


def _exposed(name: str, kind: str) -> tuple[str, str]:
    """A metric family's name and type as the text format shows them (a counter's name
    ends ``_total``; an info metric is a gauge ending ``_info``)."""
    if kind == "counter":
        return name.removesuffix("_total") + "_total", kind
    if kind == "info":
        return name + "_info", "gauge"
    return name, kind


def metrics_section() -> list[str]:
    """Every metric of ``GET /metrics``: type, labels, meaning (its help text)."""
    rows = []
    for family in _sample_metrics().registry.collect():
        name, kind = _exposed(family.name, family.type)
        labels = sorted(
            {k for s in family.samples if not s.name.endswith("_created") for k in s.labels}
            - {"le"}
        )
        shown = ", ".join(f"`{label}`" for label in labels)
        rows.append((f"`{name}`", kind, shown, family.documentation))
    return [
        "## Metrics",
        "",
        "`GET /metrics` on `[daemon] http`, in Prometheus' text format.",
        "",
        *_table(("metric", "type", "labels", "meaning"), rows),
        "",
    ]


def exits_section() -> list[str]:
    """Each command's exit codes."""
    codes = sorted({code for meanings in COMMANDS.values() for code in meanings})
    rows = (
        (f"`crontainer {name}`", *(meanings.get(code, "") for code in codes))
        for name, meanings in COMMANDS.items()
    )
    return [
        "## Exit codes",
        "",
        "; ".join(f"`{code}` {CODES[code]}" for code in sorted(CODES)) + ".",
        "",
        *_table(("command", *(f"exit {code}" for code in codes)), rows),
        "",
    ]


def document() -> str:
    """The whole of docs/reference.md."""
    lines = [
        "# Reference",
        "",
        (
            f"Generated from the code by `{COMMAND}`; do not edit it by hand (a test fails "
            "when it is stale). What the keys do together, with examples: "
            "[configuration.md](configuration.md); the events and metrics in use: "
            "[monitoring.md](monitoring.md); the commands: [operations.md](operations.md)."
        ),
        "",
        "- [Config keys](#config-keys)",
        "- [Log events](#log-events)",
        "- [Metrics](#metrics)",
        "- [Exit codes](#exit-codes)",
        "",
        *config_section(),
        *events_section(),
        *metrics_section(),
        *exits_section(),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
