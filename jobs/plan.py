"""Frozen data a job kind hands to the scheduler: what to run, never when.

A plan is a tuple of steps. The scheduler executes them with the engine and
adds what every container must carry (the daemon's labels, a unique name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.protocol.remote import RemoteRequest
    from jobs.protocol.restic import ResticRequest
    from jobs.protocol.ship import ShipRequest


class PullPolicy(StrEnum):
    """When the engine pulls a job's image."""

    NEVER = "never"
    MISSING = "missing"
    ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class Mount:
    """A named volume or a host directory mounted into a container."""

    source: str
    target: str
    read_only: bool = False


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A value the daemon reads at run time, from its environment or a file — a header (passed
    on stdin only) or a container's environment variable — never logged."""

    name: str
    env: str | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    """A job's own credentials for its image's registry (``registry_auth``): they take
    precedence over the daemon's ``registry_config``. The password is the value or what the
    daemon reads it from at pull time; never in the repr."""

    username: str
    password: SecretRef | str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything needed to create one container, in engine-neutral terms."""

    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    volumes_from: tuple[str, ...] = ()
    """Containers whose volumes are mounted, each a selector (``jobs.selectors``) the daemon
    resolves to exactly one container when it creates this one."""
    volumes_from_read_only: bool = False
    """Mount the ``volumes_from`` volumes read-only."""
    network: str | None = None
    user: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    read_only: bool = False
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = False
    stop_signal: str | None = None
    hostname: str | None = None
    """The container's host name (None: the engine's, its id's first 12 digits)."""
    pull: PullPolicy = PullPolicy.MISSING
    registry_auth: RegistryLogin | None = None
    """The job's credentials for pulling ``image`` (None: the daemon's registry_config)."""
    stdin: bool = False
    """Keep stdin open (the daemon writes to it; closing it ends the container's stdin)."""
    healthcheck: bool = True
    """False: no health check (an ops container of the daemon's own image would otherwise
    run the daemon's ``crontainer health`` check every 30 s, and report unhealthy)."""
    log_driver: str | None = None
    log_options: Mapping[str, str] = field(default_factory=dict)
    env_files: tuple[str, ...] = ()
    """Files of ``KEY=VALUE`` lines the daemon reads at run time (before ``env``)."""
    secret_env: tuple[SecretRef, ...] = ()
    """Environment variables whose values the daemon reads at run time (after ``env``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _frozen(self.env))
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "log_options", _frozen(self.log_options))


@dataclass(frozen=True, slots=True)
class RunContainer:
    """Step: create a container, start it, wait for it (under the job's timeout), remove it.

    ``tool``: the ops tool the container runs (its name, the prefix of its diagnostics):
    its control lines (``jobs.protocol``) are taken from its stderr, and its result's keys
    go into the run's ``run.succeeded`` event. ``stdin_secret``: a value (or what the daemon
    reads it from at run time) written on the container's stdin (``spec.stdin`` set), then
    closed — never in the container's command, environment or labels."""

    spec: ContainerSpec
    tool: str | None = None
    stdin_secret: SecretRef | str | None = None


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """Step: run a command inside a running container, under the job's timeout.
    ``container``: a selector (``jobs.selectors``) that must match exactly one running
    container; ``key``: the config key that names it, for the run's error."""

    container: str
    command: tuple[str, ...]
    user: str | None = None
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    key: str = "container"

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _frozen(self.env))


@dataclass(frozen=True, slots=True)
class SignalContainers:
    """Step: send ``signal`` to (or, with ``restart``, restart) every selected container.

    Each selector (``jobs.selectors``) selects the container it names, or the running
    containers it matches.
    """

    selectors: tuple[str, ...]
    signal: str = "SIGHUP"
    restart: bool = False


@dataclass(frozen=True, slots=True)
class WithStopped:
    """Step: stop ``containers`` in order (the running ones each selector matches), run
    ``body``, then start the stopped ones again in reverse order — on every path, failures
    and shutdown included."""

    containers: tuple[str, ...]
    body: tuple[RunContainer | ExecCommand | ResticBackup | RemoteArchives, ...]
    grace: float = 10.0


