"""Executing a plan's steps on the engine, with cleanup on every path.

A container is created explicitly, attached before start (no output is
missed), waited for under the job's timeout, and removed in ``finally`` with
its anonymous volumes.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from jobs.plan import (
    ExecCommand,
    RotateLogs,
    RunContainer,
    ShipLogs,
    SignalContainers,
    WithStopped,
)
from jobs.protocol import parse
from scheduler.control import (
    CheckpointStore,
    ControlError,
    ControlTap,
    checked_checkpoints,
    checked_rotation,
)
from scheduler.engine import LABEL_ATTEMPT, LABEL_DAEMON, LABEL_JOB, LABEL_RUN
from scheduler.errors import CrontainerError, EngineError, EngineUnavailableError
from scheduler.history import HistoryError
from scheduler.logs import get_logger
from scheduler.output import OutputLog
from scheduler.secrets import SecretError, header_value, read_env_file, read_secret

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from jobs.base import BaseJob
    from jobs.plan import ContainerSpec, SecretRef, Step
    from scheduler.clock import Clock
    from scheduler.engine import Engine, StdinStream
    from scheduler.settings import DaemonSettings

WAIT_CHUNK_S = 300.0
"""A wait is split into requests of at most this long, so a silent engine is noticed."""
OUTPUT_DRAIN_S = 5.0
"""After the container ends, wait this long for its output stream to close."""
AFTER_STOP_WAIT_S = 30.0
"""After a stop call, wait this long for the container's exit status."""


def _with_secrets(spec: ContainerSpec) -> ContainerSpec:
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


def _secret_value(secret: SecretRef) -> str:
    what = f"sink header {secret.name}"
    return header_value(read_secret(env=secret.env, file=secret.file, what=what), what)


def recover_checkpoints(
    engine: Engine, store: CheckpointStore, job: str, container_id: str, at: datetime
) -> int:
    """Store the checkpoints a shipping container reported while no daemon read its output
    (the daemon died): they are in the container's own log. Replayed in order, so the last
    one of each source wins; each is checked as a live one is. Returns how many reports
    were applied; a log that cannot be read (a log driver without reading) applies none —
    those lines go out again."""
    applied = 0
    try:
        for _ns, _stamp, line in engine.logs(container_id, "stderr", 0, time.time_ns()):
            message = parse(line)
            if message is None or ("checkpoint" not in message and "forget" not in message):
                continue
            try:
                marks, forget = checked_checkpoints(message)
            except ControlError as e:
                get_logger().warning("run.control_rejected", reason=str(e))
                continue
            store.save_checkpoints(job, marks, forget, at)
            applied += 1
    except EngineError as e:
        get_logger().warning("run.checkpoints_unrecovered", container_id=container_id, error=str(e))
        return applied
    if applied:
        get_logger().info("run.checkpoints_recovered", container_id=container_id, reports=applied)
    return applied


def _new_log_records(
    engine: Engine,
    container: str,
    stream: str,
    saved: dict[str, dict[str, object]],
    until_ns: int,
) -> Iterator[bytes]:
    """NDJSON records of the container's log lines after its checkpoint, each with the
    checkpoint that holds once it is delivered: (time in ns, lines at that ns shipped)."""
    source = f"container:{container}:{stream}"
    checkpoint = saved.get(source, {})
    since = int(str(checkpoint.get("ns", 0)))
    skip = int(str(checkpoint.get("skip", 0)))
    last, count = since, skip
    for ns, stamp, line in engine.logs(container, stream, since, until_ns):
        if ns == since and skip > 0:
            skip -= 1  # delivered by an earlier run (same nanosecond as the checkpoint)
            continue
        count = count + 1 if ns == last else 1
        last = ns
        record = {
            "source": source,
            "time": stamp,
            "stream": stream,
            "line": line.rstrip(b"\r").decode("utf-8", "replace"),
            "cp": {"ns": ns, "skip": count},
        }
        yield json.dumps(record, ensure_ascii=False).encode() + b"\n"


