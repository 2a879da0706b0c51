"""Every container's label jobs: parsed, fenced, validated like ``[jobs.*]`` tables.

A label job is named ``<container>.<job>`` and takes ``[defaults]`` as any job does (the
fence looks at what the labels ask, not at the operator's defaults). A container that
Compose made for a scaled service (its ``com.docker.compose.project``/``service``
labels) shares its jobs with its replicas: a job runs in the first of them by name that
is running (the first by name when none is), unless the job says ``per_replica = true``.
``docker compose run`` one-offs are left out (they carry their service's labels and come
and go).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.selectors import COMPOSE_ONEOFF, COMPOSE_PROJECT, COMPOSE_SERVICE
from scheduler.labels.parse import job_tables
from scheduler.labels.rules import Fence
from scheduler.settings.entries import load_job

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from scheduler.engine import ContainerInfo
    from scheduler.settings import Config, JobEntry

LABEL_SOURCE = "label:"
"""A label job's source: ``label:<container>``."""
PER_REPLICA = "per_replica"
"""A key of label jobs only: run the job in each replica of a scaled service."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A label job the daemon does not take: where and why."""

    container: str
    job: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class LabelJobs:
    """The jobs the containers' labels declare, and those refused."""

    jobs: dict[str, JobEntry] = field(default_factory=dict)
    containers: dict[str, ContainerInfo] = field(default_factory=dict)
    """By job, the container that declared it (the one it acts on)."""
    refusals: tuple[Refusal, ...] = ()

    def sources(self) -> dict[str, str]:
        """By job, ``label:<container>``."""
        return {name: LABEL_SOURCE + c.name for name, c in self.containers.items()}


@dataclass(frozen=True, slots=True)
class Rules:
    """What a scan needs from the config: the fence's widening, ``[defaults]`` and the names
    the config's own jobs take (a label job may not take one)."""

    kinds: Collection[str]
    allow: Collection[str]
    defaults: Mapping[str, Any]
    taken: Collection[str] = ()


def rules_of(config: Config) -> Rules:
    """What label jobs may do, and the names they may not take, under ``config``."""
    return Rules(
        kinds=config.daemon.label_kinds,
        allow=config.daemon.label_allow,
        defaults=config.defaults,
        taken=frozenset(config.jobs),
    )


def _service(container: ContainerInfo) -> tuple[str, str] | None:
    labels = container.labels
    project, service = labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE)
    return (project, service) if project and service else None


def one_off(container: ContainerInfo) -> bool:
    """Whether ``docker compose run`` made the container."""
    return container.labels.get(COMPOSE_ONEOFF, "").lower() == "true"


def _order(container: ContainerInfo) -> tuple[bool, str]:
    """Running containers first, then by name: a scaled service's job goes to a replica
    that runs (a stopped one's runs would be skipped while the others run)."""
    return container.state != "running", container.name


def scan(containers: Iterable[ContainerInfo], rules: Rules) -> LabelJobs:
    """The label jobs of ``containers`` (the running ones first, each in order of names)."""
    jobs: dict[str, JobEntry] = {}
    owners: dict[str, ContainerInfo] = {}
    refusals: list[Refusal] = []
    claimed: set[tuple[tuple[str, str], str]] = set()
    for container in sorted(containers, key=_order):
        if one_off(container):
            continue
        found = job_tables(container.labels)
        for job, problems in found.problems.items():
            refusals.extend(Refusal(container.name, job, key, why) for key, why in problems)
        service = _service(container)
        for job, table in found.tables.items():
            per_replica = table.pop(PER_REPLICA, False)
            if not isinstance(per_replica, bool):
                refusals.append(Refusal(container.name, job, PER_REPLICA, "expected true or false"))
                continue
            if service is not None and not per_replica:
                if (service, job) in claimed:
                    continue  # a replica's: the first running replica by name runs it
                claimed.add((service, job))
            entry = _job(container, job, table, rules, refusals)
            if entry is not None:
                jobs[entry.name] = entry
                owners[entry.name] = container
    return LabelJobs(jobs, owners, tuple(refusals))


def _job(
    container: ContainerInfo,
    job: str,
    table: dict[str, Any],
    rules: Rules,
    refusals: list[Refusal],
) -> JobEntry | None:
    fenced, problems = Fence(container, rules.kinds, rules.allow).check(table)
    name = f"{container.name}.{job}"
    if name in rules.taken:
        problems.append(("", f"the config defines a job named {name!r}: it is kept"))
    if problems:
        refusals.extend(Refusal(container.name, job, key, why) for key, why in problems)
        return None
    errors: list[str] = []
    entry = load_job(name, fenced, rules.defaults, errors)
    for line in errors:
        key, why = _located(line, name)
        refusals.append(Refusal(container.name, job, key, why))
    return entry if not errors else None


def _located(line: str, name: str) -> tuple[str, str]:
    """A job's error line (``jobs.<name>.schedule: …``) as (key, reason)."""
    where = f"jobs.{name}"
    if line.startswith(where):
        key, _, why = line[len(where) :].lstrip(".").partition(": ")
        return key, why
    return "", line
