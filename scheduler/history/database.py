"""The state database's connection: opening and migrating it, its one lock, and the
write-outage rule (every write goes through here, which keeps ``write_error``).

The daemon writes, the CLI reads at the same time: WAL mode and a busy timeout make that
safe. Times are stored as ISO 8601 UTC text with microseconds, so they sort as text.

Every write is on disk when it returns (``synchronous = FULL``: the WAL is fsynced at each
commit), but one that is not ``durable``: it is written to the WAL without waiting for the
disk (``NORMAL``) and is on disk with the next write that waits, which syncs the WAL with
everything before it. A crash or kill of the daemon loses neither kind (the file is written:
the system has it); a crash of the whole host may lose what was not yet synced. Only the
job's latest scheduled time, written on the way to a run's start, is such a write
(``Runs.record_fire``): the run's own row follows it at once, and waits.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from scheduler.errors import CrontainerError
from scheduler.history.schema import MIGRATIONS, SCHEMA_VERSION
from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

DB_NAME = "crontainer.db"
BUSY_TIMEOUT_MS = 5000


class HistoryError(CrontainerError):
    """The state database cannot be opened or used."""


class NoHistoryError(HistoryError):
    """There is no state database to read (no daemon has run with this state directory)."""


def as_text(moment: datetime | None) -> str | None:
    """A time as stored: ISO 8601 UTC text with microseconds (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def as_time(text: str | None) -> datetime | None:
    """A stored time read back (None stays None)."""
    return None if text is None else datetime.fromisoformat(text)


class Database:
    """The connection and its lock; the stores (``runs``, ``stopped``, ``tool_state``) read
    and write through it, so every method is safe to call from any thread.

    ``connection`` is the SQLite connection itself: tests use it to fill the disk (``PRAGMA
    max_page_count``); the daemon only goes through the methods."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._write_error: str | None = None
        self._failed_writes = 0

    @classmethod
    def open(cls, state_dir: Path, *, readonly: bool = False) -> Self:
        """Open (and, for the daemon, create and migrate) the database in ``state_dir``."""
        path = state_dir / DB_NAME
        try:
            if readonly:
                if not path.exists():
                    raise NoHistoryError(
                        f"{path}: no state database (has the daemon run with this state_dir?)"
                    )
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                state_dir.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            history = cls(db)
            history._migrate(readonly=readonly)
        except sqlite3.Error as e:
            raise HistoryError(f"{path}: cannot use the state database: {e}") from e
        except OSError as e:
            raise HistoryError(f"{state_dir}: cannot create the state directory: {e}") from e
        return history

    def _migrate(self, *, readonly: bool) -> None:
        version = int(self.connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"the state database has schema {version}, newer than this crontainer knows "
                f"({SCHEMA_VERSION}); use a newer crontainer or another state_dir"
            )
        if version < SCHEMA_VERSION and readonly:
            raise HistoryError(
                f"the state database has schema {version}; start the daemon to migrate it"
            )
        for number in range(version, SCHEMA_VERSION):
            self.connection.executescript(
                f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;"
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.connection.close()

    @property
    def write_error(self) -> str | None:
        """Why the last write failed (a full disk…), while writes fail; None once one works."""
        return self._write_error

    @property
    def failed_writes(self) -> int:
        """The writes that failed since the outage began (0 while writes work)."""
        return self._failed_writes

    def _failed(self, error: sqlite3.Error) -> None:
        """A write failed: one ``history.write_failed`` when writes start failing (not one per
        write: a full disk fails them all), counted until one works again."""
        first = self._write_error is None
        self._write_error = str(error)
        self._failed_writes += 1
        if first:
            get_logger().error("history.write_failed", error=str(error))

    def _succeeded(self) -> None:
        if self._write_error is not None:
            get_logger().info("history.write_recovered", failed_writes=self._failed_writes)
            self._write_error, self._failed_writes = None, 0

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """The rows of a query."""
        with self._lock:
            return self.connection.execute(sql, params).fetchall()

    def _write(
        self,
        sql: str,
        params: tuple[object, ...],
        *,
        required: bool = False,
        adds: bool = True,
        durable: bool = True,
    ) -> None:
        """Write; a failure is logged (``history.write_failed``, once per outage) and runs go
        on — unless the write is ``required`` (what a successor needs to undo an action):
        then HistoryError, and the action is not taken. Only a write that ``adds`` a row, and
        did, ends an outage: an update or a delete can work on a full disk (so can an
        upsert of a job's marks, which updates its row in place: ``adds=False``). A write
        that is not ``durable`` returns without waiting for the disk (see the module)."""
        try:
            with self._lock:
                if durable:
                    added = self.connection.execute(sql, params).rowcount > 0
                else:
                    added = self._unsynced(sql, params)
        except sqlite3.Error as e:
            self._failed(e)
            if required:
                raise HistoryError(f"the state database refuses writes: {e}") from e
            return
        if adds and added:
            self._succeeded()

    def _unsynced(self, sql: str, params: tuple[object, ...]) -> bool:
        """``sql`` committed without an fsync (the lock held); whether it changed a row."""
        self.connection.execute("PRAGMA synchronous=NORMAL")
        try:
            return self.connection.execute(sql, params).rowcount > 0
        finally:
            self.connection.execute("PRAGMA synchronous=FULL")

    def _write_all(
        self, statements: Iterable[tuple[str, Sequence[tuple[object, ...]]]], *, adds: bool
    ) -> None:
        """Run each statement over its rows, all in one transaction: every row is written, or
        none is. A failure is logged as ``_write``'s are; only a transaction that ``adds``
        rows ends an outage."""
        try:
            with self._lock:
                self.connection.execute("BEGIN IMMEDIATE")
                try:
                    for sql, rows in statements:
                        self.connection.executemany(sql, rows)
                except BaseException:
                    self.connection.execute("ROLLBACK")
                    raise
                self.connection.execute("COMMIT")
        except sqlite3.Error as e:
            self._failed(e)
            return
        if adds:
            self._succeeded()
