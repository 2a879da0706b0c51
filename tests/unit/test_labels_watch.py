"""Discovery (scheduler/labels/watch.py) against a scripted engine: what a scan selects,
refusals told once, events and a lost stream leading to scans, stop, a failing scan."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from scheduler.engine import LABEL_DAEMON, ContainerEvent, ContainerInfo
from scheduler.errors import EngineError
from scheduler.labels import watch
from scheduler.labels.parse import PREFIX
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Rules
from scheduler.labels.watch import ACTIONS, LabelWatch, filter_selector

from .fakes import FakeClock, FakeEngine
from .helpers import events, wait_for

PING = {f"{PREFIX}ping.schedule": "@hourly", f"{PREFIX}ping.command": '"true"'}
BAD = {f"{PREFIX}bad.schedule": "@hourly", f"{PREFIX}bad.image": "alpine"}
"""A job the fence refuses (image)."""


def box(name: str, **labels: str) -> ContainerInfo:
    return ContainerInfo(id=(name * 64)[:64], name=name, state="running", labels=labels)


@dataclass
class Watched:
    """A LabelWatch on a FakeEngine, what it applied (jobs, trigger) and logged."""

    watch: LabelWatch
    engine: FakeEngine
    logs: list[MutableMapping[str, Any]]
    applied: list[tuple[LabelJobs, str]] = field(default_factory=list)

    def triggers(self) -> list[str]:
        return [trigger for _, trigger in list(self.applied)]

    def stream(self, number: int = 1) -> Any:
        """The ``number``-th event stream the watch opened, once it has."""
        wait_for(lambda: len(self.engine.event_streams) >= number)
        return self.engine.event_streams[number - 1]


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """No settling after an event and short waits between attempts: the tests wait on what
    happens, never on these."""
    monkeypatch.setattr(watch, "SETTLE_S", 0.0)
    monkeypatch.setattr(watch, "RETRY_S", (0.01,))


@contextlib.contextmanager
def watching(
    *containers: ContainerInfo,
    label_filter: tuple[str, ...] = (),
    start: bool = True,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[Watched]:
    """A LabelWatch over ``containers`` (resync an hour away: only events and refresh make
    scans); started unless ``start`` is false; stopped at the end."""
    engine = FakeEngine(FakeClock(), selectable=list(containers))
    with structlog.testing.capture_logs() as logs:
        handle = Watched(None, engine, logs)  # type: ignore[arg-type]
        handle.watch = LabelWatch(
            engine,
            label_filter,
            3600.0,
            lambda: Rules(LABEL_KINDS, (), {}),
            lambda found, trigger: handle.applied.append((found, trigger)),
            monotonic=monotonic,
        )
        if start:
            handle.watch.start()
        try:
            yield handle
        finally:
            handle.watch.stop()


def test_label_filter_as_a_selector() -> None:
    """'key=value' a label with that value; 'key' the label with any value."""
    selector = filter_selector(["com.docker.compose.project=shop", "backup", "a=b=c"])
    assert selector.labels == (
        ("com.docker.compose.project", "shop"),
        ("backup", None),
        ("a", "b=c"),
    )
    assert filter_selector([]).labels == ()


def test_a_scan_reads_only_the_containers_the_filter_lets_through() -> None:
    """label_filter: a scan selects by those labels, and only their containers give jobs."""
    shop = box("shop", **PING, **{"com.docker.compose.project": "shop", "backup": "yes"})
    other = box("other", **PING, **{"com.docker.compose.project": "other", "backup": "yes"})
    bare = box("bare", **PING, **{"com.docker.compose.project": "shop"})
    with watching(
        shop, other, bare, label_filter=("com.docker.compose.project=shop", "backup"), start=False
    ) as w:
        found = w.watch.scan()
    assert list(found.jobs) == ["shop.ping"]
    assert ("select", "label_filter") in w.engine.calls


def test_no_filter_every_container() -> None:
    """No label_filter: every container's jobs."""
    with watching(box("a", **PING), box("b", **PING), start=False) as w:
        assert sorted(w.watch.scan().jobs) == ["a.ping", "b.ping"]


def test_a_refusal_is_logged_when_first_seen() -> None:
    """labels.rejected once for a refusal, not again at the next scan with the same labels;
    once it has gone, its return is logged again."""
    app = box("app", **PING, **BAD)
    with watching(app, start=False) as w:
        w.watch.scan()
        w.watch.scan()
        rejected = events(w.logs, "labels.rejected")
        assert [(e["container"], e["job"], e["key"]) for e in rejected] == [("app", "bad", "image")]
        assert "label_allow" in rejected[0]["reason"]
        w.engine.selectable[:] = [box("app", **PING)]
        w.watch.scan()
        assert len(events(w.logs, "labels.rejected")) == 1
        w.engine.selectable[:] = [app]
        w.watch.scan()
        assert len(events(w.logs, "labels.rejected")) == 2


