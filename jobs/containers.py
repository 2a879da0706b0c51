"""Jobs that create containers (run, backup, logship, rotate): the fields they share —
limits and privileges, the volumes they mount, their labels — declared once."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from jobs.base import BaseJob, Labels
from jobs.plan import Mount
from jobs.selectors import ContainerSelector, VolumesFromEntry, split_mode
from jobs.units import Largest, Size


def parse_volume(text: str) -> Mount:
    """Read ``source:target[:ro|:rw]``; source is a named volume or an absolute host path."""
    parts = text.split(":")
    mode = "rw"
    if len(parts) == 3:  # noqa: PLR2004 - source:target:mode
        source, target, mode = parts
    elif len(parts) == 2:  # noqa: PLR2004 - source:target
        source, target = parts
    else:
        raise ValueError(f"volume {text!r}: expected 'source:/target' or 'source:/target:ro'")
    if mode not in ("ro", "rw"):
        raise ValueError(f"volume {text!r}: mode must be 'ro' or 'rw', got {mode!r}")
    if not source:
        raise ValueError(f"volume {text!r}: the source (a volume name or a host path) is empty")
    if source.startswith((".", "~")):
        raise ValueError(
            f"volume {text!r}: a host path must be absolute (it is a path on the Docker host)"
        )
    if not target.startswith("/"):
        raise ValueError(f"volume {text!r}: the target {target!r} must be an absolute path")
    return Mount(source=source, target=target, read_only=mode == "ro")


def _check_volumes(value: list[str]) -> list[str]:
    for item in value:
        parse_volume(item)
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


VolumeList = Annotated[list[str], AfterValidator(_check_volumes)]
"""``"volume:/path"`` / ``"/host/path:/path"`` entries, each with an optional ``:ro``."""
ContainerNames = Annotated[list[ContainerSelector], BeforeValidator(_one_or_many)]
"""One container (a name or a selector, ``jobs.selectors``) or a list of them."""
VolumesFrom = Annotated[list[VolumesFromEntry], BeforeValidator(_one_or_many)]
"""``volumes_from``: containers as in ContainerNames, each with an optional ``:ro``/``:rw``."""


def _capabilities(value: list[str]) -> list[str]:
    names = []
    for cap in value:
        name = cap.upper().removeprefix("CAP_")
        if not re.fullmatch(r"[A-Z][A-Z_]*", name):
            raise ValueError(f"{cap!r} is not a capability name (e.g. 'NET_ADMIN' or 'ALL')")
        names.append(name)
    return names


Capabilities = Annotated[list[str], AfterValidator(_capabilities)]
"""Linux capability names, as ``NET_ADMIN``, ``CAP_NET_ADMIN`` or ``ALL``."""


class ContainerJob(BaseJob):
    """A job that creates containers: their limits and privileges (settable in [defaults]),
    the volumes they mount and their labels."""

    volumes_from: VolumesFrom = Field(
        default_factory=list,
        description="containers whose volumes the job's containers mount (--volumes-from; "
        "read-only for backup and logship); in a run job an entry may end in ':ro' or ':rw'",
        examples=[["app-data"]],
    )
    volumes: VolumeList = Field(
        default_factory=list,
        description="named volumes or host paths, 'name:/path' or '/host/path:/path' (':ro' "
        "for read-only; backup and logship mount them read-only, but the volume of a "
        "backup's local repository)",
        examples=[["app-data:/data:ro", "/srv/backups:/backup"]],
    )
    labels: Labels = Field(
        default_factory=dict,
        description="labels of the containers the job creates",
        examples=[{"com.example.team": "ops"}],
    )

    memory: Annotated[Size, Largest("16TiB")] | None = Field(
        None,
        description="memory limit, no swap beyond it (at least 6MiB); a container killed for "
        "memory ends failed, reason oom_killed",
        examples=["256MiB"],
    )
    cpus: Annotated[float, Field(gt=0, le=1024)] | None = Field(
        None, description="CPU limit, in CPUs", examples=[0.5]
    )
    pids_limit: int | None = Field(
        None,
        ge=1,
        le=4_194_304,
        description="at most this many processes in the container",
        examples=[100],
    )
    read_only: bool = Field(
        default=False,
        description="read-only root file system (volumes stay as mounted; the ops tools write "
        "only to their volumes)",
    )
    cap_drop: Capabilities = Field(
        default_factory=list,
        description="capabilities removed, e.g. ['ALL'] (names with or without CAP_)",
        examples=[["ALL"]],
    )
    cap_add: Capabilities = Field(
        default_factory=list, description="capabilities added, e.g. ['CHOWN']", examples=[["CHOWN"]]
    )
    no_new_privileges: bool = Field(
        default=False, description="setuid binaries and file capabilities cannot raise privileges"
    )

    VOLUMES_FROM_MODE: ClassVar[str] = ""
    """How the kind mounts ``volumes_from``: ``":ro"``, ``":rw"``, or ``""`` when each entry
    may say (a run job: Docker's ``app:ro``)."""

    @field_validator("volumes_from")
    @classmethod
    def _mode_the_kind_allows(cls, value: list[str]) -> list[str]:
        """A run job's entries keep their ``:ro``/``:rw``. The ops kinds mount the volumes
        as their work needs (backup and logship read-only, rotate writable): an entry with
        that same mode is taken without it (it worked before selectors); the other mode
        would contradict the kind and is refused. Not checked in ``[defaults]`` (its models
        have no VOLUMES_FROM_MODE): there it may serve run jobs, and each job that takes it
        is checked."""
        own = getattr(cls, "VOLUMES_FROM_MODE", None)
        if not own:
            return value
        taken = []
        for entry in value:
            selector, mode = split_mode(entry)
            if mode and mode != own:
                how = "read-only" if own == ":ro" else "writable"
                raise ValueError(
                    f"{entry!r}: a {cls.KIND} job mounts these volumes {how} ({own}); "
                    f"write {selector!r} (in the job, or in [defaults] if it comes from there)"
                )
            taken.append(selector)
        return taken

    @field_validator("memory")
    @classmethod
    def _memory_floor(cls, value: int | None) -> int | None:
        if value is not None and value < 6 * 1024 * 1024:
            raise ValueError("memory must be at least 6MiB (the engine's minimum)")
        return value

    def hardening(self) -> dict[str, Any]:
        """These settings as ContainerSpec fields."""
        return {
            "memory": self.memory,
            "cpus": self.cpus,
            "pids_limit": self.pids_limit,
            "read_only": self.read_only,
            "cap_drop": tuple(self.cap_drop),
            "cap_add": tuple(self.cap_add),
            "no_new_privileges": self.no_new_privileges,
        }
