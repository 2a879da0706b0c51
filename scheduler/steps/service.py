"""The ``RunService`` step: a Swarm job service created for the attempt (labelled like every
object the daemon makes), its tasks followed under the job's timeout — their logs as
``run.output`` events with ``node`` and ``task`` — each slot's first task judged
(``scheduler.job_tasks``), and the service removed on every path.

A dead daemon's service still running is adopted (``follow``) like a container."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.plan import RunService
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_REPLICA,
    LABEL_ROLE,
    LABEL_RUN,
)
from scheduler.errors import EngineError, EngineNotFoundError, EngineUnavailableError
from scheduler.job_tasks import decide, judge
from scheduler.output import OutputLog
from scheduler.registries import Registries
from scheduler.runs import Outcome, RunInterruptedError, Status
from scheduler.secrets import SecretError, read_secret
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import OUTPUT_DRAIN_S, in_run_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from jobs.plan import ServiceSpec
    from scheduler.engine import Engine, ServiceLogStream, TaskInfo
    from scheduler.runs import Attempt
    from scheduler.steps.base import StepContext

SERVICE_NAME_MAX = 63
"""Swarm's limit on a service's name (a DNS label)."""
POLL_S = 0.5
"""How often a running service's tasks are listed."""
PENDING_MAX = 64 * 1024
"""Log bytes kept of a task not known yet to count (a replacement task's are dropped)."""
ROLE = "service"
"""The ``crontainer.role`` label of a service job's service."""
GONE = "the service is gone: something else removed it"
NOT_MANAGER = (
    "the Docker engine is not a Swarm manager: a service job needs the API of a manager "
    "node (DOCKER_HOST)"
)


