"""The jobs' tables: ``[defaults]`` checked key by key, merged into each ``[jobs.NAME]``,
which the model its ``kind`` names validates into a ``JobEntry`` (with its schedule)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError, create_model, field_validator

from jobs.base import CHAIN_KEYS, BaseJob, NotifySpec, name_is_valid
from jobs.compact import compact
from jobs.kinds import KINDS, Job
from scheduler.channels import url_problem
from scheduler.schedule import Schedule, ScheduleError, parse_schedule
from scheduler.settings.messages import closest, did_you_mean, error_lines
from scheduler.settings.sources import job_fields
from scheduler.settings.walk import is_model, is_union, members, unwrap

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scheduler.engine import ContainerInfo

MERGED_TABLES = frozenset({"env", "labels", "notify", "output"})
"""Keys whose tables merge key by key with ``[defaults]`` instead of replacing it."""


@dataclass(frozen=True, slots=True)
class JobEntry:
    """One configured job with its parsed schedule; a label job's, with the container that
    declared it (the one it acts on; not compared: its state changes, the job does not)."""

    name: str
    job: Job
    schedule: Schedule
    container: ContainerInfo | None = field(default=None, compare=False)


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
    model = create_model(
        f"{kind.__name__}Defaults",
        __config__=kind.model_config,
        __validators__=validators,
        **fields,
    )
    model.KIND = kind.KIND  # type: ignore[attr-defined]  # what a kind's field checks may read
    return model


def check_defaults(defaults: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    """The valid part of [defaults]; problems go to ``errors``."""
    known = job_fields()
    bad: set[str] = set()
    for key in defaults:
        if key == "kind":
            errors.append("defaults.kind: a job's kind cannot have a default")
            bad.add(key)
        elif key in CHAIN_KEYS:
            errors.append(
                f"defaults.{key}: chains cannot have a default (every job, the chained ones "
                f"too, would start them): set {key} in each job that chains"
            )
            bad.add(key)
        elif key not in known:
            errors.append(
                f"defaults.{key}: unknown key (no job kind has it){did_you_mean(key, known)}"
            )
            bad.add(key)
    # A key of two kinds whose values differ (rotate's mode, a service job's): a value one
    # kind declines (takes_default) is its default only of the kind that accepts it.
    accepted: set[str] = set()
    declined: dict[str, type[BaseJob]] = {}
    for kind in KINDS.values():
        part = {k: v for k, v in defaults.items() if k in kind.model_fields and k not in bad}
        part = {k: v for k, v in part.items() if not _declines(kind, k, defaults, declined)}
        if not part:  # nothing to check (every field is optional): its model is not built
            continue
        try:
            _defaults_model(kind).model_validate(part)
        except ValidationError as e:
            errors.extend(error_lines(e, "defaults", _defaults_model(kind)))
            # each key is judged once: a later kind, or a job, does not report it again
            bad.update(str(item["loc"][0]) for item in e.errors() if item["loc"])
        accepted.update(k for k in part if k not in bad)
    for key, kind in declined.items():
        if key not in accepted and key not in bad:  # no kind takes its value: it is wrong
            errors.extend(_value_errors(kind, key, defaults[key]))
            bad.add(key)
    return {k: v for k, v in defaults.items() if k not in bad}


def _value_errors(kind: type[BaseJob], key: str, value: object) -> list[str]:
    """What ``kind`` says of [defaults]' ``key`` set to ``value``."""
    try:
        _defaults_model(kind).model_validate({key: value})
    except ValidationError as e:
        return error_lines(e, "defaults", _defaults_model(kind))
    return []


