"""The ``RunContainer`` step: one container as configured, or an ops tool's container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.plan import RunContainer
from scheduler.steps.base import StepHandler

if TYPE_CHECKING:
    from scheduler.runs import Attempt, Outcome


class RunHandler(StepHandler[RunContainer]):
    """A plain container, or (``tool`` set) an ops tool whose result fills the outcome."""

    step = RunContainer

    def run(self, attempt: Attempt, step: RunContainer) -> Outcome:
        containers = self.context.containers
        if step.tool is None:
            return containers.run(attempt, step.spec)
        return containers.run_tool(attempt, step.spec, step.tool)
