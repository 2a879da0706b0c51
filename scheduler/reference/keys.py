"""The config's keys, read from the models that validate them: every table, each key's type
in the user's words, its default, its one-line description and an example."""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from jobs.base import BaseJob, EnvSecret, FileSecret, http_url, signal_name
from jobs.containers import ContainerJob
from jobs.kinds import KINDS
from jobs.selectors import check_selector
from jobs.units import parse_duration, parse_size
from scheduler.settings.daemon import DaemonSettings
from scheduler.settings.includes import TopLevel
from scheduler.settings.remotes import TYPES

SECRET = "secret (text, { env = … } or { file = … })"  # noqa: S105 - a type's name
SECRETS = "table of secrets (text, { env = … } or { file = … })"
_PLURAL = {
    "string": "strings",
    "integer": "integers",
    "number": "numbers",
    "table": "tables",
    "container selector": "container selectors",
    "signal name": "signal names",
    "http(s) URL": "http(s) URLs",
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CHECKED = {
    signal_name: "signal name",
    http_url: "http(s) URL",
    check_selector: "container selector",
}
"""Text checked by these validators, named by what it is."""


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a table, as the reference shows it."""

    name: str
    type: str
    default: str
    description: str
    example: str
    info: FieldInfo


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the config file: where it is (``path``, and which of its forms:
    ``qualifier``), what it is, its keys."""

    path: str
    qualifier: str
    intro: str
    model: type[BaseModel]
    names: tuple[str, ...]
    types: tuple[tuple[str, str], ...] = ()
    """Types in words that the model's annotation cannot tell (``kind``: its values)."""

    def rows(self) -> list[Key]:
        """This table's keys, in the order of ``names``."""
        fields = self.model.model_fields
        rows = [key(name, fields[name]) for name in self.names]
        told = dict(self.types)
        return [replace(r, type=told[r.name]) if r.name in told else r for r in rows]


def _annotation(info: FieldInfo) -> Any:  # noqa: ANN401 - any typing form
    """The field's type with its constraints, as declared."""
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def _flat(metadata: typing.Iterable[object]) -> list[object]:
    """Metadata with pydantic's nested FieldInfo (``Field(ge=…)`` inside Annotated) opened."""
    found: list[object] = []
    for item in metadata:
        found.extend(_flat(item.metadata) if isinstance(item, FieldInfo) else [item])
    return found


def _unit(meta: list[object]) -> str | None:
    for item in meta:
        if isinstance(item, BeforeValidator) and item.func is parse_duration:
            return "duration"
        if isinstance(item, BeforeValidator) and item.func is parse_size:
            return "size"
    return None


def _bounds(meta: list[object]) -> str:
    """``at most 1d``, ``1-100``, ``at least 1 entry``: the constraints in words."""
    low = high = None
    words = []
    for item in meta:
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge}"
        elif isinstance(item, annotated_types.Gt):
            words.append(f"more than {item.gt}")
        elif isinstance(item, annotated_types.Le):
            high = f"{item.le:,}"
        elif isinstance(item, annotated_types.MinLen) and item.min_length:
            words.append("not empty")
        elif hasattr(item, "limit") and hasattr(item, "parse"):  # Longest / Largest
            high = f"`{item.limit}`"
    if low is not None and high is not None:
        words.append(f"{low}-{high}")
    elif high is not None:
        words.append(f"at most {high}")
    elif low is not None:
        words.append(f"at least {low}")
    return ", ".join(words)


def _plural(word: str) -> str:
    if word.startswith("one of "):
        return word.removeprefix("one of ")
    if word == SECRET:
        return "secrets (text, { env = … } or { file = … })"
    head, _, rest = word.partition(",")
    return _PLURAL.get(head, head) + ("," + rest if rest else "")