def takes_value(kind: type[BaseJob], key: str, value: object) -> bool:
    """Whether [defaults]' ``key`` with ``value`` is ``kind``'s default at all: not a value
    its field of fixed choices does not have (a key of two kinds, each with its own
    choices — rotate's ``mode``, a service job's — is a default of the kind whose choice it
    is), nor a table for a field that takes none or a text for a field that takes only
    tables (the signal kind's ``signal`` is a name, rotate's a table); else always (an
    invalid value is then [defaults]' error)."""
    annotation = kind.model_fields[key].annotation
    if get_origin(annotation) is Literal:
        return value in get_args(annotation)
    table, other = _shapes(annotation)
    return table if isinstance(value, dict) else other or value is None


def _shapes(tp: object) -> tuple[bool, bool]:
    """Whether a key of type ``tp`` takes a table (a model, a dict), and whether it takes
    a value that is neither a table nor None."""
    tp = unwrap(tp)
    if is_union(tp):
        parts = [_shapes(m) for m in members(tp)]
        return any(t for t, _ in parts), any(o for _, o in parts)
    if tp is Any:
        return True, True
    table = is_model(tp) or tp is dict or get_origin(tp) is dict
    return table, not table


def _declines(
    kind: type[BaseJob], key: str, defaults: Mapping[str, Any], declined: dict[str, Any]
) -> bool:
    """Whether ``kind`` declines [defaults]' ``key`` by its value alone, whatever a job's
    table holds (kept in ``declined``, the first such kind by key)."""
    if takes_value(kind, key, defaults[key]):
        return False
    declined.setdefault(key, kind)
    return True


