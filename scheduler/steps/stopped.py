"""The ``WithStopped`` step: stop containers, run a body, start them again — and the one
routine that starts stopped containers again (a run's end, an adopted run's end)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from jobs.plan import ContainerSpec, WithStopped
from scheduler.errors import EngineError
from scheduler.history import HistoryError
from scheduler.runs import Outcome, Status
from scheduler.selection import RUNNING, every
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import with_sources

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from structlog.stdlib import BoundLogger

    from scheduler.engine import Engine
    from scheduler.runs import Attempt


def start_again(
    engine: Engine,
    log: BoundLogger,
    stopped: list[str],
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Start ``stopped`` again in reverse order; ``on_started`` hears of each one started.
    One that fails stays recorded: the next start of the daemon tries again."""
    for name in reversed(stopped):
        try:
            engine.start(name)
        except EngineError as e:
            log.error("run.container_start_failed", container=name, error=str(e))  # noqa: TRY400
            continue
        log.info("run.container_started", container=name)
        if on_started is not None:
            on_started(name)


def _specs(value: object) -> Iterator[ContainerSpec]:
    """Every ContainerSpec in a step (its fields, nested steps and tuples of them)."""
    if isinstance(value, ContainerSpec):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _specs(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _specs(getattr(value, field.name))


class StoppedHandler(StepHandler[WithStopped]):
    """Stop the running containers the selectors ``containers`` match (all resolved first,
    and the body's ``volumes_from`` too: a selector that cannot be used fails the run
    before anything is stopped), in order, run the body,
    start them again in reverse order in ``finally``. Each is recorded before it is
    stopped, so that a successor starts it again if this daemon dies in between."""

    step = WithStopped

    def run(self, attempt: Attempt, step: WithStopped) -> Outcome:
        stopped: list[str] = []
        try:
            for spec in _specs(step.body):
                with_sources(self.engine, spec)  # resolved again when the container is made
            for container in every(self.engine, step.containers, "stop"):
                name = container.name
                if container.state != RUNNING:
                    self.log.info("run.container_not_running", container=name)
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
                self.engine.stop(name, step.grace)
                stopped.append(name)
                self.log.info("run.container_stopped", container=name)
            return self.context.steps.run_all(attempt, step.body)
        finally:
            start_again(self.engine, self.log, stopped, attempt.on_started)

    def recover(self, job: str, step: WithStopped, container_id: str) -> None:
        self.context.steps.recover(job, step.body, container_id)
