"""The config's sources: the TOML file and the strict ``CRONTAINER_*`` environment, merged
into plain tables (pydantic-settings); environment text converted by the type of the key
it sets."""

from __future__ import annotations

import contextlib
import json
import re
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BeforeValidator, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from jobs.kinds import KINDS
from scheduler.locations import ENV_CONFIG
from scheduler.settings.daemon import DaemonSettings
from scheduler.settings.messages import closest, did_you_mean, error_lines
from scheduler.settings.tables import toml_tables

if TYPE_CHECKING:
    from collections.abc import Mapping
    from importlib.resources.abc import Traversable
    from pathlib import Path

    from pydantic.fields import FieldInfo

ENV_PREFIX = "CRONTAINER_"


def job_fields() -> set[str]:
    """The keys of any job kind but ``kind``: what ``[defaults]`` may hold."""
    return {name for kind in KINDS.values() for name in kind.model_fields if name != "kind"}


class _TomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source, the file's tables read by ``toml_tables``."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        with file_path.open("rb") as file:
            return toml_tables(file.read().decode())


class _StrictEnvSource(PydanticBaseSettingsSource):
    """``CRONTAINER_DAEMON__KEY`` and ``CRONTAINER_DEFAULTS__KEY``; anything else is an error."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str],
        errors: list[str],
        origins: dict[str, str],
    ) -> None:
        super().__init__(settings_cls)
        self._environ = environ
        self._errors = errors
        self._origins = origins

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ANN401, ARG002
        return None, field_name, False  # unused: __call__ builds the whole dict

    def __call__(self) -> dict[str, Any]:
        known = {"daemon": set(DaemonSettings.model_fields), "defaults": job_fields()}
        found: dict[str, dict[str, Any]] = {}
        for var, value in sorted(self._environ.items()):
            upper = var.upper()
            if not upper.startswith(ENV_PREFIX) or upper == ENV_CONFIG:
                continue
            section, sep, key = upper[len(ENV_PREFIX) :].lower().partition("__")
            if not sep or section not in known or key not in known[section]:
                self._errors.append(f"{var}: unknown environment variable{_near(upper, known)}")
                continue
            try:
                parsed = json.loads(value) if value.lstrip()[:1] in ("[", "{") else value
            except json.JSONDecodeError as e:
                self._errors.append(f"{var}: a list or table value must be JSON: {e}")
                continue
            if isinstance(parsed, str):
                parsed = _from_text(parsed, _field_of(section, key))
            found.setdefault(section, {})[key] = parsed
            self._origins[f"{section}.{key}"] = var
        return found


def _near(var: str, known: Mapping[str, set[str]]) -> str:
    """What to say after an unknown ``CRONTAINER_*`` variable: the variable meant, if one is
    close, else the forms a variable takes."""
    names = [ENV_CONFIG] + [
        f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
        for section, keys in known.items()
        for key in keys
    ]
    tails = {name.removeprefix(ENV_PREFIX): name for name in names}
    near = closest(var.removeprefix(ENV_PREFIX), tails)
    if near is not None:
        return f" (did you mean `{tails[near]}`?)"
    return (
        " (use CRONTAINER_DAEMON__<key> or CRONTAINER_DEFAULTS__<key> with a key of [daemon] "
        f"or [defaults]; {ENV_CONFIG} names the config file)"
    )


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


SECTIONS = ("daemon", "defaults", "jobs")
"""The config's top-level tables."""


def read_sources(
    path: Path, environ: Mapping[str, str], errors: list[str], origins: dict[str, str] | None = None
) -> dict[str, Any]:
    """Merge the TOML file and the environment into one plain dict: the top-level tables
    that are tables (a key that is not one of them, or not a table, is an error in
    ``errors`` and left out, so that the rest is still checked). ``origins`` gets the
    variable that set each ``section.key`` from the environment."""
    from_env: dict[str, str] = {} if origins is None else origins

    class _Raw(BaseSettings):
        model_config = SettingsConfigDict(extra="allow")
        daemon: Any = {}
        defaults: Any = {}
        jobs: Any = {}

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
                _StrictEnvSource(settings_cls, environ, errors, from_env),
                _TomlSource(settings_cls, toml_file=path),
            )

    try:
        read = _Raw()
    except ValidationError as e:
        errors.extend(error_lines(e, ""))
        return {}
    # the values as read (a model_dump would copy every job's table once more)
    raw = {**read.__dict__, **(read.model_extra or {})}
    tables: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "include":  # files of more jobs: scheduler.settings.includes checks it
            tables[key] = value
        elif key not in SECTIONS:
            errors.append(f"{key}: unknown key{did_you_mean(key, (*SECTIONS, 'include'))}")
        elif not isinstance(value, dict):
            errors.append(f"{key}: expected a table ([{key}])")
        else:
            tables[key] = value
    jobs = tables.get("jobs", {})
    for name in [n for n, table in jobs.items() if not isinstance(table, dict)]:
        hint = ""
        if name in job_fields() or name == "kind":
            hint = f" (a job's keys go in a [jobs.<name>] table; {name} is a key of one)"
        errors.append(f"jobs.{name}: expected a table{hint}")
        del jobs[name]
    return tables
