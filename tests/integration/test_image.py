"""The project's image as the cron container: socket mounted, the ops pattern end to end."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from scheduler.engine import LABEL_DAEMON
from scheduler.settings.daemon import DaemonSettings

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    TEST_LABEL,
    TEST_LABELS,
    TEST_SESSION,
    EventStream,
    event,
    run_job,
    socket_path,
    unique,
)

pytestmark = pytest.mark.integration
LABELS = TEST_LABELS


@pytest.fixture
def containers(
    engine: docker.DockerClient,
) -> Iterator[Callable[..., docker.models.containers.Container]]:
    """Start helper containers (labelled); removed after the test with their volumes."""
    made: list[docker.models.containers.Container] = []

    def run(*args: object, **kwargs: object) -> docker.models.containers.Container:
        container = engine.containers.run(*args, detach=True, labels=LABELS, **kwargs)
        made.append(container)
        return container

    yield run
    for container in reversed(made):
        container.remove(force=True, v=True)


def test_image_runs_a_job_sharing_a_data_container_and_an_app_network(
    engine: docker.DockerClient,
    containers: Callable[..., docker.models.containers.Container],
    tmp_path: Path,
) -> None:
    """The cron container fires a job with volumes_from a data container and network container:app."""
    data = containers(
        BUSYBOX,
        ["sh", "-c", "echo hello-from-data > /data/hello.txt"],
        name=unique("t-data"),
        volumes=["/data"],
    )
    assert (
        data.wait(timeout=30)["StatusCode"] == 0
    )  # a stopped data container still lends its volumes
    app = containers(
        BUSYBOX,
        [
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-app > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
        ],
        name=unique("t-app"),
    )
    name = unique("t")
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[daemon]
name = "{name}"
log_format = "json"
shutdown_grace = "5s"
[defaults]
labels = {{ "{TEST_LABEL}" = "{TEST_SESSION}" }}
{
            run_job(
                "ops",
                ["sh", "-c", "cat /data/hello.txt && wget -qO- http://127.0.0.1:8080/index.html"],
                schedule="@every 2s",
                volumes_from=[data.name],
                network=f"container:{app.name}",
            )
        }"""
    )
    cron = containers(
        PROJECT_IMAGE,
        name=unique("t-cron"),
        volumes=[f"{socket_path()}:/var/run/docker.sock", f"{tmp_path}:/etc/crontainer:ro"],
    )
    log = EventStream(line.decode() for line in cron.logs(stream=True, follow=True))
    started = log.wait_for(event("daemon.started"), timeout=60)[0]
    assert started["ops_image_source"] == "own_container"
    assert started["ops_image"] == engine.images.get(PROJECT_IMAGE).id
    done = log.wait_for(event("run.succeeded", job="ops"), timeout=60)[0]
    lines = [e["line"] for e in log.matching(event("run.output", run_id=done["run_id"]))]
    assert lines == ["hello-from-data", "hello-from-app"]
    # The health check of the image passes while the daemon runs.
    deadline = time.monotonic() + 20
    while (health := cron.exec_run(["crontainer", "health"])).exit_code != 0:
        assert time.monotonic() < deadline, health.output
        time.sleep(0.5)
    cron.stop(timeout=30)
    assert cron.wait(timeout=30)["StatusCode"] == 0
    log.wait_for(event("daemon.stopped"), timeout=10)
    left = engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={name}"})
    assert left == []
    app.reload()
    assert app.status == "running"  # the app was never touched


def test_the_image_says_what_it_is_and_exposes_the_metrics_port(
    engine: docker.DockerClient,
) -> None:
    """The OCI labels title, description and version (pyproject.toml's, which
    scripts/engine.sh passes as the VERSION build argument), and [daemon] http's default
    port exposed; no label the project cannot fill (source, licenses)."""
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    config = engine.images.get(PROJECT_IMAGE).attrs["Config"]
    oci = {
        key.removeprefix("org.opencontainers.image."): value
        for key, value in (config.get("Labels") or {}).items()
        if key.startswith("org.opencontainers.image.")
    }
    assert oci == {
        "title": "crontainer",
        "description": project["description"],
        "version": project["version"],
    }
    port = DaemonSettings.model_fields["http"].default.rpartition(":")[2]
    assert port == "8137"
    assert list(config.get("ExposedPorts") or {}) == [f"{port}/tcp"]
