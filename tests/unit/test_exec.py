"""Exec runs against a scripted engine: how an exec's end maps to the run's outcome, and how a
timeout or a cancel stops its process group (the Docker API cannot kill an exec)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.exec import ExecJob
from scheduler.engine import ExitStatus
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.settings import load_config
from scheduler.steps import StepExecutor

from .configs import load_job
from .fakes import FakeClock, FakeEngine

BASE = '[jobs.e]\nkind = "exec"\nschedule = "@hourly"\ncontainer = "app"\ncommand = "work"\n'


class ExecEngine(FakeEngine):
    """An exec that ends with ``code`` (None: the engine never says) once its stream ends;
    with ``hang``, the stream ends only when a kill reaches the process group."""

    def __init__(self, code: int | None = 0, *, hang: bool = False) -> None:
        super().__init__(FakeClock(), exit_status=ExitStatus(0))
        self.code, self.hang = code, hang
        self.killed = threading.Event()
        self.kills: list[str] = []

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: object,
    ) -> str:
        super().exec_create(container, command, user=user, workdir=workdir, env={})
        if command[0] == "kill":
            self.kills.append(command[2])
            if command[2] == "KILL" or not self.hang:
                self.killed.set()
            return "kill"
        return "main"

    def exec_output(self, exec_id: str) -> Iterator[tuple[str, bytes]]:
        if exec_id == "kill":
            return iter([])
        return self._main()

    def _main(self) -> Iterator[tuple[str, bytes]]:
        yield ("stderr", b"crontainer-exec-pid 7\n")
        yield ("stdout", b"working\n")
        if self.hang:
            self.killed.wait(10)

    def exec_exit_code(self, exec_id: str) -> int | None:
        self.clock.advance(1.0)  # the drain's deadline passes when the engine never says
        return self.code


def run_exec(
    tmp_path: Path, engine: ExecEngine, extra: str = "", cancel: bool = False, base: str = BASE
) -> Outcome:
    job = load_job(tmp_path, base + extra, "e", ExecJob)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("e", "ops")).steps
    cancelled = Cancellation()
    if cancel:
        cancelled.cancel("replaced")
    attempt = Attempt("r1", "e", job, cancelled)
    return StepExecutor(engine, config.daemon, engine.clock).run(attempt, step)


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (0, Status.SUCCEEDED, None),
        (3, Status.FAILED, None),
        (137, Status.FAILED, None),
        (None, Status.FAILED, "no exit code"),
    ],
)
def test_an_execs_exit_code_decides_the_outcome(
    tmp_path: Path, code: int | None, status: Status, error: str | None
) -> None:
    """0 succeeds, anything else fails with that code, and an exit code the engine never
    gives is a failure that says so; the output (without the wrapper's pid line) is kept."""
    engine = ExecEngine(code)
    outcome = run_exec(tmp_path, engine)
    assert (outcome.status, outcome.exit_code, outcome.error) == (status, code, error)
    assert outcome.output == ["working"]
    assert engine.kills == []


def test_the_command_runs_under_a_wrapper_that_reports_its_pid(tmp_path: Path) -> None:
    """The command is passed as arguments to sh, never as text: no second word splitting."""
    engine = ExecEngine(0)
    base = BASE.replace('command = "work"', 'command = ["echo", "a b", "$HOME"]')
    run_exec(tmp_path, engine, base=base)
    (call,) = [a for n, a in engine.calls if n == "exec_create"]
    assert isinstance(call, tuple)
    container, argv = call
    assert container == "app"
    assert argv[:2] == ("sh", "-c")
    assert argv[3:] == ("sh", "echo", "a b", "$HOME")


def test_a_timeout_signals_the_process_group_then_kills_it(tmp_path: Path) -> None:
    """A command that ignores the stop signal: stop_signal to the whole group (-pid), then
    SIGKILL after stop_grace; the run ends timed_out with reason timeout."""
    engine = ExecEngine(137, hang=True)
    outcome = run_exec(tmp_path, engine, 'timeout = "200ms"\nstop_grace = "100ms"\n')
    assert (outcome.status, outcome.reason, outcome.exit_code) == (Status.TIMED_OUT, "timeout", 137)
    assert engine.kills == ["TERM", "KILL"]
    kill_commands = [a for n, a in engine.calls if n == "exec_create" and a[1][0] == "kill"]  # type: ignore[index]
    assert kill_commands == [
        ("app", ("kill", "-s", "TERM", "--", "-7")),
        ("app", ("kill", "-s", "KILL", "--", "-7")),
    ]


def test_a_group_that_ends_at_the_stop_signal_is_not_killed(tmp_path: Path) -> None:
    """The stop signal is enough: no SIGKILL follows."""
    engine = ExecEngine(143, hang=True)
    engine.hang = True
    original = engine.exec_create

    def ends_at_term(container: str, command: list[str], **kw: object) -> str:
        if command[0] == "kill" and command[2] == "TERM":
            engine.killed.set()
        return original(container, command, **kw)  # type: ignore[arg-type]

    engine.exec_create = ends_at_term  # type: ignore[method-assign]
    outcome = run_exec(tmp_path, engine, 'timeout = "200ms"\nstop_grace = "5s"\n')
    assert outcome.status is Status.TIMED_OUT
    assert engine.kills == ["TERM"]


def test_a_cancelled_exec_is_cancelled_with_its_reason(tmp_path: Path) -> None:
    """An exec that ends after its run was cancelled is cancelled (reason kept), not failed."""
    outcome = run_exec(tmp_path, ExecEngine(143), cancel=True)
    assert (outcome.status, outcome.reason, outcome.exit_code) == (
        Status.CANCELLED,
        "replaced",
        143,
    )
