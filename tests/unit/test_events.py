"""The event registry (scheduler/events.py) matches the code: every event a logging call in
scheduler/ or jobs/ emits is registered, every registered event is emitted somewhere, and a
call passes only fields the registry lists for its event, at a level it lists.

What the scan sees (its limits):

- calls ``<x>.debug/info/warning/error/exception/critical(name, …)`` whose receiver's text
  holds ``log`` (``log``, ``self._log``, ``self.log``, ``get_logger()``), and calls of a
  local name assigned from such methods (``level = self._log.info if … else
  self._log.warning``; ``say = log.debug if … else log.warning``);
- a literal name is checked exactly; an f-string name (``f"run.{status.value}"``,
  ``f"{self.label}.busy"``) stands for every registered event it matches — its placeholders
  take the values ``PLACEHOLDERS`` lists (a run's statuses, the listeners' labels), any
  name otherwise: its keywords are checked against the union of those events' fields, its
  level against theirs;
- a name that is not text at all (``str(warning["event"])``: a tool's warning) is not
  seen here: the tools' warnings are checked from the other side — every ``emit({"warning":
  {"event": …}})`` in jobs/tools names an event of ``WARNING_EVENTS``, which must all be
  registered, with the keys the tool sends;
- fields passed through ``**fields`` or bound with contextvars (``job``, ``run_id`` of a
  run's events) are not checked; the registry lists them all the same;
- ``event_dict["event"] = "library.log"`` (a structlog processor renaming a record) counts
  as emitting that event;
- mutmut's copies of functions (a mutation run's sources hold them) are skipped.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.protocol.lines import WARNING_EVENTS
from scheduler.events import BY_NAME, EVENTS
from scheduler.runs import Status

ROOT = Path(__file__).resolve().parents[2]
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})


@dataclass(frozen=True)
class Emission:
    """One place that logs an event."""

    where: str
    pattern: str
    """A regular expression of the event's name (a literal name: itself, escaped)."""
    level: str | None
    """The logging method (None: chosen at run time)."""
    keywords: frozenset[str]


PLACEHOLDERS = {
    "status.value": [s.value for s in Status],
    "outcome.status.value": [s.value for s in Status],
    "self.label": ["http", "admin"],
}
"""What the f-strings of event names put in their placeholders (else: any name)."""


