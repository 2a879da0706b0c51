"""Job kind ``run``: a new container from an image on every run."""

from __future__ import annotations

import shlex
from functools import lru_cache
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from jobs.base import EnvSecret, FileSecret, Model, PlanContext, SecretValue
from jobs.containers import ContainerJob, parse_volume
from jobs.plan import ContainerSpec, Plan, PullPolicy, RegistryLogin, RunContainer, SecretRef
from jobs.repository import secret_ref
from jobs.units import Duration, Longest

DEFAULT_PREPARE_AHEAD_S = 5.0


def as_argv(value: str | list[str] | None) -> tuple[str, ...] | None:
    """A command as an argument vector; a string is split like a shell would, without a shell."""
    if value is None:
        return None
    if isinstance(value, str):
        return _split(value)
    return tuple(value)


@lru_cache(maxsize=4096)
def _split(text: str) -> tuple[str, ...]:
    """``text`` split like a shell would; once per distinct text (a config's jobs repeat their
    commands, and each is checked, planned and warned about: shlex costs ~20 µs a split)."""
    return tuple(shlex.split(text))


def _splittable(value: str | list[str]) -> str | list[str]:
    """A string command must split like a shell would (balanced quotes): checked here, not at
    every run."""
    try:
        as_argv(value)
    except ValueError as e:
        raise ValueError(
            f"cannot be split into arguments ({str(e).lower()}): balance the quotes, or write "
            'a list such as ["sh", "-c", "..."]'
        ) from None
    return value


def _command(value: str | list[str]) -> str | list[str]:
    if not as_argv(_splittable(value)):
        raise ValueError("the command is empty")
    return value


Command = Annotated[str | list[str], AfterValidator(_command)]
"""A command: a list of arguments, or a string split like a shell would (never empty)."""
Entrypoint = Annotated[str | list[str], AfterValidator(_splittable)]
"""An entrypoint, like a command; empty clears the image's own."""


def secret_refs(values: dict[str, SecretValue]) -> tuple[SecretRef, ...]:
    """The values given as secret references, for the daemon to read at run time."""
    refs = []
    for name, value in values.items():
        if isinstance(value, EnvSecret):
            refs.append(SecretRef(name, env=value.env))
        elif isinstance(value, FileSecret):
            refs.append(SecretRef(name, file=value.file))
    return tuple(refs)


def _absolute_files(value: list[str]) -> list[str]:
    for path in value:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} must be an absolute path the daemon can read")
    return value


class ContainerFields(ContainerJob):
    """Fields of any kind that creates a container from an image."""

    env: dict[str, SecretValue] = Field(
        default_factory=dict,
        description="environment of the container; a value may be { env = 'NAME' } or "
        "{ file = '/run/secrets/x' } (read by the daemon at each run, never logged)",
        examples=[{"LANG": "C.UTF-8", "DB_PASSWORD": {"file": "/run/secrets/db"}}],
    )
    env_files: Annotated[list[str], AfterValidator(_absolute_files)] = Field(
        default_factory=list,
        description="files of KEY=VALUE lines read by the daemon at each run (like --env-file)",
        examples=[["/run/secrets/app.env"]],
    )
    network: str | None = Field(
        None,
        description="'bridge', 'host', 'none', 'container:<name>' or a network name",
        examples=["container:app"],
    )
    user: str | None = Field(
        None, description="'uid[:gid]' or a name (default: the image's)", examples=["65534"]
    )
    workdir: str | None = Field(
        None, description="working directory (default: the image's)", examples=["/data"]
    )
    pull: PullPolicy = Field(
        PullPolicy.MISSING,
        strict=False,
        description="when the image is pulled: never, when missing, or at every run",
    )  # names, not enum objects


class RegistryAuth(Model):
    """A job's credentials for its image's registry (``registry_auth``)."""

    username: str = Field(
        min_length=1, description="the user name at the registry", examples=["ci-puller"]
    )
    password: SecretValue = Field(
        repr=False,
        description="the password or token: text, { env = 'NAME' } or { file = "
        "'/run/secrets/x' } (read by the daemon at each pull, never logged)",
        examples=[{"file": "/run/secrets/registry_password"}],
    )

    def login(self) -> RegistryLogin:
        """These credentials in the plan, the password read at pull time."""
        password = self.password
        if isinstance(password, str):
            return RegistryLogin(self.username, password)
        return RegistryLogin(self.username, secret_ref("registry_auth.password", password))


class RunJob(ContainerFields):
    """Create a container from ``image``, run it to the end, remove it."""

    KIND: ClassVar[str] = "run"
    kind: Literal["run"]
    image: str = Field(
        min_length=1, description="the image of the job's container", examples=["busybox:latest"]
    )
    command: Command | None = Field(
        None,
        description="a string (split like a shell, no shell) or a list",
        examples=[["sh", "-c", "du -sh /data"]],
    )
    entrypoint: Entrypoint | None = Field(
        None,
        description="replaces the image's entrypoint, like command ('' or []: none)",
        examples=[["/bin/sh", "-c"]],
    )
    registry_auth: RegistryAuth | None = Field(
        None,
        description="credentials for pulling image from its registry, taking precedence over "
        "[daemon] registry_config: { username = '…', password = { file = '/run/secrets/x' } }",
        examples=[{"username": "ci-puller", "password": {"file": "/run/secrets/registry"}}],
    )
    prepare_ahead: Annotated[Duration, Longest("10m")] = Field(
        DEFAULT_PREPARE_AHEAD_S,
        description="a scheduled run's container is made this long before its time (image "
        "check or pull, env files and secrets read, volumes_from resolved, created, output "
        "attached), so that only its start remains at the time; 0 turns it off. Runs due "
        "sooner (manual, retries, catch-up, run_on_start, an @every shorter than this) are "
        "not prepared",
        examples=["5s"],
    )

    def plan(self, ctx: PlanContext) -> Plan:
        """One container, as configured, with the daemon's variables (``ctx.env``) over the
        job's own of the same name."""
        own = {k: v for k, v in self.env.items() if k not in ctx.env}
        spec = ContainerSpec(
            image=self.image,
            command=as_argv(self.command),
            entrypoint=as_argv(self.entrypoint),
            env={**{k: v for k, v in own.items() if isinstance(v, str)}, **ctx.env},
            env_files=tuple(self.env_files),
            secret_env=secret_refs(own),
            mounts=tuple(parse_volume(v) for v in self.volumes),
            volumes_from=tuple(self.volumes_from),
            network=self.network,
            user=self.user,
            workdir=self.workdir,
            labels=self.labels,
            stop_signal=self.stop_signal,
            pull=self.pull,
            registry_auth=self.registry_auth.login() if self.registry_auth else None,
            **self.hardening(),
        )
        return Plan(steps=(RunContainer(spec),))
