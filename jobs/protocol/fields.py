"""Reading and writing the typed messages of ``jobs.protocol`` as JSON (stdlib only): a
field missing or of the wrong type is a ``RequestError`` naming it, never its value."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from _typeshed import DataclassInstance


class RequestError(ValueError):
    """A request (or a result) the tool cannot read. The message names the field and the JSON
    type it had, never its value (a header's value may be a secret)."""


_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class Fields:
    """One JSON object of a request, read key by key: a key missing (where it is required)
    or of the wrong type raises RequestError naming it (``sink.timeout``)."""

    def __init__(self, value: object, name: str) -> None:
        if not isinstance(value, dict):
            where = f"request field {name!r}" if name else "the request"
            raise RequestError(f"{where}: expected an object, got {json_type(value)}")
        self.data: dict[str, object] = value
        self._prefix = f"{name}." if name else ""

    def _error(self, key: str, expected: str) -> RequestError:
        got = json_type(self.data[key]) if key in self.data else "nothing"
        return RequestError(f"request field {self._prefix + key!r}: expected {expected}, got {got}")

    def given(self, readers: Mapping[str, Callable[[str], object]]) -> dict[str, Any]:
        """The keys present, each read by its reader (the defaults stand for the others)."""
        return {key: read(key) for key, read in readers.items() if key in self.data}

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._error(key, "a string")
        return value

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._error(key, "an integer")
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self._error(key, "a number")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self._error(key, "true or false")
        return value

    def choice(self, key: str, names: Collection[str]) -> str:
        value = self.text(key)
        if value not in names:
            raise RequestError(f"request field {self._prefix + key!r}: unknown {key} {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._error(key, "an array of strings")
        return tuple(value)

    def array(self, key: str) -> list[object]:
        """An array whose items the caller reads (each as ``Fields`` of its own)."""
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self._error(key, "an array")
        return value

    def integers(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self._error(key, "an array of integers")
        return tuple(value)

    def text_table(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._error(key, "an object of strings")
        return value

    def table(self, key: str) -> dict[str, object]:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self._error(key, "an object")
        return value

    def tables(self, key: str) -> dict[str, dict[str, object]]:
        value = self.data.get(key)
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise self._error(key, "an object of objects")
        return value


def json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def json_object(spec: DataclassInstance) -> dict[str, object]:
    """A dataclass's fields as JSON takes them (None left out): mappings as objects, tuples as
    arrays."""
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    return {name: _plain(value) for name, value in values.items() if value is not None}


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