def type_words(tp: Any, meta: list[object] | None = None) -> str:  # noqa: ANN401, C901, PLR0911 - one branch per typing form
    """A type in the user's words: ``duration``, ``list of strings``, ``table``…"""
    meta = list(meta or [])
    origin = get_origin(tp)
    if origin is Annotated:
        base, *more = get_args(tp)
        return type_words(base, meta + _flat(more))
    unit = _unit(meta)
    bounds = _bounds(meta)
    suffix = f", {bounds}" if bounds else ""
    if unit is not None:
        return unit + suffix
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if set(args) == {str, EnvSecret, FileSecret}:
            return SECRET
        if set(args) == {str, FileSecret}:
            return "text or { file = … }"
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
            return "table"
        return " or ".join(type_words(a, meta) for a in args)
    if origin is Literal:
        values = [f"`{v}`" for v in get_args(tp)]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if origin is list:
        return "list of " + _plural(type_words(get_args(tp)[0])) + suffix
    if origin is dict:
        value = type_words(get_args(tp)[1])
        return SECRETS if value == SECRET else "table of " + _plural(value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "table"
    named = [_CHECKED[f] for m in meta if (f := getattr(m, "func", None)) in _CHECKED]
    if named:
        return named[0]
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    return names.get(tp, getattr(tp, "__name__", str(tp))) + suffix


def duration_text(seconds: float) -> str:
    """Seconds as the config writes them: ``30s``, ``10m``, ``24h``, ``500ms``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return "0s" if seconds == 0 else f"{round(seconds * 1000)}ms"


def size_text(size: int) -> str:
    """Bytes as the config writes them: ``16KiB``, ``256MiB``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def toml(value: object) -> str:  # noqa: PLR0911 - one return per TOML form
    """A value written as TOML."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, BaseModel):
        return toml(value.model_dump(exclude_defaults=True))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pairs = (
            f"{k if _BARE_KEY.fullmatch(k) else toml(k)} = {toml(v)}" for k, v in value.items()
        )
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _default_value(info: FieldInfo) -> object:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]  # none of ours takes the data
    return info.default


def default_text(info: FieldInfo) -> str:
    """The default as the reference shows it: ``required``, ``none`` or a TOML value (a
    duration or a size in its own format)."""
    if info.is_required():
        return "required"
    value = _default_value(info)
    if value is None:
        return "none"
    unit = _unit(_flat([*info.metadata, *_inner_metadata(info.annotation)]))
    if unit == "duration" and isinstance(value, int | float):
        return f'"{duration_text(float(value))}"'
    if unit == "size" and isinstance(value, int):
        return f'"{size_text(value)}"' if value else "0"
    return toml(value)


def _inner_metadata(tp: object) -> list[object]:
    """The metadata of the ``Annotated`` inside an optional type."""
    found: list[object] = []
    for arg in get_args(tp):
        if get_origin(arg) is Annotated:
            found.extend(_flat(get_args(arg)[1:]))
    return found


def shows_a_value(info: FieldInfo) -> bool:
    """True when the default is itself an example of the key's form (not required, none,
    empty)."""
    if info.is_required():
        return False
    value = _default_value(info)
    return value not in (None, "", [], {})


def key(name: str, info: FieldInfo) -> Key:
    """The reference's row of one field."""
    example = toml(info.examples[0]) if info.examples else ""
    return Key(
        name,
        type_words(_annotation(info)),
        default_text(info),
        " ".join((info.description or "").split()),
        example,
        info,
    )


def intro(model: type[BaseModel]) -> str:
    """The model's docstring, first paragraph, with reST ``code`` as Markdown."""
    text = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0]
    return " ".join(text.split()).replace("``", "`")


def _models_in(tp: object) -> list[type[BaseModel]]:
    """The config models a key's type holds (secrets' forms apart)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [] if tp in (EnvSecret, FileSecret) else [tp]
    found: list[type[BaseModel]] = []
    for arg in get_args(tp):
        found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _nested(parent: str, model: type[BaseModel], names: typing.Iterable[str]) -> list[Table]:
    """Tables under ``parent`` for the keys of ``names`` that hold tables: one per model,
    ``[[…]]`` for a list of them, one per ``type`` of a union."""
    found: list[Table] = []
    for name in names:
        info = model.model_fields[name]
        tp = info.annotation
        many = get_origin(tp) is list
        members = _models_in(tp)
        if get_origin(tp) is dict:  # [daemon.remotes.<name>]: a table of tables
            continue
        for member in members:
            where = f"{parent}.{name}"
            path = f"[[{where}]]" if many else f"[{where}]"
            kind = member.model_fields.get("type")
            qualifier = ""
            if kind is not None and len(members) > 1:
                qualifier = f"type {get_args(kind.annotation)[0]}"
            found.append(Table(path, qualifier, intro(member), member, _type_first(member)))
            found.extend(_nested(where, member, member.model_fields))
    return found


def _type_first(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's fields, ``type`` (which form of a table it is) first."""
    names = tuple(model.model_fields)
    return tuple(sorted(names, key=lambda name: name != "type"))


