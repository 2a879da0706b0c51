"""Job kind ``signal``: send a signal to containers, or restart them (``docker kill -s HUP``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from jobs.base import BaseJob, PlanContext, SignalName
from jobs.plan import Plan, SignalContainers
from jobs.selectors import Selectors


class SignalJob(BaseJob):
    """Signal or restart every selected container; a missing one fails the run."""

    KIND: ClassVar[str] = "signal"
    kind: Literal["signal"]
    containers: Selectors = Field(
        min_length=1,
        description="every running container each selects (one that selects none fails the run)",
        examples=[["app", "label=com.example.role=worker"]],
    )
    signal: SignalName = Field("SIGHUP", description="the signal to send, e.g. 'HUP' or 'SIGUSR1'")
    restart: bool = Field(default=False, description="restart the containers instead of signalling")

    def plan(self, ctx: PlanContext) -> Plan:  # noqa: ARG002 - needs no context
        """One step over all the containers."""
        return Plan(steps=(SignalContainers(tuple(self.containers), self.signal, self.restart),))
