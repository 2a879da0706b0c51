"""restic's faults on the real engine, against a REST server (``rclone serve restic``) on a
network of the test's own: a repository whose host cannot be reached fails the run at
once naming it; the daemon and the ops container killed outright in the middle of a
snapshot leave a lock that the job's next run clears (only its own: another job's run
leaves it, and fails naming it). A server killed in the middle of an upload:
``test_restic_upload_cut.py``."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from scheduler.engine import LABEL_RUN
from tests.integration.conftest import PROJECT_IMAGE, Daemon, event, unique
from tests.integration.helpers import SEED, cli
from tests.integration.restic.conftest import (
    REST_PASSWORD,
    SECRETS,
    by_hand,
    data_container,
    job_config,
    outcomes,
    serve_rest,
    stored,
    wait_for,
)

if TYPE_CHECKING:
    import docker


pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def test_a_repository_that_cannot_be_reached_fails_the_run_at_once_naming_it(
    start_daemon: Start, make: Callable[..., Any], network: str
) -> None:
    """A REST server that is stopped, and a host name that does not resolve: restic 0.14
    does not retry the first request (the config's), each run fails saying why."""
    data = data_container(make)
    stopped, server = serve_rest(make, network)
    server.stop(timeout=1)
    nowhere = unique("t-nowhere")
    daemon = start_daemon(
        job_config("stopped", data.name, stopped, network, on_start=True)
        + job_config("nowhere", data.name, f"rest:http://{nowhere}:8000/app", network,
                     on_start=True),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env=SECRETS,
    )  # fmt: skip
    stopped_run, nowhere_run = outcomes(
        daemon, ("run.failed", "stopped"), ("run.failed", "nowhere")
    )
    failed = {"stopped": stopped_run, "nowhere": nowhere_run}
    shown = stopped.replace(REST_PASSWORD, "***")
    lookup = f"dial tcp: lookup {server.name} on 127.0.0.11:53: no such host"
    assert failed["stopped"]["error"] == (
        f"cannot open repository {shown}: unable to open config file: client.Head: Head "
        f'"{shown.removeprefix("rest:")}/config": {lookup}'
    )
    assert failed["nowhere"]["error"].startswith(
        f"cannot open repository rest:http://{nowhere}:8000/app: unable to open config file"
    )
    assert failed["nowhere"]["error"].endswith(f"lookup {nowhere} on 127.0.0.11:53: no such host")
    assert REST_PASSWORD not in "".join(daemon.log.raw)


def test_a_lock_left_by_a_killed_run_is_cleared_by_the_jobs_next_run_only(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any], network: str
) -> None:
    """kill -9 of the daemon and of the ops container in the middle of a snapshot: the
    successor (same name, same state) settles the run; a run of another job into the same
    repository leaves the lock (it is not its own) and fails its check naming it; the job's
    own next run clears it, backs up and checks."""
    data = data_container(make, SEED).name
    repository, server = serve_rest(make, network)
    jobs = job_config("db", data, repository, network, on_start=False)
    jobs += job_config("other", data, repository, network, on_start=False)
    first = start_daemon(jobs, daemon=f'ops_image = "{PROJECT_IMAGE}"', env=SECRETS)
    first.log.wait_for(event("daemon.started"), timeout=60)
    cli(first, "trigger", "db", "--state-dir", str(first.state_dir))
    started = first.log.wait_for(event("run.started", job="db"), timeout=60)[0]
    ops = wait_for(
        "the ops container",
        lambda: engine.containers.list(filters={"label": f"{LABEL_RUN}={started['run_id']}"}),
    )[0]
    wait_for("a pack uploaded", lambda: stored(server, "data") > 0)
    first.proc.kill()
    first.proc.wait(10)
    ops.kill()  # restic gets no chance to remove its lock
    assert stored(server, "locks") == 1

    second = start_daemon(
        jobs, daemon=f'ops_image = "{PROJECT_IMAGE}"', env=SECRETS, name=first.name
    )
    settled = second.log.wait_for(event("run.settled", run_id=started["run_id"]), timeout=60)
    assert settled[0]["status"] == "failed"
    cli(second, "trigger", "other", "--state-dir", str(second.state_dir), env=SECRETS)
    other = second.log.wait_for(event("run.failed", job="other"), timeout=600)[0]
    assert stored(server, "locks") == 1
    cli(second, "trigger", "db", "--state-dir", str(second.state_dir), env=SECRETS)
    done = second.log.wait_for(event("run.succeeded", job="db"), timeout=600)[0]
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0

    assert "check failed: " in other["error"], other["error"]
    assert "repository is already locked" in other["error"]
    assert done["checked"] is True
    assert stored(server, "locks") == 0
    listed = json.loads(by_hand(engine, network, repository, "snapshots --json --no-lock"))
    assert done["snapshot_id"] in [s["short_id"] for s in listed]
