"""Job kind ``signal``: send a signal to containers, or restart them (``docker kill -s HUP``)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from jobs.base import BaseJob, PlanContext, signal_name
from jobs.plan import Plan, SignalContainers

_LABEL = re.compile(r"^label=[^=\s]+(=.*)?$")


def check_selector(selector: str) -> str:
    """A container name, or ``label=key`` / ``label=key=value``."""
    if selector.startswith("label=") and not _LABEL.match(selector):
        raise ValueError(f"{selector!r}: write 'label=key' or 'label=key=value'")
    if not selector.strip():
        raise ValueError("an empty container name")
    return selector


class SignalJob(BaseJob):
    """Signal or restart every selected container; a missing one fails the run."""

    KIND: ClassVar[str] = "signal"
    kind: Literal["signal"]
    containers: list[str] = Field(
        min_length=1, description="container names, or 'label=key=value' (running containers)"
    )
    signal: str = Field("SIGHUP", description="the signal to send, e.g. 'HUP' or 'SIGUSR1'")
    restart: bool = Field(default=False, description="restart the containers instead of signalling")

    @field_validator("containers")
    @classmethod
    def _selectors(cls, value: list[str]) -> list[str]:
        return [check_selector(s) for s in value]

    @field_validator("signal")
    @classmethod
    def _known(cls, value: str) -> str:
        return signal_name(value)

    def plan(self, ctx: PlanContext) -> Plan:  # noqa: ARG002 - needs no context
        """One step over all the containers."""
        return Plan(steps=(SignalContainers(tuple(self.containers), self.signal, self.restart),))
