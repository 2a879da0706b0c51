"""The container primitive every step that makes a container uses: create, attach, start,
await under the job's timeout, remove (with its anonymous volumes) on every path — and
the ops tools' variant that reads their control lines."""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from jobs.selectors import split_mode
from scheduler.control import ControlTap
from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_JOB, LABEL_REPLICA, LABEL_RUN
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.logs import get_logger
from scheduler.output import OutputLog
from scheduler.registries import Registries
from scheduler.runs import Outcome, RunInterruptedError, Status
from scheduler.secrets import SecretError, read_env_file, read_secret
from scheduler.selection import exactly_one

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from structlog.stdlib import BoundLogger

    from jobs.plan import ContainerSpec
    from scheduler.clock import Clock
    from scheduler.engine import Engine, OutputStream
    from scheduler.runs import Attempt
    from scheduler.settings import DaemonSettings

WAIT_CHUNK_S = 300.0
"""A wait is split into requests of at most this long, so a silent engine is noticed."""
OUTPUT_DRAIN_S = 5.0
"""After the container ends, wait this long for its output stream to close."""
AFTER_STOP_WAIT_S = 30.0
"""After a stop call, wait this long for the container's exit status."""


def with_secrets(spec: ContainerSpec) -> ContainerSpec:
    """``spec`` with its env files and secret values read in (at run time; never logged)."""
    if not spec.env_files and not spec.secret_env:
        return spec
    env: dict[str, str] = {}
    for path in spec.env_files:
        env.update(read_env_file(path))
    env.update(spec.env)
    for secret in spec.secret_env:
        env[secret.name] = read_secret(env=secret.env, file=secret.file, what=f"env {secret.name}")
    return replace(spec, env=env, env_files=(), secret_env=())


def with_sources(engine: Engine, spec: ContainerSpec) -> ContainerSpec:
    """``spec`` with each ``volumes_from`` selector resolved to the name of the one
    container (any state: a data container need not run) it matches now; SelectionError
    if one matches none or several."""
    if not spec.volumes_from:
        return spec
    names = []
    for entry in spec.volumes_from:
        source, mode = split_mode(entry)  # a run job's ":ro" / ":rw" stays on the name
        names.append(exactly_one(engine, source, "volumes_from", running=False).name + mode)
    return replace(spec, volumes_from=tuple(names))


def stdin_writer(engine: Engine, data: bytes) -> Callable[[str], Callable[[], None]]:
    """A ``before_start`` that writes ``data`` on the container's stdin and closes it (EOF)."""

    def give(container_id: str) -> Callable[[], None]:
        stdin = engine.attach_stdin(container_id)
        stdin.write(data)
        stdin.close()
        return lambda: None

    return give


def pump(
    log: BoundLogger,
    stream: Iterable[tuple[str, bytes]],
    feed: Callable[[str, bytes], None],
    on_end: Callable[[], None] | None = None,
) -> threading.Thread:
    """Feed a stream to ``feed`` in a thread that carries the run's log context."""

    def run() -> None:
        broken = False
        try:
            for name, chunk in stream:
                if broken:
                    continue  # keep reading: a container must never block on its output
                try:
                    feed(name, chunk)
                except Exception:  # a bug in reading the output ends the reading only
                    log.exception("run.output_failed")
                    broken = True
        except EngineError as e:
            log.warning("run.output_lost", error=str(e))
        finally:
            if on_end is not None:
                on_end()

    return in_run_context(run, "output")


@dataclass(frozen=True, slots=True)
class Created:
    """A container created and attached ahead of its run's time, not started yet: its id,
    the thread reading its output, and the output's log."""

    container_id: str
    stream: OutputStream
    reader: threading.Thread
    output: OutputLog


@dataclass(slots=True)
class _Life:
    """One container's way through ``Containers.run``: what ``_end`` cleans up."""

    container_id: str | None = None
    stream: OutputStream | None = None
    reader: threading.Thread | None = None
    after: Callable[[], None] | None = None
    started: bool = False
    interrupted: bool = False


