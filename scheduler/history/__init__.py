"""The run history: an embedded SQLite file in ``[daemon] state_dir``.

The daemon writes, the CLI reads at the same time (WAL mode, a busy timeout).
``History`` is the one object the rest of the daemon takes; its parts:

- ``schema``: the tables, one SQL migration per schema version (``PRAGMA user_version``).
- ``database``: ``Database``, the connection, its one lock and the write-outage rule (a
  failed write is logged once per outage and kept as ``write_error``); how times are stored.
- ``runs``: attempts and job marks (``Runs``); ``stopped``: containers a run stopped
  (``StoppedMarks``); ``tool_state``: what the ops tools reported (``ToolState``);
  ``one_shots``: the ``@at`` jobs' instants, claimed and done (``OneShots``) — each a store
  over ``Database``.
"""

from scheduler.history.database import HistoryError, NoHistoryError
from scheduler.history.one_shots import OneShotRecord, OneShots
from scheduler.history.runs import GlanceRow, JobMarks, RunRecord, Runs
from scheduler.history.stopped import StoppedMarks
from scheduler.history.tool_state import ToolState

__all__ = [
    "GlanceRow",
    "History",
    "HistoryError",
    "JobMarks",
    "NoHistoryError",
    "OneShotRecord",
    "RunRecord",
]


class History(Runs, StoppedMarks, ToolState, OneShots):
    """The state database; every method is safe to call from any thread."""
