"""The global cap ``max_concurrent_runs``: a run takes a slot before its first attempt and
frees it after its last; while none is free it waits, until its starting deadline or its
cancellation."""

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
class NoSlot:
    """Why a run got no slot: ``"starting_deadline"``, or its cancellation's reason; and how
    late it was when it gave up."""

    reason: str
    late_s: float


class Slots:
    """The slots of the global cap, shared by every run of a runner."""

    def __init__(self, cap: int, clock: Clock) -> None:
        """``cap`` runs may hold a slot at once; ``clock`` says how late a queued run is."""
        self.cap = cap
        self.condition = threading.Condition()
        """What a queued run waits on: notified when a slot is freed or a run cancelled (a
        test may put a condition of its own here before the first run)."""
        self._clock = clock
        self._held = 0
        self._log = get_logger()

    def held(self) -> int:
        """How many slots are held now."""
        with self.condition:
            return self._held

    def take(
        self, scheduled_at: datetime, deadline: float | None, cancelled: Cancellation
    ) -> NoSlot | None:
        """Take a slot for a run scheduled at ``scheduled_at``, waiting while all are held
        (``run.queued`` once) until ``deadline`` seconds after ``scheduled_at`` (None: no
        bound) or ``cancelled``; None once taken, else why not."""
        announced = False
        with self.condition:
            while True:
                late = (self._clock.now() - scheduled_at).total_seconds()
                if cancelled.is_set():
                    return NoSlot(cancelled.reason, late)
                if deadline is not None and late > deadline:
                    return NoSlot("starting_deadline", late)
                if self._held < self.cap:
                    self._held += 1
                    return None
                if not announced:
                    self._log.info("run.queued", running=self._held, max_concurrent_runs=self.cap)
                    announced = True
                self.condition.wait(None if deadline is None else max(0.0, deadline - late))

    def free(self) -> None:
        """Give a slot back; one queued run, if any, looks again."""
        with self.condition:
            self._held -= 1
            self.condition.notify()

    def wake_all(self) -> None:
        """Every queued run looks again (a cancelled one sees its flag and gives up)."""
        with self.condition:
            self.condition.notify_all()
