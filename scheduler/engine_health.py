"""Whether the engine answers, as the engine watch last saw it: one object the watch sets
and the runner (a run due while the engine is away is missed), the metrics and /healthz
read."""

from __future__ import annotations

import threading


class EngineHealth:
    """``error`` is None while the engine answers, else why it does not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        """Why the engine does not answer; None while it does."""
        with self._lock:
            return self._error

    def down(self, error: str) -> None:
        """The engine stopped answering (``error`` says how)."""
        with self._lock:
            self._error = error

    def up(self) -> None:
        """The engine answers again."""
        with self._lock:
            self._error = None
