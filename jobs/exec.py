"""Job kind ``exec``: a command inside a running container (``docker exec``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from jobs.base import BaseJob, PlanContext
from jobs.plan import ExecCommand, Plan
from jobs.run import DEFAULT_PREPARE_AHEAD_S, Command, as_argv
from jobs.selectors import ContainerSelector
from jobs.units import Duration, Longest


class ExecJob(BaseJob):
    """Run ``command`` in the running container ``container``; its exit code decides."""

    KIND: ClassVar[str] = "exec"
    kind: Literal["exec"]
    container: ContainerSelector = Field(
        description="a running container: its name, or 'label=…' / 'compose=<project>/<service>'",
        examples=["app"],
    )
    command: Command = Field(
        description="a string (split like a shell) or a list",
        examples=[["sh", "-c", "rm -rf /var/cache/app/tmp/*"]],
    )
    user: str | None = Field(
        None,
        description="user the command runs as (default: the container's)",
        examples=["www-data"],
    )
    workdir: str | None = Field(
        None,
        description="working directory (default: the container's)",
        examples=["/var/cache/app"],
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment variables of the command",
        examples=[{"VERBOSE": "1"}],
    )
    prepare_ahead: Annotated[Duration, Longest("10m")] = Field(
        DEFAULT_PREPARE_AHEAD_S,
        description="a scheduled run's exec is created this long before its time (the "
        "container selected, the exec created in it, not started), so that only its start "
        "remains at the time; 0 turns it off. Runs due sooner (manual, retries, catch-up, "
        "run_on_start, an @every shorter than this) are not prepared",
        examples=["5s"],
    )

    def plan(self, ctx: PlanContext) -> Plan:
        """One exec, with the daemon's variables (``ctx.env``) over the job's own."""
        argv = as_argv(self.command) or ()
        return Plan(
            steps=(
                ExecCommand(
                    self.container,
                    argv,
                    user=self.user,
                    workdir=self.workdir,
                    env={**self.env, **ctx.env},
                    key="exec container",
                ),
            )
        )
