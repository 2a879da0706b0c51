"""Durations and sizes: one format for every key of the config that takes one.

Durations: ``"90s"``, ``"1h30m"``, ``"2d"``, ``"500ms"``, or a number of seconds.
Sizes: ``"10MB"``, ``"512KiB"``, ``"1.5GiB"``, Docker's ``"100m"``, or a number of bytes:
``k``/``m``/``g``/``t`` (Docker's) and ``KiB``…``TiB`` are 1024-based, ``kB``…``TB``
1000-based; units are read without regard to case.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import core_schema

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_SIZE_UNITS = {
    "b": 1,
    # Docker's spelling (``docker run --memory 100m``): one letter, 1024-based.
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)")

DURATION_HELP = "a duration such as '90s', '1h30m', '2d' or a number of seconds"
SIZE_HELP = "a size such as '10MB', '512KiB', '100m' or a number of bytes"
DURATION_MAX = "520w"
"""No duration anywhere is longer (10 years): beyond it, time arithmetic and waits overflow.
Most keys have a tighter bound of their own (``Longest``)."""
SIZE_MAX = "1024TiB"
"""No size anywhere is larger; most keys have a tighter bound of their own (``Largest``)."""


def _number_or_text(value: object, from_text: Callable[[str], float], expected: str) -> float:
    """A non-negative finite number, given as a number or as text ``from_text`` reads."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {expected}, got {_given(value)}")
    number = from_text(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected {expected}, got {value!r}")
    return number


def _given(value: object) -> str:
    """A value of the wrong type as the config file writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def parse_duration(value: object) -> float:
    """Return the duration ``value`` in seconds; raise ValueError naming the format, or the
    bound of every duration (``DURATION_MAX``)."""
    seconds = _number_or_text(value, _duration_from_text, DURATION_HELP)
    if seconds > _DURATION_LIMIT:
        raise ValueError(f"expected a duration of at most {DURATION_MAX} (10 years)")
    return seconds


def _duration_from_text(text: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"expected {DURATION_HELP} (units ms, s, m, h, d, w), got {text!r}")
    return total


def parse_size(value: object) -> int:
    """Return the size ``value`` in bytes; raise ValueError naming the format, or the bound
    of every size (``SIZE_MAX``)."""
    size = _number_or_text(value, _size_from_text, SIZE_HELP)
    if size > _SIZE_LIMIT:
        raise ValueError(f"expected a size of at most {SIZE_MAX}")
    return int(size)


def _size_from_text(text: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(
            f"expected {SIZE_HELP} (units B; k, m, g, t and KiB, MiB, GiB, TiB: 1024-based; "
            f"KB, MB, GB, TB: 1000-based), got {text!r}"
        )
    return float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}],
            "description": DURATION_HELP,
        }
    ),
]
"""Seconds, parsed from the config's duration format."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": SIZE_HELP}
    ),
]
"""Bytes, parsed from the config's size format."""


_DURATION_LIMIT = _number_or_text(DURATION_MAX, _duration_from_text, DURATION_HELP)
_SIZE_LIMIT = _number_or_text(SIZE_MAX, _size_from_text, SIZE_HELP)


@dataclass(frozen=True, slots=True)
class _AtMost:
    """Field metadata: the value is at most ``limit`` (text in the config's own format, as
    the error and the JSON Schema show it)."""

    limit: str
    parse: Callable[[object], float]

    def __get_pydantic_core_schema__(
        self,
        source: Any,  # noqa: ANN401 - pydantic's hook
        handler: GetCoreSchemaHandler,
    ) -> CoreSchema:
        bound = self.parse(self.limit)

        def check(value: float) -> float:
            if value > bound:
                raise ValueError(f"must be at most {self.limit}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # A copy: the schema handed in can be the one dict every key of this type shares
        # (``WithJsonSchema``); written into, it would show one key's bound on all of them.
        found = copy.deepcopy(handler(schema))
        for branch in found.get("anyOf", []):
            if branch.get("type") in ("number", "integer"):
                branch["maximum"] = self.parse(self.limit)
        found["description"] = f"{found.get('description', '')}; at most {self.limit}".lstrip("; ")
        return found


def Longest(limit: str) -> _AtMost:  # noqa: N802 - reads as a type in annotations
    """A duration key's upper bound: ``Annotated[Duration, Longest("1d")]``."""
    return _AtMost(limit, parse_duration)


def Largest(limit: str) -> _AtMost:  # noqa: N802 - reads as a type in annotations
    """A size key's upper bound: ``Annotated[Size, Largest("1TiB")]``."""
    return _AtMost(limit, parse_size)
