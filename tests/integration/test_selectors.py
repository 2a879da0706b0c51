"""Container selectors on the real engine: exec by label, pre_exec by Compose service,
volumes_from and stop by label for a backup; zero and two matches failing the run with the
names found. Every label value is this test's own, so that containers of other sessions on
the same engine never match."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from .conftest import BUSYBOX, PROJECT_IMAGE, TEST_LABELS, Daemon, event, output_of, unique
from .helpers import first_success

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
Container = Any  # docker-py's Container: the library has no type hints
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"


class Made:
    """Containers made with the test label plus labels of the test's own; removed after."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self._engine = engine
        self.made: list[Container] = []

    def run(self, command: list[str], labels: dict[str, str], **kwargs: Any) -> Container:
        container = self._engine.containers.run(
            BUSYBOX,
            command,
            name=unique("t-sel"),
            detach=True,
            labels={**TEST_LABELS, **labels},
            **kwargs,
        )
        self.made.append(container)
        return container

    def close(self) -> None:
        for container in reversed(self.made):
            container.remove(force=True, v=True)


@pytest.fixture
def made(engine: docker.DockerClient) -> Iterator[Made]:
    containers = Made(engine)
    yield containers
    containers.close()


def job(name: str, kind: str, **keys: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[jobs.{name}]\nkind = "{kind}"\nschedule = "@yearly"\nrun_on_start = true\n{lines}\n'


def names(*containers: Container) -> str:
    return ", ".join(sorted(c.name for c in containers))


def test_exec_runs_in_the_one_container_its_label_selects(start_daemon: Start, made: Made) -> None:
    """A label that matches one running container: the command runs there."""
    mark = uuid.uuid4().hex[:8]
    made.run(["sh", "-c", "echo other > /tmp/who; sleep 600"], {"t-sel-role": f"web-{mark}"})
    made.run(["sh", "-c", "echo the-db > /tmp/who; sleep 600"], {"t-sel-role": f"db-{mark}"})
    daemon = start_daemon(
        job("who", "exec", container=f'"label=t-sel-role=db-{mark}"', command='"cat /tmp/who"')
    )
    done = daemon.log.wait_for(event("run.succeeded", job="who"), timeout=30)[0]
    lines = daemon.log.matching(event("run.output", run_id=done["run_id"]))
    assert [e["line"] for e in lines] == ["the-db"]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


class EngineEvents:
    """The engine's container events while it watches: (action, name, daemon) — daemon: the
    daemon label of a job's container (empty for others, the daemon's lock container too)."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self._changed = threading.Condition()
        self._stream = engine.events(decode=True, filters={"type": "container"})
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        for item in self._stream:
            attributes = item.get("Actor", {}).get("Attributes", {})
            daemon = (
                attributes.get("crontainer.daemon", "") if "crontainer.job" in attributes else ""
            )
            with self._changed:
                self.seen.append((item.get("Action", ""), attributes.get("name", ""), daemon))
                self._changed.notify_all()

    def wait_for(self, action: str, name: str, timeout: float = 30) -> None:
        """Until the engine has told of ``action`` on container ``name``."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(a == action and n == name for a, n, _ in self.seen), timeout
            )
        assert found, f"the engine did not tell of {action} {name}: {self.seen}"

    def close(self) -> None:
        self._stream.close()


