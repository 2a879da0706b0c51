"""What the restic tests share: the repository's password, a REST server (``rclone serve
restic`` in the project's image, basic auth, on a user-defined network of the test's own),
a data container, the keys of a job into a repository, restic run by hand, the outcome of
runs, and the first part of the upload cut (``upload_cut``), begun when the package's tests
begin, its test moved to the session's end. The SFTP and S3 servers are
``tests/integration/servers.py``'s."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    Daemon,
    Daemons,
    Helpers,
    event,
    output_of,
    unique,
)
from tests.integration.helpers import SEED
from tests.integration.servers import own_network, wait_until_it_says

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import docker

PASSWORD = "correct horse battery staple"  # noqa: S105 - the test repository's
REST_PASSWORD = "rest-s3cret"  # noqa: S105 - the test REST server's
SECRETS = {"TEST_RESTIC_PASSWORD": PASSWORD}
"""The daemon's environment for jobs whose password is ``{ env = "TEST_RESTIC_PASSWORD" }``."""
CUT_TEST = "test_the_server_killed_mid_upload_fails_the_run_and_the_next_run_succeeds_and_checks"
"""The upload cut's test (``test_restic_upload_cut.py``), run last in the session."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The upload cut's test last: restic's three minutes of retries go by while every
    other test of the session runs (not only this package's)."""
    items.sort(key=lambda item: item.name == CUT_TEST)  # stable: the others keep their order


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


def job_config(name: str, data: str, repository: str, network: str, *, on_start: bool) -> str:
    """A backup job into ``repository`` that checks it at every run."""
    job = remote_job(data, network, on_start=on_start)
    return f'[jobs.{name}]\n{job}repository = "{repository}"\ninit = true\ncheck = "always"\n'


def by_hand(engine: docker.DockerClient, network: str, repository: str, command: str) -> str:
    """``restic COMMAND`` run by hand in a helper container: its stdout."""
    return output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", f"restic --no-cache {command}"],
        network=network,
        environment={"RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD": PASSWORD},
    )


def wait_for(what: str, found: Callable[[], Any]) -> Any:
    """``found()``'s first true value, asked every 0.2 s (5 minutes at most)."""
    deadline = time.monotonic() + 300
    while not (value := found()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        threading.Event().wait(0.2)
    return value


def stored(server: Any, directory: str) -> int:
    """How many files the REST server holds in the repository's ``directory``."""
    code, out = server.exec_run(
        ["sh", "-c", f"find /repos/app/{directory} -type f 2>/dev/null | wc -l"]
    )
    assert code == 0, out
    return int(out.decode().split()[-1]) if out.strip() else 0


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


@dataclass
class Cut:
    """The upload cut's first part: its daemon, whose job's run is under way, the REST
    server, killed while the run uploads, its repository URL and its network."""

    daemon: Daemon
    server: Any
    repository: str
    network: str


def cut_mid_upload(make: Callable[..., Any], start: Callable[..., Daemon], network: str) -> Cut:
    """A backup of the 200 MB file to a REST server on ``network``, the server killed once
    a pack of the upload is stored."""
    data = data_container(make, SEED).name
    repository, server = serve_rest(make, network)
    daemon = start(
        job_config("db", data, repository, network, on_start=True),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env=SECRETS,
    )
    wait_for("a pack uploaded", lambda: stored(server, "data") > 0)
    server.kill()
    return Cut(daemon, server, repository, network)


@pytest.fixture(scope="session", autouse=True)
def upload_cut(
    request: pytest.FixtureRequest,
    engine: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cut | None]:
    """The upload cut's first part (``cut_mid_upload``), done before the package's first test
    when its test is to run (else None): restic then takes about three minutes of its own
    retries to give up (README, Faults), a wait the session's other tests — each with its
    own servers, network and daemon — run in, its test being the session's last. Every
    container of the cut is made before those tests begin, so none of them sees one made.
    At the session's end its daemon is killed and its containers and network removed."""
    if not any(item.name == CUT_TEST for item in request.session.items):
        yield None
        return
    with ExitStack() as stack:
        network = stack.enter_context(own_network(engine))
        make = Helpers(engine)
        stack.callback(make.close)
        start = Daemons(tmp_path_factory.mktemp("upload-cut"))
        stack.callback(start.close)
        yield cut_mid_upload(make, start, network)
