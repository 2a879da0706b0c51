"""Exclusive locks: the job key ``lock`` names locks a run holds from before its first attempt
until after its last, so that jobs sharing a name never run at the same time (in this
daemon).

A run takes all of its locks at once or none (a run holds nothing while it waits, so no two
runs can wait for each other). Waiting runs form one line in the order they came: a run
takes its locks only when each is free and no run ahead of it in the line wants any of
them — first come, first served per lock, and a later run needing a subset of an earlier
one's locks never overtakes it. A run waits until its starting deadline (then it gives up,
``lock:<name>``: the lock it was waiting for) or its cancellation; without a deadline it
waits until its locks are free, as a run queued at ``max_concurrent_runs`` does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.logs import get_logger

if TYPE_CHECKING:
    from datetime import datetime

    from scheduler.clock import Clock
    from scheduler.runs import Cancellation


@dataclass(frozen=True, slots=True)
class Holder:
    """A run that holds or wants locks: its job and run id."""

    job: str
    run_id: str


@dataclass(frozen=True, slots=True)
class NoLock:
    """Why a run got no locks: ``"lock:<name>"`` (its starting deadline passed while it
    waited for ``lock`` — even if ``lock`` was free when it woke), ``"starting_deadline"``
    (it was past it before it waited), or its cancellation's reason; how late it was when
    it gave up, and who held ``lock`` then (None: free by then, or a run ahead of it in the
    line wanted it)."""

    reason: str
    late_s: float
    lock: str | None = None
    holder: Holder | None = None


@dataclass(slots=True, eq=False)
class _Waiter:
    """A run in the line: who, and the names it needs (compared by identity: each is one
    call of ``acquire``)."""

    who: Holder
    names: tuple[str, ...]


class Locks:
    """Every lock of a runner, by name: held by one run each, wanted by runs in line."""

    def __init__(self, clock: Clock) -> None:
        """``clock`` says how late a waiting run is."""
        self.condition = threading.Condition()
        """What a waiting run waits on: notified when locks are released, a waiter leaves
        the line, or a run is cancelled (a test may put a condition of its own here)."""
        self._clock = clock
        self._held: dict[str, Holder] = {}
        self._line: list[_Waiter] = []
        self._log = get_logger()

    def held(self) -> dict[str, Holder]:
        """The locks held now, by name (a copy)."""
        with self.condition:
            return dict(self._held)

    def waiting(self) -> dict[str, int]:
        """Runs waiting in line now, by job."""
        counts: dict[str, int] = {}
        with self.condition:
            for waiter in self._line:
                counts[waiter.who.job] = counts.get(waiter.who.job, 0) + 1
        return counts

    def acquire(
        self,
        who: Holder,
        names: tuple[str, ...],
        scheduled_at: datetime,
        deadline: float | None,
        cancelled: Cancellation,
    ) -> NoLock | None:
        """Take every lock in ``names`` for ``who``, a run scheduled at ``scheduled_at``:
        at once if each is free and nobody in line before it wants one, else in line
        (``run.waiting`` once) until then, until ``deadline`` seconds after
        ``scheduled_at`` (None: no bound), or ``cancelled``. None once taken (release them
        with ``release``), else why not, holding none of them."""
        if not names:
            return None
        waiter = _Waiter(who, names)
        with self.condition:
            self._line.append(waiter)
            try:
                return self._wait(waiter, scheduled_at, deadline, cancelled)
            finally:
                self._line.remove(waiter)
                self.condition.notify_all()  # a run behind it may go now

    def claim(self, who: Holder, names: tuple[str, ...]) -> list[str]:
        """``who`` holds ``names`` from now on without waiting in line: a run that is
        running already (one an earlier daemon left, adopted at start, before any run of
        this daemon), or one an engine outage cut off that kept its locks (held by ``who``
        already: taken again). A name another run holds stays that run's; the names taken."""
        with self.condition:
            taken = [name for name in names if self._held.get(name, who) == who]
            for name in taken:
                self._held[name] = who
            return taken

    def release(self, who: Holder) -> None:
        """``who`` gives back every lock it holds; the runs in line look again."""
        with self.condition:
            for name in [n for n, h in self._held.items() if h == who]:
                del self._held[name]
            self.condition.notify_all()

    def wake_all(self) -> None:
        """Every waiting run looks again (a cancelled one sees its flag and gives up)."""
        with self.condition:
            self.condition.notify_all()

    def _wait(
        self,
        waiter: _Waiter,
        scheduled_at: datetime,
        deadline: float | None,
        cancelled: Cancellation,
    ) -> NoLock | None:
        waited_for: str | None = None  # the lock it last waited for, once it did
        while True:
            late = (self._clock.now() - scheduled_at).total_seconds()
            if cancelled.is_set():
                return NoLock(cancelled.reason, late)
            blocked = self._blocker(waiter)
            if deadline is not None and late > deadline:
                if blocked is not None:
                    return NoLock(f"lock:{blocked[0]}", late, *blocked)
                if waited_for is not None:  # woke past its deadline, the lock free by then
                    return NoLock(f"lock:{waited_for}", late, waited_for)
                return NoLock("starting_deadline", late)  # late before it ever waited
            if blocked is None:
                for name in waiter.names:
                    self._held[name] = waiter.who
                return None
            name, holder = blocked
            if waited_for is None:
                self._announce(waiter, name, holder)
            waited_for = name
            self.condition.wait(None if deadline is None else max(0.0, deadline - late))

    def _blocker(self, waiter: _Waiter) -> tuple[str, Holder | None] | None:
        """The first of ``waiter``'s names it cannot take now, and who holds it (None: it
        is free, but a run ahead in line wants it); None if it can take them all."""
        for name in waiter.names:
            if name in self._held:
                return name, self._held[name]
        ahead = self._line[: self._line.index(waiter)]
        for name in waiter.names:
            if any(name in other.names for other in ahead):
                return name, None
        return None

    def _announce(self, waiter: _Waiter, name: str, holder: Holder | None) -> None:
        ahead = self._line[: self._line.index(waiter)]
        self._log.info(
            "run.waiting",
            job=waiter.who.job,
            run_id=waiter.who.run_id,
            locks=list(waiter.names),
            lock=name,
            holder_job=holder.job if holder is not None else None,
            holder_run_id=holder.run_id if holder is not None else None,
            ahead=sum(1 for other in ahead if set(other.names) & set(waiter.names)),
        )