def _with_defaults(
    table: Mapping[str, Any], kind: type[BaseJob], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    merged = {
        k: v
        for k, v in defaults.items()
        if k in kind.model_fields
        and takes_value(kind, k, v)
        and kind.takes_default(k, table, defaults)
    }
    for key, value in table.items():
        base = merged.get(key)
        if key in MERGED_TABLES and isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def share_equal(model: BaseModel, shared: dict[object, Any]) -> None:
    """``model`` (a job, as validated) holding, instead of its own, the objects equal to
    them that ``shared`` holds (added when new): the empty lists and tables it holds (a
    default is not held at all, ``compact``: these were given where the default is not
    empty) and its set of the keys given (~220 bytes). Nothing changes them: a job is
    frozen and never edited in place (``model_copy`` copies the set before it adds to it)."""
    values = model.__dict__
    for key, value in values.items():
        if not value and type(value) in (list, dict):
            values[key] = shared.setdefault(type(value), value)
    given = model.__pydantic_fields_set__
    object.__setattr__(model, "__pydantic_fields_set__", shared.setdefault(frozenset(given), given))


def _schedule_of(where: str, table: Mapping[str, Any], errors: list[str]) -> Schedule | None:
    """Parse the schedule even when other keys are wrong, so every error is reported at once."""
    expression, zone = table.get("schedule"), table.get("timezone", "UTC")
    if not isinstance(expression, str) or not isinstance(zone, str) or not expression:
        return None  # the model's validation reports these
    try:
        return parse_schedule(expression, zone)
    except ScheduleError as e:
        errors.append(f"{where}.schedule: {e}")
    except (ValueError, KeyError):  # an unknown time zone: reported by the model's validation
        try:
            parse_schedule(expression)  # the schedule's own errors still go with it
        except ScheduleError as e:
            errors.append(f"{where}.schedule: {e}")
        except (ValueError, KeyError):
            pass
    return None


class _Given:
    """A field of ``_unheld(kind)``'s jobs: the value in the job's ``__dict__``, else
    AttributeError — not the kind's default, which ``kind`` holds as a class attribute."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, job: object, owner: type | None = None) -> object:
        if job is None:
            return self
        try:
            return job.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None


@cache
def _unheld(kind: type[BaseJob]) -> type[BaseJob]:
    """``kind`` with its fields read from a job's own values only: a rule of the kind run
    on such a job fails to read a key taken out of it (a broken one) instead of reading
    the default (``jobs/compact.py``)."""
    unheld: type[BaseJob] = create_model(kind.__name__, __base__=kind, __module__=kind.__module__)
    for name in kind.HELD_DEFAULTS:
        setattr(unheld, name, _Given(name))
    return unheld


def _whole(line: str, where: str) -> bool:
    """``line`` is about the whole job (a rule of its kind), not one of its keys."""
    return line.startswith(f"{where}: ")


def _rule_problems(
    kind: type[BaseJob], table: Mapping[str, Any], error: ValidationError
) -> list[str]:
    """What the kind's whole-job rules (its model validators) say about ``table``, whose
    validation failed with ``error``: each rule is checked on the keys that are valid, so
    that its problem shows together with the keys' errors; a rule that reads a key with
    an error (or a key that an unknown key looks like a misspelling of) is skipped."""
    fields = set(kind.model_fields)
    broken = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
    broken |= {near for key in table if key not in fields if (near := closest(key, fields))}
    good = {k: v for k, v in table.items() if k in fields and k not in broken}
    try:
        values = _defaults_model(kind).model_validate(good)
    except Exception:  # not expected (each key was valid on its own): no rule is judged
        return []
    job = _unheld(kind).model_construct(**{k: getattr(values, k) for k in good})
    for name in broken & fields:
        job.__dict__.pop(name, None)  # reading it raises AttributeError: the rule is skipped
    problems = []
    for rule in kind.__pydantic_decorators__.model_validators.values():
        if rule.info.mode != "after":
            continue
        try:
            rule.func(job)
        except ValueError as e:
            problems.append(str(e))
        except Exception:  # noqa: S112 - a rule that needs a broken key: skipped
            continue
    return problems


def load_job(  # noqa: PLR0911 - one early return per kind of problem
    name: str, table: Mapping[str, Any], defaults: Mapping[str, Any], errors: list[str]
) -> JobEntry | None:
    """``[jobs.<name>]`` with its defaults, validated by its kind's model; None when it is
    refused (the reasons go to ``errors``)."""
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
        near = did_you_mean(str(kind_name), KINDS)
        errors.append(
            f"{where}.kind: unknown kind {kind_name!r} (one of: {', '.join(KINDS)}){near}"
        )
        return None
    merged = _with_defaults(table, kind, defaults)
    known = len(errors)
    schedule = _schedule_of(where, merged, errors)
    try:
        job = kind.model_validate(merged)
    except ValidationError as e:
        lines = error_lines(e, where, kind)
        rules = [f"{where}: {problem}" for problem in _rule_problems(kind, merged, e)]
        keys = [line for line in lines if not _whole(line, where)]
        errors.extend([*keys, *rules] if keys or rules else lines)  # never without a reason
        errors.extend(_url_problems(where, merged.get("notify")))  # every error at once
        return None
    if schedule is None:
        if len(errors) == known:  # never drop a job without saying why
            errors.append(f"{where}.schedule: cannot be read")
        return None
    if not isinstance(job, Job):  # the registry and the union grow together
        errors.append(f"{where}.kind: kind {kind_name!r} is registered but not in the Job union")
        return None
    problems = _url_problems(where, job.notify)
    if problems:
        errors.extend(problems)
        return None
    compact(job)
    return JobEntry(name=name, job=job, schedule=schedule)


def _url_problems(where: str, notify: object) -> list[str]:
    """Of ``notify`` (a job's NotifySpec, or its table as given), each URL given as text
    with a scheme that Apprise cannot use; named by its index and scheme, never shown. A
    URL from a secret is checked when it is sent."""
    urls = notify.urls if isinstance(notify, NotifySpec) else None
    if isinstance(notify, dict):
        urls = notify.get("urls")
    found = []
    for index, url in enumerate(urls if isinstance(urls, list) else ()):
        problem = url_problem(url) if isinstance(url, str) and "://" in url else None
        if problem is not None:
            found.append(f"{where}.notify.urls[{index}]: {problem}")
    return found
