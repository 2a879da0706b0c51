"""Job kind ``backup``: archive a data container's volumes from an ops container.

Order of a run: ``pre_exec`` commands (a dump, a flush) → ``stop`` the given
containers in order (those running) → archive in a container of ``ops_image``
with ``--volumes-from`` the sources (read-only) and the target mounted → start
the stopped containers again in reverse order (on every path) → ``post_exec``
(always, even after a failure). Retention runs after a good archive. With
``repository`` instead of ``target`` the middle step is a restic snapshot
(``jobs.repository``), in the same order.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from jobs import copies
from jobs.base import NAME_PATTERN, InsidePaths, Model, PlanContext
from jobs.containers import ContainerJob, parse_volume
from jobs.copies import TARGET_MOUNT
from jobs.encryption import EncryptKeys
from jobs.plan import (
    ContainerSpec,
    ExecCommand,
    Mount,
    Plan,
    PullPolicy,
    RemoteArchives,
    ResticBackup,
    RunContainer,
    WithStopped,
)
from jobs.protocol.backup import CreateRequest
from jobs.repository import REPOSITORY_ONLY, RepositoryKeys
from jobs.run import Command, as_argv
from jobs.selectors import ContainerSelector, Selectors

if TYPE_CHECKING:
    from collections.abc import Mapping

RESTIC_TOOL = ("python3", "-m", "jobs.tools.restic")


def _covers(path: str, inner: str) -> bool:
    """``path`` is ``inner`` or one of its parents (``/`` covers everything)."""
    path = path.rstrip("/") or "/"
    return path in ("/", inner) or inner.startswith(path + "/")


class ExecSpec(Model):
    """A command run inside a running container before or after the archive."""

    container: ContainerSelector = Field(
        description="a running container: its name, or 'label=…' / 'compose=<project>/<service>'",
        examples=["db"],
    )
    command: Command = Field(
        description="a string (split like a shell, no shell) or a list", examples=["sync"]
    )
    user: str | None = Field(
        None, description="user the command runs as (default: the container's)", examples=["mysql"]
    )
    workdir: str | None = Field(
        None, description="working directory (default: the container's)", examples=["/"]
    )

    def step(self, key: str) -> ExecCommand:
        """This command as a plan step (``key``: where the config holds it)."""
        return ExecCommand(
            self.container,
            as_argv(self.command) or (),
            user=self.user,
            workdir=self.workdir,
            key=f"{key} container",
        )


class BackupJob(EncryptKeys, RepositoryKeys, ContainerJob):
    """Archive volumes into a target volume or host directory, or snapshot them into a
    restic repository; with retention."""

    KIND: ClassVar[str] = "backup"
    VOLUMES_FROM_MODE: ClassVar[str] = ":ro"
    kind: Literal["backup"]
    paths: InsidePaths = Field(
        default_factory=list,
        description="only these absolute paths inside the sources (default: all)",
        examples=[["/var/lib/mysql"]],
    )
    target: str | None = Field(
        None,
        min_length=1,
        description="a named volume, or an absolute host directory (or repository instead)",
        examples=["app-backups"],
    )
    compression: Literal["zstd", "gzip", "none"] = Field(
        "zstd", description="of the archives in target (not with repository)"
    )
    copy_to: list[str] = Field(
        default_factory=list,
        description="names of [daemon.remotes.<name>] each archive is copied to (with target)",
        examples=[["offsite"]],
    )
    pre_exec: list[ExecSpec] = Field(
        default_factory=list,
        description="commands run in running containers before the archive (a dump, a flush)",
        examples=[
            [
                {
                    "container": "db",
                    "command": "sh -c 'mysqldump app > /dump/db.sql'",
                    "user": "mysql",
                }
            ]
        ],
    )
    stop: Selectors = Field(
        default_factory=list, description="stopped in order, started in reverse", examples=[["app"]]
    )
    post_exec: list[ExecSpec] = Field(
        default_factory=list,
        description="commands run after the archive, always (even after a failure)",
        examples=[[{"container": "app", "command": "rm -f /dump/db.sql"}]],
    )
    keep_last: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="keep the newest this many archives (or snapshots)",
        examples=[7],
    )
    keep_daily: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="keep the newest archive (or snapshot) of each of this many days",
        examples=[7],
    )
    keep_weekly: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="keep the newest archive (or snapshot) of each of this many weeks",
        examples=[4],
    )
    keep_monthly: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="keep the newest archive (or snapshot) of each of this many months",
        examples=[6],
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if ":" in value:
            raise ValueError(
                f"target {value!r}: a volume name or an absolute host path, without ':'"
            )
        if value.startswith((".", "~")):
            raise ValueError(
                f"target {value!r}: a host path must be absolute (a path on the Docker host)"
            )
        return value

    @field_validator("copy_to")
    @classmethod
    def _copy_to(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"copy_to {name!r}: not a remote's name")
        if len(set(value)) != len(value):
            raise ValueError("copy_to names a remote twice")
        return value

    @classmethod
    def takes_default(
        cls, key: str, table: Mapping[str, object], defaults: Mapping[str, object]
    ) -> bool:
        """A repository's keys are defaults only of jobs with ``repository``; ``target``
        and ``compression`` only of the others (a shared [defaults] breaks neither);
        ``ssh`` only of jobs with an ``sftp:`` repository. ``encrypt`` goes with ``target``.
        A default ``copy_to`` copies the archives of a job with a target (its own or the
        default one): it never turns a job that forgot its target into a streamed one."""
        if key == "ssh":
            return str(table.get("repository", "")).startswith("sftp:")
        if key in REPOSITORY_ONLY:
            return "repository" in table
        if key == "copy_to":
            return "repository" not in table and ("target" in table or "target" in defaults)
        if key in ("target", "compression", "encrypt"):
            return "repository" not in table
        return True

    @model_validator(mode="after")
    def _has_sources(self) -> BackupJob:
        if not self.volumes_from and not self.volumes:
            raise ValueError("a backup needs a source: volumes_from and/or volumes")
        return self

    @model_validator(mode="after")
    def _has_destination(self) -> BackupJob:
        if self.target is not None and self.repository is not None:
            raise ValueError("a backup needs exactly one of target (archives) and repository")
        if self.target is None and self.repository is None and not self.copy_to:
            raise ValueError(
                "a backup needs a target (archives in a volume or host directory), copy_to "
                "(archives streamed to remotes) or a repository (restic snapshots)"
            )
        return self

    @model_validator(mode="after")
    def _keys_fit(self) -> BackupJob:
        volumes = tuple(map(parse_volume, self.volumes))
        given = set(self.model_fields_set)
        if self.copy_to:
            if self.repository is not None:
                raise ValueError(
                    "copy_to copies archives: a backup into a repository has snapshots "
                    "(give the repository a remote URL instead)"
                )
            given.discard("network")  # the copying container's network
        problem = self.repository_problem(given, volumes)
        if problem is not None:
            raise ValueError(problem)
        if self.target is not None:
            self._target_apart(volumes)
        elif self.repository is not None and self.encrypt is not None:
            raise ValueError(
                "encrypt is not a key of a backup into a repository: restic encrypts the "
                "repository with its password"
            )
        return self

    @model_validator(mode="after")
    def _one_run_at_a_time(self) -> BackupJob:
        if self.concurrency == "allow":
            raise ValueError(
                "concurrency 'allow' would let two runs stop and start the same containers "
                "and write the same target: use 'forbid' (the default) or 'replace'"
            )
        return self

    def _target_apart(self, volumes: tuple[Mount, ...]) -> None:
        """Refuse a target the archives would be taken from."""
        for volume in volumes:
            if volume.source == self.target:
                raise ValueError(
                    f"volume {volume.source!r} is the target too: the backup would hold its own "
                    "archives, each run doubling the last"
                )
            if _covers(volume.target, TARGET_MOUNT):
                raise ValueError(
                    f"volume target {volume.target!r}: {TARGET_MOUNT} is where the target is "
                    "mounted"
                )
        for path in self.paths:
            if _covers(path, TARGET_MOUNT) or _covers(TARGET_MOUNT, path):
                raise ValueError(
                    f"path {path!r} overlaps {TARGET_MOUNT}, where the target is mounted: the "
                    "backup would hold its own archives"
                )

    def request(self, job: str) -> CreateRequest:
        """What a run of the job (named ``job``) asks the backup tool: its paths, or every
        volume mounted into the ops container; the compression, the age recipients and the
        retention."""
        return CreateRequest(
            job,
            TARGET_MOUNT,
            sources=tuple(self.paths),
            mounts=not self.paths,
            compression=self.compression,
            recipients=tuple(self.encrypt.recipients or ()) if self.encrypt else (),
            passphrase=self.passphrase() is not None,
            timezone=self.timezone,
            keep_last=self.keep_last,
            keep_daily=self.keep_daily,
            keep_weekly=self.keep_weekly,
            keep_monthly=self.keep_monthly,
        )

    def plan(self, ctx: PlanContext) -> Plan:
        """pre_exec, the archive (or snapshot) between stop and start, post_exec as cleanup."""
        body: RunContainer | ResticBackup | RemoteArchives = self._snapshot(ctx)
        if self.target is not None:
            body = self._archive(ctx)
        elif self.repository is None:
            body = copies.stream_step(self, ctx)
        middle: WithStopped | RunContainer | ResticBackup | RemoteArchives = (
            WithStopped(tuple(self.stop), (body,), self.stop_grace) if self.stop else body
        )
        if self.copy_to and not isinstance(middle, ResticBackup):
            middle = copies.copy_step(self, ctx, middle)
        return Plan(
            steps=(*(e.step("pre_exec") for e in self.pre_exec), middle),
            cleanup=tuple(e.step("post_exec") for e in self.post_exec),
        )

    def ops_spec(
        self,
        ctx: PlanContext,
        command: tuple[str, ...],
        mounts: tuple[Mount, ...],
        network: str | None,
        *,
        stdin: bool = False,
    ) -> ContainerSpec:
        """The ops container: ``mounts``, the sources of ``volumes_from`` read-only, the
        job's labels and hardening."""
        return ContainerSpec(
            image=ctx.ops_image,
            command=command,
            mounts=mounts,
            volumes_from=tuple(self.volumes_from),
            volumes_from_read_only=True,
            network=network,
            labels=self.labels,
            stop_signal=self.stop_signal,
            pull=PullPolicy.MISSING,
            stdin=stdin,
            healthcheck=False,
            **self.hardening(),
        )

    def _archive(self, ctx: PlanContext) -> RunContainer:
        """The backup tool's container: the target at TARGET_MOUNT, the volumes read-only."""
        sources = tuple(parse_volume(v) for v in self.volumes)
        mounts = (
            Mount(str(self.target), TARGET_MOUNT),
            *(Mount(m.source, m.target, read_only=True) for m in sources),
        )
        secret = self.passphrase()
        stdin = secret is not None
        spec = self.ops_spec(ctx, self.request(ctx.job).argv(), mounts, "none", stdin=stdin)
        return RunContainer(spec, tool="backup", stdin_secret=secret)

    def _snapshot(self, ctx: PlanContext) -> ResticBackup:
        """The restic tool's container, stdin open: the volumes read-only, but the one
        holding a local repository, which restic writes."""
        volumes = tuple(map(parse_volume, self.volumes))
        holder = self.repository_volume(volumes)
        mounts = tuple(Mount(m.source, m.target, read_only=m != holder) for m in volumes)
        spec = self.ops_spec(ctx, RESTIC_TOOL, mounts, self.repository_network(), stdin=True)
        keep = {
            "last": self.keep_last,
            "hourly": self.keep_hourly,
            "daily": self.keep_daily,
            "weekly": self.keep_weekly,
            "monthly": self.keep_monthly,
            "yearly": self.keep_yearly,
        }
        return self.restic_step(spec, self.restic_request(ctx.job, tuple(self.paths), keep))

    def repository_command(
        self, ctx: PlanContext, command: str, snapshot: str = "latest", to: tuple[Mount, ...] = ()
    ) -> ResticBackup:
        """A one-off restic step of ``crontainer backups`` (``snapshots``: only a local
        repository's volume mounted) or ``crontainer restore`` (``restore``: the job's
        sources writable, or just ``to``, volumes at their snapshotted paths); network and
        secrets as for a backup; never creating the repository."""
        volumes = tuple(map(parse_volume, self.volumes))
        holder = self.repository_volume(volumes)
        held: tuple[Mount, ...] = () if holder is None else (Mount(holder.source, holder.target),)
        sources = command == "restore" and not to
        if sources:
            held = tuple(Mount(m.source, m.target) for m in volumes)
        network = self.repository_network()
        spec = self.ops_spec(ctx, RESTIC_TOOL, (*held, *to), network, stdin=True)
        spec = replace(
            spec,
            volumes_from=tuple(self.volumes_from) if sources else (),
            volumes_from_read_only=False,
        )
        request = replace(
            self.restic_request(ctx.job, (), {}),
            command=command,
            snapshot=snapshot,
            only=tuple(m.target for m in to),
            init=False,
            check="never",
        )
        return self.restic_step(spec, request)
