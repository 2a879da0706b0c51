"""Validation errors as the config's error lines: ``where: what`` (``jobs.db-backup.schedule:
…``), in the words of the file, never showing a value that may be a secret.

Pydantic's own errors name its machinery: a union's member in the location
(``sink.syslog.address``, ``env.A.EnvSecret.env``), class names ("instance of
SignalSpec"), tags and discriminators. Each error's location is walked along the model
it came from: a union's member is dropped from the location (the user never wrote it),
the errors of a union's members become the errors of the member the value was meant
for (or one line saying what the key takes), and each kind of error is said in the
config's words (a table, a list, a string, true or false), with "did you mean" for a
near miss."""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args, get_origin

from jobs.base import BaseJob
from jobs.kinds import KINDS
from scheduler.settings.walk import (
    Loc,
    Walked,
    describe,
    discriminator,
    is_model,
    is_union,
    members,
    tags,
    unwrap,
    walk,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pydantic import BaseModel, ValidationError
    from pydantic_core import ErrorDetails


def where_of(prefix: str, loc: Loc) -> str:
    """``prefix`` and ``loc`` as the config's dotted path (``jobs.a.env.KEY``, ``x[0]``)."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "config"


_SECRET_KEYS = frozenset({"env", "headers", "password", "secret", "token", "url", "webhook"})
_SECRET_KEYS |= {"ping", "address", "key", "access_key_id", "secret_access_key", "urls"}
"""Keys whose values may be secrets (a URL may hold a password or a token): an error under
one of them never shows the value it refused."""


def _shown(loc: Loc, value: object) -> str | None:
    """``value`` as an error about ``loc`` may show it; None when it must not be shown."""
    if not isinstance(value, str | int | float | bool):
        return None
    if _SECRET_KEYS.intersection(p for p in loc if isinstance(p, str)):
        return None
    if isinstance(value, str) and ("://" in value or re.search(r"[^@\s]@", value)):
        return None  # an address may carry a user, a password or a token
    if isinstance(value, bool):
        return "true" if value else "false"  # as the file writes it
    return repr(value)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` ``word`` is most likely a misspelling of, or None: the same
    word in another case or without ``_``, a close spelling (difflib), or a choice the word
    starts with (``enviroment`` for ``env``)."""
    known = [c for c in choices if c != word]
    plain = {c.lower().replace("_", "").replace("-", ""): c for c in known}
    key = word.lower().replace("_", "").replace("-", "")
    if key in plain:
        return plain[key]
    for cutoff in (0.8, 0.6):
        found = difflib.get_close_matches(key, list(plain), n=1, cutoff=cutoff)
        if found:
            return plain[found[0]]
    starts = [c for c in plain if len(c) >= 3 and key.startswith(c)]  # noqa: PLR2004
    return plain[max(starts, key=len)] if starts else None


def shown_value(loc: Loc, value: object) -> str | None:
    """``value`` as a message about the key at ``loc`` may show it (quoted); None when it
    may hold a secret (a key such as ``password`` or ``url``, an address with a user)."""
    return _shown(loc, value)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean `x`?)"`` for the closest of ``choices`` to ``word``, or ``""``."""
    found = closest(word, choices)
    return f" (did you mean `{found}`?)" if found is not None else ""


_TYPE_WORDS = {
    "string_type": "a string",
    "str_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dataclass_type": "a table",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "path_type": "a path (a string)",
}
"""Errors that say the value is of the wrong type, and what the key takes."""
_UNQUOTED = {"int_type", "int_parsing", "float_type", "float_parsing", "bool_type", "bool_parsing"}


def _choices(tp: object, expected: str) -> list[str]:
    """A literal's or an enum's values: from the type, else from pydantic's listing."""
    tp = unwrap(tp)
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [str(m.value) for m in tp]
    return re.findall(r"'([^']*)'", expected)


def _type_message(item: ErrorDetails, walked: Walked, shown: str | None) -> str:
    kind, value = item["type"], item.get("input")
    expected = _TYPE_WORDS[kind]
    tp = walked.tp
    if kind in ("model_type", "model_attributes_type", "dict_type") and is_model(tp):
        expected = describe(tp)
    if is_union(tp) and discriminator(tp) is not None:  # a sink's table given a plain value
        return _tagged_table(tp, value, shown)
    message = f"expected {expected}"
    if expected.startswith("{"):
        message = f"expected a table: {expected}"
    quoted = kind in _UNQUOTED and isinstance(value, str) and _unquoted(value, expected)
    if shown is not None:
        message += f" (got {shown}"
        if quoted:
            message += ": write it without quotes"
        elif kind == "list_type":
            message += f": a list is written [{shown}]"
        message += ")"
    elif quoted:
        message += " (got a string: write it without quotes)"
    return message


