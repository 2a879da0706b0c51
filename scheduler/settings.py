"""The config: one TOML file plus ``CRONTAINER_*`` environment overrides.

``load_config`` reads and validates everything at once and either returns a
frozen ``Config`` or raises ``ConfigError`` with one line per problem, each
naming where it is (``jobs.db-backup.schedule: …``).
"""

from __future__ import annotations

import functools
import json
import operator
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from jobs.base import NAME_PATTERN, BaseJob, Model, name_is_valid
from jobs.kinds import KINDS, Job
from jobs.units import Duration, Size
from scheduler.errors import ConfigError
from scheduler.schedule import Schedule, ScheduleError, parse_schedule

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "CRONTAINER_"
ENV_CONFIG = "CRONTAINER_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/crontainer/config.toml")
MERGED_TABLES = frozenset({"env", "labels", "notify"})
"""Keys whose tables merge key by key with ``[defaults]`` instead of replacing it."""


DEFAULT_HTTP = "0.0.0.0:8137"
"""Port 8137: outside the exporters' 9100-9999 range, no common service."""


class DaemonSettings(Model):
    """The ``[daemon]`` table."""

    name: str = Field(
        "crontainer",
        pattern=NAME_PATTERN,
        description="identifies this daemon across restarts (labels of its containers)",
    )
    ops_image: str | None = Field(
        None, description="image of the ops containers; default: the image the daemon runs from"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace: Duration = Field(
        30.0, description="on SIGTERM, wait this long for runs before stopping them"
    )
    engine_timeout: Annotated[Duration, Field(gt=0)] = Field(
        60.0, description="deadline of each Docker API call"
    )
    engine_wait: Duration = Field(
        60.0, description="at start, retry the engine this long before exiting 1"
    )
    config_poll: Duration = Field(
        5.0, description="how often the config file's content is checked for changes (0: never)"
    )
    heartbeat_file: Path = Field(
        Path("/tmp/crontainer.heartbeat"),  # noqa: S108 - a liveness marker, no secret
        description="touched every 5 s while the scheduling loop is alive (crontainer health)",
    )
    state_dir: Path = Field(
        Path("/var/lib/crontainer"),
        description="the run history (SQLite); mount a named volume here",
    )
    max_concurrent_runs: int = Field(16, ge=1, description="runs in flight at once, all jobs")
    max_output_line: Annotated[Size, Field(ge=80)] = Field(
        16 * 1024, description="longer output lines are cut in run.output events"
    )
    max_output_per_run: Size = Field(
        1024 * 1024, description="output logged per run; the rest is counted, not logged"
    )
    http: str = Field(
        DEFAULT_HTTP,
        description="host:port of /metrics, /healthz and /readyz (read-only; port 0: any "
        "free port); '' turns it off",
    )

    @field_validator("http")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value == "":
            return value
        host, colon, port = value.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) < 65536:  # noqa: PLR2004
            raise ValueError(f"{value!r}: expected host:port (e.g. '0.0.0.0:8137'), or ''")
        if not host:
            raise ValueError(f"{value!r}: the host is missing (e.g. '0.0.0.0:{port}')")
        return value

    def http_address(self) -> tuple[str, int] | None:
        """(host, port) of the HTTP listener, or None when it is off."""
        if not self.http:
            return None
        host, _, port = self.http.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class JobEntry:
    """One configured job with its parsed schedule."""

    name: str
    job: Job
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the daemon needs, validated."""

    path: Path
    daemon: DaemonSettings
    jobs: Mapping[str, JobEntry]


def config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``CRONTAINER_CONFIG``, else the default path."""
    if cli_value:
        return Path(cli_value)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH


# --- sources -----------------------------------------------------------------


def _job_fields() -> set[str]:
    return {name for kind in KINDS.values() for name in kind.model_fields if name != "kind"}


