"""A backup job's archives on remotes (``copy_to``): the remote tool's container and request,
to copy the target's archives, to stream a new archive to the first remote when there is no
target (then copy it from there to the others), to list or restore from a remote.

The remote tool reads its request on stdin, completed by the daemon with each remote's
options and secrets (``scheduler.steps.remote``); these steps only name the remotes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.containers import parse_volume
from jobs.plan import Mount, RemoteArchives
from jobs.protocol.remote import PROGRAM, RemoteRequest

if TYPE_CHECKING:
    from jobs.backup import BackupJob
    from jobs.base import PlanContext
    from jobs.plan import ContainerSpec, RunContainer, WithStopped

TARGET_MOUNT = "/backup"
"""Where the target is mounted in the ops container (read-only, to copy from it)."""


def _keep(job: BackupJob) -> dict[str, int]:
    keep = {
        "last": job.keep_last,
        "daily": job.keep_daily,
        "weekly": job.keep_weekly,
        "monthly": job.keep_monthly,
    }
    return {rule: count for rule, count in keep.items() if count is not None}


def remote_tool(
    job: BackupJob,
    ctx: PlanContext,
    command: str,
    remotes: tuple[str, ...] = (),
    *,
    archive: str | None = None,
    to: tuple[Mount, ...] = (),
) -> tuple[ContainerSpec, RemoteRequest]:
    """The remote tool's container (stdin open, on the job's network; copying from a target:
    it read-only at TARGET_MOUNT; streaming: the job's sources read-only) and its request:
    ``copy`` to the job's ``copy_to``, ``stream``, or a one-off ``list``/``restore`` of
    ``crontainer backups/restore --from`` (``remotes``: the one; a restore writes the job's
    sources, or just ``to``, as the target's restore does)."""
    volumes = tuple(map(parse_volume, job.volumes))
    held: tuple[Mount, ...] = to
    if command == "restore" and not to:
        held = tuple(Mount(m.source, m.target) for m in volumes)
    elif command == "stream":
        held = tuple(Mount(m.source, m.target, read_only=True) for m in volumes)
    elif command == "copy" and job.target is not None:
        held = (Mount(job.target, TARGET_MOUNT, read_only=True),)
    spec = job.ops_spec(ctx, PROGRAM, held, job.network, stdin=True)
    reads_sources = command == "stream" or (command == "restore" and not to)
    if not reads_sources:
        spec = replace(spec, volumes_from=())
    elif command == "restore":
        spec = replace(spec, volumes_from_read_only=False)
    request = RemoteRequest(
        command,
        ctx.job,
        TARGET_MOUNT,
        remotes=remotes or tuple(job.copy_to),
        timezone=job.timezone,
        keep=_keep(job),
        archive=archive,
        only=tuple(m.target for m in to),
        from_first=command == "copy" and job.target is None,
    )
    if command == "stream":
        request = replace(
            request,
            sources=tuple(job.paths),
            mounts=not job.paths,
            compression=job.compression,
            recipients=tuple(job.encrypt.recipients or ()) if job.encrypt else (),
        )
    return spec, request


def stream_step(job: BackupJob, ctx: PlanContext) -> RemoteArchives:
    """A new archive of the job's sources streamed to its first remote (with its passphrase,
    read at run time, if it has one)."""
    spec, request = remote_tool(job, ctx, "stream", tuple(job.copy_to[:1]))
    return RemoteArchives(spec, request, passphrase=job.passphrase())


def copy_step(
    job: BackupJob, ctx: PlanContext, body: WithStopped | RunContainer | RemoteArchives
) -> WithStopped | RunContainer | RemoteArchives:
    """``body`` (the archive, its stops around it), then the archives copied to the job's
    remotes: from the target to each, or — streamed — from the first remote to the others
    (none: ``body`` alone)."""
    if job.target is None and not job.copy_to[1:]:
        return body
    return RemoteArchives(*remote_tool(job, ctx, "copy"), body=body)