def test_a_changed_refusal_is_logged() -> None:
    """The same job refused for another key: a new refusal, logged."""
    with watching(box("app", **BAD), start=False) as w:
        w.watch.scan()
        w.engine.selectable[:] = [box("app", **{**BAD, f"{PREFIX}bad.network": "host"})]
        w.watch.scan()
    assert [e["key"] for e in events(w.logs, "labels.rejected")] == ["image", "network"]


def test_an_event_leads_to_a_scan_and_apply() -> None:
    """The watch follows the container events it needs; an event is a scan whose jobs go to
    apply with trigger 'event'."""
    with watching(box("app", **PING)) as w:
        stream = w.stream()
        assert ("container_events", (ACTIONS, ())) in w.engine.calls
        wait_for(lambda: w.triggers() == ["start"])  # what happened before the stream
        stream.send("start", "app" * 21 + "a", "app")
        wait_for(lambda: w.triggers() == ["start", "event"])
        found, _ = w.applied[-1]
        assert list(found.jobs) == ["app.ping"]


def test_the_events_followed_are_the_filters() -> None:
    """label_filter: the engine is asked for the events of those containers only."""
    with watching(box("app", **PING), label_filter=("a=b", "c")) as w:
        w.stream()
        assert w.engine.calls.count(("container_events", (ACTIONS, ("a=b", "c")))) == 1


class Scripted:
    """An event stream of ``events``; ``done`` is set once the watch has taken the last of
    them (asked for the next), then it waits to be closed."""

    def __init__(self, *events: ContainerEvent) -> None:
        self._events = events
        self.done = threading.Event()
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[ContainerEvent]:
        yield from self._events
        self.done.set()
        self._closed.wait(10)

    def close(self) -> None:
        self._closed.set()


def test_events_of_the_daemons_own_containers_are_ignored() -> None:
    """An event of a container carrying the daemon's label (a run's container) is no reason
    to scan; the app's next event is."""
    ours = ContainerEvent("die", "r" * 64, "d-job-run", {LABEL_DAEMON: "d"})
    theirs = ContainerEvent("start", "a" * 64, "app", {})
    stream = Scripted(ours, ours, theirs)
    with watching(box("app", **PING), start=False) as w:
        asked: list[str] = []
        refresh = w.watch.refresh

        def told(trigger: str = "reload") -> None:
            asked.append(trigger)
            refresh(trigger)

        w.watch.refresh = told  # type: ignore[method-assign]
        w.engine.container_events = lambda actions, labels: stream  # type: ignore[method-assign,return-value,assignment]
        w.watch.start()
        assert stream.done.wait(10)
        assert asked == ["start", "event"]


def test_refresh_scans_with_its_trigger() -> None:
    """refresh (a reload): a scan applied with that trigger."""
    with watching(box("app", **PING)) as w:
        wait_for(lambda: w.triggers() == ["start"])
        w.watch.refresh("reload")
        wait_for(lambda: w.triggers() == ["start", "reload"])


def test_a_stream_that_ends_is_followed_again_with_a_scan() -> None:
    """The engine ends the stream (a restart): labels.events_lost once, a new stream, and a
    scan with trigger events_resumed for what happened meanwhile."""
    with watching(box("app", **PING)) as w:
        w.stream(1).end()
        wait_for(lambda: "events_resumed" in w.triggers())
        assert len(w.engine.event_streams) == 2
        lost = events(w.logs, "labels.events_lost")
        assert [e["error"] for e in lost] == ["the engine ended the event stream"]
        w.stream(2).send("die")
        wait_for(lambda: w.triggers()[-1:] == ["event"])


def test_an_outage_is_logged_once() -> None:
    """The events cannot be followed for several attempts: one labels.events_lost for the
    outage (with the engine's error), then events_resumed when they can again."""
    with watching(box("app", **PING), start=False) as w:
        w.engine.fail["container_events"] = EngineError("engine is down")
        w.watch.start()
        wait_for(lambda: w.engine.names().count("container_events") >= 3)
        del w.engine.fail["container_events"]
        wait_for(lambda: w.triggers() == ["events_resumed"])
        assert [e["error"] for e in events(w.logs, "labels.events_lost")] == ["engine is down"]


class Steady:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def ending_at_once(w: Watched, count: int) -> None:
    """The first ``count`` streams the engine gives end as soon as they open (a socket
    proxy closing idle streams); later ones stay open."""
    real = w.engine.container_events

    def events(actions: tuple[str, ...], labels: Any) -> Any:
        stream = real(actions, labels)
        if len(w.engine.event_streams) <= count:
            stream.end()
        return stream

    w.engine.container_events = events  # type: ignore[method-assign]


def test_streams_that_end_as_they_open_are_one_outage() -> None:
    """The engine ends each stream at once, three times: one labels.events_lost, not one per
    stream, and a scan (events_resumed) each time the events are followed again."""
    with watching(box("app", **PING), start=False, monotonic=Steady()) as w:
        ending_at_once(w, 3)
        w.watch.start()
        w.stream(4)
        wait_for(lambda: "events_resumed" in w.triggers())
        lost = events(w.logs, "labels.events_lost")
        assert [e["error"] for e in lost] == ["the engine ended the event stream"]


