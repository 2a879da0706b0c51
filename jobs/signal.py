"""Job kind ``signal``: send a signal to containers, or restart them (``docker kill -s HUP``)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from jobs.base import BaseJob, PlanContext, SignalName
from jobs.plan import Plan, SignalContainers

_LABEL = re.compile(r"^label=[^=\s]+(=.*)?$")


def check_selector(selector: str) -> str:
    """A container name, or ``label=key`` / ``label=key=value``."""
    if selector.startswith("label=") and not _LABEL.match(selector):
        raise ValueError(f"{selector!r}: write 'label=key' or 'label=key=value'")
    if not selector.strip():
        raise ValueError("an empty container name")
    return selector


def _check_selectors(value: list[str]) -> list[str]:
    return [check_selector(s) for s in value]


Selectors = Annotated[list[str], AfterValidator(_check_selectors)]
"""Container names, or ``label=key=value`` selectors."""


class SignalJob(BaseJob):
    """Signal or restart every selected container; a missing one fails the run."""

    KIND: ClassVar[str] = "signal"
    kind: Literal["signal"]
    containers: Selectors = Field(
        min_length=1,
        description="container names, or 'label=key=value' (running containers)",
        examples=[["app", "label=com.example.role=worker"]],
    )
    signal: SignalName = Field("SIGHUP", description="the signal to send, e.g. 'HUP' or 'SIGUSR1'")
    restart: bool = Field(default=False, description="restart the containers instead of signalling")

    def plan(self, ctx: PlanContext) -> Plan:  # noqa: ARG002 - needs no context
        """One step over all the containers."""
        return Plan(steps=(SignalContainers(tuple(self.containers), self.signal, self.restart),))
