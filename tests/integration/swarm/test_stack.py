"""stack.yaml deployed with the docker CLI's `docker stack deploy` on a private single-node
Swarm: the service converges (healthy), the daemon in it runs a job on the node's engine, a
changed config deployed under a new config name replaces the task, a bad one is rolled
back, the history stays on the stack's volume, and `docker stack rm` leaves nothing but
that volume."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from scheduler.engine import LABEL_DAEMON
from tests.integration.conftest import (
    PROJECT_IMAGE,
    ROOT,
    Event,
    EventStream,
    PrivateSwarm,
    cli_environ,
    event,
    output_of,
    run_job,
    unique,
)

pytestmark = pytest.mark.integration

HEALTHY_WITHIN = 30 + 30 + 30
"""stack.yaml's health check: start_period 30 s, a first check after interval 30 s; plus a
margin for the deploy on a loaded machine (a wait's limit, not a measure)."""
STOPPED_WITHIN = 60 + 30
"""stack.yaml's stop_grace_period, plus a margin."""


class Stack:
    """The docker CLI pointed at the private Swarm, with stack.yaml's variables set: the
    socket is the private dockerd's (the default would hand the shared engine to the
    daemon), the config a file of the test's."""

    def __init__(self, swarm: PrivateSwarm, name: str) -> None:
        self.swarm = swarm
        self.name = name
        self.service = f"{name}_cron"
        self.volume = f"{name}_state"
        env = {k: v for k, v in cli_environ().items() if not k.startswith("DOCKER_")}
        self.env = {
            **env,
            "DOCKER_HOST": swarm.host,
            "DOCKER_SOCKET": str(swarm.socket),
            "CRON_IMAGE": PROJECT_IMAGE,
        }

    def docker(self, *args: str, **env: str) -> str:
        binary = shutil.which("docker")
        assert binary, "the docker CLI is not installed"
        done = subprocess.run(
            [binary, *args], capture_output=True, text=True, check=False,
            env={**self.env, **env}, cwd=ROOT, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout

    def deploy(self, config: Path, version: str) -> None:
        self.docker(
            "stack", "deploy", "--resolve-image", "never", "-c", str(ROOT / "stack.yaml"),
            self.name, CRON_CONFIG=str(config), CRON_CONFIG_VERSION=version,
        )  # fmt: skip

    def new_task(self, version: str, known: set[str]) -> tuple[str, Container]:
        """The service's task that is to run with config ``version`` and is not in
        ``known``, once its container started (a created one's log stream ends at once)."""
        deadline = time.monotonic() + HEALTHY_WITHIN
        while True:
            for task in self.tasks():
                started = task["Status"]["State"] in {"starting", "running"}
                container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
                wanted = task["DesiredState"] == "running" and config_of(task) == version
                if wanted and started and container and task["ID"] not in known:
                    return task["ID"], self.swarm.client.containers.get(container)
            assert time.monotonic() < deadline, f"no task with config {version} started"
            time.sleep(0.5)

    def assert_only_the_volume_left(self) -> None:
        """Once the stack is removed: no service, no config version, no container (task,
        lock or run); the state volume stays (by design)."""
        client = self.swarm.client
        deadline = time.monotonic() + STOPPED_WITHIN
        while client.containers.list(all=True) or client.services.list():
            assert time.monotonic() < deadline, [c.name for c in client.containers.list(all=True)]
            time.sleep(0.5)
        assert client.configs.list() == []
        assert [v.name for v in client.volumes.list()] == [self.volume]

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.swarm.client.services.get(self.service).tasks()
        return tasks

    def history(self) -> list[Event]:
        """`crontainer history --json` of the state volume, read by a container of the image."""
        out = output_of(
            self.swarm.client, PROJECT_IMAGE,
            ["crontainer", "history", "--json", "--limit", "1000", "--state-dir", "/data"],
            volumes={self.volume: {"bind": "/data", "mode": "rw"}}, network_mode="none",
        )  # fmt: skip
        rows: list[Event] = json.loads(out)
        return rows

    def replicas(self) -> str:
        """`docker stack services`' REPLICAS column of the cron service: running/desired
        (then "(max 1 per node)", stack.yaml's max_replicas_per_node)."""
        column = self.docker("stack", "services", "--format", "{{.Replicas}}", self.name)
        return column.split()[0]


def config_of(task: dict[str, Any]) -> str:
    """The version of the config a task reads (its Swarm config's name ends with it)."""
    (config,) = task["Spec"]["ContainerSpec"]["Configs"]
    return str(config["ConfigName"]).removeprefix("crontainer-config-")


def follow(container: Container) -> EventStream:
    """The daemon's JSON events as the node's engine has them, to the container's end."""
    return EventStream(line.decode() for line in container.logs(stream=True, follow=True))


def config(tmp_path: Path, name: str, version: str, job: str) -> Path:
    """A config file: daemon ``name`` running ``job`` (echo its name) every 2 s."""
    path = tmp_path / f"config-{version}.toml"
    path.write_text(
        f'[daemon]\nname = "{name}"\nlog_format = "json"\nshutdown_grace = "5s"\n\n'
        # history_limit: every run of the test stays on the record (10 by default)
        + run_job(
            job, ["echo", job], schedule="@every 2s", image="busybox:latest", history_limit=1000
        )
    )
    return path


def assert_spec(stack: Stack) -> None:
    """The service as stack.yaml declares it (config v1), with the test's socket mounted."""
    spec = stack.swarm.client.services.get(stack.service).attrs["Spec"]
    mounts = {m["Target"]: m for m in spec["TaskTemplate"]["ContainerSpec"]["Mounts"]}
    assert mounts["/var/run/docker.sock"]["Source"] == str(stack.swarm.socket)
    assert mounts["/var/lib/crontainer"] == {
        "Type": "volume", "Source": stack.volume, "Target": "/var/lib/crontainer",
        "VolumeOptions": {"Labels": {"com.docker.stack.namespace": stack.name}},
    }  # fmt: skip
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.role == manager"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 1}}
    configs = spec["TaskTemplate"]["ContainerSpec"]["Configs"]
    assert [(c["ConfigName"], c["File"]["Name"]) for c in configs] == [
        ("crontainer-config-v1", "/etc/crontainer/config.toml")
    ]
    networks = [
        stack.swarm.client.networks.get(n["Target"]) for n in spec["TaskTemplate"]["Networks"]
    ]
    assert [n.name for n in networks] == ["host"]


def test_stack_yaml_deploys_the_cron_container_on_a_swarm(
    engine: docker.DockerClient, private_swarm: PrivateSwarm, tmp_path: Path
) -> None:
    """docker stack deploy -c stack.yaml: the service converges healthy, its daemon runs a
    busybox job every 2 s on the node's engine; a new config name replaces the task, which
    runs the new job with the same history volume; a bad config's task exits 2 and Swarm
    rolls back to the previous config; docker stack rm leaves only the volume."""
    private_swarm.load(engine, PROJECT_IMAGE)
    stack = Stack(private_swarm, unique("t-stack"))
    daemon = unique("t-stack")
    stack.deploy(config(tmp_path, daemon, "v1", "tick"), "v1")

    assert_spec(stack)

    first, cron = stack.new_task("v1", set())
    log = follow(cron)
    started = log.wait_for(event("daemon.started"), timeout=60)[0]
    assert started["ops_image_source"] == "own_container"  # it found its task's container
    ticks = log.wait_for(event("run.succeeded", job="tick"), timeout=30, count=2)
    assert [e["line"] for e in log.matching(event("run.output", run_id=ticks[0]["run_id"]))] == [
        "tick"
    ]
    # The daemon's engine is the node's (the private one): its lock container is there.
    assert private_swarm.client.containers.get(f"{daemon}.lock").status == "running"
    assert engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon}"}) == []

    # Converged: Swarm counts the task as running once its health check passed.
    deadline = time.monotonic() + HEALTHY_WITHIN
    while stack.replicas() != "1/1":
        assert time.monotonic() < deadline, f"not converged: {stack.replicas()}"
        time.sleep(1)
    cron.reload()
    assert cron.attrs["State"]["Health"]["Status"] == "healthy"
    logged = stack.docker("service", "logs", "--raw", "--no-trunc", stack.service)
    events: list[Event] = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert {e["run_id"] for e in ticks} <= {
        e["run_id"] for e in events if e["event"] == "run.succeeded"
    }

    # A changed config under a new name: the task is replaced (stop-first) by one reading it.
    stack.deploy(config(tmp_path, daemon, "v2", "tock"), "v2")
    log.wait_for(event("daemon.stopped"), timeout=STOPPED_WITHIN)
    second, cron = stack.new_task("v2", {first})
    log = follow(cron)
    tocks = log.wait_for(event("run.succeeded", job="tock"), timeout=60)
    assert not log.matching(event("run.started", job="tick"))

    # A bad config: its daemon exits 2, the update fails and Swarm rolls back to v2.
    bad = tmp_path / "config-v3.toml"
    bad.write_text(f'[daemon]\nname = "{daemon}"\nbogus = 1\n')
    stack.deploy(bad, "v3")
    log.wait_for(event("daemon.stopped"), timeout=STOPPED_WITHIN)
    _, cron = stack.new_task("v2", {first, second})
    log = follow(cron)
    tocks += log.wait_for(event("run.succeeded", job="tock"), timeout=60)
    # Its task failed with exit 2 (a restart of it may have been shut down by the rollback).
    ended = {
        (t["Status"]["State"], t["Status"]["ContainerStatus"]["ExitCode"])
        for t in stack.tasks()
        if config_of(t) == "v3" and t["Status"]["State"] != "shutdown"
    }
    assert ended == {("failed", 2)}

    stack.docker("stack", "rm", stack.name)
    log.wait_for(event("daemon.stopped"), timeout=STOPPED_WITHIN)
    stack.assert_only_the_volume_left()

    # The history of both tasks is on the volume.
    rows = stack.history()
    succeeded = {str(r["run_id"]): r["job"] for r in rows if r["status"] == "succeeded"}
    assert {e["run_id"]: "tick" for e in ticks}.items() <= succeeded.items()
    assert {e["run_id"]: "tock" for e in tocks}.items() <= succeeded.items()
    private_swarm.client.volumes.get(stack.volume).remove()
