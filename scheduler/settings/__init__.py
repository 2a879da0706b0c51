"""The config: one TOML file plus ``CRONTAINER_*`` environment overrides.

``load_config`` reads and validates everything at once and either returns a
frozen ``Config`` or raises ``ConfigError`` with one line per problem, each
naming where it is (``jobs.db-backup.schedule: …``). Its parts:

- ``daemon``: the ``[daemon]`` table (``DaemonSettings``).
- ``sources``: the TOML file and the strict ``CRONTAINER_*`` environment, merged into
  plain tables; environment text converted by the type of the key it sets.
- ``messages``: validation errors as error lines, never showing a secret.
- ``entries``: ``[defaults]`` checked and merged; each ``[jobs.NAME]`` → ``JobEntry``.
- ``shell``: the warnings of string commands that hold shell syntax.
- ``schema``: the JSON Schema of the file (``config_schema``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from jobs.backup import BackupJob
from scheduler.errors import ConfigError
from scheduler.locations import DEFAULT_CONFIG_PATH, config_path
from scheduler.settings.chains import chain_problems
from scheduler.settings.daemon import DaemonSettings
from scheduler.settings.entries import (
    JobEntry,
    check_defaults,
    load_job,
    share_equal,
)
from scheduler.settings.includes import included_jobs
from scheduler.settings.messages import error_lines
from scheduler.settings.remotes import copy_to_problems, load_remotes
from scheduler.settings.schema import config_schema
from scheduler.settings.shell import KeyWarning, command_warnings
from scheduler.settings.sources import read_sources
from scheduler.settings.tables import same_strings

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MAX_CONFIG_BYTES",
    "MAX_JOBS",
    "Config",
    "DaemonSettings",
    "JobEntry",
    "KeyWarning",
    "config_path",
    "config_schema",
    "load_config",
]

MAX_CONFIG_BYTES = 8 * 1024 * 1024
"""A config file larger than this is refused before it is parsed."""
MAX_JOBS = 10_000
"""The most jobs one config may hold."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the daemon needs, validated; ``warnings``: by job, what is valid but
    likely not meant (a string command with shell syntax), for ``validate`` to print and
    the daemon to log."""

    path: Path
    daemon: DaemonSettings
    jobs: Mapping[str, JobEntry]
    warnings: Mapping[str, tuple[KeyWarning, ...]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    """By job, the included file that defines it (``conf.d/db.toml``); a job of the main
    file has none."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The valid part of ``[defaults]`` (label jobs take it too)."""


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the config; raise ConfigError listing every problem.

    Nothing in a config file may raise anything else: whatever the file holds, the caller
    (the daemon at start or at a reload) gets a ConfigError, never a crash."""
    env = os.environ if environ is None else environ
    try:
        return _load_config(path, env)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError([f"{path}: values are nested too deeply"]) from None
    except Exception as e:  # a bug in reading a config must not stop a daemon
        raise ConfigError([f"{path}: cannot be loaded: {type(e).__name__}: {e}"]) from e


def _load_jobs(
    tables: dict[str, Any],
    defaults: Mapping[str, Any],
    remotes: Mapping[str, Any],
    sources: Mapping[str, str],
    errors: list[str],
) -> tuple[dict[str, JobEntry], dict[str, tuple[KeyWarning, ...]]]:
    """Each job of ``tables`` (emptied: each table is let go once its job is loaded, so
    that the tables as read and the jobs are never all held at once), and the warnings of
    the jobs that have some; what is wrong goes to ``errors``. ``remotes``: the remotes
    [daemon.remotes] defines."""
    entries: dict[str, JobEntry] = {}
    warnings: dict[str, tuple[KeyWarning, ...]] = {}
    texts: dict[str, str] = {}
    shared: dict[object, Any] = {}
    for name in list(tables):
        table = tables.pop(name)
        found: list[str] = []
        entry = load_job(name, same_strings(table, texts), defaults, found)
        if entry is not None:
            share_equal(entry.job, shared)
            entries[name] = entry
            warned = (*command_warnings(entry.job), *schedule_warnings(entry, table))
            if warned:
                warnings[name] = warned
        found.extend(copy_to_problems(name, _copy_to(entry, table), remotes))
        where = f"{sources[name]}: " if name in sources else ""
        errors.extend(where + line for line in found)
    return entries, warnings


def _from_env(line: str, origins: Mapping[str, str]) -> str:
    """``line`` naming the environment variable that set the value it is about, when one
    did (``CRONTAINER_DAEMON__LOG_LEVEL: …`` rather than ``daemon.log_level: …``; below the
    key: ``CRONTAINER_DAEMON__REMOTES (at box.bucket): …``)."""
    for where, var in origins.items():
        if line.startswith(where) and line[len(where) : len(where) + 1] in (":", ".", "["):
            rest = line[len(where) :]
            if rest.startswith(":"):
                return var + rest
            inner, _, message = rest.lstrip(".").partition(": ")
            return f"{var} (at {inner}): {message}"
    return line


def _copy_to(entry: JobEntry | None, table: Mapping[str, object]) -> list[str]:
    """The remotes a job copies to; of a backup refused for other errors, the names its
    table gives (so that a remote no [daemon.remotes] defines is said at the same time)."""
    if entry is not None:  # not getattr(…, default): a pydantic model's miss is slow
        return list(entry.job.copy_to) if isinstance(entry.job, BackupJob) else []
    given = table.get("copy_to") if table.get("kind") == "backup" else None
    return [n for n in given if isinstance(n, str)] if isinstance(given, list) else []


def _load_config(path: Path, env: Mapping[str, str]) -> Config:
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if size is None or not path.is_file():
        reason = "is not a file" if path.exists() else "does not exist"
        raise ConfigError([f"{path}: the config file {reason}"])
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [f"{path}: the config file is {size} bytes; at most {MAX_CONFIG_BYTES} are read"]
        )
    errors: list[str] = []
    origins: dict[str, str] = {}
    try:
        raw = read_sources(path, env, errors, origins)
    except (OSError, ValueError) as e:  # TOMLDecodeError is a ValueError
        raise ConfigError([f"{path}: cannot read the config: {e}"]) from None
    daemon: DaemonSettings | None = None
    table = _daemon_table(raw, errors)
    given_remotes = table.pop("remotes", {})
    remotes = load_remotes(given_remotes, errors)
    named = given_remotes if isinstance(given_remotes, dict) else {}
    try:
        daemon = DaemonSettings.model_validate({**table, "remotes": remotes})
    except ValidationError as e:
        errors.extend(error_lines(e, "daemon", DaemonSettings))
    defaults = check_defaults(raw.get("defaults", {}), errors)
    tables, sources = _all_jobs(path, raw, errors)
    raw.pop("jobs", None)  # each table is let go once its job is loaded (the peak memory)
    if len(tables) > MAX_JOBS:
        raise ConfigError([f"jobs: {len(tables)} jobs; at most {MAX_JOBS} are allowed"])
    defined = set(tables)
    entries, warnings = _load_jobs(tables, defaults, named, sources, errors)
    errors.extend(_chains(entries, defined, sources))
    if errors or daemon is None:
        raise ConfigError([_from_env(line, origins) for line in errors])
    return Config(
        path=path,
        daemon=daemon,
        jobs=entries,
        warnings=warnings,
        sources=sources,
        defaults=defaults,
    )


RUN_ON_START_AT = (
    "the job is a one-shot (@at): run_on_start runs it again at every start of the daemon "
    "(trigger start), besides its instant, which runs once"
)
CATCH_UP_MANUAL = "the job is @manual (no fire times): catch_up does nothing"


def schedule_warnings(entry: JobEntry, table: Mapping[str, object]) -> list[KeyWarning]:
    """Keys that do not go with the job's schedule: ``run_on_start`` on an ``@at`` job (it
    runs at every start, its own key or ``[defaults]``'), ``catch_up`` set in a ``@manual``
    job's own table (nothing to catch up)."""
    found: list[KeyWarning] = []
    if entry.schedule.one_shot is not None and entry.job.run_on_start:
        found.append(KeyWarning("run_on_start", RUN_ON_START_AT))
    if entry.schedule.manual and table.get("catch_up") is True:
        found.append(KeyWarning("catch_up", CATCH_UP_MANUAL))
    return found


