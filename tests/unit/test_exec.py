"""Exec runs against a scripted engine: how an exec's end maps to the run's outcome, and how a
timeout or a cancel stops its process group (the Docker API cannot kill an exec)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.exec import ExecJob
from scheduler.engine import ContainerInfo, ExitStatus
from scheduler.errors import EngineConflictError, EngineUnavailableError
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.selection import SelectionError
from scheduler.settings import load_config
from scheduler.steps import StepExecutor
from scheduler.steps.exec import direct_name

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


@pytest.mark.parametrize(
    ("selector", "direct"),
    [
        ("app", "app"),
        ("/app", "app"),
        ("app-1.web_2", "app-1.web_2"),
        ("dbc0ffee0123", "dbc0ffee0123"),  # 12 hex digits: an id prefix both take
        ("ab" * 32, "ab" * 32),  # a full id
        ("db", None),  # the engine would take a container whose id starts with db
        ("c0ffee", None),
        ("12345678901", None),
        ("label=role=db", None),
        ("compose=shop/db", None),
        ("not a name", None),
    ],
)
def test_a_name_goes_to_the_engine_as_it_is_unless_it_could_be_a_short_id_prefix(
    selector: str, direct: str | None
) -> None:
    """Names the engine resolves as the selector does (exact name, id, 12+ hex digits) go
    straight to its exec call; labels and names of fewer than 12 hex digits are resolved
    first."""
    assert direct_name(selector) == direct


def test_an_exec_by_name_is_created_without_a_selection_first(tmp_path: Path) -> None:
    """One request fewer before the exec starts: the name is given to the engine's exec
    call, and the run succeeds."""
    engine = ExecEngine(0)
    outcome = run_exec(tmp_path, engine)
    assert outcome.status is Status.SUCCEEDED
    assert engine.names() == ["exec_create"]
    assert engine.calls[0][1][0] == "app"  # type: ignore[index]


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (
            "missing",
            "exec container 'app' matched no container; it must match exactly one",
        ),
        (
            "not_running",
            (
                "exec container 'app' matched no running container: app is not running; it "
                "must match exactly one running container"
            ),
        ),
    ],
)
def test_a_name_the_engine_refuses_is_selected_to_say_why(
    tmp_path: Path, state: str, error: str
) -> None:
    """No such container, or one that does not run: the engine refuses the exec, the
    selection then names what it found — the same error (which fails the run) as when it
    came first."""
    engine = ExecEngine(0)
    getattr(engine, state).add("app")
    with pytest.raises(SelectionError) as refused:
        run_exec(tmp_path, engine)
    assert str(refused.value) == error
    assert engine.names() == ["exec_create", "select"]


def test_a_container_that_runs_by_the_time_it_is_selected_gets_the_exec(tmp_path: Path) -> None:
    """The engine refused the exec (not running), the selection finds the container running
    now: the exec is made in it and the run goes on."""

    class StartsLate(ExecEngine):
        def exec_create(self, container: str, command: list[str], **kw: object) -> str:
            if len(self.names()) == 0:
                self.calls.append(("exec_create", (container, tuple(command))))
                raise EngineConflictError(f"Container {container} is not running")
            return super().exec_create(container, command, **kw)  # type: ignore[arg-type]

    engine = StartsLate(0)
    outcome = run_exec(tmp_path, engine)
    assert outcome.status is Status.SUCCEEDED
    assert engine.names() == ["exec_create", "select", "exec_create"]


def test_a_short_hex_name_is_selected_before_the_exec(tmp_path: Path) -> None:
    """``db`` could be an id prefix to the engine: the selection (exact name or 12+ hex
    digits of an id) comes first, and the exec goes to the container it found."""
    engine = ExecEngine(0)
    engine.selectable = [ContainerInfo("dbc0ffee" * 8, "db", "running", {})]
    outcome = run_exec(tmp_path, engine, base=BASE.replace('"app"', '"db"'))
    assert outcome.status is Status.SUCCEEDED
    assert engine.names() == ["select", "exec_create"]
    assert engine.calls[1][1][0] == "db"  # type: ignore[index]


def test_another_engine_error_fails_the_run_without_a_selection(tmp_path: Path) -> None:
    """An engine that does not answer is not a reason to look the name up: its error is the
    step's (the run fails with it)."""
    engine = ExecEngine(0)
    engine.fail["exec_create"] = EngineUnavailableError("the Docker engine did not answer")
    with pytest.raises(EngineUnavailableError):
        run_exec(tmp_path, engine)
    assert engine.names() == ["exec_create"]
