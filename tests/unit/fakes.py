"""A scripted engine and a hand-driven clock for unit tests of policy code."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobs.plan import ContainerSpec, PullPolicy, ServiceSpec
from jobs.selectors import Selector
from scheduler.engine import (
    ContainerEvent,
    ContainerInfo,
    ExitStatus,
    PullAuth,
    ServiceInfo,
    TaskInfo,
)
from scheduler.errors import EngineConflictError, EngineError, EngineNotFoundError


class FakeClock:
    """Wall and monotonic time that move only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.wall = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self.mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self.wall

    def monotonic(self) -> float:
        with self._lock:
            return self.mono

    def sleep(self, seconds: float, interrupt: threading.Event) -> bool:
        if not interrupt.is_set():
            self.advance(seconds)
        return interrupt.is_set()

    def pass_until(self, wall: datetime) -> datetime:
        """Time passes normally until ``wall`` (both clocks move)."""
        self.advance((wall - self.now()).total_seconds())
        return wall

    def jump(self, seconds: float) -> None:
        """The wall clock is stepped; the monotonic clock is not."""
        with self._lock:
            self.wall += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.wall += timedelta(seconds=seconds)
            self.mono += seconds


class FakeLock:
    def __init__(self) -> None:
        self.lost = threading.Event()
        self.released = False

    def release(self) -> None:
        self.released = True


class FakeStdin:
    """What the daemon wrote to a container's stdin."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


class FakeOutput:
    """A container's output: the chunks given, then its end; ``closed`` once closed."""

    def __init__(self, chunks: list[tuple[str, bytes]]) -> None:
        self._chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return iter(self._chunks)

    def close(self) -> None:
        self.closed = True