def test_backup_by_selectors_archives_the_data_and_stops_the_app_around_it(
    start_daemon: Start,
    engine: docker.DockerClient,
    made: Made,
    make_volume: Callable[[str], str],
) -> None:
    """volumes_from by label takes the stopped data container; pre_exec by compose selector
    runs in the service's one running container (its dump is in the archive) — not in a
    stopped one, another project's, or a running `compose run` one-off; stop by label
    stops both app containers for the archive and starts them again after it."""
    mark = uuid.uuid4().hex[:8]
    project = f"shop{mark}"
    target = make_volume("crontainer-test-backups")
    data = made.run(
        ["sh", "-c", "echo hello > /data/hello.txt"], {"t-sel-data": mark}, volumes=["/data"]
    )
    assert data.wait(timeout=60)["StatusCode"] == 0
    made.run(  # the same service, stopped: not the one pre_exec may run in
        ["true"], {COMPOSE_PROJECT: project, COMPOSE_SERVICE: "db", COMPOSE_ONEOFF: "False"}
    ).wait(timeout=60)
    made.run(
        ["sleep", "600"],
        {COMPOSE_PROJECT: project, COMPOSE_SERVICE: "db", COMPOSE_ONEOFF: "False"},
        volumes_from=[data.name],
    )
    made.run(
        ["sleep", "600"],
        {COMPOSE_PROJECT: f"other{mark}", COMPOSE_SERVICE: "db", COMPOSE_ONEOFF: "False"},
    )
    made.run(  # a `compose run` of the service, running: not the service either
        ["sleep", "600"], {COMPOSE_PROJECT: project, COMPOSE_SERVICE: "db", COMPOSE_ONEOFF: "True"}
    )
    apps = [made.run(["sleep", "600"], {"t-sel-app": mark}) for _ in range(2)]
    started_before = {app.name: app.attrs["State"]["StartedAt"] for app in apps}
    watch = EngineEvents(engine)
    name = unique("t")
    try:
        daemon = start_daemon(
            job(
                "db",
                "backup",
                volumes_from=f'["label=t-sel-data={mark}"]',
                target=f'"{target}"',
                compression='"none"',
                stop=f'["label=t-sel-app={mark}"]',
                stop_grace='"1s"',
                pre_exec=f'[{{ container = "compose={project}/db", '
                'command = ["sh", "-c", "echo dumped > /data/dump.txt"] }]',
            ),
            daemon=f'ops_image = "{PROJECT_IMAGE}"',
            name=name,
        )
        done = first_success(daemon)
        first, second = sorted(app.name for app in apps)
        watch.wait_for("start", first)  # the last event of the run: every one before it is in
    finally:
        watch.close()
    archive = done["archive"]
    contents = output_of(
        engine,
        PROJECT_IMAGE,
        [
            "sh",
            "-c",
            f"cd /backup && tar -xOf {archive} data/hello.txt && tar -xOf {archive} data/dump.txt",
        ],
        volumes=[f"{target}:/backup:ro"],
    )
    assert contents.splitlines() == ["hello", "dumped"]
    moves = [(e["event"], e["container"]) for e in daemon.log.events if "container" in e]
    assert moves == [
        ("run.container_stopped", first),
        ("run.container_stopped", second),
        ("run.container_started", second),
        ("run.container_started", first),
    ]
    # On the engine: both apps ended before the archive's container started, and started
    # again only after it ended.
    order = [
        (action, "ops" if daemon_label == name else container)
        for action, container, daemon_label in watch.seen
        if action in ("start", "die") and (daemon_label == name or container in (first, second))
    ]
    assert order == [
        ("die", first),
        ("die", second),
        ("start", "ops"),
        ("die", "ops"),
        ("start", second),
        ("start", first),
    ]
    for app in apps:
        app.reload()
        assert app.status == "running"
        assert app.attrs["State"]["StartedAt"] != started_before[app.name]


def test_no_match_and_two_matches_fail_the_run_naming_what_was_found(
    start_daemon: Start, made: Made, make_volume: Callable[[str], str]
) -> None:
    """Where one container is needed, none or two fail the run with the names found; a stop
    selector that matches nothing fails the backup before anything is stopped."""
    mark = uuid.uuid4().hex[:8]
    target = make_volume("crontainer-test-backups")
    twins = [made.run(["sleep", "600"], {"t-sel-twin": mark}) for _ in range(2)]
    stopped = made.run(["true"], {"t-sel-old": mark})
    stopped.wait(timeout=60)
    data = [made.run(["true"], {"t-sel-data": mark}, volumes=["/data"]) for _ in range(2)]
    app = made.run(["sleep", "600"], {"t-sel-app": mark})
    app.reload()
    started_before = app.attrs["State"]["StartedAt"]
    daemon = start_daemon(
        job("two", "exec", container=f'"label=t-sel-twin={mark}"', command='"true"')
        + job("stopped", "exec", container=f'"label=t-sel-old={mark}"', command='"true"')
        + job("none", "exec", container=f'"compose=nothing{mark}/db"', command='"true"')
        + job(
            "sources",
            "backup",
            volumes_from=f'"label=t-sel-data={mark}"',
            target=f'"{target}"',
        )
        + job(
            "stops",
            "backup",
            volumes_from=f'"{data[0].name}"',
            target=f'"{target}"',
            stop=f'["label=t-sel-app={mark}", "label=t-sel-gone={mark}"]',
        ),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    errors = {
        name: daemon.log.wait_for(event("run.failed", job=name), timeout=60)[0]["error"]
        for name in ("two", "stopped", "none", "sources", "stops")
    }
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert errors == {
        "two": f"exec container 'label=t-sel-twin={mark}' matched 2 running containers: "
        f"{names(*twins)}; it must match exactly one",
        "stopped": f"exec container 'label=t-sel-old={mark}' matched no running container: "
        f"{stopped.name} is not running; it must match exactly one running container",
        "none": f"exec container 'compose=nothing{mark}/db' matched no container; it must "
        "match exactly one",
        "sources": f"volumes_from 'label=t-sel-data={mark}' matched 2 containers: "
        f"{names(*data)}; it must match exactly one",
        "stops": f"stop 'label=t-sel-gone={mark}' matched no container",
    }
    assert not daemon.log.matching(event("run.container_stopped"))
    app.reload()
    assert app.status == "running"
    assert app.attrs["State"]["StartedAt"] == started_before