def _own(model: type[BaseModel], base: type[BaseModel]) -> tuple[str, ...]:
    """Fields of ``model`` that ``base`` does not have, or declares otherwise: those the
    class declares itself first, then those of its other bases."""
    mine, theirs = model.model_fields, base.model_fields
    own = [n for n, i in mine.items() if n not in theirs or repr(theirs[n]) != repr(i)]
    declared = vars(model).get("__annotations__", {})
    return tuple(sorted(own, key=lambda name: name not in declared))


def daemon_tables() -> list[Table]:
    """``[daemon]`` and its remotes, one table per type."""
    daemon = DaemonSettings
    found = [Table("[daemon]", "", intro(daemon), daemon, tuple(daemon.model_fields))]
    found += _nested("daemon", daemon, daemon.model_fields)
    for kind, remote in TYPES.items():
        found.append(
            Table(
                "[daemon.remotes.<name>]",
                f"type {kind}",
                intro(remote),
                remote,
                _type_first(remote),
            )
        )
    return found


def job_tables() -> list[Table]:
    """``[jobs.<name>]``: the keys of every kind, of the kinds that create containers, of
    each kind; then the tables inside a job (notify, sink, encrypt…)."""
    common = tuple(BaseJob.model_fields)
    kinds = ("kind", "one of " + ", ".join(f"`{k}`" for k in KINDS))
    found = [Table("[jobs.<name>]", "every kind", intro(BaseJob), BaseJob, common, (kinds,))]
    containers = ", ".join(f"`{k}`" for k, m in KINDS.items() if issubclass(m, ContainerJob))
    found.append(
        Table(
            "[jobs.<name>]",
            "kinds that create containers",
            f"{intro(ContainerJob)} Kinds {containers}.",
            ContainerJob,
            _own(ContainerJob, BaseJob),
        )
    )
    nested = _nested("jobs.<name>", BaseJob, common)
    for kind, model in KINDS.items():
        base = ContainerJob if issubclass(model, ContainerJob) else BaseJob
        own = tuple(n for n in _own(model, base) if n != "kind")
        found.append(Table("[jobs.<name>]", f"kind {kind}", intro(model), model, own))
        nested += _nested("jobs.<name>", model, own)
    return found + _merged(nested)


def _merged(found: list[Table]) -> list[Table]:
    """One table per model: the paths of a model found under several keys joined."""
    paths: dict[type[BaseModel], list[str]] = {}
    for table in found:
        if table.path not in paths.setdefault(table.model, []):
            paths[table.model].append(table.path)
    first = {t.model: t for t in reversed(found)}
    return [
        Table(" and ".join(paths[m]), first[m].qualifier, first[m].intro, m, first[m].names)
        for m in paths
    ]


def top_table() -> Table:
    """The keys above every table (``include``)."""
    return Table("top level", "", intro(TopLevel), TopLevel, tuple(TopLevel.model_fields))


def tables() -> list[Table]:
    """Every table of the config file, in the order the reference shows them."""
    return [top_table(), *daemon_tables(), *job_tables()]


def secret_forms() -> list[Table]:
    """The two ways a secret is given by reference."""
    return [
        Table("{ env = … }", "", intro(EnvSecret), EnvSecret, tuple(EnvSecret.model_fields)),
        Table("{ file = … }", "", intro(FileSecret), FileSecret, tuple(FileSecret.model_fields)),
    ]
