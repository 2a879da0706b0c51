"""Bounds of durations and sizes: every bound is inclusive, and is named where users see it
(the validation error and the JSON Schema of ``crontainer schema``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from jobs.units import (
    DURATION_HELP,
    SIZE_HELP,
    Duration,
    Largest,
    Longest,
    Size,
    parse_duration,
    parse_size,
)
from scheduler.settings import config_schema

if TYPE_CHECKING:
    from collections.abc import Callable

TEN_YEARS_S = 520 * 7 * 86400
ONE_PEBIBYTE = 1024**5


@pytest.mark.parametrize(
    ("parse", "at_limit", "value", "over_limit", "named"),
    [
        (parse_duration, TEN_YEARS_S, TEN_YEARS_S, TEN_YEARS_S + 0.001, "at most 520w"),
        (parse_duration, "520w", TEN_YEARS_S, "520w1ms", "at most 520w"),
        (parse_size, ONE_PEBIBYTE, ONE_PEBIBYTE, ONE_PEBIBYTE + 1, "at most 1024TiB"),
        (parse_size, "1024TiB", ONE_PEBIBYTE, str(ONE_PEBIBYTE + 1), "at most 1024TiB"),
    ],
)
def test_the_bound_of_every_duration_and_size_is_inclusive_and_named(
    parse: Callable[[object], float], at_limit: object, value: float, over_limit: object, named: str
) -> None:
    """DURATION_MAX (520w) and SIZE_MAX (1024TiB) themselves are accepted; one step more is
    refused by an error that names the bound."""
    assert parse(at_limit) == value
    with pytest.raises(ValueError, match=named):
        parse(over_limit)


def _bounded(annotation: object) -> TypeAdapter[Any]:
    """A key type built now, so the bound's own code runs inside the test."""
    return TypeAdapter(annotation)  # type: ignore[arg-type]  # an Annotated[...] made at run time


@pytest.mark.parametrize(
    ("make", "at_limit", "value", "over_limit", "message"),
    [
        (lambda: Annotated[Duration, Longest("1d")], "24h", 86400.0, "24h1ms", "at most 1d"),
        (lambda: Annotated[Duration, Longest("1d")], 86400, 86400.0, 86400.001, "at most 1d"),
        (lambda: Annotated[Size, Largest("1KiB")], "1KiB", 1024, "1025", "at most 1KiB"),
        (lambda: Annotated[Size, Largest("1KiB")], 1024, 1024, 1025, "at most 1KiB"),
    ],
)
def test_a_keys_own_bound_is_inclusive_and_named_in_the_error(
    make: Callable[[], object], at_limit: object, value: float, over_limit: object, message: str
) -> None:
    """``Longest``/``Largest``: the limit itself is valid; one millisecond or one byte more
    fails validation with "must be <limit as written>"."""
    key = _bounded(make())
    assert key.validate_python(at_limit) == value
    with pytest.raises(ValidationError, match=f"must be {message}"):
        key.validate_python(over_limit)


def test_a_keys_bound_is_in_its_json_schema() -> None:
    """The schema of a bounded key: the numeric branch gets ``maximum`` (in seconds or bytes),
    the text branch none, and the description ends with the bound as written."""
    duration = _bounded(Annotated[Duration, Longest("1d")]).json_schema()
    assert duration == {
        "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0, "maximum": 86400.0}],
        "description": f"{DURATION_HELP}; at most 1d",
    }
    size = _bounded(Annotated[Size, Largest("1KiB")]).json_schema()
    assert size == {
        "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0, "maximum": 1024}],
        "description": f"{SIZE_HELP}; at most 1KiB",
    }
    # A type without a description of its own: the description is the bound alone.
    bare = _bounded(Annotated[int, Largest("1KiB")]).json_schema()
    assert bare == {"type": "integer", "description": "at most 1KiB"}


def test_each_key_shows_its_own_bound_whatever_the_order_schemas_are_made() -> None:
    """Bounds never leak between keys of one type: a key without a bound has no ``maximum``,
    and a bounded key keeps its own however many other bounded keys were rendered after it
    (they once all showed the bound rendered last)."""

    class Keys(BaseModel):
        day: Annotated[Duration, Longest("1d")] = 1.0
        unbounded: Duration = 2.0
        hour: Annotated[Duration, Longest("1h")] = 3.0
        kib: Annotated[Size, Largest("1KiB")] = 1
        any_size: Size = 2

    for _ in range(2):
        keys = Keys.model_json_schema()["properties"]
        numeric = {name: key["anyOf"][1] for name, key in keys.items()}
        assert numeric["day"]["maximum"] == 86400.0
        assert "maximum" not in numeric["unbounded"]
        assert numeric["hour"]["maximum"] == 3600.0
        assert numeric["kib"]["maximum"] == 1024
        assert "maximum" not in numeric["any_size"]
    assert "maximum" not in TypeAdapter(Duration).json_schema()["anyOf"][1]
    assert "maximum" not in TypeAdapter(Size).json_schema()["anyOf"][1]


def test_crontainer_schema_shows_each_daemon_keys_own_bound() -> None:
    """The published schema: [daemon] keys carry the bounds the daemon enforces."""
    daemon = config_schema()["$defs"]["DaemonSettings"]["properties"]
    maxima = {name: daemon[name]["anyOf"][1]["maximum"] for name in _DAEMON_BOUNDS}
    assert maxima == _DAEMON_BOUNDS


_DAEMON_BOUNDS = {
    "shutdown_grace": 86400.0,
    "engine_timeout": 3600.0,
    "config_poll": 86400.0,
    "max_output_line": 1024**2,
    "max_output_per_run": 1024**3,
}