def test_streams_that_end_at_once_are_retried_ever_more_slowly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each quick end counts as a failed attempt: the waits between attempts grow as in an
    outage (here the third wait is an hour: the third stream is the last opened)."""
    monkeypatch.setattr(watch, "RETRY_S", (0.01, 0.01, 3600.0))
    with watching(box("app", **PING), start=False, monotonic=Steady()) as w:
        ending_at_once(w, 10)
        waits: list[float | None] = []
        stopped = w.watch._stopped  # how long the watch waits, seen
        original = stopped.wait

        def wait(timeout: float | None = None) -> bool:
            waits.append(timeout)
            return original(timeout)

        stopped.wait = wait  # type: ignore[method-assign]
        w.watch.start()
        wait_for(lambda: 3600.0 in waits)
        assert len(w.engine.event_streams) == 3
        assert len(events(w.logs, "labels.events_lost")) == 1


def test_a_stream_that_lived_long_ends_a_new_outage() -> None:
    """A stream open for STEADY_S (30 s) or more worked: its end is a new outage, logged
    again (here each stream lives 30 s and ends: each end is logged)."""
    with watching(box("app", **PING), start=False, monotonic=Steady(watch.STEADY_S)) as w:
        ending_at_once(w, 3)
        w.watch.start()
        w.stream(4)
        assert len(events(w.logs, "labels.events_lost")) == 3


def test_a_stream_that_gave_an_event_ends_a_new_outage() -> None:
    """A stream that gave an event worked, however short it lived: its end is logged again."""
    with watching(box("app", **PING), start=False, monotonic=Steady()) as w:
        real = w.engine.container_events

        def eventful(actions: tuple[str, ...], labels: Any) -> Any:
            stream = real(actions, labels)
            if len(w.engine.event_streams) <= 3:  # three such streams
                stream.send("start")
                stream.end()
            return stream

        w.engine.container_events = eventful  # type: ignore[method-assign]
        w.watch.start()
        w.stream(4)
        assert len(events(w.logs, "labels.events_lost")) == 3


def test_a_stream_that_breaks_is_lost_with_its_error() -> None:
    """An EngineError while reading the stream: events_lost with that error."""

    class Broken:
        closed = False

        def __iter__(self) -> Iterator[Any]:
            raise EngineError("connection reset")

        def close(self) -> None:
            self.closed = True

    with watching(box("app", **PING), start=False) as w:
        real = w.engine.container_events
        streams: list[Any] = [Broken()]
        w.engine.container_events = lambda actions, labels: (  # type: ignore[method-assign]
            streams.pop() if streams else real(actions, labels)
        )
        w.watch.start()
        wait_for(lambda: "events_resumed" in w.triggers())
        assert [e["error"] for e in events(w.logs, "labels.events_lost")] == ["connection reset"]


def test_stop_ends_both_threads_and_closes_the_stream() -> None:
    """stop(): the event thread and the scan thread end, the stream is closed; no scan after."""
    before = set(threading.enumerate())
    with watching(box("app", **PING)) as w:
        stream = w.stream()
        wait_for(lambda: w.triggers() == ["start"])
        started = [
            t for t in threading.enumerate() if t not in before and t.name.startswith("label-")
        ]
        assert sorted(t.name for t in started) == ["label-events", "label-scan"]
    assert stream.closed
    assert not any(t.is_alive() for t in started)
    assert w.triggers() == ["start"]  # stop is no reason to scan


def test_a_failing_scan_is_logged_and_applies_nothing() -> None:
    """The engine cannot list containers: labels.scan_failed with the error and trigger; apply
    is not called (the jobs in force stay); the next scan runs again."""
    with watching(box("app", **PING), start=False) as w:
        w.engine.fail["select"] = EngineError("no engine")
        w.watch.start()
        wait_for(lambda: len(events(w.logs, "labels.scan_failed")) == 1)
        (failed,) = events(w.logs, "labels.scan_failed")
        assert (failed["error"], failed["trigger"], failed["log_level"]) == (
            "no engine",
            "start",
            "warning",
        )
        assert w.applied == []
        del w.engine.fail["select"]
        w.watch.refresh("resync")
        wait_for(lambda: w.triggers() == ["resync"])


def test_a_bug_in_a_scan_does_not_end_discovery() -> None:
    """A scan that raises something unexpected: labels.scan_failed at error, and the next
    scan runs."""
    with watching(box("app", **PING), start=False) as w:
        w.engine.fail["select"] = RuntimeError("bug")  # type: ignore[assignment]
        w.watch.start()
        wait_for(lambda: len(events(w.logs, "labels.scan_failed")) == 1)
        assert events(w.logs, "labels.scan_failed")[0]["log_level"] == "error"
        del w.engine.fail["select"]
        w.watch.refresh("event")
        wait_for(lambda: w.triggers() == ["event"])
