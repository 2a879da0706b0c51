"""The tool_state table: what each job's ops tool reported, by source (log shipping's
checkpoints, a rotation's last rotation of each file), as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from scheduler.history.database import Database, as_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime


class ToolState(Database):
    """The ops tools' state, read before a run and saved as the tool reports it."""

    def tool_state(self, job: str) -> dict[str, dict[str, object]]:
        """The state ``job``'s ops tool reported, by source: log shipping's checkpoints, a
        rotation's last rotation of each file."""
        rows = self._read("SELECT source, data FROM tool_state WHERE job = ?", (job,))
        return {r[0]: json.loads(r[1]) for r in rows}

    def save_tool_state(
        self,
        job: str,
        marks: Mapping[str, object],
        forget: Iterable[str],
        at: datetime,
    ) -> None:
        """Forget, then set, the tool state of ``job`` — in one transaction: after an
        acknowledged batch every source it touched moves, or none does. A failure is
        logged (``history.write_failed``): the next run then ships those lines again."""
        forgotten = [(job, source) for source in forget]
        rows = [
            (job, source, json.dumps(data, sort_keys=True), as_text(at))
            for source, data in marks.items()
        ]
        self._write_all(
            [
                ("DELETE FROM tool_state WHERE job = ? AND source = ?", forgotten),
                (
                    (
                        "INSERT OR REPLACE INTO tool_state (job, source, data, updated_at) "
                        "VALUES (?, ?, ?, ?)"
                    ),
                    rows,
                ),
            ],
            adds=bool(marks),
        )