STDIN_CHUNK = 64 * 1024
"""The feed of containers' log lines is written to the tool's stdin in chunks this big."""
EXEC_PID_MARK = "crontainer-exec-pid"
"""The first stderr line of an exec job's wrapper: ``crontainer-exec-pid <pid>``."""


class _PidCatcher:
    """Takes the wrapper's PID line off the front of stderr; passes the rest on."""

    def __init__(self, output: OutputLog) -> None:
        self._output = output
        self._head = bytearray()
        self._seen = False
        self.pid: int | None = None
        self.ended = threading.Event()

    def feed(self, stream: str, chunk: bytes) -> None:
        if self._seen or stream != "stderr":
            self._output.feed(stream, chunk)
            return
        self._head += chunk
        line, newline, rest = bytes(self._head).partition(b"\n")
        if not newline:
            return
        self._seen = True
        mark, _, number = line.decode("utf-8", "replace").partition(" ")
        if mark == EXEC_PID_MARK and number.strip().isdigit():
            self.pid = int(number)
        else:
            rest = bytes(self._head)  # not our line (no sh?): show everything
        if rest:
            self._output.feed(stream, rest)


class RunInterruptedError(CrontainerError):
    """The engine went away while the attempt's container existed: the attempt stays
    recorded as running, and the orphan logic settles it when the engine is back."""

    def __init__(self, container_id: str, cause: EngineUnavailableError) -> None:
        super().__init__(str(cause))
        self.container_id = container_id


class Cancellation(threading.Event):
    """A run's cancel flag, carrying why: shared by the run and each of its attempts, so the
    reason can never be copied stale from one to the other."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "daemon_stopping"

    def cancel(self, reason: str) -> None:
        """Record ``reason``, then set the flag."""
        self.reason = reason
        self.set()


class Status(StrEnum):
    """How a run (or one attempt of it) ended; each has its event ``run.<status>``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    MISSED = "missed"


@dataclass(slots=True)
class Outcome:
    """The result of one attempt."""

    status: Status
    exit_code: int | None = None
    reason: str | None = None
    error: str | None = None
    output: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    """An ops tool's reported result (the keys go into run.succeeded)."""