def _tagged_table(union: object, value: object, shown: str | None) -> str:
    """What a key that takes one of several tables told apart by a key (a sink, by its
    ``type``) says to a plain value: the key and its values; for one of them, the table."""
    key = discriminator(union)
    names = _tag_names(union)
    message = f"expected a table with a {key} key (one of: {', '.join(names)})"
    if shown is not None and value in names:
        return f"{message} (got {shown}: write {{ {key} = {shown}, … }})"
    return f"{message} (got {shown})" if shown is not None else message


def _tag_names(union: object) -> list[str]:
    """The values of a discriminated union's key, in the order of its members."""
    return [t for m in members(union) if is_model(m) for t in sorted(tags(m))]


def _unquoted(text: str, expected: str) -> bool:
    """``text`` is what the key takes, but in quotes (``"3"``, ``"true"``)."""
    word = text.strip().lower()
    if expected == "true or false":
        return word in ("true", "false")
    return (
        re.fullmatch(r"[+-]?\d+" if "whole" in expected else r"[+-]?\d+(\.\d+)?", word) is not None
    )


_BOUNDS = {
    "greater_than": ("must be more than {gt}", "gt"),
    "greater_than_equal": ("must be at least {ge}", "ge"),
    "less_than": ("must be less than {lt}", "lt"),
    "less_than_equal": ("must be at most {le}", "le"),
    "string_too_long": ("expected at most {max_length} character(s)", "max_length"),
    "too_short": ("expected at least {min_length} item(s)", "min_length"),
    "too_long": ("expected at most {max_length} item(s)", "max_length"),
    "string_pattern_mismatch": ("expected text matching the pattern '{pattern}'", "pattern"),
}
"""Errors of a value's bounds, said in the file's words (pydantic's ``ctx`` fills them)."""


def _bound_message(item: ErrorDetails) -> str | None:
    ctx = item.get("ctx", {})
    if item["type"] == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"expected at least {least} characters"
    if item["type"] in _BOUNDS:
        text, key = _BOUNDS[item["type"]]
        if key in ctx:
            return text.format(**{key: ctx[key]})
    return None


def _unknown_key(key: str, parent: type[BaseModel] | None) -> str:
    """``unknown key`` and the key meant: one of ``parent``'s (the table the key is in); for
    a job, a key of another kind is named as such."""
    if parent is None:
        return "unknown key"
    if issubclass(parent, BaseJob):
        owners = [name for name, kind in KINDS.items() if key in kind.model_fields]
        if owners:
            return (
                f"unknown key: `{key}` is a key of kind {' and '.join(owners)}, "
                f"not of kind {parent.KIND}"
            )
        near = closest(key, parent.model_fields)
        others = {name: kind for name, kind in KINDS.items() if name != parent.KIND}
        elsewhere = closest(key, {f for kind in others.values() for f in kind.model_fields})
        if near is None and elsewhere is not None:
            owners = [name for name, kind in others.items() if elsewhere in kind.model_fields]
            return (
                f"unknown key (did you mean `{elsewhere}`? that is a key of kind "
                f"{' and '.join(owners)}, not of kind {parent.KIND})"
            )
    return "unknown key" + did_you_mean(key, parent.model_fields)


def _tag_message(item: ErrorDetails, walked: Walked) -> tuple[Loc, str]:
    """A discriminated union (a sink's or a remote's ``type``) given no type or an unknown
    one: said about the ``type`` key, with the types there are."""
    ctx, loc = item.get("ctx", {}), walked.clean
    key = str(ctx.get("discriminator", "type")).strip("'")
    names = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
    if not names and is_union(walked.tp):
        names = _tag_names(walked.tp)
    listing = f"one of: {', '.join(names)}"
    if item["type"] == "union_tag_not_found":
        return (*loc, key), f"required key is missing ({listing})"
    tag = str(ctx.get("tag", ""))
    what = f"{loc[-1]} {key}" if loc and isinstance(loc[-1], str) else key
    return (*loc, key), f"unknown {what} {tag!r} ({listing}){did_you_mean(tag, names)}"