@dataclass(frozen=True, slots=True)
class ShipLogs:
    """Step: run the log shipping tool in ``spec`` (stdin open). The daemon writes to its
    stdin the ``request`` completed with the job's checkpoints, the engine's host name and
    the ``secrets``' values; then the new lines of ``containers``' logs (selectors,
    ``jobs.selectors``: every container each matches); stores the checkpoints the tool
    reports as it goes.
    ``quiet_stdout``: the container's stdout is the records (stdout sink), not output."""

    spec: ContainerSpec
    request: ShipRequest
    containers: tuple[str, ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    quiet_stdout: bool = False


@dataclass(frozen=True, slots=True)
class RotateLogs:
    """Step: ``rotate`` (an ops container; the daemon writes on its stdin the state it kept
    of earlier runs, and stores the state it reports), then ``tell`` only if something was
    rotated, then ``finish`` (compress and prune) — after the signal, whatever it gave."""

    rotate: ContainerSpec
    finish: ContainerSpec
    tell: SignalContainers | None = None


@dataclass(frozen=True, slots=True)
class ResticBackup:
    """Step: run the restic tool in ``spec`` (stdin open). The daemon writes to its stdin
    ``request`` completed with its own name, the values of ``password``, ``env``,
    ``ssh_key`` and ``known_hosts`` (read at run time: the env's names, never in the
    container's environment) and when the job last checked the repository; it stores the
    check time the result reports."""

    spec: ContainerSpec
    request: ResticRequest
    password: SecretRef | None = None
    env: tuple[SecretRef, ...] = ()
    ssh_key: SecretRef | None = None
    known_hosts: SecretRef | None = None
    """An ``sftp:`` repository's key and known_hosts, when given by reference (a file
    may change between runs: read at each)."""


@dataclass(frozen=True, slots=True)
class RemoteArchives:
    """Step: ``body`` (a backup's archive, its stops around it), then — if it succeeded —
    the remote tool in ``spec`` (stdin open), fed ``request`` completed by the daemon with
    each remote it names (``[daemon.remotes.<name>]``, secrets read at run time). Without
    ``body``, just the tool (listing or restoring from a remote). The run's details: the
    body's, plus the tool's ``copies``. A restore's ``identity`` (an age identity file) or
    ``passphrase`` (a streamed archive's passphrase) goes into the request too, read at run
    time."""

    spec: ContainerSpec
    request: RemoteRequest
    body: WithStopped | RunContainer | RemoteArchives | None = None
    identity: SecretRef | None = None
    passphrase: SecretRef | str | None = None


# --- kind "service" (Swarm job services) ---


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """Everything needed to create one Swarm job service, in engine-neutral terms. Secrets
    and configs are Swarm objects named here, looked up by name when the run starts."""

    image: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[SecretRef, ...] = ()
    """Environment variables whose values the daemon reads at run time (after ``env``)."""
    mounts: tuple[Mount, ...] = ()
    networks: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    """Spread preferences: each a descriptor such as ``node.labels.zone``."""
    cpus: float | None = None
    memory: int | None = None
    reserve_cpus: float | None = None
    reserve_memory: int | None = None
    secrets: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    global_job: bool = False
    """``global-job`` (one task per eligible node); else ``replicated-job``."""
    replicas: int = 1
    max_concurrent: int | None = None
    user: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    stop_grace: float = 10.0
    registry_auth: RegistryLogin | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _frozen(self.env))
        object.__setattr__(self, "labels", _frozen(self.labels))


@dataclass(frozen=True, slots=True)
class RunService:
    """Step: create a Swarm job service, follow its tasks (their logs, their ends) under the
    job's timeout, judge the first task of each slot, remove the service."""

    spec: ServiceSpec


Step = (
    RunContainer
    | ExecCommand
    | SignalContainers
    | WithStopped
    | ShipLogs
    | RotateLogs
    | ResticBackup
    | RemoteArchives
    | RunService
)
"""Every step a plan can hold (grows with the job kinds)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps of one run, in order; ``cleanup`` runs after them whatever happened
    (a failure in it fails a run that had succeeded)."""

    steps: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
