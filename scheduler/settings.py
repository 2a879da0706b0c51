"""The config: one TOML file plus ``CRONTAINER_*`` environment overrides.

``load_config`` reads and validates everything at once and either returns a
frozen ``Config`` or raises ``ConfigError`` with one line per problem, each
naming where it is (``jobs.db-backup.schedule: …``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from jobs.base import NAME_PATTERN, BaseJob, Model, name_is_valid
from jobs.kinds import KINDS, Job
from jobs.units import Duration, Largest, Longest, Size
from scheduler import heartbeat
from scheduler.errors import ConfigError
from scheduler.schedule import Schedule, ScheduleError, parse_schedule

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic.fields import FieldInfo

ENV_PREFIX = "CRONTAINER_"
ENV_CONFIG = "CRONTAINER_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/crontainer/config.toml")
MAX_CONFIG_BYTES = 8 * 1024 * 1024
"""A config file larger than this is refused before it is parsed."""
MAX_JOBS = 10_000
"""The most jobs one config may hold."""
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
    shutdown_grace: Annotated[Duration, Longest("1d")] = Field(
        30.0, description="on SIGTERM, wait this long for runs before stopping them"
    )
    engine_timeout: Annotated[Duration, Field(gt=0), Longest("1h")] = Field(
        60.0, description="deadline of each Docker API call"
    )
    engine_wait: Annotated[Duration, Longest("1d")] = Field(
        60.0, description="at start, retry the engine this long before exiting 1"
    )
    config_poll: Annotated[Duration, Longest("1d")] = Field(
        5.0, description="how often the config file's content is checked for changes (0: never)"
    )
    heartbeat_file: Path = Field(
        heartbeat.DEFAULT,
        strict=False,
        description="touched every 5 s while the scheduling loop is alive (crontainer health)",
    )
    state_dir: Path = Field(
        Path("/var/lib/crontainer"),
        strict=False,
        description="the run history (SQLite); mount a named volume here",
    )
    max_concurrent_runs: int = Field(
        16, ge=1, le=1000, description="runs in flight at once, all jobs"
    )
    max_output_line: Annotated[Size, Field(ge=80), Largest("1MiB")] = Field(
        16 * 1024, description="longer output lines are cut in run.output events"
    )
    max_output_per_run: Annotated[Size, Largest("1GiB")] = Field(
        1024 * 1024, description="output logged per run; the rest is counted, not logged"
    )
    http: str = Field(
        DEFAULT_HTTP,
        description="host:port of /metrics, /healthz and /readyz (read-only; port 0: any "
        "free port); '' turns it off",
    )

    @field_validator("heartbeat_file", mode="before")
    @classmethod
    def _a_file(cls, value: object) -> object:
        if isinstance(value, str) and (not value.startswith("/") or value.endswith("/")):
            raise ValueError(
                "expected the absolute path of a file, e.g. '/tmp/crontainer.heartbeat'"
            )
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _a_directory(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a directory, e.g. '/var/lib/crontainer'")
        return value

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
            if isinstance(parsed, str):
                parsed = _from_text(parsed, _field_of(section, key))
            found.setdefault(section, {})[key] = parsed
        return found


_TRUTH = {"true": True, "yes": True, "on": True, "1": True}
_TRUTH |= {"false": False, "no": False, "off": False, "0": False}


def _field_of(section: str, key: str) -> FieldInfo:
    """The model field an environment variable sets ([defaults]: the first kind that has it)."""
    if section == "daemon":
        return DaemonSettings.model_fields[key]
    return next(k.model_fields[key] for k in KINDS.values() if key in k.model_fields)


def _scalars(annotation: object, metadata: list[object]) -> set[str]:
    """What plain values a field takes: ``text`` (it reads text itself: strings, names,
    paths, durations, sizes), ``bool``, ``int``, ``float``."""
    if any(isinstance(m, BeforeValidator) for m in metadata):
        return {"text"}
    if get_origin(annotation) is Annotated:
        base, *more = get_args(annotation)
        return _scalars(base, [*metadata, *more])
    if get_origin(annotation) in (Union, UnionType):
        return set().union(*(_scalars(a, []) for a in get_args(annotation) if a is not NoneType))
    names = {bool: "bool", int: "int", float: "float"}
    return {names.get(annotation, "text")} if isinstance(annotation, type) else {"text"}


def _from_text(text: str, field: FieldInfo) -> object:
    """An environment variable's text as the field's type wants it (the model stays strict
    for the file): ``true``/``false`` (also yes/no, on/off, 1/0) for a flag, digits for a
    number; text that fits none is passed on for the model to refuse, naming the key."""
    kinds = _scalars(field.annotation, list(field.metadata))
    word = text.strip()
    if "text" in kinds:
        return text
    if "bool" in kinds and word.lower() in _TRUTH:
        return _TRUTH[word.lower()]
    if "int" in kinds and re.fullmatch(r"[+-]?\d+", word):
        return int(word)
    if "float" in kinds:
        with contextlib.suppress(ValueError):
            return float(word)
    return text


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


_SECRET_KEYS = frozenset({"env", "headers", "password", "secret", "token", "url", "webhook"})
_SECRET_KEYS |= {"ping", "address"}
"""Keys whose values may be secrets (a URL may hold a password or a token): an error under
one of them never shows the value it refused."""


def _shown(loc: tuple[int | str, ...], value: object) -> str | None:
    """``value`` as an error about ``loc`` may show it; None when it must not be shown."""
    if not isinstance(value, str | int | float | bool):
        return None
    if _SECRET_KEYS.intersection(p for p in loc if isinstance(p, str)):
        return None
    if isinstance(value, str) and ("://" in value or re.search(r"[^@\s]@", value)):
        return None  # an address may carry a user, a password or a token
    return repr(value)


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
            shown = _shown(tuple(item["loc"]), value)
            if shown is not None and shown not in message:
                message += f" (got {shown})"
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
    """``kind``'s fields, each optional, with their own checks (types, bounds, field
    validators) but not the checks of a whole job (a backup's source, a logship's paths):
    validates the part of [defaults] that applies to ``kind``."""
    fields: dict[str, Any] = {}
    for name, info in kind.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[annotation, *info.metadata]
        fields[name] = (annotation | None, None)
    validators: dict[str, Any] = {
        name: field_validator(*found.info.fields, mode=found.info.mode)(
            classmethod(found.func.__func__)  # type: ignore[attr-defined]  # a bound classmethod
        )
        for name, found in kind.__pydantic_decorators__.field_validators.items()
    }
    return create_model(
        f"{kind.__name__}Defaults",
        __config__=kind.model_config,
        __validators__=validators,
        **fields,
    )


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
    for kind in KINDS.values():
        part = {k: v for k, v in defaults.items() if k in kind.model_fields and k not in bad}
        try:
            _defaults_model(kind).model_validate(part)
        except ValidationError as e:
            errors.extend(_messages(e, "defaults"))
            # each key is judged once: a later kind, or a job, does not report it again
            bad.update(str(item["loc"][0]) for item in e.errors() if item["loc"])
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
    if not isinstance(expression, str) or not isinstance(zone, str) or not expression:
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
    known = len(errors)
    schedule = _schedule_of(where, merged, errors)
    try:
        job = kind.model_validate(merged)
    except ValidationError as e:
        errors.extend(_messages(e, where))
        return None
    if schedule is None:
        if len(errors) == known:  # never drop a job without saying why
            errors.append(f"{where}.schedule: cannot be read")
        return None
    if not isinstance(job, Job):  # the registry and the union grow together
        errors.append(f"{where}.kind: kind {kind_name!r} is registered but not in the Job union")
        return None
    return JobEntry(name=name, job=job, schedule=schedule)


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
    if len(raw.get("jobs", {})) > MAX_JOBS:
        raise ConfigError([f"jobs: {len(raw['jobs'])} jobs; at most {MAX_JOBS} are allowed"])
    entries: dict[str, JobEntry] = {}
    for name, table in raw.get("jobs", {}).items():
        entry = _load_job(name, table, defaults, errors)
        if entry is not None:
            entries[name] = entry
    if errors or daemon is None:
        raise ConfigError(errors)
    return Config(path=path, daemon=daemon, jobs=entries)
