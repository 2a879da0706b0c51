"""The ``RunContainer`` step: one container as configured (or the one made ahead for the
attempt, started), or an ops tool's container (given a secret on its stdin if the step
holds one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.plan import RunContainer
from scheduler.runs import Outcome, Status
from scheduler.secrets import SecretError, ref_value
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import stdin_writer

if TYPE_CHECKING:
    from scheduler.runs import Attempt


class RunHandler(StepHandler[RunContainer]):
    """A plain container, or (``tool`` set) an ops tool whose result fills the outcome."""

    step = RunContainer

    def run(self, attempt: Attempt, step: RunContainer) -> Outcome:
        containers = self.context.containers
        prepared = attempt.prepared
        if prepared is not None and step.tool is None and step.stdin_secret is None:
            attempt.prepared = None  # taken: only its start remains
            return containers.run(attempt, step.spec, prepared=prepared)
        give = None
        secret = step.stdin_secret
        if secret is not None:
            try:
                value = ref_value(secret)
            except SecretError as e:
                return Outcome(Status.FAILED, error=str(e))
            give = stdin_writer(self.engine, value.encode() + b"\n")
        if step.tool is None:
            return containers.run(attempt, step.spec, before_start=give)
        return containers.run_tool(attempt, step.spec, step.tool, before_start=give)