def _part(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return re.escape(str(node.value))
    assert isinstance(node, ast.FormattedValue)
    values = PLACEHOLDERS.get(ast.unparse(node.value))
    return "(?:" + "|".join(map(re.escape, values)) + ")" if values else "[a-z_.]+"


def _name_pattern(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(_part(v) for v in node.values)
    return None


def _logger_method(node: ast.expr) -> str | None:
    """``debug``… when ``node`` is a logger's method (``log.info``), else None."""
    if (
        isinstance(node, ast.Attribute)
        and node.attr in LEVELS
        and "log" in ast.unparse(node.value).lower()
    ):
        return node.attr
    return None


def _aliases(tree: ast.AST) -> set[str]:
    """Local names assigned from loggers' methods (``level = log.info if … else …``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            methods = [m for m in ast.walk(node.value) if isinstance(m, ast.expr)]
            if isinstance(target, ast.Name) and any(_logger_method(m) for m in methods):
                names.add(target.id)
    return names


def _nodes(tree: ast.AST) -> list[ast.AST]:
    """The tree's nodes, but those of mutmut's copies of functions (``x_f__mutmut_3``: a
    mutation run has them beside the real ones, with names deliberately broken)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name:
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def emissions(text: str, name: str) -> list[Emission]:
    """The logging calls (and event renames) of one source file's ``text``."""
    tree = ast.parse(text, name)
    aliases = _aliases(tree)
    found = []
    for node in _nodes(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and node.args:
            level = _logger_method(node.func)
            alias = isinstance(node.func, ast.Name) and node.func.id in aliases
            pattern = _name_pattern(node.args[0])
            if (level or alias) and pattern is not None:
                keywords = frozenset(k.arg for k in node.keywords if k.arg is not None)
                found.append(Emission(where, pattern, level, keywords))
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            renamed = str(node.value.value)
            found.extend(
                Emission(where, re.escape(renamed), None, frozenset())
                for target in node.targets
                if isinstance(target, ast.Subscript)
                and isinstance(target.slice, ast.Constant)
                and target.slice.value == "event"
            )
    return found


@functools.cache
def all_emissions() -> list[Emission]:
    """Every emission in scheduler/ and jobs/."""
    paths = sorted((ROOT / "scheduler").rglob("*.py")) + sorted((ROOT / "jobs").rglob("*.py"))
    return [e for p in paths for e in emissions(p.read_text(), str(p.relative_to(ROOT)))]


def matching(emission: Emission) -> list[str]:
    """The registered events an emission's name stands for."""
    return [name for name in BY_NAME if re.fullmatch(emission.pattern, name)]


def tool_warnings() -> list[tuple[str, str, frozenset[str]]]:
    """``emit({"warning": {"event": …, …}})`` in jobs/tools: (where, event, keys)."""
    found = []
    for path in sorted((ROOT / "jobs" / "tools").rglob("*.py")):
        for node in _nodes(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Dict) and len(node.keys) == 1):
                continue
            key, value = node.keys[0], node.values[0]
            if isinstance(key, ast.Constant) and key.value == "warning":
                assert isinstance(value, ast.Dict), f"{path}: a warning not written as a dict"
                fields = {
                    k.value: v
                    for k, v in zip(value.keys, value.values, strict=True)
                    if isinstance(k, ast.Constant)
                }
                event = fields.pop("event")
                assert isinstance(event, ast.Constant)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.append((where, str(event.value), frozenset(map(str, fields))))
    return found


def test_the_scan_finds_the_daemons_logging_calls() -> None:
    """The scan is not blind: literal, f-string and aliased calls and the rename are seen."""
    found = all_emissions()
    patterns = {e.pattern for e in found}
    assert re.escape("run.started") in patterns
    assert re.escape("library.log") in patterns
    assert any(e.level is None and "run" in e.pattern for e in found)  # level(f"run.{…}")
    assert any("busy" in e.pattern for e in found)  # f"{self.label}.busy"
    assert len(found) > 80


def test_every_emitted_event_is_registered() -> None:
    """A logging call with a name the registry does not hold fails here."""
    unknown = [f"{e.where}: {e.pattern}" for e in all_emissions() if not matching(e)]
    assert unknown == []


def test_every_registered_event_is_emitted() -> None:
    """A registered event that no code logs (renamed or removed) fails here."""
    emitted = {name for e in all_emissions() for name in matching(e)}
    emitted |= {event for _, event, _ in tool_warnings()}
    assert sorted(set(BY_NAME) - emitted) == []


def test_calls_pass_only_registered_fields() -> None:
    """A keyword field the registry does not list for the event fails here."""
    problems = []
    for emission in all_emissions():
        events = [BY_NAME[name] for name in matching(emission)]
        allowed = frozenset().union(*(e.field_names() for e in events))
        extra = emission.keywords - allowed - {"exc_info"}
        if extra:
            problems.append(f"{emission.where}: {sorted(extra)} not in {emission.pattern}")
    assert problems == []


def test_calls_log_at_a_registered_level() -> None:
    """A call at a level the registry does not give the event fails here (``exception`` is
    ``error``, and its event lists the ``exception`` field, the traceback; an f-string
    name: one of the events it stands for)."""
    problems = []
    for emission in all_emissions():
        if emission.level is None:
            continue
        level = "error" if emission.level == "exception" else emission.level
        names = matching(emission)
        if names and not any(level in BY_NAME[name].levels for name in names):
            problems.append(f"{emission.where}: {emission.pattern} at {level}")
        traced = [n for n in names if "exception" in BY_NAME[n].field_names()]
        if emission.level == "exception" and not traced:
            problems.append(f"{emission.where}: {emission.pattern} has no exception field")
    assert problems == []


def test_the_tools_warnings_are_registered_with_their_fields() -> None:
    """Every event a tool may raise (WARNING_EVENTS) is registered, at warning, and the
    tools send only its registered fields."""
    assert set(BY_NAME) >= WARNING_EVENTS
    assert all("warning" in BY_NAME[name].levels for name in WARNING_EVENTS)
    found = tool_warnings()
    assert found
    for where, event, keys in found:
        assert event in WARNING_EVENTS, where
        assert keys <= BY_NAME[event].field_names(), where


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('log.info("run.nonexistent", job="x")\n', "unregistered"),
        ('log.info("run.started", colour="red")\n', "field"),
        ('self._log.error("run.started")\n', "level"),
        ('say = log.debug if bad else log.warning\nsay("http.nonexistent")\n', "unregistered"),
    ],
)
def test_the_checks_catch_a_bad_call(source: str, problem: str) -> None:
    """Each check above fails for a call that breaks it."""
    (emission,) = emissions(source, "sample.py")
    names = matching(emission)
    if problem == "unregistered":
        assert names == []
    elif problem == "field":
        assert emission.keywords - BY_NAME[names[0]].field_names() == {"colour"}
    else:
        assert emission.level not in BY_NAME[names[0]].levels


def test_the_registry_has_no_duplicates_and_each_event_says_something() -> None:
    """One entry per name; each has a level and a meaning; names are ``area.what``."""
    names = [e.name for e in EVENTS]
    assert len(names) == len(set(names))
    for event in EVENTS:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", event.name), event.name
        assert event.meaning, event.name
        assert set(event.levels) <= {"debug", "info", "warning", "error"}, event.name
