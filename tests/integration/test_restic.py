"""Backups into restic repositories on the real engine: a REST server (``rclone serve
restic`` in a container of the project's image, with basic auth) on a network of its own,
and a local repository in a volume. The snapshots restore into a tree identical to the
source; a second run adds almost nothing; retention forgets only the job's snapshots; no
secret reaches the ops container's inspect data or the daemon's log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    ROOT,
    TEST_LABEL,
    Daemon,
    cli_environ,
    event,
    output_of,
    unique,
)
from .test_backup import SEED, SNAPSHOT, snapshot

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
LABELS = {TEST_LABEL: "1"}
PASSWORD = "correct horse battery staple"  # noqa: S105 - the test repository's
REST_PASSWORD = "rest-s3cret"  # noqa: S105 - the test REST server's


@pytest.fixture
def network(engine: docker.DockerClient) -> Iterator[str]:
    """A user-defined network of the test's own."""
    made = engine.networks.create(unique("t-net"), labels=LABELS)
    yield made.name
    made.reload()
    for container in made.containers:
        made.disconnect(container, force=True)
    made.remove()


@pytest.fixture
def rest_server(engine: docker.DockerClient, network: str, make: Callable[..., Any]) -> str:
    """``rclone serve restic`` on ``network``, basic auth; its repository URL with the
    user and password in it."""
    name = unique("t-rest")
    server = make(
        PROJECT_IMAGE,
        ["rclone", "serve", "restic", "--addr", ":8000", "--user", "backup", "--pass",
         REST_PASSWORD, "/repos"],
        name=name,
        network=network,
        volumes=["/repos"],
    )  # fmt: skip
    for _ in range(100):
        server.reload()
        if "Serving restic REST API" in server.logs().decode():
            break
        assert server.status == "running", server.logs()
        threading.Event().wait(0.1)
    else:
        pytest.fail(f"the REST server did not start: {server.logs()!r}")
    return f"rest:http://backup:{REST_PASSWORD}@{name}:8000/app"


