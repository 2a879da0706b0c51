"""Job kind ``service``: each run is a Swarm job service (``replicated-job`` or
``global-job``), judged by the first task of each slot, then removed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from jobs.base import BaseJob, Labels, PlanContext, SecretValue
from jobs.containers import VolumeList, parse_volume
from jobs.plan import Plan, RunService, ServiceSpec
from jobs.run import Command, RegistryAuth, as_argv, secret_refs
from jobs.units import Largest, Size

if TYPE_CHECKING:
    from collections.abc import Mapping

_OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONSTRAINT = re.compile(r"\s*[A-Za-z0-9_.\-]+\s*(==|!=)\s*\S.*")
_REPLICATED_ONLY = ("replicas", "max_concurrent")


def _names(value: list[str]) -> list[str]:
    for name in value:
        if not _OBJECT_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a Swarm object name (letters, digits, '_', '.', '-')"
            )
    return value


def _constraints(value: list[str]) -> list[str]:
    for text in value:
        if not _CONSTRAINT.fullmatch(text):
            raise ValueError(
                f"{text!r} is not a placement constraint: write 'attribute == value' or "
                "'attribute != value', such as 'node.role == worker'"
            )
    return value


def _preferences(value: list[str]) -> list[str]:
    for text in value:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", text):
            raise ValueError(
                f"{text!r} is not a spread descriptor: write the attribute to spread tasks "
                "over, such as 'node.labels.zone'"
            )
    return value


ObjectNames = Annotated[list[str], AfterValidator(_names)]
Constraints = Annotated[list[str], AfterValidator(_constraints)]
Preferences = Annotated[list[str], AfterValidator(_preferences)]
Cpus = Annotated[float, Field(gt=0, le=1024)]


class ServiceJob(BaseJob):
    """Create a Swarm job service on every run; its tasks' logs are the run's output; it
    succeeds when every task succeeded; the service is removed."""

    KIND: ClassVar[str] = "service"
    kind: Literal["service"]
    image: str = Field(
        min_length=1, description="the image of the service's tasks", examples=["busybox:latest"]
    )
    command: Command | None = Field(
        None,
        description="a string (split like a shell, no shell) or a list",
        examples=[["sh", "-c", "echo on $(hostname)"]],
    )
    env: dict[str, SecretValue] = Field(
        default_factory=dict,
        description="environment of the tasks; a value may be { env = 'NAME' } or { file = "
        "'/run/secrets/x' } (read by the daemon at each run, never logged; it is in the "
        "service's spec, which `docker service inspect` shows: use `secrets` for secrets "
        "the engine must not show)",
        examples=[{"LANG": "C.UTF-8", "SLOT": "{{.Task.Slot}}"}],
    )
    volumes: VolumeList = Field(
        default_factory=list,
        description="named volumes or host paths of each node, 'name:/path' or "
        "'/host/path:/path' (':ro' for read-only)",
        examples=[["reports:/reports"]],
    )
    networks: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="networks (names; overlay networks reach the other nodes) the tasks join",
        examples=[["backend"]],
    )
    constraints: Constraints = Field(
        default_factory=list,
        description="placement constraints: the nodes a task may run on",
        examples=[["node.role == worker", "node.labels.disk == ssd"]],
    )
    preferences: Preferences = Field(
        default_factory=list,
        description="placement preferences: attributes to spread the tasks over, in order",
        examples=[["node.labels.zone"]],
    )
    cpus: Cpus | None = Field(None, description="each task's CPU limit", examples=[0.5])
    memory: Annotated[Size, Largest("16TiB")] | None = Field(
        None, description="each task's memory limit", examples=["256MiB"]
    )
    reserve_cpus: Cpus | None = Field(
        None, description="CPUs a node must have free for each task", examples=[0.25]
    )
    reserve_memory: Annotated[Size, Largest("16TiB")] | None = Field(
        None, description="memory a node must have free for each task", examples=["128MiB"]
    )
    secrets: ObjectNames = Field(
        default_factory=list,
        description="Swarm secrets (by name, looked up at each run; an unknown one fails the "
        "run) mounted in each task at /run/secrets/<name>",
        examples=[["db_password"]],
    )
    configs: ObjectNames = Field(
        default_factory=list,
        description="Swarm configs (by name, looked up at each run; an unknown one fails the "
        "run) mounted in each task at /<name>",
        examples=[["report.conf"]],
    )
    registry_auth: RegistryAuth | None = Field(
        None,
        description="credentials for pulling image from its registry (sent to the nodes with "
        "the service), taking precedence over [daemon] registry_config",
        examples=[{"username": "ci-puller", "password": {"file": "/run/secrets/registry"}}],
    )
    mode: Literal["replicated-job", "global-job"] = Field(
        "replicated-job",
        description="replicated-job: `replicas` tasks; global-job: one task on each node the "
        "constraints allow",
    )
    replicas: Annotated[int, Field(ge=1, le=10000)] | None = Field(
        None,
        description="how many tasks must complete (replicated-job only; default 1)",
        examples=[3],
    )
    max_concurrent: Annotated[int, Field(ge=1, le=10000)] | None = Field(
        None,
        description="at most this many tasks at once (replicated-job only; default: replicas)",
        examples=[2],
    )
    user: str | None = Field(
        None, description="'uid[:gid]' or a name (default: the image's)", examples=["65534"]
    )
    workdir: str | None = Field(
        None, description="working directory (default: the image's)", examples=["/data"]
    )
    labels: Labels = Field(
        default_factory=dict,
        description="labels of the service and its tasks' containers",
        examples=[{"com.example.team": "ops"}],
    )

    @classmethod
    def takes_default(
        cls, key: str, table: Mapping[str, object], defaults: Mapping[str, object]
    ) -> bool:
        """``replicas`` and ``max_concurrent`` are defaults only of replicated jobs (the
        job's own mode, else the default one); a default ``mode`` only of jobs that set
        neither: a shared [defaults] breaks no job."""
        if key in _REPLICATED_ONLY:
            return table.get("mode", defaults.get("mode")) != "global-job"
        if key == "mode":
            return not any(k in table for k in _REPLICATED_ONLY)
        return True

    @model_validator(mode="after")
    def _replicated_only(self) -> Self:
        if self.mode == "global-job":
            for key in _REPLICATED_ONLY:
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} applies to mode = 'replicated-job' only; a global-job runs "
                        "one task on each node"
                    )
        return self

    def plan(self, ctx: PlanContext) -> Plan:
        """One job service, as configured, with the daemon's variables (``ctx.env``) over
        the job's own of the same name."""
        own = {k: v for k, v in self.env.items() if k not in ctx.env}
        spec = ServiceSpec(
            image=self.image,
            command=as_argv(self.command),
            env={**{k: v for k, v in own.items() if isinstance(v, str)}, **ctx.env},
            secret_env=secret_refs(own),
            mounts=tuple(parse_volume(v) for v in self.volumes),
            networks=tuple(self.networks),
            constraints=tuple(self.constraints),
            preferences=tuple(self.preferences),
            cpus=self.cpus,
            memory=self.memory,
            reserve_cpus=self.reserve_cpus,
            reserve_memory=self.reserve_memory,
            secrets=tuple(self.secrets),
            configs=tuple(self.configs),
            global_job=self.mode == "global-job",
            replicas=self.replicas or 1,
            max_concurrent=self.max_concurrent,
            user=self.user,
            workdir=self.workdir,
            labels=self.labels,
            stop_signal=self.stop_signal,
            stop_grace=self.stop_grace,
            registry_auth=self.registry_auth.login() if self.registry_auth else None,
        )
        return Plan(steps=(RunService(spec),))
