"""Helpers shared by the unit tests (test modules import these, never each other)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, MutableMapping


def _zone_changed() -> None:
    time.tzset()
    try:
        import tzlocal  # noqa: PLC0415 - only where the project has it
    except ImportError:  # pragma: no cover - tzlocal comes with APScheduler
        return
    tzlocal.reload_localzone()


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """The process's local zone is ``zone`` (TZ, libc's and tzlocal's view) inside; the
    previous one afterwards. Its own MonkeyPatch: it never undoes a test's other patches."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", zone)
        _zone_changed()
        try:
            yield
        finally:
            patch.undo()
            _zone_changed()


def events(logs: list[MutableMapping[str, Any]], *names: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries whose event is one of ``names``, in order."""
    return [e for e in logs if e["event"] in names]


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (bounded, 10 s) for a condition another thread makes true."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)
