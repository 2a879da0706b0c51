"""The contract of a step handler: what it is given (StepContext) and what it provides
(StepHandler.run, and recover where a dead daemon's container holds something to keep)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from scheduler.logs import get_logger

if TYPE_CHECKING:
    from jobs.plan import Step
    from scheduler.clock import Clock
    from scheduler.control import ToolStateStore
    from scheduler.engine import Engine
    from scheduler.runs import Attempt, Outcome
    from scheduler.settings import DaemonSettings
    from scheduler.steps.containers import Containers

S = TypeVar("S")


class Steps(Protocol):
    """The executor as a handler sees it: how to run a step it holds (a body, a signal)."""

    def run(self, attempt: Attempt, step: Step) -> Outcome:
        """Execute one step."""
        ...

    def run_all(self, attempt: Attempt, steps: tuple[Step, ...]) -> Outcome:
        """Run ``steps`` in order; stop at the first that does not succeed."""
        ...

    def recover(self, job: str, steps: tuple[Step, ...], container_id: str) -> None:
        """Let each step's handler keep what a dead daemon's container holds."""
        ...


@dataclass(frozen=True, slots=True)
class StepContext:
    """What every handler is given: the engine, the daemon's settings and clock, the store
    of the jobs' checkpoints, the container primitive and the executor itself."""

    engine: Engine
    settings: DaemonSettings
    clock: Clock
    checkpoints: ToolStateStore | None
    containers: Containers
    steps: Steps


class StepHandler(Generic[S]):
    """Executes one type of step (``step``). A new step type is a subclass in its own module,
    listed in ``scheduler.steps.HANDLERS``."""

    step: ClassVar[type]
    """The plan's step class this handler executes."""

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.engine = context.engine
        self.log = get_logger()

    def run(self, attempt: Attempt, step: S) -> Outcome:
        """Execute ``step`` for ``attempt``; engine errors may escape (``Plans`` maps them)."""
        raise NotImplementedError

    def recover(self, job: str, step: S, container_id: str) -> None:
        """Keep what the container of ``step``, left by a dead daemon and now ended or
        adopted, holds for ``job`` (nothing, unless the step's tool reported state)."""
