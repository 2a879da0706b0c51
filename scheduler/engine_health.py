"""Whether the engine answers, as the engine watch last saw it: one object the watch sets
and the runner (a run due while the engine is away is missed), the metrics and /healthz
read."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class EngineHealth:
    """``error`` is None while the engine answers, else why it does not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error: str | None = None
        self._on_up: list[Callable[[], None]] = []

    @property
    def error(self) -> str | None:
        """Why the engine does not answer; None while it does."""
        with self._lock:
            return self._error

    def down(self, error: str) -> None:
        """The engine stopped answering (``error`` says how)."""
        with self._lock:
            self._error = error

    def on_up(self, callback: Callable[[], None]) -> None:
        """``callback`` is called each time the engine answers again after being down (in
        the caller of ``up``, once ``error`` is None)."""
        with self._lock:
            self._on_up.append(callback)

    def up(self) -> None:
        """The engine answers again (the ``on_up`` callbacks are called if it was down)."""
        with self._lock:
            was_down, self._error = self._error is not None, None
            callbacks = list(self._on_up)
        if was_down:
            for callback in callbacks:
                callback()