def _choice_message(item: ErrorDetails, walked: Walked, shown: str | None) -> str:
    """A value that is not one of a key's choices: the choices, and the nearest one."""
    expected = str(item.get("ctx", {}).get("expected", ""))
    choices = _choices(walked.tp, expected)
    if not choices:
        return f"expected {expected}"
    said = ", ".join(repr(c) for c in choices[:-1])
    message = f"expected {said} or {choices[-1]!r}" if said else f"expected {choices[-1]!r}"
    if shown is not None:
        value = item.get("input")
        near = closest(value, choices) if isinstance(value, str) else None
        message += f" (got {shown}" + (f"; did you mean `{near}`?)" if near else ")")
    return message


def _message(item: ErrorDetails, walked: Walked) -> tuple[Loc, str]:
    """The clean location of one error and what it says."""
    kind, loc = item["type"], walked.clean
    shown = _shown((*tuple(item["loc"]), *loc), item.get("input"))
    if kind == "extra_forbidden":
        return loc, _unknown_key(str(loc[-1]), walked.parent) if loc else "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_message(item, walked)
    if kind in _TYPE_WORDS:
        return loc, _type_message(item, walked, shown)
    if kind in ("literal_error", "enum"):
        return loc, _choice_message(item, walked, shown)
    bound = _bound_message(item)
    message = bound if bound is not None else item["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if shown is not None and shown not in message:
        message += f" (got {shown})"
    return loc, message


# --- unions: the member the value was meant for -----------------------------------------


@dataclass
class _Union:
    """The errors of one union's members, by member (pydantic's location part)."""

    loc: Loc
    union: object
    items: dict[str, list[tuple[ErrorDetails, Walked]]] = field(default_factory=dict)


def _root_mismatch(item: ErrorDetails, walked: Walked) -> bool:
    """The member refused the value for its type alone (a table given to a string)."""
    return not walked.deeper and item["type"] in _TYPE_WORDS


def _union_lines(group: _Union) -> list[tuple[Loc, str]]:
    """One member's errors (the member the value fits), or one line saying what the key
    takes."""
    fitting = {
        label: found
        for label, found in group.items.items()
        if not all(_root_mismatch(item, w) for item, w in found)
    }

    def score(label: str) -> tuple[int, int, int]:
        kinds = [item["type"] for item, _ in fitting[label]]
        return kinds.count("extra_forbidden"), kinds.count("missing"), len(kinds)

    ranked = sorted(fitting, key=score)
    best_is_clear = ranked and (len(ranked) == 1 or score(ranked[0]) < score(ranked[1]))
    if best_is_clear and score(ranked[0])[0] == 0:
        return [_message(item, walked) for item, walked in fitting[ranked[0]]]
    message = f"expected {describe(group.union)}"
    extra = {
        str(w.clean[-1])
        for found in fitting.values()
        for i, w in found
        if i["type"] == "extra_forbidden"
    }
    # A member refuses the keys of the others: only a key that is in no member is unknown.
    keys = {k for m in members(group.union) if is_model(m) for k in m.model_fields}
    unknown = sorted(extra - keys)
    mixed = sorted(extra & keys)
    if unknown:
        for key in unknown:
            near = closest(key, keys)
            message += f"; unknown key `{key}`" + (f", did you mean `{near}`?" if near else "")
    elif len(mixed) > 1:
        together = " and ".join(f"`{key}`" for key in mixed)
        message += f"; {together} are keys of different forms: write one of them"
    else:
        mismatch = next(
            (
                item
                for found in group.items.values()
                for item, w in found
                if _root_mismatch(item, w)
            ),
            None,
        )
        shown = None if mismatch is None else _shown(tuple(mismatch["loc"]), mismatch.get("input"))
        if shown is not None:
            message += f" (got {shown})"
    return [(group.loc, message)]


def error_lines(error: ValidationError, prefix: str, root: object = None) -> list[str]:
    """One ``where: what`` line per problem pydantic found in a value of type ``root`` (a
    model; None: locations taken as they are), ``where`` under ``prefix``."""
    found: list[tuple[Loc, str] | _Union] = []
    unions: dict[Loc, _Union] = {}
    for item in error.errors(include_url=False):
        walked = walk(root, tuple(item["loc"])) if root is not None else Walked(tuple(item["loc"]))
        if walked.union is None or walked.label is None:
            found.append(_message(item, walked))
            continue
        group = unions.get(walked.union)
        if group is None:
            group = unions[walked.union] = _Union(walked.union, walked.union_type)
            found.append(group)
        group.items.setdefault(walked.label, []).append((item, walked))
    lines = []
    for entry in found:
        for loc, message in _union_lines(entry) if isinstance(entry, _Union) else [entry]:
            lines.append(f"{where_of(prefix, loc)}: {message}")
    return list(dict.fromkeys(lines))
