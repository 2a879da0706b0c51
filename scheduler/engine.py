"""The Docker engine gateway's contract: the narrow ``Engine`` Protocol the daemon talks to,
the data it answers with and the labels of the daemon's containers. Its docker-py
implementation is ``scheduler.docker_engine`` (with its helpers ``docker_specs``,
``docker_lock``, ``docker_errors`` and ``docker_streams``, the only modules that import
``docker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scheduler.errors import EngineError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from jobs.plan import ContainerSpec, PullPolicy, ServiceSpec
    from jobs.selectors import Selector

LABEL_DAEMON = "crontainer.daemon"
LABEL_JOB = "crontainer.job"
LABEL_RUN = "crontainer.run_id"
LABEL_ATTEMPT = "crontainer.attempt"
LABEL_ROLE = "crontainer.role"
"""``lock`` on the single-instance lock container, ``service`` on a service job's service
(and its tasks' containers); absent on run containers; on Swarm configs (``ha = "swarm"``):
``claim`` or ``replica``."""
LABEL_REPLICA = "crontainer.replica"
"""With ``ha = "swarm"``: the replica (process) that created a container, service, claim or
lease."""


@dataclass(frozen=True, slots=True)
class PullAuth:
    """What an image pull presents to its registry: a user name and password, an identity
    token, or nothing (anonymous); and where that came from (``source``, safe to show —
    the values never are: they are left out of the repr)."""

    registry: str
    """The registry's host as Docker names it (``docker.io``, ``host:port``)."""
    server: str
    """The server address the engine is given (Docker Hub's: ``https://index.docker.io/v1/``)."""
    source: str
    """Where the credentials came from, or why there are none, in words."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """The values never to show (to take out of an error the engine quotes)."""
        return tuple(v for v in (self.password, self.identity_token) if v)


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a container ended."""

    exit_code: int
    oom_killed: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A container as listed by the engine."""

    id: str
    name: str
    state: str
    labels: Mapping[str, str]
    created: float | None = None
    """When it was created (UNIX seconds), as a listing tells it; None when not known."""


class LockHeldError(EngineError):
    """Another live daemon holds the single-instance lock."""


class Lock(Protocol):
    """The single-instance lock; ``lost`` is set when the lock container goes away."""

    lost: threading.Event

    def release(self) -> None:
        """Give the lock up (the lock container ends and is removed)."""


class OutputStream(Protocol):
    """A created container's attached output: (``stdout``|``stderr``, bytes) until the
    container ends — or until ``close`` (a container removed before it ever started keeps
    its stream open on the engine's side)."""

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """The output as it comes."""
        ...

    def close(self) -> None:
        """End the stream from this side: a reader blocked on it sees its end."""


class StdinStream(Protocol):
    """A created container's stdin, attached: written by the daemon."""

    def write(self, data: bytes) -> None:
        """Send ``data``; raise EngineError when the container no longer reads."""

    def close(self) -> None:
        """End the container's stdin (EOF) and let go of the connection."""


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    """A container's life event: ``action`` (start, die, destroy, rename, …)."""

    action: str
    container_id: str
    name: str
    labels: Mapping[str, str]
    """The container's labels (and the engine's other attributes of the event)."""


class EventStream(Protocol):
    """The engine's container events as they happen, until closed (or the engine goes)."""

    def __iter__(self) -> Iterator[ContainerEvent]:
        """Each event; the iteration ends (or raises EngineError) when the stream does."""

    def close(self) -> None:
        """End the stream; an iteration blocked in another thread ends soon after."""


@dataclass(frozen=True, slots=True)
class ConfigInfo:
    """A Swarm config as the store answers: its labels are the part that can change, against
    its ``version`` index (Raft's: it moves at each update)."""

    id: str
    name: str
    version: int
    labels: Mapping[str, str]


@runtime_checkable
class SwarmStore(Protocol):
    """The Swarm's replicated config store (``ha = "swarm"``): names are unique, each call a
    Raft read or write on a manager."""

    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], timeout: float
    ) -> str:
        """Create the config ``name`` (answered within ``timeout`` seconds); its id.
        EngineConflictError if the name exists."""

    def config(self, name: str) -> ConfigInfo:
        """The config ``name``; EngineNotFoundError if there is none."""

    def configs(self, labels: Mapping[str, str]) -> list[ConfigInfo]:
        """The configs carrying all ``labels``."""

    def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
        """Replace ``config``'s labels, against its version (an out-of-sequence update is an
        EngineError: read it again)."""

    def remove_config(self, config_id: str) -> None:
        """Remove a config; gone already is fine."""

    def manager_problem(self) -> str | None:
        """None when this engine is an active Swarm manager, else why it cannot serve
        (words)."""


# --- Swarm job services (kind "service") ---

TASK_ENDED = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
"""A Swarm task's states once it has ended (its exit code is only meaningful then)."""


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One task of a Swarm service, as listed by the engine."""

    id: str
    node_id: str
    slot: int
    """The replicated job's slot (0 for a global job's tasks: those are one per node)."""
    state: str
    created_at: str
    """RFC 3339, as the engine gives it (``scheduler.job_tasks.in_order`` sorts it)."""
    updated_at: str
    """When the task's state last changed (RFC 3339)."""
    exit_code: int | None = None
    """The container's exit code, once the task has ended (None before, or without one)."""
    error: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the task has ended (complete, failed, rejected, shut down...)."""
        return self.state in TASK_ENDED


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A Swarm service as listed by the engine: its mode's replica count (None for a
    global job) and labels."""

    id: str
    name: str
    labels: Mapping[str, str]
    replicas: int | None


