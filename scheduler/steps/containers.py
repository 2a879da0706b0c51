"""The container primitive every step that makes a container uses: create, attach, start,
await under the job's timeout, remove (with its anonymous volumes) on every path — and
the ops tools' variant that reads their control lines."""

from __future__ import annotations

import contextvars
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.selectors import split_mode
from scheduler.control import ControlTap
from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_JOB, LABEL_RUN
from scheduler.errors import EngineError, EngineUnavailableError
from scheduler.logs import get_logger
from scheduler.output import OutputLog
from scheduler.runs import Outcome, RunInterruptedError, Status
from scheduler.secrets import SecretError, read_env_file, read_secret
from scheduler.selection import exactly_one

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from structlog.stdlib import BoundLogger

    from jobs.plan import ContainerSpec
    from scheduler.clock import Clock
    from scheduler.engine import Engine
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
    stream: Iterator[tuple[str, bytes]],
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


def in_run_context(target: Callable[[], None], name: str) -> threading.Thread:
    """``target`` started in a daemon thread that carries the run's log context (its bound
    job and run_id)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


class Containers:
    """Runs one container of an attempt from its spec to its removal."""

    def __init__(self, engine: Engine, settings: DaemonSettings, clock: Clock) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._log = get_logger()

    def output_log(self) -> OutputLog:
        """A fresh bounded log of one process's output (the daemon's line and run limits)."""
        settings = self._settings
        return OutputLog(self._log, settings.max_output_line, settings.max_output_per_run)

    def run(
        self,
        attempt: Attempt,
        spec: ContainerSpec,
        tap: Callable[[OutputLog], ControlTap] | None = None,
        before_start: Callable[[str], Callable[[], None]] | None = None,
    ) -> Outcome:
        """Create, attach, start, await, remove. ``tap`` wraps the output feed (an ops tool's
        control lines); ``before_start`` gets the container id once output is attached and
        returns what to do when the container has ended (before the output is drained)."""
        engine = self._engine
        try:
            spec = with_secrets(spec)
        except SecretError as e:
            return Outcome(Status.FAILED, error=str(e))
        spec = with_sources(engine, spec)
        engine.ensure_image(spec.image, spec.pull)
        container_id: str | None = None
        interrupted = False  # the engine went away: leave the container to the orphan logic
        reader: threading.Thread | None = None
        output = self.output_log()
        feed: ControlTap | OutputLog = tap(output) if tap is not None else output
        after: Callable[[], None] | None = None
        try:
            container_id = self._create(attempt, spec)
            with attempt.lock:
                attempt.container_id = attempt.created = container_id
                if attempt.cancelled.is_set():
                    return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason)
            reader = pump(self._log, engine.output(container_id), feed.feed)
            if before_start is not None:
                after = before_start(container_id)
            engine.start(container_id)
            outcome = self.await_exit(attempt, container_id, attempt.job.timeout)
        except EngineUnavailableError as e:
            if container_id is None:
                raise
            interrupted = True
            raise RunInterruptedError(container_id, e) from e
        finally:
            if after is not None:
                after()
            if reader is not None:
                reader.join(OUTPUT_DRAIN_S)
            feed.close()
            if container_id is not None and not interrupted:
                self.remove(attempt, container_id)
        outcome.output = list(output.tail)
        return outcome

    def _create(self, attempt: Attempt, spec: ContainerSpec) -> str:
        """Create the attempt's container, named and labelled as this daemon's."""
        daemon = self._settings.name
        labels = {
            LABEL_DAEMON: daemon,
            LABEL_JOB: attempt.job_name,
            LABEL_RUN: attempt.run_id,
            LABEL_ATTEMPT: str(attempt.number),
        }
        name = f"{daemon}-{attempt.job_name}-{attempt.run_id}"
        container_id = self._engine.create(spec, name=name, labels=labels)
        if attempt.on_container is not None:
            attempt.on_container(container_id)
        return container_id

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