def _chains(
    entries: Mapping[str, JobEntry], defined: Collection[str], sources: Mapping[str, str]
) -> list[str]:
    """The chains' error lines, each after the included file of the job it is about;
    ``defined``: the name of every job of the config, valid or not."""
    return [
        f"{sources[name]}: {line}" if name in sources else line
        for name, line in chain_problems(entries, defined)
    ]


def _daemon_table(raw: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    """The [daemon] table as given, but ``include``: TOML puts a key written below
    ``[daemon]`` into it, and include is a top-level key (said so)."""
    table = dict(raw.get("daemon", {}))
    if table.pop("include", None) is not None:
        errors.append(
            "daemon.include: include is a top-level key: write it above [daemon], before any table"
        )
    return table


def _all_jobs(
    path: Path, raw: Mapping[str, Any], errors: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The main file's job tables, then each included file's (``include``); and, by job,
    the included file it came from. A name defined twice is an error naming both files."""
    tables: dict[str, Any] = dict(raw.get("jobs", {}))
    sources: dict[str, str] = {}
    for shown, jobs in included_jobs(path, raw.get("include"), errors):
        for name, table in jobs.items():
            if name in tables:
                first = sources.get(name, path.name)
                errors.append(f"jobs.{name}: defined in {first} and again in {shown}")
            elif not isinstance(table, dict):
                errors.append(f"{shown}: jobs.{name}: expected a table, [jobs.{name}]")
            else:
                tables[name] = table
                sources[name] = shown
    return tables, sources
