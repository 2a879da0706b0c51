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

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from jobs.selectors import COMPOSE_ONEOFF, COMPOSE_PROJECT, COMPOSE_SERVICE
from scheduler.engine import LABEL_DAEMON
from scheduler.labels.parse import PREFIX, job_tables
from scheduler.labels.rules import SAFE_DEFAULTS, Fence
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


@dataclass(frozen=True, slots=True)
class _Declared:
    """One job of one container's labels, checked: all of it that does not depend on the
    other containers (which replica of a service runs it)."""

    job: str
    shared: bool
    """One for a scaled service's replicas, not ``per_replica``."""
    entry: JobEntry | None
    refusals: tuple[Refusal, ...]
    labels: tuple[tuple[str, str], ...] = ()
    """The job's labels as written (replicas that declare it differently: none runs it)."""


class Memo:
    """What the last scan found in each container, reused while the container's name and
    labels and the rules are the same: an unchanged container's jobs are not parsed and
    validated again (building each job's cron schedule is most of that work: 1,000 label
    jobs took 0.4 s of CPU per scan). It keeps the containers of the last scan only. One
    scan at a time."""

    def __init__(self) -> None:
        self._rules: Rules | None = None
        self._known: dict[tuple[str, str], tuple[Mapping[str, str], tuple[_Declared, ...]]] = {}
        self._next: dict[tuple[str, str], tuple[Mapping[str, str], tuple[_Declared, ...]]] = {}
        self.checked = 0
        """How many containers' jobs were parsed and validated (not taken from the memo)."""

    def begin(self, rules: Rules) -> None:
        """A scan starts: forget everything if the rules changed."""
        if rules != self._rules:
            self._rules, self._known = rules, {}
        self._next = {}

    def declared(self, container: ContainerInfo, rules: Rules) -> tuple[_Declared, ...]:
        """``container``'s jobs, checked (from the memo when it knows them)."""
        key = (container.id, container.name)
        known = self._known.get(key)
        if known is not None and known[0] == container.labels:
            found = known[1]
        else:
            found = _declared(container, rules)
            self.checked += 1
        self._next[key] = (container.labels, found)
        return found

    def end(self) -> None:
        """The scan is over: keep what it saw."""
        self._known, self._next = self._next, {}


def scan(containers: Iterable[ContainerInfo], rules: Rules, memo: Memo | None = None) -> LabelJobs:
    """The label jobs of ``containers`` (the running ones first, each in order of names);
    ``memo`` keeps what an unchanged container declared from one scan to the next. The
    daemon's own containers are left out (an image's labels are a container's too)."""
    memo = memo or Memo()
    memo.begin(rules)
    jobs: dict[str, JobEntry] = {}
    owners: dict[str, ContainerInfo] = {}
    refusals: list[Refusal] = []
    replicas: dict[tuple[tuple[str, str], str], list[tuple[_Declared, ContainerInfo]]] = {}
    for container in sorted(containers, key=_order):
        if one_off(container) or LABEL_DAEMON in container.labels:
            continue
        service = _service(container)
        for declared in memo.declared(container, rules):
            if service is not None and declared.shared:
                replicas.setdefault((service, declared.job), []).append((declared, container))
                continue
            refusals.extend(declared.refusals)
            if declared.entry is not None:
                jobs[declared.entry.name] = declared.entry
                owners[declared.entry.name] = container
    for (service, job), declaring in replicas.items():
        first, container = declaring[0]
        if len({declared.labels for declared, _ in declaring}) > 1:
            names = ", ".join(c.name for _, c in declaring)
            why = (
                f"the replicas of {service[0]}/{service[1]} declare job {job!r} differently "
                f"({names}): none of them runs it"
            )
            refusals.extend(Refusal(c.name, job, "", why) for _, c in declaring)
            continue
        refusals.extend(first.refusals)  # the same in each replica: said once
        if first.entry is not None:
            jobs[first.entry.name] = first.entry
            owners[first.entry.name] = container
    memo.end()
    return LabelJobs(jobs, owners, tuple(refusals))


def _declared(container: ContainerInfo, rules: Rules) -> tuple[_Declared, ...]:
    """Each job ``container``'s labels declare, checked on its own."""
    found = job_tables(container.labels)
    declared = [
        _Declared(job, shared=False, entry=None, refusals=tuple(
            Refusal(container.name, job, key, why) for key, why in problems
        ))
        for job, problems in found.problems.items()
    ]  # fmt: skip
    service = _service(container)
    for job, table in found.tables.items():
        written = tuple(sorted((k, v) for k, v in container.labels.items() if _of(k, job)))
        per_replica = table.pop(PER_REPLICA, False)
        if not isinstance(per_replica, bool):
            refusal = Refusal(container.name, job, PER_REPLICA, "expected true or false")
            declared.append(
                _Declared(job, shared=False, entry=None, refusals=(refusal,), labels=written)
            )
            continue
        shared = service is not None and not per_replica
        name = (
            f"{service[0]}-{service[1]}.{job}" if service and shared else f"{container.name}.{job}"
        )
        refusals: list[Refusal] = []
        entry = _job(container, name, job, table=table, rules=rules, refusals=refusals)
        declared.append(_Declared(job, shared, entry, tuple(refusals), written))
    return tuple(declared)


def _of(label: str, job: str) -> bool:
    """Whether ``label`` is one of ``job``'s."""
    return label.startswith(f"{PREFIX}{job}.")


def _job(
    container: ContainerInfo,
    name: str,
    job: str,
    *,
    table: dict[str, Any],
    rules: Rules,
    refusals: list[Refusal],
) -> JobEntry | None:
    """Job ``name`` (``job`` of ``container``'s labels): fenced, then validated with the
    ``[defaults]`` label jobs take (``SAFE_DEFAULTS``)."""
    fenced, problems = Fence(container, rules.kinds, rules.allow).check(table)
    if name in rules.taken:
        problems.append(("", f"the config defines a job named {name!r}: it is kept"))
    if problems:
        refusals.extend(Refusal(container.name, job, key, why) for key, why in problems)
        return None
    errors: list[str] = []
    defaults = {key: value for key, value in rules.defaults.items() if key in SAFE_DEFAULTS}
    entry = load_job(name, fenced, defaults, errors)
    for line in errors:
        key, why = _located(line, name)
        hint = _quote_hint(table.get(key)) if "expected a string" in why else ""
        refusals.append(Refusal(container.name, job, key, why + hint))
    if errors or entry is None:
        return None
    return replace(entry, container=container)


def _quote_hint(value: object) -> str:
    """For a label value TOML read as a boolean, a number or a date: how to give text."""
    if isinstance(value, str) or value is None or isinstance(value, dict | list):
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f" (the label's value {text} reads as TOML, not text; for text, quote it: '\"{text}\"')"


def _located(line: str, name: str) -> tuple[str, str]:
    """A job's error line (``jobs.<name>.schedule: …``) as (key, reason)."""
    where = f"jobs.{name}"
    if line.startswith(where):
        key, _, why = line[len(where) :].lstrip(".").partition(": ")
        return key, why
    return "", line
