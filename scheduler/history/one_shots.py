"""The one_shots table: each ``@at`` job's instant, claimed before it runs (so it runs at
most once, across restarts), then done with its outcome — keyed by job and instant, so an
edited time is a new one-shot."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from scheduler.history.database import Database, as_text, as_time


@dataclass(frozen=True, slots=True)
class OneShotRecord:
    """One ``@at`` instant of one job, as stored: claimed, and done once ``outcome`` is set."""

    job: str
    at: datetime
    claimed_at: datetime
    outcome: str | None
    """The run's final status (succeeded, failed, missed…); None while it is under way."""
    reason: str | None
    run_id: str | None
    done_at: datetime | None

    @property
    def done(self) -> bool:
        """It ran, or was missed: it never runs again."""
        return self.outcome is not None


class OneShots(Database):
    """Claims and outcomes of ``@at`` jobs."""

    def claim_one_shot(self, job: str, at: datetime, now: datetime) -> bool:
        """Claim ``job``'s instant ``at`` before running it: True the first time, False when it
        was claimed before (by this daemon or an earlier one). A failed write is logged
        (``history.write_failed``) and counts as claimed: runs go on without the disk (the
        caller also remembers its claims)."""
        try:
            with self._lock:
                added = (
                    self.connection.execute(
                        "INSERT INTO one_shots (job, at, claimed_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (job, at) DO NOTHING",
                        (job, as_text(at), as_text(now)),
                    ).rowcount
                    > 0
                )
        except sqlite3.Error as e:
            self._failed(e)
            return True
        if added:
            self._succeeded()
        return added

    def finish_one_shot(
        self,
        job: str,
        at: datetime,
        *,
        outcome: str,
        at_time: datetime,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """``job``'s instant ``at`` is done with ``outcome`` (claimed or not): True if this call
        made it so, False if it was done already (or the write failed, logged)."""
        try:
            with self._lock:
                changed = self.connection.execute(
                    "INSERT INTO one_shots (job, at, claimed_at, outcome, reason, run_id, done_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (job, at) DO UPDATE SET outcome = excluded.outcome, "
                    "reason = excluded.reason, run_id = excluded.run_id, "
                    "done_at = excluded.done_at WHERE one_shots.outcome IS NULL",
                    (job, as_text(at), as_text(at_time), outcome, reason, run_id, as_text(at_time)),
                ).rowcount
        except sqlite3.Error as e:
            self._failed(e)
            return False
        return changed > 0

    def one_shots(self, job: str | None = None) -> dict[tuple[str, datetime], OneShotRecord]:
        """Every claimed or done instant (of ``job``, if given), by job and instant (UTC)."""
        sql = "SELECT job, at, claimed_at, outcome, reason, run_id, done_at FROM one_shots"
        rows = self._read(f"{sql} WHERE job = ?", (job,)) if job else self._read(sql)
        found = {}
        for r in rows:
            record = OneShotRecord(
                job=r[0],
                at=datetime.fromisoformat(r[1]),
                claimed_at=datetime.fromisoformat(r[2]),
                outcome=r[3],
                reason=r[4],
                run_id=r[5],
                done_at=as_time(r[6]),
            )
            found[record.job, record.at] = record
        return found
