"""docs/reference.md is generated from the code and kept current; every config key has a
description (and an example where its default shows no value); config.example.toml shows
the keys its header says it shows; the exit-code table covers every command."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry, Counter, Info, generate_latest
from pydantic import Field

from jobs.base import BaseJob, Model
from jobs.containers import ContainerJob
from jobs.kinds import KINDS
from jobs.units import Duration
from scheduler.cli import _parser
from scheduler.exits import CODES, COMMANDS
from scheduler.metrics import Live, Metrics
from scheduler.reference.document import COMMAND, _exposed, document, metrics_section, slug
from scheduler.reference.keys import (
    SECRET,
    Table,
    daemon_tables,
    job_tables,
    secret_forms,
    shows_a_value,
    tables,
)
from scheduler.settings.daemon import DaemonSettings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def test_docs_reference_is_current() -> None:
    """docs/reference.md is what the code generates now (a key, event, metric or exit code
    changed without regenerating it fails here)."""
    assert REFERENCE.read_text() == document(), f"docs/reference.md is stale: run {COMMAND}"


def test_the_command_prints_the_document() -> None:
    """``python -m scheduler.reference`` prints exactly the document."""
    done = subprocess.run(
        [sys.executable, "-m", "scheduler.reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == document()


def undocumented(found: list[Table]) -> list[str]:
    """Keys without a description, or without an example where the default shows no value
    (a choice of literals or a flag shows its values in its type)."""
    problems = []
    for table in found:
        for row in table.rows():
            where = f"{table.path} {table.qualifier} {row.name}".replace("  ", " ")
            if not row.description:
                problems.append(f"{where}: no description=")
            shown = row.type.startswith(("one of", "`")) or row.type == "boolean"
            if not row.example and not shown and not shows_a_value(row.info):
                problems.append(f"{where}: no examples= (its default shows no value)")
    return problems


def test_every_config_key_has_a_description_and_an_example() -> None:
    """A key added to a model without ``description=`` (or without ``examples=`` when it
    has no telling default) fails here: no key goes undocumented."""
    assert undocumented(tables() + secret_forms()) == []


def test_an_undocumented_key_is_caught() -> None:
    """The check above finds a key without description, and one without example."""

    class Sample(Model):
        bare: int = 3
        hidden: str | None = Field(None, description="said")

    problems = undocumented([Table("[x]", "", "", Sample, ("bare", "hidden"))])
    assert problems == [
        "[x] bare: no description=",
        "[x] hidden: no examples= (its default shows no value)",
    ]


def test_every_table_of_the_config_is_in_the_reference() -> None:
    """Each kind, each remote type, each sink type and the nested tables have a section."""
    headings = {(t.path, t.qualifier) for t in tables()}
    assert {("[jobs.<name>]", f"kind {kind}") for kind in KINDS} <= headings
    assert {("[daemon.remotes.<name>]", f"type {t}") for t in ("s3", "sftp", "webdav")} <= headings
    sinks = {q for p, q in headings if p == "[jobs.<name>.sink]"}
    assert sinks == {"type file", "type http", "type syslog", "type stdout"}
    paths = {p for p, _ in headings}
    assert {"[jobs.<name>.notify]", "[jobs.<name>.encrypt]", "[jobs.<name>.ssh]"} <= paths
    assert "[[jobs.<name>.pre_exec]] and [[jobs.<name>.post_exec]]" in paths
    assert daemon_tables()[0].path == "[daemon]"
    shown = {row.name for t in job_tables() for row in t.rows()}
    every = {name for kind in KINDS.values() for name in kind.model_fields} - {"kind"}
    assert every <= shown


def test_types_defaults_and_examples_in_the_users_words() -> None:
    """Durations and sizes in their own format, secrets by their forms, no JSON-schema terms."""

    class Sample(Model):
        wait: Duration = Field(90.0, description="d")
        choice: Literal["a", "b"] = Field("a", description="c")
        names: list[str] = Field(default_factory=list, description="n", examples=[["x"]])

    rows = {r.name: r for r in Table("[x]", "", "", Sample, ("wait", "choice", "names")).rows()}
    assert (rows["wait"].type, rows["wait"].default) == ("duration", '"90s"')
    assert (rows["choice"].type, rows["choice"].default) == ("one of `a`, `b`", '"a"')
    assert (rows["names"].type, rows["names"].default, rows["names"].example) == (
        "list of strings",
        "[]",
        '["x"]',
    )
    daemon = {r.name: r for r in daemon_tables()[0].rows()}
    assert daemon["max_output_line"].default == '"16KiB"'
    assert daemon["engine_timeout"].type == "duration, more than 0, at most `1h`"
    run = next(t for t in job_tables() if t.qualifier == "kind run")
    env = next(r for r in run.rows() if r.name == "env")
    assert env.type == "table of secrets (text, { env = … } or { file = … })"
    assert SECRET in {r.type for t in tables() for r in t.rows()}
    words = " ".join(r.type for t in tables() for r in t.rows())
    assert not re.search(r"\b(anyOf|object|array|NoneType|Annotated)\b", words)


def test_headings_have_the_anchors_the_contents_link_to() -> None:
    """Every link of the reference's contents points at one of its headings."""
    text = document()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links
    assert links <= anchors


