"""Discovery: the label jobs of the engine's containers, kept current.

Two threads. One follows the engine's container events (start, die, destroy, rename) of
the containers ``label_filter`` lets in, but the daemon's own (its runs' containers come
and go with each run); each event marks the jobs stale. The other scans — every
container's labels, one list call — when they are stale, and at least every
``label_resync``: events can be lost (an engine restart drops the stream; one that breaks
is followed again, with a scan; one that ends as soon as it opens, without an event — a
socket proxy closing idle streams — is the same outage, retried ever more slowly). A
burst of events (``docker compose up`` of many containers) is one scan: the scanner waits
``SETTLE_S`` after the first. Each scan hands its jobs to ``apply`` (the daemon's job set,
which schedules what changed); a refused job is logged (``labels.rejected``) when it is
first seen, not at every scan.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from jobs.selectors import Selector, parse_selector
from scheduler.engine import LABEL_DAEMON
from scheduler.errors import EngineError
from scheduler.labels.scan import LabelJobs, Memo, Refusal, Rules, scan
from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from scheduler.engine import Engine, EventStream

ACTIONS = ("start", "die", "destroy", "rename")
"""The container events that can change the label jobs (or their containers' state)."""
SETTLE_S = 0.25
"""After an event, how long the scanner waits for more before it scans."""
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits between attempts to follow the events again."""
STEADY_S = 30.0
"""A stream that lived this long, or gave an event, worked: its end is a new outage (logged,
tried again after the first of ``RETRY_S``). One that ended sooner without an event is the
outage going on (not logged again, the next wait longer)."""


def filter_selector(label_filter: Sequence[str]) -> Selector:
    """The containers ``[daemon] label_filter`` lets give jobs, as a selector (none: all):
    each entry read as a ``label=`` selector is."""
    labels = tuple(parse_selector(f"label={entry}").labels[0] for entry in label_filter)
    return Selector(text="label_filter", labels=labels)


class LabelWatch:
    """Scans the containers' label jobs at start, on events and every ``resync`` seconds."""

    def __init__(
        self,
        engine: Engine,
        label_filter: Sequence[str],
        resync: float,
        rules: Callable[[], Rules],
        apply: Callable[[LabelJobs, str], None],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rules``: the config's rules now (a reload changes [defaults] and the names its
        jobs take); ``apply``: takes each scan's jobs, with what triggered the scan;
        ``monotonic``: how long a stream lived is measured with it."""
        self._engine = engine
        self._label_filter = tuple(label_filter)
        self._selector = filter_selector(label_filter)
        self._resync = resync
        self._rules = rules
        self._apply = apply
        self._monotonic = monotonic
        self._stale = threading.Event()
        self._stopped = threading.Event()
        self._trigger = "resync"
        self._stream: EventStream | None = None
        self._stream_lock = threading.Lock()
        self._told: set[Refusal] = set()
        self._memo = Memo()  # scans run one at a time: at start, then in the scan thread
        self._threads: list[threading.Thread] = []
        self._log = get_logger()

    def scan(self) -> LabelJobs:
        """The label jobs of the containers now (EngineError when the engine cannot list
        them); logs the refusals not logged before. A container whose name and labels did
        not change since the last scan is not parsed again."""
        found = scan(self._engine.select(self._selector), self._rules(), self._memo)
        self._tell(found.refusals)
        return found

    def _tell(self, refusals: tuple[Refusal, ...]) -> None:
        now = set(refusals)
        for refusal in refusals:
            if refusal not in self._told:
                self._log.warning(
                    "labels.rejected",
                    container=refusal.container,
                    job=refusal.job,
                    key=refusal.key,
                    reason=refusal.reason,
                )
        self._told = now

    def start(self) -> None:
        """Follow the events and scan from now on (the first scan is the caller's)."""
        for target, name in ((self._follow, "label-events"), (self._serve, "label-scan")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def refresh(self, trigger: str = "reload") -> None:
        """Scan again soon (the config's rules changed)."""
        self._trigger = trigger
        self._stale.set()

    def stop(self) -> None:
        """End both threads."""
        self._stopped.set()
        self._stale.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()
        for thread in self._threads:
            thread.join(5.0)

    # --- the threads ----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped.is_set():
            if self._stale.wait(self._resync):
                self._stopped.wait(SETTLE_S)  # the rest of a burst
            if self._stopped.is_set():
                return
            trigger, self._trigger = self._trigger, "resync"
            self._stale.clear()
            try:
                found = self.scan()
            except EngineError as e:
                self._log.warning("labels.scan_failed", error=str(e), trigger=trigger)
                continue
            except Exception:  # a bug in one scan must not end discovery
                self._log.exception("labels.scan_failed", trigger=trigger)
                continue
            self._apply(found, trigger)

    def _follow(self) -> None:
        failures = 0  # attempts since the events last worked; 0: none lost
        while not self._stopped.is_set():
            try:
                stream = self._engine.container_events(ACTIONS, self._label_filter)
            except EngineError as e:
                failures = self._lost(failures, str(e))
                continue
            with self._stream_lock:
                self._stream = stream
            if self._stopped.is_set():
                stream.close()
                return
            # What happened before the stream was there: since the first scan, or meanwhile.
            self.refresh("events_resumed" if failures else "start")
            opened = self._monotonic()
            error, delivered = self._read(stream)
            if self._stopped.is_set():
                return
            if delivered or self._monotonic() - opened >= STEADY_S:
                failures = 0  # it worked: its end starts a new outage
            failures = self._lost(failures, error)

    def _read(self, stream: EventStream) -> tuple[str, bool]:
        """Follow ``stream`` until it ends: why it ended, and whether it gave an event."""
        delivered = False
        try:
            for event in stream:
                delivered = True
                if LABEL_DAEMON not in event.labels:  # not a run's container of ours
                    self.refresh("event")
        except EngineError as e:
            return str(e), delivered
        return "the engine ended the event stream", delivered

    def _lost(self, failures: int, error: str) -> int:
        """Log a lost stream (once per outage), wait before the next attempt; the count."""
        if failures == 0:
            self._log.warning("labels.events_lost", error=error)
        self._stopped.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
        return failures + 1
