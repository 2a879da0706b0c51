"""A run's thread started before its run: the hand-off from the ticker to the run's thread
at a scheduled instant is then the wake of a parked thread, not the start of a new one.

Starting a thread at the instant costs the ticker the start itself and a wait until the
new thread runs, and the kernel's scheduler queues a new thread behind those already
runnable: on a loaded machine (two busy processes on two cores) that hand-off took 3.7 ms
at p50 and 20 ms at p95, more than any other step before an exec's start
(docs/performance.md, "Fire lag"). A thread that sleeps on an event and is woken is
scheduled at once. One spare is kept: a run's thread makes the next one after its run
(not at an instant); a burst's later runs start threads of their own, as before.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class Parked:
    """A started thread waiting for its body; it runs that once and ends."""

    def __init__(self) -> None:
        self._go = threading.Event()
        self._body: Callable[[], None] | None = None
        self.thread = threading.Thread(target=self._wait, name="run-spare", daemon=True)

    def _wait(self) -> None:
        self._go.wait()
        if self._body is not None:  # None: released unused (a stop)
            self._body()

    def go(self, body: Callable[[], None], name: str) -> None:
        """Run ``body`` now, the thread named ``name``."""
        self.thread.name = name
        self._body = body
        self._go.set()

    def release(self) -> None:
        """End without a body."""
        self._go.set()


class SpareThread:
    """At most one parked thread; ``run`` hands it a body, ``refill`` parks a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: Parked | None = None
        self._closed = False

    def take(self) -> Parked | None:
        """The parked thread, the caller's to ``go`` (its ``thread`` known before its body
        runs); None when none is parked (the caller starts a thread of its own)."""
        with self._lock:
            parked, self._parked = self._parked, None
        return parked

    def refill(self) -> None:
        """Park a thread if none is (off the instants: after a run, by the run's thread); a
        failure to start one (the thread limit) leaves none parked."""
        with self._lock:
            if self._parked is not None or self._closed:
                return
        parked = Parked()
        try:
            parked.thread.start()
        except RuntimeError:
            return
        with self._lock:
            if self._parked is None and not self._closed:
                self._parked = parked
                return
        parked.release()  # another run parked one meanwhile, or a stop

    def close(self) -> None:
        """Park no more; the parked thread ends without a body."""
        with self._lock:
            self._closed = True
            parked, self._parked = self._parked, None
        if parked is not None:
            parked.release()
