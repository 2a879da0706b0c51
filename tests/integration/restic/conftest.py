"""What the restic tests share: the repository's password, a REST server (``rclone serve
restic`` in the project's image, basic auth, on a user-defined network of the test's own),
a data container, the keys of a job into a repository, and the outcome of runs. The SFTP and
S3 servers are ``tests/integration/servers.py``'s."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import BUSYBOX, PROJECT_IMAGE, Daemon, event, unique
from tests.integration.servers import wait_until_it_says

if TYPE_CHECKING:
    from collections.abc import Callable

PASSWORD = "correct horse battery staple"  # noqa: S105 - the test repository's
REST_PASSWORD = "rest-s3cret"  # noqa: S105 - the test REST server's


def data_container(make: Callable[..., Any], script: str = "echo a > /data/a") -> Any:
    """A container whose volume at /data ``script`` has filled (it has ended)."""
    data = make(BUSYBOX, ["sh", "-c", script], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    return data


def remote_job(data: str, network: str, *, on_start: bool = True) -> str:
    """The keys these tests' jobs into a repository on ``network`` share: a backup of the
    volumes of the container ``data`` (at the daemon's start when ``on_start``), the
    password from $TEST_RESTIC_PASSWORD."""
    return (
        f'kind = "backup"\nschedule = "@yearly"\nrun_on_start = {str(on_start).lower()}\n'
        f'volumes_from = ["{data}"]\npassword = {{ env = "TEST_RESTIC_PASSWORD" }}\n'
        f'network = "{network}"\n'
    )


def outcomes(daemon: Daemon, *runs: tuple[str, str]) -> list[dict[str, Any]]:
    """Each of ``runs`` (event, job)'s first event, waited for (5 minutes at most each);
    then the daemon is stopped and must exit 0."""
    found = [daemon.log.wait_for(event(name, job=job), timeout=300)[0] for name, job in runs]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    return found


def serve_rest(make: Callable[..., Any], network: str) -> tuple[str, Any]:
    """``rclone serve restic`` on ``network``, basic auth, its repositories in a volume of
    its container (they outlive a restart): the repository URL with the user and password
    in it, and the server's container."""
    name = unique("t-rest")
    server = make(
        PROJECT_IMAGE,
        ["rclone", "serve", "restic", "--addr", ":8000", "--user", "backup", "--pass",
         REST_PASSWORD, "/repos"],
        name=name,
        network=network,
        volumes=["/repos"],
    )  # fmt: skip
    wait_until_it_says(server, "Serving restic REST API")
    return f"rest:http://backup:{REST_PASSWORD}@{name}:8000/app", server


@pytest.fixture
def rest_server(network: str, make: Callable[..., Any]) -> str:
    """A REST server (``serve_rest``): its repository URL."""
    return serve_rest(make, network)[0]