def test_the_reference_lists_every_metric_a_scrape_shows() -> None:
    """The metrics section names each metric ``/metrics`` shows, with the type its ``# TYPE``
    line gives (read from the metrics' own definitions, not retyped)."""
    live = Live(jobs=dict, running=dict, now=lambda: None, engine_error=lambda: None)  # type: ignore[arg-type,return-value]
    scraped = set(re.findall(r"^# TYPE (\S+) (\S+)", Metrics(live).render().decode(), re.MULTILINE))
    section = "\n".join(metrics_section())
    for name, kind in scraped:
        if name.endswith("_created"):  # prometheus-client's creation time of each series
            continue
        assert f"| `{name}` | {kind} |" in section


def test_metric_names_as_the_text_format_shows_them() -> None:
    """A counter is shown with ``_total``, an info metric as the gauge ``<name>_info``."""
    registry = CollectorRegistry()
    Counter("a_things", "things", registry=registry).inc()
    Info("a_build", "build", registry=registry).info({"version": "1"})
    scraped = re.findall(r"^# TYPE (\S+) (\S+)", generate_latest(registry).decode(), re.MULTILINE)
    shown = [_exposed(f.name, f.type) for f in registry.collect()]
    assert set(shown) <= set(scraped)
    assert set(shown) == {("a_things_total", "counter"), ("a_build_info", "gauge")}


def test_every_command_has_its_exit_codes() -> None:
    """The exit-code table names each command of the CLI, with codes of the known set."""
    parser = _parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) == set(subparsers.choices)  # type: ignore[arg-type]
    for name, codes in COMMANDS.items():
        assert 0 in codes, name
        assert set(codes) <= set(CODES), name


def test_the_command_exits_only_with_the_named_codes() -> None:
    """scheduler/cli.py and scheduler/daemon.py return exit codes by their names (from
    scheduler/exits.py, the table the reference is made from), never as bare numbers."""
    numbers = []
    for name in ("cli.py", "daemon.py"):
        for node in ast.walk(ast.parse((ROOT / "scheduler" / name).read_text())):
            if not isinstance(node, ast.Return) or node.value is None:
                continue
            value = node.value
            values = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
            numbers += [
                f"{name}:{node.lineno}"
                for v in values
                if isinstance(v, ast.Constant) and type(v.value) is int
            ]
    assert numbers == []


# config.example.toml --------------------------------------------------------------------

EXAMPLE = ROOT / "config.example.toml"


def example_sections() -> tuple[dict[str, set[str]], dict[str, str]]:
    """The keys each table of config.example.toml shows, commented out or not (inline
    tables' keys count for their table), and the kind of each job."""
    keys: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    table = None
    for line in EXAMPLE.read_text().splitlines():
        body = line.lstrip("#").strip()
        header = re.match(r"^\[\[?([A-Za-z0-9_.-]+)\]\]?", body)
        if header:
            table = header.group(1)
            keys.setdefault(table, set())
            parts = table.split(".")
            for i in range(1, len(parts)):  # a sub-table shows its key in each parent
                keys.setdefault(".".join(parts[:i]), set()).add(parts[i])
            continue
        if table is None:
            continue
        keys[table].update(re.findall(r"(?:^|[{,]\s*)([a-z_]+)\s*=", body))
        kind = re.match(r'^kind\s*=\s*"(\w+)"', body)
        if kind:
            kinds[table] = kind.group(1)
    return keys, kinds


def test_the_example_config_says_what_it_shows() -> None:
    """Its header claims every [daemon] key, every key of each kind and every notify key."""
    header = EXAMPLE.read_text().split("\n\n")[0]
    assert "Every [daemon] key, every key of each job kind and every [jobs.<name>.notify]" in (
        " ".join(header.replace("#", "").split()).replace(
            "[jobs.<name>.notify] key", "[jobs.<name>.notify]"
        )
    )


def test_the_example_config_shows_every_key_it_claims() -> None:
    """Every [daemon] key in [daemon]; every key of a kind in a job of that kind or in
    [defaults] (a key of every kind: in any job; of the kinds that create containers: in
    any job of those); every notify key in [defaults.notify]."""
    keys, kinds = example_sections()
    missing = [f"daemon.{k}" for k in DaemonSettings.model_fields if k not in keys["daemon"]]
    every_job = set().union(*(keys[t] for t in kinds)) & set(BaseJob.model_fields)
    containers = {t for t, k in kinds.items() if issubclass(KINDS[k], ContainerJob)}
    container_keys = set().union(*(keys[t] for t in containers)) & set(ContainerJob.model_fields)
    for kind, model in KINDS.items():
        shown = keys["defaults"].union(*(keys[t] for t, k in kinds.items() if k == kind))
        shown |= every_job | (container_keys if issubclass(model, ContainerJob) else set())
        missing += [f"{kind}.{key}" for key in model.model_fields if key not in shown]
    notify = next(t for t in tables() if t.path == "[jobs.<name>.notify]")
    missing += [f"notify.{k}" for k in notify.names if k not in keys["defaults.notify"]]
    assert missing == []


@pytest.mark.parametrize("name", ["http", "remotes"])
def test_the_example_scan_sees_a_missing_key(name: str) -> None:
    """The scan above would miss a [daemon] key the file does not show."""
    keys, _ = example_sections()
    assert name in keys["daemon"]
    assert "no_such_key" not in keys["daemon"]