class _StrictEnvSource(PydanticBaseSettingsSource):
    """``CRONTAINER_DAEMON__KEY`` and ``CRONTAINER_DEFAULTS__KEY``; anything else is an error."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], errors: list[str]
    ) -> None:
        super().__init__(settings_cls)
        self._environ = environ
        self._errors = errors

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ANN401, ARG002
        return None, field_name, False  # unused: __call__ builds the whole dict

    def __call__(self) -> dict[str, Any]:
        known = {"daemon": set(DaemonSettings.model_fields), "defaults": _job_fields()}
        found: dict[str, dict[str, Any]] = {}
        for var, value in sorted(self._environ.items()):
            upper = var.upper()
            if not upper.startswith(ENV_PREFIX) or upper == ENV_CONFIG:
                continue
            section, sep, key = upper[len(ENV_PREFIX) :].lower().partition("__")
            if not sep or section not in known or key not in known[section]:
                self._errors.append(
                    f"{var}: unknown environment variable (use CRONTAINER_DAEMON__<key> or "
                    f"CRONTAINER_DEFAULTS__<key> with a key of [daemon] or [defaults]; "
                    f"{ENV_CONFIG} names the config file)"
                )
                continue
            try:
                parsed = json.loads(value) if value.lstrip()[:1] in ("[", "{") else value
            except json.JSONDecodeError as e:
                self._errors.append(f"{var}: a list or table value must be JSON: {e}")
                continue
            found.setdefault(section, {})[key] = parsed
        return found


def _read_sources(path: Path, environ: Mapping[str, str], errors: list[str]) -> dict[str, Any]:
    """Merge the TOML file and the environment into one plain dict."""

    class _Raw(BaseSettings):
        model_config = SettingsConfigDict(extra="forbid")
        daemon: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        jobs: dict[str, dict[str, Any]] = {}

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,  # noqa: ARG003
            env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
            dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
            file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                _StrictEnvSource(settings_cls, environ, errors),
                TomlConfigSettingsSource(settings_cls, toml_file=path),
            )

    try:
        raw = _Raw()
    except ValidationError as e:
        errors.extend(_messages(e, ""))
        return {}
    return raw.model_dump()


# --- validation --------------------------------------------------------------


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "config"


def _messages(error: ValidationError, prefix: str, skip_head: int = 0) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        where = _where(prefix, tuple(item["loc"])[skip_head:])
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
            value = item.get("input")
            if isinstance(value, str | int | float | bool) and repr(value) not in message:
                message += f" (got {value!r})"
        lines.append(f"{where}: {message}")
    return lines


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (``crontainer schema``), from the same models
    that validate it: ``[daemon]``, ``[defaults]`` (any job key but ``kind``, all optional)
    and ``[jobs.<name>]`` (one of the kinds, chosen by ``kind``)."""
    choices: dict[str, list[Any]] = {}
    for kind in KINDS.values():
        for name, info in kind.model_fields.items():
            annotation: Any = info.annotation
            if info.metadata:
                annotation = Annotated[annotation, *info.metadata]
            if name != "kind" and repr(annotation) not in map(repr, choices.get(name, [])):
                choices.setdefault(name, []).append(annotation)
    optional: dict[str, Any] = {
        name: (functools.reduce(operator.or_, types) | None, None)
        for name, types in sorted(choices.items())
    }
    defaults = create_model("Defaults", __config__=ConfigDict(extra="forbid"), **optional)
    tables: dict[str, Any] = {
        "daemon": (DaemonSettings | None, None),
        "defaults": (defaults | None, None),
        "jobs": (dict[str, Annotated[Job, Field(discriminator="kind")]], {}),
    }
    config = create_model(
        "CrontainerConfig",
        __config__=ConfigDict(extra="forbid", title="crontainer configuration"),
        **tables,
    )
    schema = config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@cache
def _defaults_model(kind: type[BaseJob]) -> type[BaseModel]:
    """``kind`` with every field optional: validates the part of [defaults] that applies to it."""
    fields: dict[str, Any] = {}
    for name, info in kind.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[annotation, *info.metadata]
        fields[name] = (annotation | None, None)
    return create_model(f"{kind.__name__}Defaults", __base__=kind, **fields)


