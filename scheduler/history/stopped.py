"""The stopped table: containers a run stopped and has not started again (a successor
starts them after a crash)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.history.database import Database, as_text

if TYPE_CHECKING:
    from datetime import datetime


class StoppedMarks(Database):
    """Marks written before a run stops a container, removed once it runs again."""

    def mark_stopped(self, run_id: str, container: str, at: datetime) -> None:
        """Written before a run stops a container, so a successor can start it again; raise
        HistoryError if it cannot be (then the container must not be stopped)."""
        self._write(
            "INSERT OR REPLACE INTO stopped (run_id, container, stopped_at) VALUES (?, ?, ?)",
            (run_id, container, as_text(at)),
            required=True,
        )

    def unmark_stopped(self, run_id: str, container: str) -> None:
        """The container was started again."""
        self._write(
            "DELETE FROM stopped WHERE run_id = ? AND container = ?",
            (run_id, container),
            adds=False,
        )

    def still_stopped(self) -> list[tuple[str, str]]:
        """(run_id, container) pairs stopped by runs that did not start them again."""
        rows = self._read("SELECT run_id, container FROM stopped ORDER BY stopped_at DESC")
        return [(r[0], r[1]) for r in rows]
