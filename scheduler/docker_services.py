"""Swarm job services over docker-py: a ``ServiceSpec`` as the engine's create request
(pure), a task as ``TaskInfo``, and a service's followed logs (``DockerServiceLogs``), each
line's task and node read from the details the engine puts in front of it."""

from __future__ import annotations

import socket
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from docker.types import (
    ConfigReference,
    ContainerSpec,
    Mount,
    Placement,
    PlacementPreference,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)
from docker.utils.socket import STDERR, STDOUT

from scheduler.docker_streams import _exactly, _socket_of
from scheduler.engine import ServiceInfo, TaskInfo
from scheduler.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from jobs.plan import ServiceSpec

NANO = 1_000_000_000
_STREAMS = {STDOUT: "stdout", STDERR: "stderr"}
_TASK_DETAIL = "com.docker.swarm.task.id"
_NODE_DETAIL = "com.docker.swarm.node.id"


def service_body(
    spec: ServiceSpec,
    *,
    name: str,
    labels: Mapping[str, str],
    secrets: Mapping[str, str],
    configs: Mapping[str, str],
) -> dict[str, Any]:
    """The body of ``POST /services/create`` for ``spec``: a job service that is never
    restarted by the engine (the daemon judges each slot's first task); the job's labels and
    the daemon's on the service and its tasks' containers."""
    every = {**spec.labels, **labels}
    container = ContainerSpec(
        spec.image,
        command=list(spec.command) if spec.command is not None else None,
        env=[f"{k}={v}" for k, v in spec.env.items()],
        workdir=spec.workdir,
        user=spec.user,
        labels=every,
        mounts=[
            Mount(
                m.target,
                m.source,
                type="bind" if m.source.startswith("/") else "volume",
                read_only=m.read_only,
            )
            for m in spec.mounts
        ],
        stop_grace_period=int(spec.stop_grace * NANO),
        stop_signal=spec.stop_signal,
        secrets=[SecretReference(secrets[n], n) for n in spec.secrets] or None,
        configs=[ConfigReference(configs[n], n) for n in spec.configs] or None,
    )
    resources = Resources(
        cpu_limit=int(spec.cpus * NANO) if spec.cpus else None,
        mem_limit=spec.memory,
        cpu_reservation=int(spec.reserve_cpus * NANO) if spec.reserve_cpus else None,
        mem_reservation=spec.reserve_memory,
    )
    placement = Placement(
        constraints=list(spec.constraints) or None,
        preferences=[PlacementPreference("spread", p) for p in spec.preferences] or None,
    )
    template = TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        placement=placement,
        networks=[{"Target": n} for n in spec.networks] or None,
    )
    if spec.global_job:
        mode = ServiceMode("global-job")
    else:
        mode = ServiceMode("replicated-job", spec.replicas, spec.max_concurrent or spec.replicas)
    return {"Name": name, "Labels": every, "TaskTemplate": template, "Mode": mode}


def task_info(item: Mapping[str, Any]) -> TaskInfo:
    """A task from the engine's listing; its exit code read only once it has ended (a
    task's ExitCode can read 0 before it ran)."""
    status = item.get("Status") or {}
    state = str(status.get("State", ""))
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    task = TaskInfo(
        id=str(item["ID"]),
        node_id=str(item.get("NodeID") or ""),
        slot=int(item.get("Slot") or 0),
        state=state,
        created_at=str(item.get("CreatedAt", "")),
        updated_at=str(status.get("Timestamp") or item.get("UpdatedAt", "")),
        error=status.get("Err") or None,
    )
    if task.ended and code is not None:
        return TaskInfo(**{**_fields(task), "exit_code": int(code)})
    return task


def _fields(task: TaskInfo) -> dict[str, Any]:
    return {name: getattr(task, name) for name in TaskInfo.__slots__}


def service_info(item: Mapping[str, Any]) -> ServiceInfo:
    """A service from the engine's listing."""
    spec = item.get("Spec") or {}
    job = (spec.get("Mode") or {}).get("ReplicatedJob")
    return ServiceInfo(
        id=str(item["ID"]),
        name=str(spec.get("Name", "")),
        labels=dict(spec.get("Labels") or {}),
        replicas=int(job.get("TotalCompletions") or 1) if job is not None else None,
    )


def split_details(line: bytes) -> tuple[str, str, bytes]:
    """(task id, node id, the line) of a log line the engine sent with its details
    (``com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=…
    text``)."""
    head, _, text = line.partition(b" ")
    details: dict[str, str] = {}
    for part in head.decode("utf-8", "replace").split(","):
        key, _, value = part.partition("=")
        details[key] = value
    if _TASK_DETAIL not in details:
        return "", "", line  # no details (cannot happen with details=1)
    return details[_TASK_DETAIL], details.get(_NODE_DETAIL, ""), text


class DockerServiceLogs:
    """A service's followed logs (multiplexed frames of an HTTP response) that ``close``
    can end from another thread."""

    def __init__(self, response: Any, sock: Any) -> None:  # noqa: ANN401 - requests' response
        self._response = response
        self._raw = _socket_of(sock)
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, str, str, bytes]]:
        read = self._response.raw.read
        try:
            while (header := _exactly(read, 8)) is not None:
                stream, size = header[0], int.from_bytes(header[4:], "big")
                data = _exactly(read, size) if size else b""
                if data is None:
                    return
                if stream in _STREAMS:
                    task, node, text = split_details(data)
                    yield task, node, _STREAMS[stream], text
        except Exception as e:
            if not self._closed:  # not ended from this side: the reader says it broke
                raise EngineError(f"reading the service's logs: {e}") from e
        finally:
            with suppress(Exception):
                self._response.close()

    def close(self) -> None:
        """Shut the connection down: the reader sees its end."""
        self._closed = True
        with suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
