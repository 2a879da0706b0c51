"""The ``ExecCommand`` step: a command in a running container, under ``sh`` that reports its
process id first — the Docker API cannot kill an exec, so a timeout or a cancel stops that
process group with a second exec.

On the way to the exec's start (its fire lag: docs/performance.md) a container named by its
name goes to the engine's exec call directly: the engine resolves the name as a selector
would, and only a refused call (no such container, not running) is resolved to say why.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING

from jobs.plan import ExecCommand
from jobs.selectors import parse_selector
from scheduler.errors import EngineConflictError, EngineNotFoundError
from scheduler.runs import Outcome, Status
from scheduler.selection import exactly_one
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import OUTPUT_DRAIN_S, pump

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from structlog.stdlib import BoundLogger

    from jobs.base import BaseJob
    from scheduler.engine import Engine
    from scheduler.output import OutputLog
    from scheduler.runs import Attempt

EXEC_PID_MARK = "crontainer-exec-pid"
"""The first stderr line of an exec job's wrapper: ``crontainer-exec-pid <pid>``."""


def wrapped(command: Iterable[str]) -> list[str]:
    """``command`` under ``sh`` that first reports its process id on stderr (the Docker API
    cannot kill an exec: a timeout or a cancel signals that process group)."""
    return ["sh", "-c", f'echo "{EXEC_PID_MARK} $$" >&2; exec "$@"', "sh", *command]


SHORT_HEX = re.compile(r"[0-9a-f]{1,11}")
"""A name the engine may take as an id prefix where a selector would not (see direct_name)."""


def direct_name(text: str) -> str | None:
    """The name to give the engine's exec call as it is, or None when the selector ``text``
    must be resolved first (labels; a name of fewer than 12 hex digits).

    The engine takes a container by its full id, else its exact name, else a unique id
    prefix of any length; a name selector takes the exact name, the id, or 12 or more hex
    digits of it (``DockerEngine.select``). The two agree on every name but a short hex one:
    with no container named ``db``, the engine would exec in a container whose id begins
    with db."""
    try:
        name = parse_selector(text).name
    except ValueError:
        return None  # not a selector: the selection says so
    if name is None or SHORT_HEX.fullmatch(name):
        return None
    return name


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


class _ExecProcess:
    """A running exec, as a canceller (or the timeout) stops it."""

    def __init__(
        self, engine: Engine, log: BoundLogger, job: BaseJob, container: str, pid: _PidCatcher
    ) -> None:
        self._engine, self._log, self._job = engine, log, job
        self._container, self._pid = container, pid

    def stop(self) -> None:
        """stop_signal to the exec's process, then SIGKILL after stop_grace."""
        pid, job = self._pid, self._job
        if pid.pid is None:
            self._log.warning("run.cancel_failed", error="the exec did not report its process id")
            return
        for signame, grace in ((job.stop_signal, job.stop_grace), ("SIGKILL", 0.0)):
            kill = self._engine.exec_create(
                self._container,
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


class ExecHandler(StepHandler[ExecCommand]):
    """Run the command in the one running container its selector matches; wait for its
    output to end under the job's timeout."""

    step = ExecCommand

    def run(self, attempt: Attempt, step: ExecCommand) -> Outcome:
        engine, job = self.engine, attempt.job
        container, exec_id, frames = self._start(attempt, step)
        output = self.context.containers.output_log(attempt)
        pid = _PidCatcher(output)
        reader = pump(self.log, frames, pid.feed, pid.ended.set)
        process = _ExecProcess(engine, self.log, job, container, pid)
        with attempt.lock:
            attempt.process = process
        try:
            reader.join(job.timeout)
            timed_out = reader.is_alive()
            if timed_out:
                self.log.info(
                    "run.stopping",
                    reason="timeout",
                    timeout_s=job.timeout,
                    stop_signal=job.stop_signal,
                )
                process.stop()
                reader.join(OUTPUT_DRAIN_S)
        finally:
            with attempt.lock:
                attempt.process = None
            output.close()
        outcome = _outcome(attempt, self._exit_code(exec_id), timed_out=timed_out)
        outcome.output = list(output.tail)
        return outcome

    def _start(
        self, attempt: Attempt, step: ExecCommand
    ) -> tuple[str, str, Iterator[tuple[str, bytes]]]:
        """Start the exec (the container as the engine was given it, the exec id, its
        output): the one prepared ahead for this attempt (``scheduler.exec_ahead``), else
        one created now. A prepared one the engine refuses to start (its container
        removed, stopped or replaced since) is given up, and the normal path says why."""
        engine, ahead = self.engine, attempt.exec_ahead
        if ahead is not None:
            attempt.exec_ahead = None
            try:
                return ahead.container, ahead.exec_id, engine.exec_output(ahead.exec_id)
            except (EngineNotFoundError, EngineConflictError) as e:
                self.log.info(
                    "run.exec_unused",
                    container_id=ahead.container,
                    exec_id=ahead.exec_id,
                    reason="start_refused",
                    error=str(e),
                )
        container, exec_id = self._create(step, wrapped(step.command))
        return container, exec_id, engine.exec_output(exec_id)

    def _create(self, step: ExecCommand, command: list[str]) -> tuple[str, str]:
        """The exec of ``command`` in the one running container the step's selector
        matches: (the container as the engine was given it, the exec id). A name goes
        straight to the engine (one request fewer before the start); if the engine refuses
        it — no such container, or not running — the selection says which, and how."""
        engine = self.engine

        def create(container: str) -> tuple[str, str]:
            made = engine.exec_create(
                container, command, user=step.user, workdir=step.workdir, env=step.env
            )
            return container, made

        name = direct_name(step.container)
        if name is not None:
            try:
                return create(name)
            except (EngineNotFoundError, EngineConflictError):
                pass  # resolved below: its error names what was found (or it runs now)
        return create(exactly_one(engine, step.container, step.key, running=True).name)

    def _exit_code(self, exec_id: str) -> int | None:
        """The engine marks an exec finished a moment after its output ends."""
        clock = self.context.clock
        deadline = clock.monotonic() + OUTPUT_DRAIN_S
        while (code := self.engine.exec_exit_code(exec_id)) is None:
            if clock.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return code


def _outcome(attempt: Attempt, code: int | None, *, timed_out: bool) -> Outcome:
    """How an exec ended: its timeout, a cancel, its exit code (None: the engine never said)."""
    if timed_out:
        return Outcome(Status.TIMED_OUT, exit_code=code, reason="timeout")
    if attempt.cancelled.is_set():
        return Outcome(Status.CANCELLED, exit_code=code, reason=attempt.cancelled.reason)
    if code == 0:
        return Outcome(Status.SUCCEEDED, exit_code=0)
    return Outcome(
        Status.FAILED, exit_code=code, error=None if code is not None else "no exit code"
    )
