"""Bounds of durations and sizes: every bound is inclusive, and is named where users see it
(the validation error and the JSON Schema of ``crontainer schema``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, TypeAdapter

from jobs.units import (
    Duration,
    Largest,
    Longest,
    Size,
)
from scheduler.settings import config_schema


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
