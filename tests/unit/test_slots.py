"""The global cap's slots on their own: taken up to the cap, freed one at a time, a queued
taker waiting until a slot is freed, its starting deadline or its cancellation."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import structlog

from scheduler.runs import Cancellation
from scheduler.slots import NoSlot, Slots

from .fakes import FakeClock
from .helpers import CAPTURE, events, wait_for


class Taker(threading.Thread):
    """Takes a slot in a thread of its own; ``answer`` is what ``take`` returned."""

    def __init__(self, slots: Slots, scheduled_at: datetime, deadline: float | None = None) -> None:
        super().__init__(daemon=True)
        self.slots = slots
        self.scheduled_at = scheduled_at
        self.deadline = deadline
        self.cancelled = Cancellation()
        self.answer: NoSlot | str | None = "waiting"

    def run(self) -> None:
        self.answer = self.slots.take(self.scheduled_at, self.deadline, self.cancelled)


class RecordingCondition(threading.Condition):
    """Records each wait's timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def make_slots(cap: int) -> tuple[Slots, FakeClock]:
    """``cap`` slots on a fake clock, their waits recorded (``waits``)."""
    clock = FakeClock()
    slots = Slots(cap, clock)
    slots.condition = RecordingCondition()
    return slots, clock


def waits(slots: Slots) -> list[float | None]:
    condition = slots.condition
    assert isinstance(condition, RecordingCondition)
    return condition.timeouts


def test_slots_are_taken_up_to_the_cap_and_freed_one_by_one() -> None:
    """Two slots: two takers get one at once, without waiting; freeing gives one back."""
    slots, clock = make_slots(2)
    now = clock.now()
    assert slots.held() == 0
    assert slots.take(now, None, Cancellation()) is None
    assert slots.take(now, None, Cancellation()) is None
    assert slots.held() == 2
    slots.free()
    assert slots.held() == 1
    assert waits(slots) == []


def test_a_taker_waits_while_every_slot_is_held_and_announces_it_once() -> None:
    """The cap is held: the taker logs run.queued once (running, max_concurrent_runs), waits
    without bound (no deadline), and takes the slot that is freed."""
    slots, clock = make_slots(1)
    assert slots.take(clock.now(), None, Cancellation()) is None
    taker = Taker(slots, clock.now())
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        taker.start()
        wait_for(lambda: len(waits(slots)) == 1)
        slots.wake_all()  # woken without a free slot: it waits again, silently
        wait_for(lambda: len(waits(slots)) == 2)
        assert taker.answer == "waiting"
        slots.free()
        taker.join(10)
    assert taker.answer is None
    assert slots.held() == 1
    assert waits(slots) == [None, None]
    queued = events(logs, "run.queued")
    assert [(e["running"], e["max_concurrent_runs"]) for e in queued] == [(1, 1)]


def test_a_taker_waits_only_for_what_is_left_of_its_deadline() -> None:
    """Deadline 60 s, 20.5 s late: it waits 39.5 s; once past the deadline it gives up with
    the reason and how late it was, holding nothing."""
    slots, clock = make_slots(1)
    assert slots.take(clock.now(), None, Cancellation()) is None
    taker = Taker(slots, clock.now() - timedelta(seconds=20.5), deadline=60.0)
    taker.start()
    wait_for(lambda: len(waits(slots)) == 1)
    clock.advance(39.75)
    slots.wake_all()
    taker.join(10)
    assert waits(slots) == [pytest.approx(39.5)]
    assert isinstance(taker.answer, NoSlot)
    assert taker.answer.reason == "starting_deadline"
    assert taker.answer.late_s == pytest.approx(60.25)
    assert slots.held() == 1


def test_a_cancelled_taker_gives_up_with_its_reason() -> None:
    """Cancelled while queued, and woken: it answers its cancellation's reason; a taker
    cancelled before it asks gets no slot even when one is free."""
    slots, clock = make_slots(1)
    assert slots.take(clock.now(), None, Cancellation()) is None
    taker = Taker(slots, clock.now() - timedelta(seconds=1))
    taker.start()
    wait_for(lambda: len(waits(slots)) == 1)
    taker.cancelled.cancel("replaced")
    slots.wake_all()
    taker.join(10)
    assert taker.answer == NoSlot("replaced", 1.0)
    slots.free()
    cancelled = Cancellation()
    cancelled.cancel("daemon_stopping")
    assert slots.take(clock.now(), None, cancelled) == NoSlot("daemon_stopping", 0.0)
    assert slots.held() == 0
