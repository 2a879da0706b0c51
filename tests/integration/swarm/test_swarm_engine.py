"""The private Swarm fixture itself: a single-node manager that runs a replicated job service
to completion, and leaves the shared engine out of swarm mode."""

from __future__ import annotations

import time

import docker
from docker.types import RestartPolicy, ServiceMode

from tests.integration.conftest import BUSYBOX, PrivateSwarm

ENDED = {"complete", "failed", "rejected", "shutdown"}


def test_private_swarm_runs_a_job_service(
    engine: docker.DockerClient, private_swarm: PrivateSwarm
) -> None:
    service = private_swarm.client.services.create(
        BUSYBOX,
        ["sh", "-c", "exit 3"],
        mode=ServiceMode("replicated-job", replicas=2, concurrency=2),
        restart_policy=RestartPolicy(condition="none"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # A task's ContainerStatus can say ExitCode 0 before it ran: read it once it ended.
        # Engine 20.10 replaces failed tasks of a job whatever the restart policy says, so
        # more than two may end: the first two are the job's.
        tasks = [t for t in service.tasks() if t["Status"]["State"] in ENDED]
        if len(tasks) >= 2:
            tasks = sorted(tasks, key=lambda t: str(t["CreatedAt"]))[:2]
            break
        time.sleep(0.2)
    assert [t["Status"]["State"] for t in tasks] == ["failed", "failed"]
    assert [t["Status"]["ContainerStatus"]["ExitCode"] for t in tasks] == [3, 3]
    service.remove()
    assert private_swarm.client.info()["Swarm"]["LocalNodeState"] == "active"
    assert engine.info()["Swarm"]["LocalNodeState"] == "inactive"