def in_run_context(target: Callable[[], None], name: str) -> threading.Thread:
    """``target`` started in a daemon thread that carries the run's log context (its bound
    job and run_id)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


class Containers:
    """Runs one container of an attempt from its spec to its removal."""

    def __init__(
        self, engine: Engine, settings: DaemonSettings, clock: Clock, replica: str | None = None
    ) -> None:
        """``replica``: with ``ha = "swarm"``, this replica's id (label ``crontainer.replica``)."""
        self._engine = engine
        self._settings = settings
        self.replica = replica
        """With ``ha = "swarm"``: this replica's id, labelled on what it creates."""
        self._clock = clock
        self._registries = Registries(settings.registry_config)
        self._log = get_logger()

    def output_log(self, attempt: Attempt | None = None) -> OutputLog:
        """A fresh bounded log of one process's output (the daemon's line and run limits),
        written to ``attempt``'s run file too (if its output is kept)."""
        settings = self._settings
        output = OutputLog(self._log, settings.max_output_line, settings.max_output_per_run)
        output.file = attempt.output_file if attempt is not None else None
        return output

    def run(
        self,
        attempt: Attempt,
        spec: ContainerSpec,
        tap: Callable[[OutputLog], ControlTap] | None = None,
        before_start: Callable[[str], Callable[[], None]] | None = None,
        prepared: Created | None = None,
    ) -> Outcome:
        """Create, attach, start, await, remove. ``tap`` wraps the output feed (an ops tool's
        control lines); ``before_start`` gets the container id once output is attached and
        returns what to do when the container has ended (before the output is drained).
        ``prepared``: the attempt's container, created and attached ahead (``prepare``):
        only its start remains (``spec`` and ``tap`` are then not used)."""
        if prepared is None:
            try:
                spec = self._resolved(spec)
            except SecretError as e:
                return Outcome(Status.FAILED, error=str(e))
            output = self.output_log(attempt)
            feed: ControlTap | OutputLog = tap(output) if tap is not None else output
            life = _Life()
        else:
            output = feed = prepared.output
            output.file = attempt.output_file  # before the start: no output came yet
            life = _Life(prepared.container_id, prepared.stream, prepared.reader)
        outcome = self._through(attempt, spec, feed, life, before_start)
        outcome.output = list(output.tail)
        return outcome

    def _through(
        self,
        attempt: Attempt,
        spec: ContainerSpec,
        feed: ControlTap | OutputLog,
        life: _Life,
        before_start: Callable[[str], Callable[[], None]] | None,
    ) -> Outcome:
        """Create (unless ``life`` has a container), attach, start, await; remove on every
        path (``_end``)."""
        engine = self._engine
        try:
            if life.container_id is None:
                life.container_id = self._create(
                    attempt.job_name, attempt.run_id, attempt.number, spec
                )
            container_id = life.container_id
            if attempt.on_container is not None:
                attempt.on_container(container_id)
            with attempt.lock:
                attempt.container_id = attempt.created = container_id
                if attempt.cancelled.is_set():
                    return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason)
            if life.reader is None:
                life.stream = engine.output(container_id)
                life.reader = pump(self._log, life.stream, feed.feed)
            if before_start is not None:
                life.after = before_start(container_id)
            engine.start(container_id)
            life.started = True
            return self.await_exit(attempt, container_id, attempt.job.timeout)
        except EngineUnavailableError as e:
            if life.container_id is None:
                raise
            life.interrupted = True  # the engine went away: the orphan logic settles it
            raise RunInterruptedError(life.container_id, e) from e
        finally:
            self._end(attempt, life, feed)

    def _end(self, attempt: Attempt, life: _Life, feed: ControlTap | OutputLog) -> None:
        """After the container: its ``after``, the output drained, the container removed
        (one never started first: that ends its attached stream)."""
        if life.after is not None:
            life.after()
        removable = None if life.interrupted else life.container_id
        if removable is not None and not life.started:
            self.remove(attempt, removable)
        if not life.started and life.stream is not None:
            life.stream.close()  # the engine never ends the stream of a container not started
        if life.reader is not None:
            life.reader.join(OUTPUT_DRAIN_S)
        feed.close()
        if removable is not None and life.started:
            self.remove(attempt, removable)

    def prepare(self, job: str, run_id: str, spec: ContainerSpec) -> Created:
        """Attempt 1 of run ``run_id`` of ``job``, ahead of its time: secrets read, sources
        resolved, the image checked (or pulled), the container created and its output
        attached — everything but the start (``run`` with ``prepared``). Errors escape; a
        container made before one is removed."""
        engine = self._engine
        spec = self._resolved(spec)
        container_id = self._create(job, run_id, 1, spec)
        output = self.output_log()
        try:
            stream = engine.output(container_id)
            reader = pump(self._log, stream, output.feed)
        except BaseException:
            self.discard(container_id)
            raise
        return Created(container_id, stream, reader, output)

    def discard(self, created: Created | str) -> None:
        """Remove a prepared container that will not be started (and end its output's
        reader); a failure is logged (the orphan logic removes it later), not raised."""
        container_id = created if isinstance(created, str) else created.container_id
        try:
            self._engine.remove(container_id)
        except EngineError as e:
            self._log.warning("run.cleanup_failed", container_id=container_id, error=str(e))
        if not isinstance(created, str):
            created.stream.close()  # the engine would keep it open: it never started
            created.reader.join(OUTPUT_DRAIN_S)
            created.output.close()

    def _resolved(self, spec: ContainerSpec) -> ContainerSpec:
        """``spec`` with its secrets read and its sources resolved, its image there (checked
        or pulled, with the credentials for its registry): ready to create. SecretError
        when a secret (or a registry's credentials) cannot be read."""
        spec = with_sources(self._engine, with_secrets(spec))
        auth = self._registries.auth_for(spec.image, spec.registry_auth)
        self._engine.ensure_image(spec.image, spec.pull, auth)
        return spec

    def _create(self, job: str, run_id: str, number: int, spec: ContainerSpec) -> str:
        """Create attempt ``number`` of run ``run_id``'s container, named and labelled as
        this daemon's."""
        daemon = self._settings.name
        labels = {
            LABEL_DAEMON: daemon,
            LABEL_JOB: job,
            LABEL_RUN: run_id,
            LABEL_ATTEMPT: str(number),
        }
        if self.replica is not None:
            labels[LABEL_REPLICA] = self.replica
        name = f"{daemon}-{job}-{run_id}"
        return self._engine.create(spec, name=name, labels=labels)

    def run_tool(
        self,
        attempt: Attempt,
        spec: ContainerSpec,
        tool: str,
        on_checkpoint: Callable[[dict[str, object], list[str]], None] | None = None,
        before_start: Callable[[str], Callable[[], None]] | None = None,
        *,
        quiet_stdout: bool = False,
    ) -> Outcome:
        """An ops tool's container: its control lines go to ``on_checkpoint`` as they come,
        its result into the outcome's details (a failed tool's too, if it gave one: what the
        remote tool did before a destination failed), its last diagnostic into a failure's
        error."""
        taps: list[ControlTap] = []

        def tap(output: OutputLog) -> ControlTap:
            taps.append(ControlTap(output, tool, on_checkpoint, quiet_stdout=quiet_stdout))
            return taps[0]

        outcome = self.run(attempt, spec, tap, before_start)
        if taps and (outcome.status is Status.SUCCEEDED or taps[0].result):
            outcome.details = taps[0].result
        if taps and outcome.status is not Status.SUCCEEDED and outcome.error is None:
            outcome.error = taps[0].last_error
        return outcome

    def remove(self, attempt: Attempt, container_id: str) -> None:
        """Remove the container (and its anonymous volumes); a failure is logged, not raised."""
        with attempt.lock:
            attempt.container_id = None
        try:
            self._engine.remove(container_id)
        except EngineError as e:
            self._log.warning("run.cleanup_failed", container_id=container_id, error=str(e))

    def await_exit(self, attempt: Attempt, container_id: str, timeout: float) -> Outcome:
        """Wait for the container to end, at most ``timeout``; then stop it (timed out)."""
        engine, job = self._engine, attempt.job
        deadline = self._clock.monotonic() + timeout
        while (remaining := deadline - self._clock.monotonic()) > 0:
            status = engine.wait(container_id, min(remaining, WAIT_CHUNK_S))
            if status is None:
                continue
            if attempt.cancelled.is_set():
                return Outcome(
                    Status.CANCELLED, exit_code=status.exit_code, reason=attempt.cancelled.reason
                )
            if status.oom_killed:
                return Outcome(Status.FAILED, exit_code=status.exit_code, reason="oom_killed")
            if status.exit_code != 0:
                return Outcome(Status.FAILED, exit_code=status.exit_code, error=status.error)
            return Outcome(Status.SUCCEEDED, exit_code=0)
        self._log.info(
            "run.stopping", reason="timeout", timeout_s=job.timeout, stop_signal=job.stop_signal
        )
        engine.stop(container_id, job.stop_grace)
        status = engine.wait(container_id, AFTER_STOP_WAIT_S)
        return Outcome(
            Status.TIMED_OUT, exit_code=status.exit_code if status else None, reason="timeout"
        )