class ServiceLogStream(Protocol):
    """A service's log lines as they come: (task id, node id, ``stdout``|``stderr``, line)
    until closed (or the service is gone)."""

    def __iter__(self) -> Iterator[tuple[str, str, str, bytes]]:
        """Each log line of any of the service's tasks."""
        ...

    def close(self) -> None:
        """End the stream from this side: a reader blocked on it sees its end."""


class Engine(Protocol):
    """What the scheduler needs from a container engine."""

    def ping(self) -> None:
        """Raise EngineUnavailableError unless the engine answers."""

    def ensure_image(
        self, image: str, policy: PullPolicy, auth: Callable[[], PullAuth] | None = None
    ) -> None:
        """Make ``image`` present under ``policy``; raise EngineError saying why not
        (PullDeniedError: the registry refused the credentials, or wants some). ``auth`` is
        asked for the credentials only when a pull is needed (it may raise SecretError)."""

    def create(self, spec: ContainerSpec, *, name: str, labels: Mapping[str, str]) -> str:
        """Create (not start) a container; return its id."""

    def output(self, container_id: str) -> OutputStream:
        """Attach to a created container: (``stdout``|``stderr``, bytes) until it ends."""

    def start(self, container_id: str) -> None:
        """Start a created container."""

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        """Wait up to ``timeout`` seconds; None if the container is still running then."""

    def stop(self, container_id: str, grace: float) -> None:
        """Send the container's stop signal, wait ``grace``, then kill it."""

    def remove(self, container_id: str) -> None:
        """Remove a container and its anonymous volumes, running or not; gone is fine."""

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Containers (any state) carrying all ``labels``."""

    def own_image(self) -> str | None:
        """The image id of the container this process runs in, if any."""

    def select(self, selector: Selector) -> list[ContainerInfo]:
        """The containers ``selector`` matches now, in any state: the one with its name (or
        id), none if there is none; or every one that carries all its labels."""

    def container_events(self, actions: tuple[str, ...], labels: Sequence[str]) -> EventStream:
        """The ``actions`` from now on of the containers carrying all ``labels`` (each
        ``key`` or ``key=value``)."""

    def attach_stdin(self, container_id: str) -> StdinStream:
        """Attach to the stdin of a created container (made with ``spec.stdin``)."""

    def logs(
        self, container: str, stream: str, since_ns: int, until_ns: int
    ) -> Iterator[tuple[int, str, bytes]]:
        """The container's ``stream`` (``stdout``|``stderr``) log lines from ``since_ns`` to
        ``until_ns`` (both included; UNIX nanoseconds): (nanoseconds, RFC 3339 time, line)."""

    def host_name(self) -> str:
        """The name of the engine's host."""

    def volume_path(self, name: str) -> str:
        """Where the engine keeps the volume ``name``'s files on its host (its Mountpoint);
        EngineNotFoundError if there is no such volume."""

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: Mapping[str, str],
    ) -> str:
        """Prepare a command in a running container; return the exec id. ``container`` is a
        name or id as the engine takes it; EngineNotFoundError if there is no such container,
        EngineConflictError if it does not run."""

    def exec_output(self, exec_id: str) -> Iterator[tuple[str, bytes]]:
        """Start the exec; its output as (``stdout``|``stderr``, bytes) until it ends."""

    def exec_exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code, None while it still runs."""

    def kill(self, container: str, signal: str) -> None:
        """Send ``signal`` to a running container."""

    def is_running(self, container: str) -> bool:
        """Whether the container runs; raise EngineError if there is no such container."""

    def restart(self, container: str, grace: float) -> None:
        """Restart a container (stop signal, ``grace``, kill, start)."""

    def lock(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        auth: Callable[[], PullAuth] | None = None,
    ) -> Lock:
        """Take the single-instance lock ``name`` (a container of ``image``, pulled if
        missing with ``auth``'s credentials); raise LockHeldError if a live daemon has it."""

    def swarm_manager(self) -> bool:
        """Whether the engine is a Swarm manager (it can create services)."""

    def swarm_object_ids(self, kind: str, names: Sequence[str]) -> dict[str, str]:
        """The ids of the Swarm ``kind`` (``secret``|``config``) objects named ``names``:
        those found, by name."""

    def service_create(
        self,
        spec: ServiceSpec,
        *,
        name: str,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        configs: Mapping[str, str],
        auth: PullAuth | None,
    ) -> str:
        """Create a job service (``secrets``/``configs``: name to id); return its id."""

    def service_tasks(self, service_id: str) -> list[TaskInfo]:
        """The service's tasks (ended ones too, as the engine keeps them)."""

    def service_logs(self, service_id: str, *, follow: bool = True) -> ServiceLogStream:
        """The service's log lines from its start: followed, or (``follow`` False) those
        there are now."""

    def service_remove(self, service_id: str) -> None:
        """Remove a service (its tasks are stopped); gone is fine."""

    def list_services(self, labels: Mapping[str, str]) -> list[ServiceInfo]:
        """Services carrying all ``labels`` (none when the engine is not a Swarm manager)."""

    def node_name(self, node_id: str) -> str:
        """A Swarm node's host name (its id if it has none, or is gone)."""

    def close(self) -> None:
        """Release connections."""