class FakeEvents:
    """An event stream fed by the test (``send``); ``end`` ends it as an engine restart does."""

    def __init__(self) -> None:
        self._queue: queue.Queue[ContainerEvent | None] = queue.Queue()
        self.closed = False

    def send(
        self,
        action: str,
        container_id: str = "c1",
        name: str = "app",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._queue.put(ContainerEvent(action, container_id, name, dict(labels or {})))

    def end(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[ContainerEvent]:
        while (event := self._queue.get()) is not None:
            yield event

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)


@dataclass
class FakeEngine:
    """Records calls; ``fail`` maps a method name to the error it raises."""

    clock: FakeClock
    exit_status: ExitStatus | None = field(default_factory=lambda: ExitStatus(0))
    """What wait returns; None means the container never ends on its own."""
    output_chunks: list[tuple[str, bytes]] = field(default_factory=list)
    fail: dict[str, EngineError] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    on_start: Callable[[], None] | None = None
    created_labels: dict[str, str] = field(default_factory=dict)
    _stops: threading.Condition = field(default_factory=threading.Condition)
    _stopped_ids: set[str] = field(default_factory=set)
    sequence: list[ExitStatus] = field(default_factory=list)
    """Exit statuses for successive attempts; when empty, ``exit_status`` is used."""
    containers: list[ContainerInfo] = field(default_factory=list)
    """What list_containers returns."""
    not_running: set[str] = field(default_factory=set)
    """Names is_running (and select, by name) reports as stopped."""
    selectable: list[ContainerInfo] = field(default_factory=list)
    """The containers select knows: a label selector matches those carrying its labels; a
    name one of these by name or id, else (unless ``missing``) a container of that name,
    running unless in ``not_running``."""
    missing: set[str] = field(default_factory=set)
    """Names that select finds no container for (unless in ``selectable``)."""
    blocking: bool = False
    """A never-ending container blocks wait (up to 10 s real time) until stopped."""
    stdin: FakeStdin = field(default_factory=FakeStdin)
    created_specs: list[ContainerSpec] = field(default_factory=list)
    log_entries: dict[tuple[str, str], list[tuple[int, str, bytes]]] = field(default_factory=dict)
    """What logs returns per (container, stream): (ns, time text, line)."""
    locks: list[FakeLock] = field(default_factory=list)
    """Every lock handed out, in order."""
    event_streams: list[FakeEvents] = field(default_factory=list)
    """Every event stream handed out, in order."""
    streams: list[FakeOutput] = field(default_factory=list)
    """Every output stream handed out, in order."""
    volumes: dict[str, str] = field(default_factory=dict)
    """What volume_path knows: volume name → its directory on the host."""
    # Swarm job services (kind "service")
    manager: bool = True
    """Whether the engine is a Swarm manager."""
    swarm_objects: dict[str, dict[str, str]] = field(default_factory=dict)
    """Swarm secrets and configs by kind (``secret``|``config``): name → id."""
    task_script: list[list[TaskInfo] | None] = field(default_factory=list)
    """What successive service_tasks calls answer (the last one repeats; none: no task;
    None: the engine's answer for a service removed, not found)."""
    service_lines: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """What a service's followed log gives: (task, node, stream, line)."""
    whole_log: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """What a service's log read once (not followed) gives."""
    services: list[ServiceInfo] = field(default_factory=list)
    """What list_services returns."""
    service_specs: list[ServiceSpec] = field(default_factory=list)
    removed_services: list[str] = field(default_factory=list)

    def _call(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))
        if name in self.fail:
            raise self.fail[name]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def ping(self) -> None:
        self._call("ping")

    def ensure_image(
        self, image: str, policy: PullPolicy, auth: Callable[[], PullAuth] | None = None
    ) -> None:
        self.pull_auth = auth  # what a pull would have asked for its credentials
        self._call("ensure_image", (image, policy))

    def create(self, spec: ContainerSpec, *, name: str, labels: Mapping[str, str]) -> str:
        self._call("create", name)
        self.created_labels = dict(labels)
        self.created_specs.append(spec)
        return f"c0ffee{self.created()}"

    def output(self, container_id: str) -> FakeOutput:
        self._call("output", container_id)
        self.streams.append(FakeOutput(list(self.output_chunks)))
        return self.streams[-1]

    def start(self, container_id: str) -> None:
        self._call("start", container_id)
        if self.on_start is not None:
            self.on_start()

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        self._call("wait", timeout)
        with self._stops:
            if container_id in self._stopped_ids:
                return ExitStatus(143)
        if self.sequence:
            return self.sequence.pop(0)
        if self.exit_status is None:
            if self.blocking:
                with self._stops:
                    if self._stops.wait_for(lambda: container_id in self._stopped_ids, 10):
                        return ExitStatus(143)
            self.clock.advance(timeout)
            return None
        return self.exit_status

    def stop(self, container_id: str, grace: float) -> None:
        self._call("stop", grace)
        self.stopped.set()
        with self._stops:
            self._stopped_ids.add(container_id)
            self._stops.notify_all()

    def created(self) -> int:
        return self.names().count("create")

    def remove(self, container_id: str) -> None:
        self._call("remove", container_id)

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        self._call("list_containers", dict(labels))
        return list(self.containers)

    def own_image(self) -> str | None:
        return None

    def select(self, selector: Selector) -> list[ContainerInfo]:
        self._call("select", selector.text)
        if selector.name is None:
            return [
                c
                for c in self.selectable
                if all(
                    key in c.labels and value in (None, c.labels[key])
                    for key, value in selector.labels
                )
            ]
        for container in self.selectable:
            if selector.name in (container.name, container.id):
                return [container]
        if selector.name in self.missing:
            return []
        state = "exited" if selector.name in self.not_running else "running"
        return [ContainerInfo(id=selector.name, name=selector.name, state=state, labels={})]

    def container_events(self, actions: tuple[str, ...], labels: Sequence[str]) -> FakeEvents:
        self._call("container_events", (actions, tuple(labels)))
        self.event_streams.append(FakeEvents())
        return self.event_streams[-1]

    def attach_stdin(self, container_id: str) -> FakeStdin:
        self._call("attach_stdin", container_id)
        return self.stdin

    def logs(
        self, container: str, stream: str, since_ns: int, until_ns: int
    ) -> Iterator[tuple[int, str, bytes]]:
        self._call("logs", (container, stream, since_ns))
        return iter(
            [
                e
                for e in self.log_entries.get((container, stream), [])
                if since_ns <= e[0] <= until_ns
            ]
        )

    def host_name(self) -> str:
        return "fakehost"

    def volume_path(self, name: str) -> str:
        self.calls.append(("volume_path", name))
        if name not in self.volumes:
            raise EngineNotFoundError(f"volume {name!r}: no such volume")
        return self.volumes[name]

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: Mapping[str, str],
    ) -> str:
        """As the engine: a container by name or id; NotFound if none, Conflict if it does
        not run (the same containers ``select`` knows)."""
        self._call("exec_create", (container, tuple(command)))
        known = [c for c in self.selectable if container in (c.name, c.id)]
        if known and known[0].state != "running":
            raise EngineConflictError(f"Container {container} is not running")
        if not known and container in self.missing:
            raise EngineNotFoundError(f"No such container: {container}")
        if not known and container in self.not_running:
            raise EngineConflictError(f"Container {container} is not running")
        return "exec1"

    def exec_output(self, exec_id: str) -> Iterator[tuple[str, bytes]]:
        self._call("exec_output", exec_id)
        return iter([("stderr", b"crontainer-exec-pid 7\n"), *self.output_chunks])

    def exec_exit_code(self, exec_id: str) -> int | None:
        return self.exit_status.exit_code if self.exit_status else 0

    def kill(self, container: str, signal: str) -> None:
        self._call("kill", (container, signal))

    def lock(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        auth: Callable[[], PullAuth] | None = None,
    ) -> FakeLock:
        self.lock_auth = auth
        self._call("lock", name)
        self.locks.append(FakeLock())
        return self.locks[-1]

    def is_running(self, container: str) -> bool:
        self._call("is_running", container)
        return container not in self.not_running

    def restart(self, container: str, grace: float) -> None:
        self._call("restart", (container, grace))

    def close(self) -> None:
        self._call("close")

    def swarm_manager(self) -> bool:
        self._call("swarm_manager")
        return self.manager

    def swarm_object_ids(self, kind: str, names: Sequence[str]) -> dict[str, str]:
        known = self.swarm_objects.get(kind, {})
        return {name: known[name] for name in names if name in known}

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
        self._call("service_create", name)
        self.created_labels = dict(labels)
        self.service_specs.append(spec)
        return f"svc{len(self.service_specs)}"

    def service_tasks(self, service_id: str) -> list[TaskInfo]:
        self._call("service_tasks", service_id)
        if not self.task_script:
            return []
        tasks = self.task_script.pop(0) if len(self.task_script) > 1 else self.task_script[0]
        if tasks is None:
            raise EngineNotFoundError(
                f"listing the service's tasks: service {service_id} not found"
            )
        return tasks

    def service_logs(self, service_id: str, *, follow: bool = True) -> FakeServiceLogs:
        self._call("service_logs", (service_id, follow))
        if not follow and "whole_log" in self.fail:  # the whole log read once at the end
            raise self.fail["whole_log"]
        return FakeServiceLogs(list(self.service_lines if follow else self.whole_log))

    def service_remove(self, service_id: str) -> None:
        self._call("service_remove", service_id)
        self.removed_services.append(service_id)

    def list_services(self, labels: Mapping[str, str]) -> list[ServiceInfo]:
        if "list_services" in self.fail:  # not recorded: every settling asks
            raise self.fail["list_services"]
        return [s for s in self.services if all(s.labels.get(k) == v for k, v in labels.items())]

    def node_name(self, node_id: str) -> str:
        return f"host-{node_id}"


class FakeServiceLogs:
    """A service's scripted log lines."""

    def __init__(self, lines: list[tuple[str, str, str, bytes]]) -> None:
        self._lines = lines
        self.closed = False

    def __iter__(self) -> Iterator[tuple[str, str, str, bytes]]:
        return iter(self._lines)

    def close(self) -> None:
        self.closed = True
