"""The whole daemon with [daemon] labels = true against a scripted engine: the containers'
label jobs scheduled at start, kept current on events, kept and re-scanned at a reload."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from jobs.selectors import Selector
from scheduler.engine import ContainerInfo
from scheduler.errors import EngineError
from scheduler.labels.parse import PREFIX

from .fakes import FakeClock, FakeEngine
from .helpers import events, wait_for
from .test_daemon import job, running

if TYPE_CHECKING:
    from pathlib import Path

LABELS = 'labels = true\n[defaults]\ntimeout = "5m"\n'
"""Discovery on (the [daemon] table is open before this), and [defaults]."""


def box(name: str, schedule: str = "@every 1s", **more: str) -> ContainerInfo:
    """Container ``name`` declaring job ``ping`` (an exec of ``work`` in it)."""
    labels = {f"{PREFIX}ping.schedule": schedule, f"{PREFIX}ping.command": '"work"', **more}
    return ContainerInfo((name * 64)[:64], name, "running", labels)


def test_label_jobs_are_scheduled_at_start(tmp_path: Path) -> None:
    """labels = true: the containers' label jobs are found before the schedule starts
    (labels.applied trigger start), scheduled as <container>.<job> beside the config's,
    and run in their container."""
    engine = FakeEngine(FakeClock(), selectable=[box("app"), box("db", "@yearly")])
    with running(tmp_path, LABELS + job("nightly", "@yearly"), engine) as daemon:
        (applied,) = daemon.wait_for("labels.applied")
        assert (applied["trigger"], applied["added"], applied["jobs"]) == (
            "start",
            ["app.ping", "db.ping"],
            2,
        )
        scheduled = {e["job"]: e["kind"] for e in daemon.wait_for("job.scheduled", count=3)}
        assert scheduled == {"nightly": "run", "app.ping": "exec", "db.ping": "exec"}
        names = [e["event"] for e in daemon.logs]
        assert names.index("labels.applied") < names.index("daemon.started")
        daemon.wait_for("run.succeeded", job="app.ping")
        declared = daemon.daemon.jobset.all()["app.ping"].container
        assert declared is not None
        assert declared.name == "app"
        assert daemon.daemon.jobset.all()["app.ping"].job.timeout == 300.0  # [defaults]
    assert ("container_events", (("start", "die", "destroy", "rename"), ())) in engine.calls


def test_without_labels_no_discovery(tmp_path: Path) -> None:
    """labels off (the default): containers' labels are not read, no events followed."""
    engine = FakeEngine(FakeClock(), selectable=[box("app")])
    with running(tmp_path, job("nightly", "@yearly"), engine) as daemon:
        assert sorted(daemon.daemon.jobset.all()) == ["nightly"]
    assert "container_events" not in engine.names()
    assert ("select", "label_filter") not in engine.calls
    assert events(daemon.logs, "labels.applied") == []


def test_a_reload_keeps_label_jobs_and_scans_with_the_new_defaults(tmp_path: Path) -> None:
    """SIGHUP with another [defaults]: the label jobs stay scheduled (no job.removed, they
    run on) and are scanned again (labels.applied trigger reload) with the new defaults."""
    engine = FakeEngine(FakeClock(), selectable=[box("app")])
    with running(tmp_path, LABELS + job("nightly", "@yearly"), engine) as daemon:
        daemon.wait_for("run.succeeded", job="app.ping")
        daemon.path.write_text(daemon.path.read_text().replace('"5m"', '"7m"'))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")
        (applied,) = daemon.wait_for("labels.applied", trigger="reload")
        assert (applied["added"], applied["removed"], applied["changed"]) == (
            [],
            [],
            ["app.ping"],
        )
        assert daemon.daemon.jobset.all()["app.ping"].job.timeout == 420.0
        assert daemon.daemon.jobset.all()["nightly"].job.timeout == 420.0
        runs = len(daemon.wait_for("run.succeeded", job="app.ping"))
        daemon.wait_for("run.succeeded", count=runs + 1, job="app.ping")  # runs on
    assert events(daemon.logs, "job.removed") == []


def test_a_reload_whose_config_takes_a_label_jobs_name(tmp_path: Path) -> None:
    """The reloaded config defines app.ping: the config's job is in force, and the next scan
    refuses the label's (labels.rejected, the config's kept)."""
    engine = FakeEngine(FakeClock(), selectable=[box("app")])
    with running(tmp_path, LABELS + job("nightly", "@yearly"), engine) as daemon:
        daemon.wait_for("labels.applied", trigger="start")
        taken = '[jobs."app.ping"]\nkind = "run"\nimage = "i"\nschedule = "@yearly"\n'
        daemon.path.write_text(daemon.path.read_text() + taken)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")
        (rejected,) = daemon.wait_for("labels.rejected", job="ping")
        assert rejected["reason"] == "the config defines a job named 'app.ping': it is kept"
        assert daemon.daemon.jobset.all()["app.ping"].container is None
        assert daemon.daemon.jobset.all()["app.ping"].job.kind == "run"


class Scanning(FakeEngine):
    """Counts the scans that have read the containers (selected by label_filter)."""

    scans = 0

    def select(self, selector: Selector) -> list[ContainerInfo]:
        found = super().select(selector)
        if selector.text == "label_filter":
            self.scans += 1
        return found


def test_events_add_and_remove_label_jobs(tmp_path: Path) -> None:
    """A container started (an event): its jobs are applied (trigger event) and scheduled;
    one removed: its jobs leave (job.removed reason labels)."""
    engine = Scanning(FakeClock(), selectable=[box("app", "@yearly")])
    with running(tmp_path, LABELS, engine) as daemon:
        daemon.wait_for("labels.applied", trigger="start")
        wait_for(lambda: bool(engine.event_streams))  # followed once the schedule runs
        wait_for(lambda: engine.scans >= 2)  # at start, and once the stream is there
        engine.selectable.append(box("db", "@yearly"))
        engine.event_streams[0].send("start", "db", "db")
        (added,) = daemon.wait_for("labels.applied", trigger="event")
        assert (added["added"], added["jobs"]) == (["db.ping"], 2)
        daemon.wait_for("job.scheduled", job="db.ping")
        del engine.selectable[0]
        engine.event_streams[0].send("destroy", "app", "app")
        (gone,) = daemon.wait_for("labels.applied", trigger="event", removed=["app.ping"])
        assert gone["jobs"] == 1
        (removed,) = daemon.wait_for("job.removed")
        assert (removed["job"], removed["reason"]) == ("app.ping", "labels")
        assert sorted(daemon.daemon.jobset.all()) == ["db.ping"]


def test_a_failed_first_scan_is_retried(tmp_path: Path) -> None:
    """The containers cannot be listed at start: labels.scan_failed trigger start, the daemon
    starts with the config's jobs, and the watch scans again (applied, trigger start)."""
    engine = FakeEngine(FakeClock(), selectable=[box("app", "@yearly")])
    fails = [EngineError("busy")]
    select = engine.select

    def flaky(selector: Selector) -> list[ContainerInfo]:
        if selector.text == "label_filter" and fails:
            raise fails.pop()
        return select(selector)

    engine.select = flaky  # type: ignore[method-assign]
    with running(tmp_path, LABELS + job("nightly", "@yearly"), engine) as daemon:
        (failed,) = daemon.wait_for("labels.scan_failed")
        assert (failed["trigger"], failed["error"]) == ("start", "busy")
        (applied,) = daemon.wait_for("labels.applied")
        assert (applied["trigger"], applied["added"]) == ("start", ["app.ping"])
        daemon.wait_for("job.scheduled", job="app.ping")
