"""A run's thread started ahead (scheduler/spare.py): at most one parked thread, woken with
its run's body at the instant; the run's thread parks the next one when its run is done."""

from __future__ import annotations

import threading
from pathlib import Path

from scheduler.spare import SpareThread

from .fakes import FakeClock, FakeEngine
from .helpers import SCHEDULED, Heard, ended, make_config, make_runner


def test_a_parked_thread_runs_the_body_it_is_handed() -> None:
    """``take`` gives the parked thread, whose ``thread`` is known before its body runs;
    ``go`` runs the body on it, under the run's name, and the thread then ends."""
    spare = SpareThread()
    assert spare.take() is None  # none parked yet
    spare.refill()
    parked = spare.take()
    assert parked is not None
    assert parked.thread.is_alive()
    ran_on: list[threading.Thread] = []
    parked.go(lambda: ran_on.append(threading.current_thread()), "run-j-r1")
    parked.thread.join(10)
    assert ran_on == [parked.thread]
    assert parked.thread.name == "run-j-r1"
    assert not parked.thread.is_alive()
    assert spare.take() is None  # taken: none parked until the next refill


def test_at_most_one_thread_is_parked() -> None:
    """A second refill while one is parked parks no other."""
    spare = SpareThread()
    spare.refill()
    first = spare.take()
    spare.refill()
    spare.refill()
    second = spare.take()
    assert first is not None
    assert second is not None
    assert second is not first
    assert spare.take() is None
    for parked in (first, second):
        parked.release()
        parked.thread.join(10)


def test_close_ends_the_parked_thread_and_parks_no_more() -> None:
    """At a stop the parked thread ends without a body; a refill after it parks nothing."""
    spare = SpareThread()
    before = set(threading.enumerate())
    spare.refill()
    (parked,) = set(threading.enumerate()) - before
    spare.close()
    parked.join(10)
    assert not parked.is_alive()
    spare.refill()
    assert spare.take() is None


def test_a_run_after_another_runs_on_the_thread_the_first_one_parked(tmp_path: Path) -> None:
    """The first run starts a thread of its own; when it ends it parks one, and the next
    run's body runs on that very thread (no thread started at its instant)."""
    config = make_config(tmp_path)
    engine = FakeEngine(FakeClock())
    threads: list[threading.Thread] = []
    engine.on_start = lambda: threads.append(threading.current_thread())
    runner = make_runner(config, engine, Heard())
    runner.dispatch(config.jobs["j"], SCHEDULED)
    ended(runner)
    parked = [t for t in threading.enumerate() if t.name == "run-spare"]
    runner.dispatch(config.jobs["j"], SCHEDULED)
    ended(runner)
    runner.stop_preparing()
    assert len(threads) == 2
    assert threads[1] in parked
    assert threads[0] is not threads[1]