def service_name(daemon: str, job: str, run_id: str) -> str:
    """``<daemon>-<job>-<run_id>`` as Swarm takes a service name: at most 63 characters of
    letters, digits, ``-`` and ``_``, beginning and ending with a letter or digit (other
    characters become ``-``; the front is cut when too long: the run id stays)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{daemon}-{job}")
    name = name[: SERVICE_NAME_MAX - len(run_id) - 1].strip("-_")
    return f"{name}-{run_id}" if name else run_id


def with_secret_env(spec: ServiceSpec) -> ServiceSpec:
    """``spec`` with its secret environment values read in (at run time; never logged)."""
    if not spec.secret_env:
        return spec
    env = dict(spec.env)
    for secret in spec.secret_env:
        env[secret.name] = read_secret(env=secret.env, file=secret.file, what=f"env {secret.name}")
    return replace(spec, env=env, secret_env=())


class TaskOutput:
    """Routes a service's log lines to one output log per task that counts (each bound with
    its ``node`` and ``task``); lines of a task not known to count yet wait (bounded)."""

    def __init__(self, make: Callable[[TaskInfo], OutputLog]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._logs: dict[str, OutputLog] = {}
        self._pending: dict[str, list[tuple[str, bytes]]] = {}
        self._sizes: dict[str, int] = {}
        self._seen: dict[tuple[str, str], int] = {}
        self._replayed: dict[tuple[str, str], int] = {}

    def feed(self, task: str, stream: str, line: bytes) -> None:
        """One log line of ``task`` (from the reader's thread)."""
        with self._lock:
            key = (task, stream)
            self._seen[key] = self._seen.get(key, 0) + 1
            self._take(task, stream, line)

    def catch_up(self, task: str, stream: str, line: bytes) -> None:
        """One log line of ``task`` read again from the start (the whole log once the tasks
        ended): taken only if the followed stream had not brought it."""
        with self._lock:
            key = (task, stream)
            self._replayed[key] = self._replayed.get(key, 0) + 1
            if self._replayed[key] > self._seen.get(key, 0):
                self._take(task, stream, line)

    def _take(self, task: str, stream: str, line: bytes) -> None:
        """(Under the lock.) To the task's output log, or waiting until it counts."""
        if not line.endswith(b"\n"):
            line += b"\n"
        log = self._logs.get(task)
        if log is not None:
            log.feed(stream, line)
            return
        size = self._sizes.get(task, 0) + len(line)
        if size <= PENDING_MAX:
            self._sizes[task] = size
            self._pending.setdefault(task, []).append((stream, line))

    def count(self, tasks: Iterable[TaskInfo]) -> None:
        """``tasks`` count: their lines go out (those waiting first)."""
        with self._lock:
            for task in tasks:
                if task.id in self._logs or not task.node_id:
                    continue  # a task not on a node yet has no output either
                log = self._logs[task.id] = self._make(task)
                for stream, line in self._pending.pop(task.id, []):
                    log.feed(stream, line)

    def close(self) -> list[str]:
        """End every output log; the last lines of all (for the run's report)."""
        with self._lock:
            tail: list[str] = []
            for log in self._logs.values():
                log.close()
                tail += log.tail
            self._pending.clear()
        return tail[-20:]


class _ServiceProcess:
    """A running service, as a canceller stops it: removed (its tasks get the job's stop
    signal and grace)."""

    def __init__(self, engine: Engine, service_id: str) -> None:
        self._engine, self._service_id = engine, service_id

    def stop(self) -> None:
        self._engine.service_remove(self._service_id)


class ServiceHandler(StepHandler[RunService]):
    """A job service from its creation to its removal."""

    step = RunService

    def __init__(self, context: StepContext) -> None:
        super().__init__(context)
        self._registries = Registries(context.settings.registry_config)
        self._nodes: dict[str, str] = {}
        self._nodes_lock = threading.Lock()

    def run(self, attempt: Attempt, step: RunService) -> Outcome:
        engine = self.engine
        if not engine.swarm_manager():
            return Outcome(Status.FAILED, reason="not_swarm_manager", error=NOT_MANAGER)
        try:
            spec = with_secret_env(step.spec)
            auth = self._registries.credentials(spec.image, spec.registry_auth)
        except SecretError as e:
            return Outcome(Status.FAILED, error=str(e))
        found: dict[str, dict[str, str]] = {}
        for kind, names in (("secret", spec.secrets), ("config", spec.configs)):
            found[kind] = engine.swarm_object_ids(kind, names)
            if missing := [n for n in names if n not in found[kind]]:
                return Outcome(
                    Status.FAILED,
                    reason=f"unknown_{kind}",
                    error=f"no Swarm {kind} named {', '.join(map(repr, missing))}: create it "
                    f"(docker {kind} create) or correct the job's {kind}s",
                )
        name = service_name(self.context.settings.name, attempt.job_name, attempt.run_id)
        labels = self.labels(attempt)
        service_id = engine.service_create(
            spec,
            name=name,
            labels=labels,
            secrets=found["secret"],
            configs=found["config"],
            auth=auth,
        )
        if attempt.on_container is not None:
            attempt.on_container(service_id)
        expected = None if spec.global_job else spec.replicas
        return self.follow(attempt, service_id, attempt.job.timeout, expected)

    def labels(self, attempt: Attempt) -> dict[str, str]:
        """The labels of the attempt's service (and its tasks' containers); with
        ``ha = "swarm"``, this replica's id too."""
        labels = {
            LABEL_DAEMON: self.context.settings.name,
            LABEL_JOB: attempt.job_name,
            LABEL_RUN: attempt.run_id,
            LABEL_ATTEMPT: str(attempt.number),
            LABEL_ROLE: ROLE,
        }
        if (replica := self.context.containers.replica) is not None:
            labels[LABEL_REPLICA] = replica
        return labels

    def adopt(self, attempt: Attempt, service_id: str, timeout: float) -> Outcome:
        """Follow a service an earlier daemon made for ``attempt``, judged by its own mode
        (the job's config may have changed since), removed at its end; failed
        (``interrupted``) if it is gone."""
        listed = self.engine.list_services({LABEL_RUN: attempt.run_id})
        own = [s for s in listed if s.id == service_id]
        if not own:
            return Outcome(Status.FAILED, reason="interrupted", error=GONE)
        return self.follow(attempt, service_id, timeout, own[0].replicas)

    def follow(
        self, attempt: Attempt, service_id: str, timeout: float, expected: int | None
    ) -> Outcome:
        """Follow the service's tasks and logs until every slot's first task ended, the
        timeout or a cancel; remove the service on every path. ``expected``: its replicas
        (None: a global job)."""
        with attempt.lock:
            attempt.process = _ServiceProcess(self.engine, service_id)
            attempt.created = service_id
        output = TaskOutput(lambda task: self._task_log(attempt, task))
        logs: ServiceLogStream | None = None
        reader: threading.Thread | None = None
        outcome = Outcome(Status.FAILED, error="the service was not followed")
        interrupted = False
        try:
            logs = self.engine.service_logs(service_id)
            reader = self._read(logs, output)
            outcome = self._await(attempt, service_id, timeout, expected, output)
        except EngineUnavailableError as e:
            interrupted = True  # the service goes on: the orphan logic settles it
            raise RunInterruptedError(service_id, e) from e
        finally:
            if logs is not None:
                logs.close()
            if reader is not None:
                reader.join(OUTPUT_DRAIN_S)
                if not interrupted:
                    self._catch_up(service_id, output)
            outcome.output = output.close()
            with attempt.lock:
                attempt.process = None
            if not interrupted:
                self._remove(service_id)
        return outcome

    def _await(
        self,
        attempt: Attempt,
        service_id: str,
        timeout: float,
        expected: int | None,
        output: TaskOutput,
    ) -> Outcome:
        clock = self.context.clock
        deadline = clock.monotonic() + timeout
        seen = False
        while True:
            try:
                tasks = self.engine.service_tasks(service_id)
            except EngineNotFoundError:  # the engine lists no task of a service removed
                tasks, seen = [], True
            state = judge(tasks, expected)
            output.count(state.counted.values())
            if attempt.cancelled.is_set():  # a canceller may have removed it already
                return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason)
            if seen and not state.counted:  # its tasks went with it
                return Outcome(Status.FAILED, reason="interrupted", error=GONE)
            seen = seen or bool(state.counted)
            if state.done:
                return decide(
                    state.counted.values(), self.node_name, replicated=expected is not None
                )
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                job = attempt.job
                self.log.info(
                    "run.stopping",
                    reason="timeout",
                    timeout_s=job.timeout,
                    stop_signal=job.stop_signal,
                )
                return Outcome(Status.TIMED_OUT, reason="timeout")
            if clock.sleep(min(POLL_S, remaining), attempt.cancelled):
                return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason)

    def _read(self, logs: ServiceLogStream, output: TaskOutput) -> threading.Thread:
        def run() -> None:
            try:
                for task, _node, stream, line in logs:
                    output.feed(task, stream, line)
            except EngineError as e:
                self.log.warning("run.output_lost", error=str(e))
            except Exception:  # a bug in reading the output ends the reading only
                self.log.exception("run.output_failed")

        return in_run_context(run, "service-output")

    def _catch_up(self, service_id: str, output: TaskOutput) -> None:
        """The lines the followed stream had not brought yet (a swarm sends a task's last
        lines to a follower later than they are in its log): the whole log read once."""
        try:
            whole = self.engine.service_logs(service_id, follow=False)
            for task, _node, stream, line in whole:
                output.catch_up(task, stream, line)
        except EngineNotFoundError:  # removed by someone else: its log went with it, and
            pass  # the run says so already (interrupted), not a lost output
        except EngineError as e:
            self.log.warning("run.output_lost", error=str(e))

    def _task_log(self, attempt: Attempt, task: TaskInfo) -> OutputLog:
        settings = self.context.settings
        log = self.log.bind(node=self.node_name(task.node_id), task=task.id)
        output = OutputLog(log, settings.max_output_line, settings.max_output_per_run)
        output.file = attempt.output_file
        return output

    def node_name(self, node_id: str) -> str:
        """A node's host name (asked once per node)."""
        with self._nodes_lock:
            known = self._nodes.get(node_id)
        if known is None:
            known = self.engine.node_name(node_id) if node_id else "unknown"
            with self._nodes_lock:
                self._nodes[node_id] = known
        return known

    def _remove(self, service_id: str) -> None:
        try:
            self.engine.service_remove(service_id)
        except EngineError as e:
            self.log.warning("run.cleanup_failed", service_id=service_id, error=str(e))