def _check_defaults(defaults: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    """The valid part of [defaults]; problems go to ``errors``."""
    known = _job_fields()
    bad: set[str] = set()
    for key in defaults:
        if key == "kind":
            errors.append("defaults.kind: a job's kind cannot have a default")
            bad.add(key)
        elif key not in known:
            errors.append("defaults." + key + ": unknown key (no job kind has it)")
            bad.add(key)
    seen: set[str] = set()
    for kind in KINDS.values():
        part = {k: v for k, v in defaults.items() if k in kind.model_fields and k not in bad}
        try:
            _defaults_model(kind).model_validate(part)
        except ValidationError as e:
            for message in _messages(e, "defaults"):
                bad.add(message.split(":", 1)[0].removeprefix("defaults.").split(".")[0])
                if message not in seen:
                    seen.add(message)
                    errors.append(message)
    return {k: v for k, v in defaults.items() if k not in bad}


def _with_defaults(
    table: Mapping[str, Any], kind: type[BaseJob], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    merged = {k: v for k, v in defaults.items() if k in kind.model_fields}
    for key, value in table.items():
        base = merged.get(key)
        if key in MERGED_TABLES and isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _schedule_of(where: str, table: Mapping[str, Any], errors: list[str]) -> Schedule | None:
    """Parse the schedule even when other keys are wrong, so every error is reported at once."""
    expression, zone = table.get("schedule"), table.get("timezone", "UTC")
    if not isinstance(expression, str) or not isinstance(zone, str) or not expression.strip():
        return None  # the model's validation reports these
    try:
        return parse_schedule(expression, zone)
    except ScheduleError as e:
        errors.append(f"{where}.schedule: {e}")
    except (ValueError, KeyError):
        pass  # an unknown time zone: reported by the model's validation
    return None


def _load_job(  # noqa: PLR0911 - one early return per kind of problem
    name: str, table: Mapping[str, Any], defaults: Mapping[str, Any], errors: list[str]
) -> JobEntry | None:
    where = f"jobs.{name}"
    if not name_is_valid(name):
        errors.append(
            f"{where}: a job name must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-' (at most 63 characters)"
        )
        return None
    kind_name = table.get("kind")
    if kind_name is None:
        errors.append(f"{where}.kind: required key is missing (one of: {', '.join(KINDS)})")
        return None
    kind = KINDS.get(str(kind_name))
    if kind is None:
        errors.append(f"{where}.kind: unknown kind {kind_name!r} (one of: {', '.join(KINDS)})")
        return None
    merged = _with_defaults(table, kind, defaults)
    schedule = _schedule_of(where, merged, errors)
    try:
        job = kind.model_validate(merged)
    except ValidationError as e:
        errors.extend(_messages(e, where))
        return None
    if schedule is None:
        return None
    if not isinstance(job, Job):  # the registry and the union grow together
        errors.append(f"{where}.kind: kind {kind_name!r} is registered but not in the Job union")
        return None
    return JobEntry(name=name, job=job, schedule=schedule)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the config; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    if not path.is_file():
        reason = "is not a file" if path.exists() else "does not exist"
        raise ConfigError([f"{path}: the config file {reason}"])
    errors: list[str] = []
    try:
        raw = _read_sources(path, env, errors)
    except (OSError, ValueError) as e:  # TOMLDecodeError is a ValueError
        raise ConfigError([f"{path}: cannot read the config: {e}"]) from None
    daemon: DaemonSettings | None = None
    try:
        daemon = DaemonSettings.model_validate(raw.get("daemon", {}))
    except ValidationError as e:
        errors.extend(_messages(e, "daemon"))
    defaults = _check_defaults(raw.get("defaults", {}), errors)
    entries: dict[str, JobEntry] = {}
    for name, table in raw.get("jobs", {}).items():
        entry = _load_job(name, table, defaults, errors)
        if entry is not None:
            entries[name] = entry
    if errors or daemon is None:
        raise ConfigError(errors)
    return Config(path=path, daemon=daemon, jobs=entries)
