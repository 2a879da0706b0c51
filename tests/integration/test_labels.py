"""Jobs declared in container labels on the real engine (#18): found when their container
starts after the daemon, replaced when it is recreated with other labels, skipped while it
is stopped and unscheduled when it is removed; found again after an engine restart;
``crontainer trigger`` of a label job; the fence and what ``label_allow`` widens; one run
per Compose service unless per_replica."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import docker
import docker.errors
import pytest

from scheduler.engine import LABEL_DAEMON, LABEL_ROLE

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    TEST_LABELS,
    Daemon,
    Event,
    PrivateEngine,
    event,
    output_of,
    unique,
)
from .helpers import cli, run_cli

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
FILTER = "crontainer-test.labels"
"""The label the daemons' ``label_filter`` asks for, with a value of the test's own: a test
sees no other test's (or session's) containers."""
JOBS = "crontainer.jobs."
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
"""A container that runs until stopped, and stops at once on SIGTERM (busybox's sleep as
PID 1 would make a stop wait the engine's 10 s)."""
EVERY_2S = "@every 2s"
KINDS = '["exec", "signal", "backup", "rotate", "logship", "run"]'
"""label_kinds with run added: a label's ``image`` is then refused for itself, not its kind."""
COMPOSE_PROJECT, COMPOSE_SERVICE = "com.docker.compose.project", "com.docker.compose.service"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def sh(script: str) -> str:
    """A label value: ``sh -c script`` as a TOML array."""
    return f'["sh", "-c", "{script}"]'


class Scene:
    """One test's containers and volumes on one engine: labelled for the session (and, for
    the containers that give jobs, with the test's own filter value); removed at the end,
    the containers first."""

    def __init__(self, client: docker.DockerClient, **run_args: Any) -> None:
        self.client = client
        self.tag = unique("labels")
        self._run_args = run_args
        self._containers: list[str] = []
        self._volumes: list[str] = []

    def daemon_keys(self, extra: str = "") -> str:
        """The [daemon] keys of a daemon that takes this scene's label jobs."""
        return f'labels = true\nlabel_filter = ["{FILTER}={self.tag}"]\n{extra}'

    def volume(self, prefix: str) -> str:
        name = unique(prefix)
        self.client.volumes.create(name, labels=TEST_LABELS)
        self._volumes.append(name)
        return name

    def start(
        self,
        name: str,
        jobs: Mapping[str, Mapping[str, str]],
        *,
        filtered: bool = True,
        labels: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A running sleeper named ``name`` whose labels declare ``jobs`` (job → key → label
        value); ``filtered``: with the filter label (its jobs are taken)."""
        given = {**TEST_LABELS, **(labels or {})}
        if filtered:
            given[FILTER] = self.tag
        for job, keys in jobs.items():
            given.update({f"{JOBS}{job}.{key}": value for key, value in keys.items()})
        container = self.client.containers.run(
            BUSYBOX, SLEEPER, name=name, detach=True, labels=given, **self._run_args, **kwargs
        )
        self._containers.append(container.id)
        return container

    def close(self) -> None:
        for made in reversed(self._containers):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(made).remove(force=True, v=True)
        for volume in self._volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(volume).remove(force=True)


@pytest.fixture
def scenes(engine: docker.DockerClient) -> Iterator[Callable[[], Scene]]:
    """Scenes on the shared engine (each with its own filter value), removed after the test
    (named before ``start_daemon`` in a test's arguments: removed after its daemons ended)."""
    made: list[Scene] = []

    def scene() -> Scene:
        made.append(Scene(engine))
        return made[-1]

    yield scene
    for each in made:
        each.close()


class Creations:
    """The containers the engine creates for one daemon (by its label), while it watches:
    each one's labels and name."""

    def __init__(self, client: docker.DockerClient, daemon: str) -> None:
        self.seen: list[dict[str, str]] = []
        self._stream = client.events(
            decode=True,
            filters={"type": "container", "event": "create", "label": f"{LABEL_DAEMON}={daemon}"},
        )
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        with contextlib.suppress(Exception):  # the stream closed by close()
            for item in self._stream:
                self.seen.append(item.get("Actor", {}).get("Attributes", {}))

    def close(self) -> list[dict[str, str]]:
        """Stop watching; the names seen."""
        self._stream.close()
        self._thread.join(5)
        return self.seen


def next_event(
    daemon: Daemon, predicate: Callable[[Event], bool], after: int, timeout: float = 30
) -> tuple[int, Event]:
    """The first event matching ``predicate`` at position ``after`` of the log or later
    (waited for), with its position."""
    before = sum(1 for e in daemon.log.events[:after] if predicate(e))
    found = daemon.log.wait_for(predicate, timeout, count=before + 1)[before]
    return next(i for i, e in enumerate(daemon.log.events) if e is found), found


def job_events(daemon: Daemon, job: str, since: int = 0) -> list[Event]:
    """The events about ``job`` from position ``since`` of the log on."""
    return [e for e in daemon.log.events[since:] if e.get("job") == job]


def outputs(daemon: Daemon, job: str) -> dict[str, list[str]]:
    """By run id, the lines a job's runs printed."""
    lines: dict[str, list[str]] = {}
    for e in daemon.log.matching(event("run.output", job=job)):
        lines.setdefault(e["run_id"], []).append(e["line"])
    return lines


def applied_with(job: str, *keys: str) -> Callable[[Event], bool]:
    """Predicate: ``labels.applied`` listing ``job`` under one of ``keys``."""
    return lambda e: e.get("event") == "labels.applied" and any(job in e[k] for k in keys)


def stop(daemon: Daemon) -> None:
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


@dataclass(frozen=True)
class Life:
    """The first test's daemon and scene, the volumes and the name of its container."""

    daemon: Daemon
    scene: Scene
    data: str
    target: str
    name: str = field(default_factory=lambda: unique("t-lab-app"))

    @property
    def note(self) -> str:
        return f"{self.name}.note"

    @property
    def save(self) -> str:
        return f"{self.name}.save"


def test_a_container_started_later_gives_jobs_that_follow_its_labels_and_its_life(
    scenes: Callable[[], Scene], start_daemon: Start, engine: docker.DockerClient
) -> None:
    """A container started after the daemon: its exec and backup label jobs are scheduled
    from its start event and each runs at its first due time, at most one period later (the
    exec's file written, an archive of the container's volume in the target). Recreated with
    other labels: the new command on the new schedule, the backup unscheduled, the old
    command never again. Stopped: its runs are skipped (container_not_running). Removed:
    job.removed, and nothing of it is due any more while another container's job goes on."""
    scene = scenes()
    data, target = scene.volume("t-lab-data"), scene.volume("t-lab-target")
    output_of(engine, BUSYBOX, ["sh", "-c", "echo seed > /data/seed"], volumes=[f"{data}:/data"])
    daemon = start_daemon("", daemon=scene.daemon_keys(f'ops_image = "{PROJECT_IMAGE}"\n'))
    started = daemon.log.wait_for(event("labels.applied", trigger="start"))[0]
    assert (started["added"], started["jobs"]) == ([], 0)
    daemon.log.wait_for(event("daemon.started"))
    life = Life(daemon, scene, data, target)
    app = started_after_the_daemon(life, engine)
    app = recreated_with_other_labels(life, app)
    stopped_then_removed(life, app)


def started_after_the_daemon(life: Life, engine: docker.DockerClient) -> Any:
    """Both jobs found from the container's start event; each runs at its first due time."""
    log, note, save = life.daemon.log, life.note, life.save
    app = life.scene.start(
        life.name,
        {
            "note": {"schedule": EVERY_2S, "command": sh("echo v1 | tee -a /data/note")},
            "save": {"kind": "backup", "schedule": EVERY_2S, "target": life.target},
        },
        volumes=[f"{life.data}:/data"],
    )
    found = log.wait_for(applied_with(note, "added"))[0]
    # Found from its start event, or by the scan that follows the daemon's subscription to
    # the events if it started before that: not at the resync (60 s, longer than the wait).
    assert found["trigger"] in {"event", "start"}
    assert sorted(found["added"]) == [note, save]
    for job in (note, save):
        planned = log.wait_for(event("job.scheduled", job=job))[0]
        assert at(planned["next_run"]) <= at(planned["timestamp"]) + timedelta(seconds=2)
        first = log.wait_for(event("run.started", job=job), timeout=60)[0]
        assert (first["trigger"], first["scheduled_at"]) == ("schedule", planned["next_run"])
    log.wait_for(event("run.succeeded", job=note))
    backup = log.wait_for(event("run.succeeded", job=save), timeout=90)[0]
    assert app.exec_run(["cat", "/data/note"]).output.decode().split()[0] == "v1"
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        ["tar", "-tf", f"/backup/{backup['archive']}"],
        volumes=[f"{life.target}:/backup:ro"],
    )
    assert "data/seed" in listing.splitlines(), listing
    assert not log.matching(event("labels.rejected"))
    return app


def recreated_with_other_labels(life: Life, app: Any) -> Any:
    """Removed and created again under the same name, with another schedule and command
    and without the backup: the new definition runs, the old command never again."""
    daemon, note = life.daemon, life.note
    mark = len(daemon.log.events)
    app.remove(force=True)
    new_schedule = "@with-seconds */3 * * * * *"
    app = life.scene.start(
        life.name,
        {"note": {"schedule": new_schedule, "command": sh("echo v2 | tee -a /data/note")}},
        volumes=[f"{life.data}:/data"],
    )
    next_event(daemon, applied_with(note, "added", "changed"), mark)
    _, planned = next_event(daemon, event("job.scheduled", job=note), mark)
    assert planned["schedule"] == new_schedule
    _, dropped = next_event(daemon, event("job.removed", job=life.save, reason="labels"), mark)
    daemon.log.wait_for(event("run.output", job=note, line="v2"), count=2)
    ran = outputs(daemon, note)

    def fired_after(job: str, moment: str) -> list[Event]:
        """The runs of ``job`` due after ``moment`` (a run fired before it may log its start
        later, under load: its scheduled time tells)."""
        return [
            e
            for e in job_events(daemon, job)
            if e["event"] == "run.started" and at(e["scheduled_at"]) > at(moment)
        ]

    after = [e["run_id"] for e in fired_after(note, planned["timestamp"])]
    assert after
    assert all(ran.get(run_id, ["v2"]) == ["v2"] for run_id in after), ran
    assert fired_after(life.save, dropped["timestamp"]) == []
    lines = app.exec_run(["cat", "/data/note"]).output.decode().split()
    assert lines == ["v1"] * lines.count("v1") + ["v2"] * lines.count("v2"), lines
    assert lines.count("v1") >= 1
    assert lines.count("v2") >= 2
    return app


def stopped_then_removed(life: Life, app: Any) -> None:
    """Stopped: its runs are skipped, not failed. Removed: unscheduled, nothing of it due
    any more while a witness container's job goes on."""
    daemon, note = life.daemon, life.note
    witness = unique("t-lab-witness")
    tick = f"{witness}.tick"
    life.scene.start(witness, {"tick": {"schedule": EVERY_2S, "command": '["true"]'}})
    daemon.log.wait_for(event("run.succeeded", job=tick))
    mark = len(daemon.log.events)
    app.stop(timeout=10)
    _, skipped = next_event(
        daemon, event("run.skipped", job=note, reason="container_not_running"), mark
    )
    assert skipped["container"] == life.name
    mark = len(daemon.log.events)
    app.remove()
    _, removed = next_event(daemon, event("job.removed", job=note, reason="labels"), mark)
    _, gone = next_event(daemon, applied_with(note, "removed"), mark)
    assert gone["trigger"] == "event"
    # Wait until the witness was due later than `note` would have been due next (3 s).
    due_by = at(removed["timestamp"]) + timedelta(seconds=3)
    daemon.log.wait_for(
        lambda e: event("run.started", job=tick)(e) and at(e["scheduled_at"]) > due_by, timeout=30
    )
    stop(daemon)
    late = [
        e
        for e in job_events(daemon, note)
        if "scheduled_at" in e and at(e["scheduled_at"]) > at(removed["timestamp"])
    ]
    assert late == []
    rows = daemon.history(note)
    assert ("skipped", "container_not_running") in {(r["status"], r["reason"]) for r in rows}


def test_an_engine_restart_loses_the_events_and_the_jobs_are_found_again(
    start_daemon: Start, private_engine: PrivateEngine
) -> None:
    """A private dockerd stopped and started again on the same socket and data: the event
    stream is lost (labels.events_lost); afterwards the job of a container the engine
    restarted runs again, and a container created once the engine is back — the daemon's
    stream still down or just resumed — is found through the stream followed again: the
    scan on its return (events_resumed) or the container's event. label_resync is an hour:
    no resync can find it instead."""
    scene = Scene(private_engine.client, network_mode="none")
    try:
        name = unique("t-lab-steady")
        beat = f"{name}.beat"
        scene.start(
            name,
            {"beat": {"schedule": EVERY_2S, "command": sh("echo beat")}},
            restart_policy={"Name": "always"},
        )
        daemon = start_daemon(
            "",
            daemon=scene.daemon_keys('label_resync = "1h"\nops_image = "busybox:latest"\n'),
            env={"DOCKER_HOST": private_engine.host},
        )
        log = daemon.log
        log.wait_for(event("run.succeeded", job=beat))
        private_engine.stop()
        lost = log.wait_for(event("labels.events_lost"), timeout=60)[0]
        mark = log.events.index(lost)
        private_engine.start()
        late = unique("t-lab-late")
        fresh = f"{late}.fresh"
        scene.start(late, {"fresh": {"schedule": EVERY_2S, "command": sh("echo fresh")}})
        # The stream is tried again after 1, 2, 5, 10, then 30 s: up to 30 s after the return.
        found = log.wait_for(applied_with(fresh, "added"), timeout=90)[0]
        assert found["trigger"] in {"events_resumed", "event"}
        log.wait_for(event("run.output", job=fresh, line="fresh"), timeout=60)
        next_event(daemon, event("run.succeeded", job=beat), mark, timeout=60)
        stop(daemon)
    finally:
        scene.close()


def test_a_label_job_is_triggered_by_its_name(
    scenes: Callable[[], Scene], start_daemon: Start
) -> None:
    """``crontainer trigger <container>.<job>`` with the daemon's config, which does not hold
    the label job: the daemon runs it now (trigger manual), its schedule a year away; a
    misspelt name is unknown to the daemon too, with the label job as the closest name."""
    scene = scenes()
    name = unique("t-lab-trigger")
    job = f"{name}.once"
    scene.start(name, {"once": {"schedule": "@yearly", "command": sh("echo triggered")}})
    daemon = start_daemon("", daemon=scene.daemon_keys())
    daemon.log.wait_for(event("daemon.started"))
    assert job in daemon.log.wait_for(event("labels.applied", trigger="start"))[0]["added"]
    said = cli(daemon, "trigger", job)
    started = daemon.log.wait_for(event("run.started", job=job))[0]
    assert said == f"triggered {job}: run {started['run_id']}\n"
    assert started["trigger"] == "manual"
    daemon.log.wait_for(event("run.output", job=job, line="triggered"))
    daemon.log.wait_for(event("run.succeeded", job=job))
    wrong = run_cli(daemon, "trigger", f"{name}.ocne")
    assert wrong.returncode == 2
    assert f"nor in the daemon's jobs); did you mean '{job}'?" in wrong.stderr
    stop(daemon)


def rejected(daemon: Daemon) -> set[tuple[str, str, str]]:
    return {
        (e["container"], e["job"], e["key"]) for e in daemon.log.matching(event("labels.rejected"))
    }


def test_the_fence_refuses_what_reaches_beyond_the_container_and_label_allow_widens_it(
    scenes: Callable[[], Scene], start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Label jobs asking for an image, a host directory, an exec in another container or a
    stop of another container are refused (labels.rejected: container, job, key) and nothing
    of theirs happens — no container created, nothing run in the other container, which
    keeps running — while the same container's valid job runs. A daemon with label_allow =
    ["other_containers"] runs the exec in the other container, and still refuses image."""
    narrow, wide = scenes(), scenes()
    target = narrow.volume("t-lab-target")
    other = narrow.start(unique("t-lab-other"), {}, filtered=False)
    fenced, widened = unique("t-lab-fenced"), unique("t-lab-widened")
    image_job = {"kind": "run", "schedule": EVERY_2S, "image": BUSYBOX, "command": "true"}
    narrow.start(
        fenced,
        {
            "ok": {"schedule": EVERY_2S, "command": sh("echo ok")},
            "img": image_job,
            "hostpath": {"kind": "backup", "schedule": EVERY_2S, "target": "/tmp/x"},
            "elsewhere": {
                "schedule": EVERY_2S,
                "container": other.name,
                "command": sh("echo fenced > /tmp/reached"),
            },
            "stopper": {
                "kind": "backup",
                "schedule": EVERY_2S,
                "target": target,
                "stop": f'["{other.name}"]',
            },
        },
    )
    wide.start(
        widened,
        {
            "elsewhere": {
                "schedule": EVERY_2S,
                "container": other.name,
                "command": sh("echo widened > /tmp/widened"),
            },
            "img": image_job,
        },
    )
    other.reload()
    other_started = other.attrs["State"]["StartedAt"]
    names = unique("t-narrow"), unique("t-wide")
    creations = [Creations(engine, name) for name in names]
    first = start_daemon(
        "",
        daemon=narrow.daemon_keys(f'label_kinds = {KINDS}\nops_image = "{PROJECT_IMAGE}"\n'),
        name=names[0],
    )
    second = start_daemon(
        "",
        daemon=wide.daemon_keys(
            f'label_kinds = {KINDS}\nlabel_allow = ["other_containers"]\n'
            f'ops_image = "{PROJECT_IMAGE}"\n'
        ),
        name=names[1],
    )
    try:
        first.log.wait_for(event("run.output", job=f"{fenced}.ok", line="ok"), count=2)
        second.log.wait_for(event("run.succeeded", job=f"{widened}.elsewhere"), count=2)
    finally:
        created = [c.close() for c in creations]
    stop(first)
    stop(second)

    assert rejected(first) == {
        (fenced, "img", "image"),
        (fenced, "hostpath", "target"),
        (fenced, "elsewhere", "container"),
        (fenced, "stopper", "stop"),
    }
    start = first.log.matching(event("labels.applied", trigger="start"))[0]
    assert start["added"] == [f"{fenced}.ok"]
    for job in ("img", "hostpath", "elsewhere", "stopper"):
        assert job_events(first, f"{fenced}.{job}") == []
    # Each daemon's lock container is seen (the watch works); nothing else was created.
    assert [[c.get(LABEL_ROLE) for c in seen] for seen in created] == [["lock"], ["lock"]]
    assert other.exec_run(["cat", "/tmp/reached"]).exit_code != 0
    other.reload()
    assert (other.status, other.attrs["State"]["StartedAt"]) == ("running", other_started)

    assert rejected(second) == {(widened, "img", "image")}
    assert other.exec_run(["cat", "/tmp/widened"]).output.decode() == "widened\n"
    assert job_events(second, f"{widened}.img") == []


def test_replicas_of_a_compose_service_run_a_job_once_unless_per_replica(
    scenes: Callable[[], Scene], start_daemon: Start
) -> None:
    """Two containers of one Compose service (same project and service labels) with the same
    label jobs: a job runs in the first of them by name only, named after the service
    (<project>-<service>.<job>); one with per_replica = true runs in both."""
    scene = scenes()
    base, project = unique("t-lab-web"), unique("t-lab-project")
    service = {COMPOSE_PROJECT: project, COMPOSE_SERVICE: "web"}
    jobs = {
        "once": {"schedule": EVERY_2S, "command": sh("echo $REPLICA")},
        "each": {"schedule": EVERY_2S, "command": sh("echo $REPLICA"), "per_replica": "true"},
    }
    for replica in ("2", "1"):  # the second by name first: the order of creation is no rule
        scene.start(f"{base}-{replica}", jobs, labels=service, environment={"REPLICA": replica})
    first, second = f"{base}-1", f"{base}-2"
    daemon = start_daemon("", daemon=scene.daemon_keys())
    log = daemon.log
    applied = log.wait_for(event("labels.applied", trigger="start"))[0]
    once = f"{project}-web.once"
    assert applied["added"] == sorted([once, f"{first}.each", f"{second}.each"])
    log.wait_for(event("run.output", job=once, line="1"))
    log.wait_for(event("run.output", job=f"{first}.each", line="1"))
    log.wait_for(event("run.output", job=f"{second}.each", line="2"))
    stop(daemon)
    assert job_events(daemon, f"{second}.once") == job_events(daemon, f"{first}.once") == []
    assert {line for lines in outputs(daemon, once).values() for line in lines} == {"1"}