@dataclass(slots=True)
class Attempt:
    """What the executor needs to know of the attempt it runs, and what a canceller needs."""

    run_id: str
    job_name: str
    job: BaseJob
    cancelled: Cancellation
    number: int = 1
    container_id: str | None = None
    """The live container, while there is one (what a canceller stops)."""
    created: str | None = None
    """The container this attempt created, kept for the record after removal."""
    process: tuple[str, _PidCatcher] | None = None
    """A running exec: its container and the process id it reported."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_container: Callable[[str], None] | None = None
    on_stop: Callable[[str], None] | None = None
    """Called before the attempt stops a container (the daemon records it)."""
    on_started: Callable[[str], None] | None = None
    """Called after the attempt started a stopped container again."""


class StepExecutor:
    """Runs steps for the runner; never lets an engine error escape a step unhandled."""

    def __init__(
        self,
        engine: Engine,
        settings: DaemonSettings,
        clock: Clock,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._checkpoints = checkpoints
        self._log = get_logger()

    def run(self, attempt: Attempt, step: Step) -> Outcome:
        """Execute one step."""
        if isinstance(step, ShipLogs):
            return self._ship(attempt, step)
        if isinstance(step, RotateLogs):
            return self._rotate(attempt, step)
        if isinstance(step, RunContainer):
            tool = step.tool
            return (
                self._run_container(attempt, step.spec)
                if tool is None
                else self._run_tool(attempt, step.spec, tool)
            )
        if isinstance(step, ExecCommand):
            return self._exec(attempt, step)
        if isinstance(step, WithStopped):
            return self._with_stopped(attempt, step)
        return self._signal(attempt, step)

    def run_all(self, attempt: Attempt, steps: tuple[Step, ...]) -> Outcome:
        """Run ``steps`` in order; stop at the first that does not succeed and return it."""
        outcome = Outcome(Status.SUCCEEDED, exit_code=0)
        for step in steps:
            outcome = self.run(attempt, step)
            if outcome.status is not Status.SUCCEEDED:
                break
        return outcome

    def stop(self, attempt: Attempt) -> None:
        """Stop the attempt's container or exec, if it has one (stop signal, grace, kill)."""
        with attempt.lock:
            attempt.cancelled.set()  # keeps the reason the canceller gave
            container_id, process = attempt.container_id, attempt.process
        try:
            if container_id is not None:
                self._engine.stop(container_id, attempt.job.stop_grace)
            elif process is not None:
                self._stop_process(attempt, process)
        except EngineError as e:
            self._log.warning("run.cancel_failed", run_id=attempt.run_id, error=str(e))

    def _run_container(
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
            spec = _with_secrets(spec)
        except SecretError as e:
            return Outcome(Status.FAILED, error=str(e))
        engine.ensure_image(spec.image, spec.pull)
        daemon = self._settings.name
        labels = {
            LABEL_DAEMON: daemon,
            LABEL_JOB: attempt.job_name,
            LABEL_RUN: attempt.run_id,
            LABEL_ATTEMPT: str(attempt.number),
        }
        container_id: str | None = None
        interrupted = False  # the engine went away: leave the container to the orphan logic
        reader: threading.Thread | None = None
        output = OutputLog(
            self._log, self._settings.max_output_line, self._settings.max_output_per_run
        )
        feed: ControlTap | OutputLog = tap(output) if tap is not None else output
        after: Callable[[], None] | None = None
        try:
            container_id = engine.create(
                spec, name=f"{daemon}-{attempt.job_name}-{attempt.run_id}", labels=labels
            )
            if attempt.on_container is not None:
                attempt.on_container(container_id)
            with attempt.lock:
                attempt.container_id = attempt.created = container_id
                if attempt.cancelled.is_set():
                    return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason)
            reader = self._pump(engine.output(container_id), feed.feed)
            if before_start is not None:
                after = before_start(container_id)
            engine.start(container_id)
            outcome = self._await(attempt, container_id, attempt.job.timeout)
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
                self._remove(attempt, container_id)
        outcome.output = list(output.tail)
        return outcome

    def _run_tool(
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
        its result into the outcome's details, its last diagnostic into a failure's error."""
        taps: list[ControlTap] = []

        def tap(output: OutputLog) -> ControlTap:
            taps.append(ControlTap(output, tool, on_checkpoint, quiet_stdout=quiet_stdout))
            return taps[0]

        outcome = self._run_container(attempt, spec, tap, before_start)
        if taps and outcome.status is Status.SUCCEEDED:
            outcome.details = taps[0].result
        elif taps and outcome.error is None:
            outcome.error = taps[0].last_error
        return outcome

    def adopt(self, attempt: Attempt, container_id: str, timeout: float) -> Outcome:
        """Wait for a container an earlier daemon started, under what is left of its timeout;
        a shipping container's checkpoints are then taken from its log."""
        with attempt.lock:
            attempt.container_id = attempt.created = container_id
        try:
            return self._await(attempt, container_id, timeout)
        finally:
            if attempt.job.kind == "logship" and self._checkpoints is not None:
                recover_checkpoints(
                    self._engine,
                    self._checkpoints,
                    attempt.job_name,
                    container_id,
                    self._clock.now(),
                )
            self._remove(attempt, container_id)

    def _remove(self, attempt: Attempt, container_id: str) -> None:
        with attempt.lock:
            attempt.container_id = None
        try:
            self._engine.remove(container_id)
        except EngineError as e:
            self._log.warning("run.cleanup_failed", container_id=container_id, error=str(e))

    def _pump(
        self,
        stream: Iterator[tuple[str, bytes]],
        feed: Callable[[str, bytes], None],
        on_end: Callable[[], None] | None = None,
    ) -> threading.Thread:
        """Feed a stream to ``feed`` in a thread that carries the run's log context."""

        def pump() -> None:
            broken = False
            try:
                for name, chunk in stream:
                    if broken:
                        continue  # keep reading: a container must never block on its output
                    try:
                        feed(name, chunk)
                    except Exception:  # a bug in reading the output ends the reading only
                        self._log.exception("run.output_failed")
                        broken = True
            except EngineError as e:
                self._log.warning("run.output_lost", error=str(e))
            finally:
                if on_end is not None:
                    on_end()

        context = contextvars.copy_context()  # the run's bound job and run_id
        thread = threading.Thread(target=context.run, args=(pump,), name="output", daemon=True)
        thread.start()
        return thread

    # --- log shipping -----------------------------------------------------------

    def _ship(self, attempt: Attempt, step: ShipLogs) -> Outcome:
        """The shipping tool's container, fed its request and containers' log lines on
        stdin; every checkpoint it reports is stored at once (an acknowledged batch)."""
        store, job = self._checkpoints, attempt.job_name
        if store is None:
            return Outcome(Status.FAILED, error="no state database for checkpoints")
        saved = store.checkpoints(job)
        until_ns = time.time_ns()  # a run ships what exists when it starts
        try:
            request = self._ship_request(step, saved)
            containers = self._log_sources(step.containers)
        except (EngineError, SecretError) as e:
            return Outcome(Status.FAILED, error=str(e))

        def on_checkpoint(marks: dict[str, object], forget: list[str]) -> None:
            store.save_checkpoints(job, marks, forget, self._clock.now())

        def before_start(container_id: str) -> Callable[[], None]:
            stdin = self._engine.attach_stdin(container_id)
            writer = self._pump_stdin(stdin, request, containers, saved, until_ns)

            def after() -> None:
                stdin.close()  # EOF for the tool; it has read the end mark by now
                writer.join(OUTPUT_DRAIN_S)

            return after

        return self._run_tool(
            attempt,
            step.spec,
            "logship",
            on_checkpoint,
            before_start,
            quiet_stdout=step.quiet_stdout,
        )

    def _ship_request(self, step: ShipLogs, saved: dict[str, dict[str, object]]) -> bytes:
        """The tool's first stdin line: the job's request, its file checkpoints, the host
        name and the secret headers' values (read now; never logged)."""
        request = json.loads(step.request)
        request["checkpoints"] = {k: v for k, v in saved.items() if k.startswith("file:")}
        request["host"] = self._engine.host_name()
        headers = request["sink"].setdefault("headers", {}) if step.secrets else {}
        for secret in step.secrets:
            headers[secret.name] = _secret_value(secret)
        return json.dumps(request).encode() + b"\n"

    def _log_sources(self, selectors: tuple[str, ...]) -> list[str]:
        """The containers whose logs are shipped: each name, and every container (any
        state) with a selected label."""
        names: list[str] = []
        for selector in selectors:
            for found in self._engine.select(selector, stopped=True):
                if found.name not in names:
                    names.append(found.name)
        return names

    def _pump_stdin(
        self,
        stdin: StdinStream,
        request: bytes,
        containers: list[str],
        saved: dict[str, dict[str, object]],
        until_ns: int,
    ) -> threading.Thread:
        """Write the request, then each container's new log lines, then the end mark, in a
        thread; stdin stays open until the container has ended."""

        def write() -> None:
            buffer = bytearray(request)
            try:
                for name in containers:
                    for stream in ("stdout", "stderr"):
                        for record in _new_log_records(self._engine, name, stream, saved, until_ns):
                            buffer += record
                            if len(buffer) >= STDIN_CHUNK:
                                stdin.write(bytes(buffer))
                                buffer.clear()
                buffer += b'{"end": true}\n'
                stdin.write(bytes(buffer))
            except EngineError as e:
                # The tool stopped reading (its byte limit, or it failed): its result says.
                self._log.debug("run.feed_stopped", error=str(e))
            except Exception:  # a bug: end the feed (EOF stops the tool), never the daemon
                self._log.exception("run.feed_failed")
                stdin.close()

        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(write,), name="feed", daemon=True)
        thread.start()
        return thread

    # --- log rotation -----------------------------------------------------------

    def _rotate(self, attempt: Attempt, step: RotateLogs) -> Outcome:
        """Rotate → tell the app if something rotated → compress and prune. A failing signal
        fails the run after the rotation, saying which part failed; compression still runs."""
        store, job = self._checkpoints, attempt.job_name
        saved = store.checkpoints(job) if store is not None else {}

        def give_state(container_id: str) -> Callable[[], None]:
            stdin = self._engine.attach_stdin(container_id)
            stdin.write(json.dumps(saved).encode() + b"\n")
            stdin.close()
            return lambda: None

        rotated = self._run_tool(attempt, step.rotate, "rotate", before_start=give_state)
        if rotated.status is not Status.SUCCEEDED:
            return rotated
        try:
            moves, state = checked_rotation(rotated.details)
        except ControlError as e:
            # Files may have been renamed: tell the app anyway, and say what went wrong.
            told = self._signal(attempt, step.tell) if step.tell is not None else None
            signalled = "" if told is None else f" (the app was told: {told.status.value})"
            return Outcome(
                Status.FAILED, error=f"the rotation's result cannot be used: {e}{signalled}"
            )
        if store is not None:
            gone = [path for path in saved if path not in state]
            store.save_checkpoints(job, state, gone, self._clock.now())
        for path, to in moves:
            self._log.info("run.file_rotated", path=path, to=to)
        moved = [to for _path, to in moves]
        told = None
        if moved and step.tell is not None:
            told = self._signal(attempt, step.tell)
        finished = self._run_tool(attempt, step.finish, "rotate")
        details: dict[str, object] = {**finished.details, "rotated": moved}
        if told is not None and told.status is not Status.SUCCEEDED:
            return Outcome(
                Status.FAILED,
                error=f"rotated {len(moved)} file(s), but telling the app failed: {told.error}",
                details=details,
            )
        if finished.status is not Status.SUCCEEDED:
            why = finished.error or (finished.output[-1] if finished.output else "")
            finished.error = (
                f"rotated {len(moved)} file(s), but compressing or pruning failed: {why}"
            )
            return finished
        return Outcome(Status.SUCCEEDED, exit_code=0, details=details)

    # --- exec -------------------------------------------------------------------

    def _exec(self, attempt: Attempt, step: ExecCommand) -> Outcome:
        """Run the command under ``sh`` that reports its PID first: the Docker API cannot
        kill an exec, so a timeout stops that PID with a second exec."""
        engine, job = self._engine, attempt.job
        wrapped = ["sh", "-c", f'echo "{EXEC_PID_MARK} $$" >&2; exec "$@"', "sh", *step.command]
        exec_id = engine.exec_create(
            step.container, wrapped, user=step.user, workdir=step.workdir, env=step.env
        )
        output = OutputLog(
            self._log, self._settings.max_output_line, self._settings.max_output_per_run
        )
        pid = _PidCatcher(output)
        stream = engine.exec_output(exec_id)
        reader = self._pump(stream, pid.feed, pid.ended.set)
        with attempt.lock:
            attempt.process = (step.container, pid)
        try:
            reader.join(job.timeout)
            timed_out = reader.is_alive()
            if timed_out:
                self._log.info(
                    "run.stopping",
                    reason="timeout",
                    timeout_s=job.timeout,
                    stop_signal=job.stop_signal,
                )
                self._stop_process(attempt, (step.container, pid))
                reader.join(OUTPUT_DRAIN_S)
        finally:
            with attempt.lock:
                attempt.process = None
            output.close()
        code = self._exec_exit_code(exec_id)
        outcome = self._exec_outcome(attempt, code, timed_out=timed_out)
        outcome.output = list(output.tail)
        return outcome

    def _exec_outcome(self, attempt: Attempt, code: int | None, *, timed_out: bool) -> Outcome:
        if timed_out:
            return Outcome(Status.TIMED_OUT, exit_code=code, reason="timeout")
        if attempt.cancelled.is_set():
            return Outcome(Status.CANCELLED, exit_code=code, reason=attempt.cancelled.reason)
        if code == 0:
            return Outcome(Status.SUCCEEDED, exit_code=0)
        return Outcome(
            Status.FAILED, exit_code=code, error=None if code is not None else "no exit code"
        )

    def _exec_exit_code(self, exec_id: str) -> int | None:
        """The engine marks an exec finished a moment after its output ends."""
        deadline = self._clock.monotonic() + OUTPUT_DRAIN_S
        while (code := self._engine.exec_exit_code(exec_id)) is None:
            if self._clock.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return code

    def _stop_process(self, attempt: Attempt, process: tuple[str, _PidCatcher]) -> None:
        """stop_signal to the exec's process, then SIGKILL after stop_grace."""
        container, pid = process
        if pid.pid is None:
            self._log.warning("run.cancel_failed", error="the exec did not report its process id")
            return
        job = attempt.job
        for signame, grace in ((job.stop_signal, job.stop_grace), ("SIGKILL", 0.0)):
            kill = self._engine.exec_create(
                container,
                # An exec's process leads its own process group: signal the group, children too.
                ["kill", "-s", signame.removeprefix("SIG"), "--", f"-{pid.pid}"],
                user="root",
                workdir=None,
                env={},
            )
            for _ in self._engine.exec_output(kill):
                pass
            if pid.ended.wait(grace):
                return

    # --- stop, run, start again ----------------------------------------------------

    def _with_stopped(self, attempt: Attempt, step: WithStopped) -> Outcome:
        """Stop the running ones of ``containers`` in order, run the body, start them again
        in reverse order in ``finally``. Each is recorded before it is stopped, so that a
        successor starts it again if this daemon dies in between."""
        stopped: list[str] = []
        try:
            for name in step.containers:
                if not self._engine.is_running(name):
                    self._log.info("run.container_not_running", container=name)
                    continue
                if attempt.on_stop is not None:
                    try:
                        attempt.on_stop(name)
                    except HistoryError as e:  # a successor could not start it again
                        return Outcome(
                            Status.FAILED,
                            reason="state_unwritable",
                            error=f"not stopping {name!r}: {e} (a successor could not start "
                            "it again)",
                        )
                self._engine.stop(name, step.grace)
                stopped.append(name)
                self._log.info("run.container_stopped", container=name)
            return self.run_all(attempt, step.body)
        finally:
            self.start_again(attempt, stopped)

    def start_again(self, attempt: Attempt, stopped: list[str]) -> None:
        """Start ``stopped`` again in reverse order (what the attempt stopped)."""
        for name in reversed(stopped):
            try:
                self._engine.start(name)
            except EngineError as e:
                self._log.error("run.container_start_failed", container=name, error=str(e))
                continue  # stays recorded: the next start of the daemon tries again
            self._log.info("run.container_started", container=name)
            if attempt.on_started is not None:
                attempt.on_started(name)

    # --- signal -----------------------------------------------------------------

    def _signal(self, attempt: Attempt, step: SignalContainers) -> Outcome:
        """Signal (or restart) every selected container; report every one that failed."""
        failures: list[str] = []
        for selector in step.selectors:
            try:
                found = self._engine.select(selector)
            except EngineError as e:
                failures.append(str(e))
                continue
            if not found:
                failures.append(f"no running container matches {selector!r}")
            for container in found:
                try:
                    if step.restart:
                        self._engine.restart(container.name, attempt.job.stop_grace)
                        self._log.info("run.container_restarted", container=container.name)
                    else:
                        self._engine.kill(container.name, step.signal)
                        self._log.info(
                            "run.signal_sent", container=container.name, signal=step.signal
                        )
                except EngineError as e:
                    failures.append(str(e))
        if failures:
            return Outcome(Status.FAILED, error="; ".join(failures))
        return Outcome(Status.SUCCEEDED)

    def _await(self, attempt: Attempt, container_id: str, timeout: float) -> Outcome:
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
