"""A validation error's location walked along the model it came from: the path as the user
wrote it (pydantic puts a union's member in the location: ``sink.syslog.address``,
``env.A.EnvSecret.env``), the union crossed on the way, the type found at the end — and
what a type takes, in the words of the file (``describe``)."""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Annotated, Literal, TypeGuard, Union, get_args, get_origin

from pydantic import BaseModel

Loc = tuple[int | str, ...]


def unwrap(tp: object) -> object:
    """``tp`` without ``Annotated`` and without ``None`` in a union (pydantic adds no
    location part for an optional value)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if is_union(tp):
            members = [m for m in get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def is_union(tp: object) -> bool:
    """``tp`` is a union (``X | Y``)."""
    return get_origin(tp) in (Union, types.UnionType)


def is_model(tp: object) -> TypeGuard[type[BaseModel]]:
    """``tp`` is a model class: a table of the file."""
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def members(union: object) -> list[object]:
    """A union's members but ``None``, unwrapped."""
    return [unwrap(m) for m in get_args(union) if m is not type(None)]


def tags(model: type[BaseModel]) -> set[str]:
    """The values of ``model``'s literal keys (a discriminated union's tags)."""
    found: set[str] = set()
    for info in model.model_fields.values():
        if get_origin(unwrap(info.annotation)) is Literal:
            found.update(str(a) for a in get_args(unwrap(info.annotation)))
    return found


def discriminator(union: object) -> str | None:
    """The key that tells a union's tables apart (a literal key every member has), or None."""
    keys: set[str] | None = None
    for member in members(union):
        if not is_model(member):
            return None
        literal = {
            name
            for name, info in member.model_fields.items()
            if get_origin(unwrap(info.annotation)) is Literal
        }
        keys = literal if keys is None else keys & literal
    return min(keys) if keys else None


def _field_type(model: type[BaseModel], name: str) -> object:
    info = model.model_fields[name]
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def _member_of(choices: list[object], label: str) -> object:
    """The member of a union that pydantic's location part ``label`` names, or None."""
    for member in choices:
        if is_model(member) and (member.__name__ == label or label in tags(member)):
            return member
    checked = re.fullmatch(r"function-[a-z]+\[.*, (\w+)\]", label)  # Annotated[str, …]
    if checked is not None:
        label = checked.group(1)
    containers = {"list": list, "dict": dict, "tuple": tuple, "set": set}
    origin = containers.get(label.split("[", maxsplit=1)[0])
    for member in choices:
        if origin is not None and get_origin(member) is origin:
            return member
        if isinstance(member, type) and member.__name__ == label:
            return member
    return None


@dataclass
class Walked:
    """A location as the user wrote it, and what the walk found on the way."""

    clean: Loc = ()
    union: Loc | None = None
    """The clean location of the first union (not discriminated) crossed."""
    union_type: object = None
    label: str | None = None
    """Pydantic's name of the union's member the error is about."""
    tp: object = None
    """The type at the end of the location (None: not known)."""
    parent: type[BaseModel] | None = None
    """The model whose key the last part is."""
    deeper: bool = False
    """Whether the location goes on below the union's member."""


def _step(tp: object, part: int | str, walked: Walked) -> object:
    """The type one part (a key, an index) below ``tp``; None when not known."""
    if is_model(tp):
        walked.parent = tp
        return _field_type(tp, part) if isinstance(part, str) and part in tp.model_fields else None
    if get_origin(tp) is dict:
        return get_args(tp)[1]
    if get_origin(tp) in (list, tuple, set):
        args = get_args(tp)
        return args[0] if args else None
    return None


def walk(root: object, loc: Loc) -> Walked:
    """``loc`` (pydantic's) of an error in a value of type ``root``, walked."""
    walked = Walked()
    clean: list[int | str] = []
    tp: object = root
    for part in loc:
        tp = unwrap(tp)
        if is_union(tp) and isinstance(part, str):
            member = _member_of(members(tp), part)
            tagged = is_model(member) and part in tags(member) and part != member.__name__
            if member is None:
                clean.append(part)  # not a member's name after all: a key
            elif walked.union is None and not tagged:  # a tag names the one member tried
                walked.union, walked.union_type, walked.label = tuple(clean), tp, part
            tp = member
            continue
        if part == "[key]":  # an error about a table's key itself
            tp = None
            continue
        clean.append(part)
        tp = _step(tp, part, walked)
    walked.clean = tuple(clean)
    walked.deeper = walked.union is not None and len(clean) > len(walked.union)
    walked.tp = unwrap(tp) if tp is not None else None
    return walked


_PLAIN = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def describe(tp: object) -> str:
    """What a key of type ``tp`` takes, as the file writes it: ``a string``, ``a list``,
    ``{ env = … }`` (a table with its required keys), ``a string or { file = … }``."""
    tp = unwrap(tp)
    if is_union(tp):
        parts = [describe(m) for m in members(tp)]
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if is_model(tp):
        required = [n for n, info in tp.model_fields.items() if info.is_required()]
        return "{ " + ", ".join(f"{n} = …" for n in required) + " }" if required else "a table"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (list, tuple, set):
        return "a list"
    if get_origin(tp) is dict:
        return "a table"
    return next((said for kind, said in _PLAIN.items() if tp is kind), "a string")
