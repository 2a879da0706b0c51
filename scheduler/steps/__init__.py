"""Executing a plan's steps on the engine: each step type has its handler (one module each,
listed in ``HANDLERS``), looked up by the step's class; the executor runs steps, stops an
attempt, waits for a container a dead daemon left and asks the handlers what to keep of it.

Adding a step type: its frozen dataclass in ``jobs/plan.py`` (and in ``Step``), a
``StepHandler`` subclass in a module here, and its entry in ``HANDLERS``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from jobs.plan import RunService
from scheduler.errors import EngineError
from scheduler.logs import get_logger
from scheduler.runs import Outcome, Status
from scheduler.steps.base import StepContext, StepHandler
from scheduler.steps.containers import Containers
from scheduler.steps.exec import ExecHandler
from scheduler.steps.remote import RemoteHandler
from scheduler.steps.restic import ResticHandler
from scheduler.steps.rotate import RotateHandler
from scheduler.steps.run import RunHandler
from scheduler.steps.service import ServiceHandler
from scheduler.steps.ship import ShipHandler
from scheduler.steps.signal import SignalHandler
from scheduler.steps.stopped import StoppedHandler, start_again

if TYPE_CHECKING:
    from jobs.plan import Step
    from scheduler.clock import Clock
    from scheduler.control import ToolStateStore
    from scheduler.engine import Engine
    from scheduler.runs import Attempt
    from scheduler.settings import DaemonSettings

HANDLERS: tuple[type[StepHandler[Any]], ...] = (
    RunHandler,
    ExecHandler,
    SignalHandler,
    StoppedHandler,
    ShipHandler,
    RotateHandler,
    ResticHandler,
    RemoteHandler,
    ServiceHandler,
)
"""Every step handler; each executes the plan step class it names."""


class StepExecutor:
    """Runs steps for the runner; never lets an engine error escape a step unhandled."""

    def __init__(
        self,
        engine: Engine,
        settings: DaemonSettings,
        clock: Clock,
        checkpoints: ToolStateStore | None = None,
        replica: str | None = None,
    ) -> None:
        """``replica``: with ``ha = "swarm"``, this replica's id, a label of its containers."""
        self._engine = engine
        self._containers = self.containers = Containers(engine, settings, clock, replica)
        """The container primitive (the runs prepared ahead use it too)."""
        context = StepContext(engine, settings, clock, checkpoints, self._containers, self)
        self._handlers = {handler.step: handler(context) for handler in HANDLERS}
        self._log = get_logger()

    def run(self, attempt: Attempt, step: Step) -> Outcome:
        """Execute one step with its handler."""
        return self._handlers[type(step)].run(attempt, step)

    def run_all(self, attempt: Attempt, steps: tuple[Step, ...]) -> Outcome:
        """Run ``steps`` in order; stop at the first that does not succeed and return it."""
        outcome = Outcome(Status.SUCCEEDED, exit_code=0)
        for step in steps:
            outcome = self.run(attempt, step)
            if outcome.status is not Status.SUCCEEDED:
                break
        return outcome

    def recover(self, job: str, steps: tuple[Step, ...], container_id: str) -> None:
        """Let each step's handler keep what ``container_id``, a container of one of
        ``steps`` left by a dead daemon, holds for ``job``."""
        for step in steps:
            self._handlers[type(step)].recover(job, step, container_id)

    def stop(self, attempt: Attempt) -> None:
        """Stop the attempt's container or exec, if it has one (stop signal, grace, kill)."""
        with attempt.lock:
            attempt.cancelled.set()  # keeps the reason the canceller gave
            container_id, process = attempt.container_id, attempt.process
        try:
            if container_id is not None:
                self._engine.stop(container_id, attempt.job.stop_grace)
            elif process is not None:
                process.stop()
        except EngineError as e:
            self._log.warning("run.cancel_failed", run_id=attempt.run_id, error=str(e))

    def adopt(
        self, attempt: Attempt, container_id: str, timeout: float, steps: tuple[Step, ...] = ()
    ) -> Outcome:
        """Wait for a container an earlier daemon started, under what is left of its timeout;
        then the handlers of ``steps`` (the job's plan) keep what it holds, and it is removed.
        A service job's ``container_id`` is its service's id: followed by its handler."""
        if any(isinstance(s, RunService) for s in steps):
            handler = cast("ServiceHandler", self._handlers[RunService])
            return handler.adopt(attempt, container_id, timeout)
        with attempt.lock:
            attempt.container_id = attempt.created = container_id
        try:
            return self._containers.await_exit(attempt, container_id, timeout)
        finally:
            self.recover(attempt.job_name, steps, container_id)
            self._containers.remove(attempt, container_id)

    def start_again(self, attempt: Attempt, stopped: list[str]) -> None:
        """Start ``stopped`` again in reverse order (what the attempt stopped)."""
        start_again(self._engine, self._log, stopped, attempt.on_started)
