"""The tools' control lines (``jobs.protocol``) in tests: made up, and read back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jobs.protocol.lines import parse

if TYPE_CHECKING:
    from collections.abc import Mapping


def control(message: Mapping[str, object]) -> bytes:
    """One control line, as a tool writes it on stderr."""
    return b"@crontainer " + json.dumps(message).encode() + b"\n"


def result_of(stderr: str) -> dict[str, Any]:
    """The result a tool reported in ``stderr`` (its last ``result`` control line)."""
    results = [
        message["result"]
        for line in stderr.splitlines()
        if (message := parse(line.encode())) is not None and "result" in message
    ]
    assert results, stderr
    found = results[-1]
    assert isinstance(found, dict)
    return found