def cli(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> str:
    command = [sys.executable, "-m", "scheduler", *args, "--config", str(daemon.config)]
    environ = {**cli_environ(), **(env or {})}
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT, env=environ
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Inspector:
    """Inspects every container the engine creates while it watches (the ops containers
    live only as long as their run)."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self.seen: list[dict[str, Any]] = []
        self._engine = engine
        self._events = engine.events(decode=True, filters={"type": "container", "event": "create"})
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        for item in self._events:
            try:
                self.seen.append(self._engine.api.inspect_container(item["id"]))
            except docker.errors.NotFound:
                self.seen.append({"Id": item["id"], "gone": True})

    def close(self) -> None:
        self._events.close()


def test_a_rest_repository_gets_deduplicated_snapshots_that_restore_the_identical_tree(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    network: str,
    rest_server: str,
) -> None:
    data = make(BUSYBOX, ["sh", "-c", SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    watching = Inspector(engine)
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\n'
        f'repository = "{rest_server}"\n'
        'password = { env = "TEST_RESTIC_PASSWORD" }\n'
        f'network = "{network}"\ninit = true\n'
        f'stop = ["{app.name}"]\nstop_grace = "1s"\n'
        'check = "always"\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env={"TEST_RESTIC_PASSWORD": PASSWORD},
    )
    first = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=300)[0]
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    second = daemon.log.wait_for(event("run.succeeded", job="db"), count=2, timeout=300)[1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    watching.close()

    shown = rest_server.replace(REST_PASSWORD, "***")
    assert first["repository"] == second["repository"] == shown
    assert first["created_repository"] is True
    assert second["created_repository"] is False
    assert first["bytes_added"] > 200 * 1024 * 1024  # random data does not deduplicate…
    assert second["bytes_added"] < 1024 * 1024  # …and the second run adds almost nothing
    assert second["files_new"] == 0
    assert second["files_unmodified"] == first["files_new"]
    assert first["checked"] is True
    assert first["snapshot_id"] != second["snapshot_id"]
    app.reload()
    assert app.status == "running"

    # No secret anywhere the engine or the log shows.
    ops = [c for c in watching.seen if c.get("Config", {}).get("Image") == PROJECT_IMAGE]
    assert ops, "no ops container was seen"
    assert all("gone" not in c for c in watching.seen)
    for secret in (PASSWORD, REST_PASSWORD):
        assert secret not in json.dumps(ops)
        assert secret not in "".join(daemon.log.raw)

    # The snapshots, by hand with restic: tagged as the job's; restore the newest into a new
    # volume — the same tree as the source.
    by_hand = "restic snapshots --json --no-cache && "
    by_hand += "restic restore latest --no-cache --target /into >/dev/null"
    restic = ["sh", "-c", by_hand]
    restored = make_volume("crontainer-test-restored")
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        restic,
        network=network,
        volumes=[f"{restored}:/into"],
        environment={"RESTIC_REPOSITORY": rest_server, "RESTIC_PASSWORD": PASSWORD},
    )
    snapshots = json.loads(listing.splitlines()[0])
    assert [s["short_id"] for s in snapshots] == [first["snapshot_id"], second["snapshot_id"]]
    assert all(
        set(s["tags"]) == {"crontainer-job=db", f"crontainer-daemon={daemon.name}"}
        and s["hostname"] == daemon.name
        for s in snapshots
    )
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    # restic keeps the absolute path: the volume's /data is the source's root.
    tree = output_of(
        engine, PROJECT_IMAGE, ["python3", "-c", SNAPSHOT, "/v/data"], volumes=[f"{restored}:/v:ro"]
    )
    assert json.loads(tree) == snapshot(engine, source)
    restore_with_crontainer(
        engine, daemon, rest_server, network, source, [second["snapshot_id"], first["snapshot_id"]]
    )
    app.reload()
    assert app.status == "running"


def restore_with_crontainer(
    engine: docker.DockerClient,
    daemon: Daemon,
    rest_server: str,
    network: str,
    source: str,
    expected: list[str],
) -> None:
    """``crontainer backups db`` lists ``expected`` (short ids, newest first), not another
    job's snapshot made now in the same repository; with the source wiped, ``crontainer
    restore db`` gives its tree back as it was."""
    before = snapshot(engine, source)
    other = "restic backup --no-cache --host elsewhere --tag crontainer-job=other /data/sub"
    output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", other],
        network=network,
        volumes=[f"{source}:/data:ro"],
        environment={"RESTIC_REPOSITORY": rest_server, "RESTIC_PASSWORD": PASSWORD},
    )
    secrets = {"TEST_RESTIC_PASSWORD": PASSWORD}
    listed = json.loads(cli(daemon, "backups", "db", "--json", env=secrets))
    assert [s["short_id"] for s in listed] == expected
    assert all(s["paths"] == ["/data"] and s["hostname"] == daemon.name for s in listed)
    text = cli(daemon, "backups", "db", env=secrets)
    assert [line.split()[0] for line in text.splitlines()] == expected

    output_of(engine, BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
    assert snapshot(engine, source) != before
    restored = json.loads(cli(daemon, "restore", "db", env=secrets))
    assert restored["snapshot_id"] == expected[0]
    assert restored["volumes"] == ["/data"]
    assert len(restored["stopped_and_started"]) == 1
    assert snapshot(engine, source) == before


def test_a_local_repository_keeps_only_the_newest_snapshot_of_the_job(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    repo = make_volume("crontainer-test-repo")
    data = make(BUSYBOX, ["sh", "-c", "echo a > /data/a"], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=60)["StatusCode"] == 0
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\nvolumes = ["{repo}:/repo"]\npaths = ["/data"]\n'
        'repository = "/repo/db"\npassword = "pw"\ninit = true\nkeep_last = 1\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    first = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=120)[0]
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    second = daemon.log.wait_for(event("run.succeeded", job="db"), count=2, timeout=120)[1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert first["forgotten"] == []
    assert second["forgotten"] == [first["snapshot_id"]]
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        ["restic", "snapshots", "--json", "--no-cache", "--no-lock"],
        volumes=[f"{repo}:/repo:ro"],
        environment={"RESTIC_REPOSITORY": "/repo/db", "RESTIC_PASSWORD": "pw"},
    )
    assert [s["short_id"] for s in json.loads(listing)] == [second["snapshot_id"]]
