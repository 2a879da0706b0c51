"""Time, injectable: the daemon asks a Clock, tests pass a fake one."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading


class Clock(Protocol):
    """Wall-clock time for schedules and records, monotonic time for deadlines."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps."""

    def sleep(self, seconds: float, interrupt: threading.Event) -> bool:
        """Wait ``seconds`` unless ``interrupt`` is set first; return whether it was set."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        """See Clock."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """See Clock."""
        return time.monotonic()

    def sleep(self, seconds: float, interrupt: threading.Event) -> bool:
        """See Clock."""
        return interrupt.wait(seconds)
