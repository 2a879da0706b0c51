"""``crontainer backups`` and ``crontainer restore``: one-off ops containers from the CLI.

Both need the engine (the target may be a named volume the CLI cannot see) and
run ``python -m jobs.tools.backup`` in a container of the ops image — its ``ListRequest``
and ``RestoreRequest`` (``jobs.protocol.backup``) as the command line — as plans run by
the daemon's own step executor: the same container primitive, and a restore stops and
starts the job's ``stop`` containers with the same step as a backup run (in order, then
in reverse, on every path). For a job with a ``repository`` the ops container runs
``python -m jobs.tools.restic`` instead, its request (``snapshots`` or ``restore``) and
secrets on stdin through the same ``ResticBackup`` step as the job's backups.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import copies
from jobs.backup import BackupJob
from jobs.base import PlanContext
from jobs.containers import parse_volume
from jobs.copies import TARGET_MOUNT
from jobs.plan import (
    ContainerSpec,
    Mount,
    PullPolicy,
    RemoteArchives,
    ResticBackup,
    RunContainer,
    SecretRef,
    WithStopped,
)
from jobs.protocol.backup import ListRequest, RestoreRequest, parse_list_result
from jobs.protocol.fields import RequestError
from jobs.protocol.restic import ResticRestored, parse_snapshots
from jobs.retention import AGE_SUFFIX, needs_key
from scheduler.clock import SystemClock
from scheduler.errors import CrontainerError
from scheduler.runs import Attempt, Cancellation, RunInterruptedError, Status
from scheduler.steps import StepExecutor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from jobs.plan import Step
    from jobs.protocol.backup import ArchiveEntry
    from jobs.protocol.restic import ResticSnapshot
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.settings import Config

AgeSecret = tuple[SecretRef | str | None, str]
"""What the restore gives the tool on stdin, and as what (``identity``, ``passphrase``)."""
OPS_TIMEOUT_S = 6 * 3600.0
"""How long a listing or a restore may take (a backup's own timeout is for its runs)."""


class BackupCommandError(CrontainerError):
    """A backups/restore command cannot be done; the message says why."""


def _run_plan(
    engine: Engine, config: Config, name: str, job: BackupJob, step: Step, *, clock: Clock
) -> dict[str, object]:
    """Run ``step`` for the backup job ``job`` (named ``name``) as a one-off run (``cli-…``);
    return the tool's result, with ``stopped_and_started``: what it stopped and started
    again."""
    job = job.model_copy(update={"timeout": OPS_TIMEOUT_S})
    stopped: list[str] = []
    started: list[str] = []
    attempt = Attempt(
        f"cli-{uuid.uuid4().hex[:8]}",
        name,
        job,
        Cancellation(),
        on_stop=stopped.append,
        on_started=started.append,
    )
    try:
        outcome = StepExecutor(engine, config.daemon, clock).run(attempt, step)
    except RunInterruptedError as e:
        raise BackupCommandError(f"the engine went away during the run: {e}") from None
    if set(stopped) - set(started):
        left = ", ".join(repr(c) for c in stopped if c not in started)
        raise BackupCommandError(f"could not start again: {left}")
    if outcome.status is Status.TIMED_OUT:
        raise BackupCommandError(f"the ops container did not finish within {OPS_TIMEOUT_S:.0f}s")
    if outcome.status is not Status.SUCCEEDED:
        code = outcome.exit_code
        raise BackupCommandError(outcome.error or f"the backup tool exited {code}")
    return {**outcome.details, "stopped_and_started": stopped}


def backup_job(config: Config, name: str) -> BackupJob:
    """The job ``name`` if it is a backup job (into archives or a repository)."""
    entry = config.jobs.get(name)
    if entry is None:
        raise BackupCommandError(f"no job {name!r} in {config.path}")
    if not isinstance(entry.job, BackupJob):
        raise BackupCommandError(f"job {name!r} is of kind {entry.job.kind!r}, not 'backup'")
    return entry.job


def _archives_of(config: Config, name: str) -> BackupJob:
    """The backup job ``name``, if it backs up into archives."""
    job = backup_job(config, name)
    if job.repository is not None:
        raise BackupCommandError(f"job {name!r} backs up into a restic repository, not archives")
    return job


def streamed_to(job: BackupJob) -> str | None:
    """The remote a job without a target streams its archives to (its first ``copy_to``),
    where ``backups`` and ``restore`` find them without ``--from``."""
    return job.copy_to[0] if job.target is None and job.copy_to else None


def _remote_step(
    config: Config,
    name: str,
    ops_image: str,
    remote: str,
    *,
    archive: str | None = None,
    to: tuple[Mount, ...] = (),
    key: AgeSecret = (None, ""),
) -> RemoteArchives:
    """The remote tool listing the job's archives on ``remote``, or restoring ``archive``
    from there (``key``: what decrypts it, if it is encrypted)."""
    job = _archives_of(config, name)
    remotes = config.daemon.remotes
    if remote not in remotes:
        defined = ", ".join(sorted(remotes)) or "none"
        raise BackupCommandError(
            f"--from {remote!r}: no such remote in [daemon.remotes] of {config.path} "
            f"(remotes: {defined})"
        )
    command = "list" if archive is None else "restore"
    ctx = PlanContext(name, ops_image)
    spec, request = copies.remote_tool(job, ctx, command, (remote,), archive=archive, to=to)
    secret, kind = key
    if kind == "identity" and isinstance(secret, SecretRef):
        return RemoteArchives(spec, request, identity=secret)
    return RemoteArchives(spec, request, passphrase=secret if kind == "passphrase" else None)


def list_archives(
    engine: Engine,
    config: Config,
    name: str,
    ops_image: str,
    clock: Clock | None = None,
    *,
    remote: str | None = None,
) -> list[ArchiveEntry]:
    """The job's archives in its target (or on ``remote``), newest first (name, time,
    bytes, good, future)."""
    job = _archives_of(config, name)
    remote = remote or streamed_to(job)
    if remote is not None or job.target is None:
        found = _remote_step(config, name, ops_image, str(remote))
        details = _run_plan(engine, config, name, job, found, clock=clock or SystemClock())
        try:
            return parse_list_result(details)["archives"]
        except RequestError as e:
            raise BackupCommandError(f"the remote tool's listing cannot be read: {e}") from None
    spec = ContainerSpec(
        image=ops_image,
        command=ListRequest(name, TARGET_MOUNT).argv(),
        mounts=(Mount(job.target, TARGET_MOUNT, read_only=True),),
        network="none",
        pull=PullPolicy.MISSING,
        healthcheck=False,
    )
    step = RunContainer(spec, tool="backup")
    details = _run_plan(engine, config, name, job, step, clock=clock or SystemClock())
    try:
        return parse_list_result(details)["archives"]
    except RequestError as e:
        raise BackupCommandError(f"the backup tool's listing cannot be read: {e}") from None


def list_snapshots(
    engine: Engine, config: Config, name: str, ops_image: str, clock: Clock | None = None
) -> list[ResticSnapshot]:
    """The job's snapshots in its repository (its host and tags only), newest first."""
    job = backup_job(config, name)
    if job.repository is None:
        raise BackupCommandError(f"job {name!r} backs up into archives, not a repository")
    step = job.repository_command(PlanContext(name, ops_image), "snapshots")
    details = _run_plan(engine, config, name, job, step, clock=clock or SystemClock())
    try:
        return parse_snapshots(details)
    except RequestError as e:
        raise BackupCommandError(f"the restic tool's listing cannot be read: {e}") from None


def _pick(archives: Sequence[Mapping[str, object]], archive: str, name: str, target: str) -> str:
    """``latest`` (newest complete one) or a named archive that exists."""
    if archive == "latest":
        good = [a for a in archives if a["good"] and not a.get("future")]
        if not good:
            future = [str(a["archive"]) for a in archives if a["good"] and a.get("future")]
            hint = (
                f" (only archives stamped in the future, made while the clock was wrong: "
                f"{', '.join(future)} — name one with --archive)"
                if future
                else ""
            )
            raise BackupCommandError(f"job {name!r} has no complete archive in {target!r}{hint}")
        return str(good[0]["archive"])
    if not any(a["archive"] == archive for a in archives):
        raise BackupCommandError(f"no archive {archive!r} of job {name!r} in {target!r}")
    return archive


def _to_mounts(to: list[str]) -> tuple[Mount, ...]:
    """``--to /archived/path=volume`` options: each volume mounted at its path."""
    mounts = []
    for item in to:
        path, sep, volume = item.partition("=")
        if not sep or not path.startswith("/") or not volume:
            raise BackupCommandError(f"--to {item!r}: write /archived/path=volume")
        mounts.append(Mount(volume, path))
    return tuple(mounts)


def _age_key(job: BackupJob, archive: str, identity: str | None) -> AgeSecret:
    """What decrypts the archive, given to the tool on stdin: the age identity file (read
    where the CLI runs) if given, else the job's passphrase; nothing for a plain archive.
    BackupCommandError if the archive is encrypted and neither is there (or readable)."""
    if not archive.endswith(AGE_SUFFIX):
        return None, ""
    secret, kind = _decrypting(job, identity)
    if secret is None:
        raise BackupCommandError(needs_key(archive))
    return secret, kind


def _decrypting(job: BackupJob, identity: str | None) -> AgeSecret:
    """The age identity file ``identity`` (BackupCommandError if it cannot be read) if
    given, else the job's passphrase, else nothing."""
    passphrase = job.passphrase()
    if identity is None:
        return passphrase, "passphrase" if passphrase is not None else ""
    path = Path(identity).absolute()
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise BackupCommandError(f"--identity {identity}: cannot read it: {e.strerror}") from None
    return SecretRef("--identity", file=str(path)), "identity"


def _restore_spec(
    job: BackupJob, target: str, ops_image: str, archive: str, to: list[str], *, key: str
) -> ContainerSpec:
    """The ops container: into the job's own sources, or ``to`` volumes at archived paths;
    stdin open for the ``key`` (``identity``, ``passphrase``) if any."""
    into = _to_mounts(to)
    mounts = [Mount(target, TARGET_MOUNT, read_only=True), *into]
    volumes_from: tuple[str, ...] = ()
    if not to:
        mounts += [parse_volume(v.removesuffix(":ro").removesuffix(":rw")) for v in job.volumes]
        volumes_from = tuple(job.volumes_from)
    return ContainerSpec(
        image=ops_image,
        command=RestoreRequest(
            TARGET_MOUNT,
            archive,
            only=tuple(m.target for m in into),
            identity=key == "identity",
            passphrase=key == "passphrase",
        ).argv(),
        mounts=tuple(mounts),
        volumes_from=volumes_from,
        network="none",
        pull=PullPolicy.MISSING,
        stdin=bool(key),
        healthcheck=False,
    )


def _restore_body(
    engine: Engine,
    config: Config,
    name: str,
    job: BackupJob,
    *,
    ops_image: str,
    archive: str,
    to: list[str],
    identity: str | None,
    clock: Clock,
    remote: str | None,
) -> RunContainer | ResticBackup | RemoteArchives:
    """What a restore runs between stopping and starting the job's ``stop`` containers: the
    remote tool (``remote``), the restic tool (a repository), or the backup tool (the
    target's archive picked, with the key of an encrypted one)."""
    if job.repository is not None and identity is not None:
        raise BackupCommandError(
            f"--identity is for encrypted archives: job {name!r} backs up into a restic "
            "repository (its password decrypts)"
        )
    remote = remote or streamed_to(job)
    if remote is not None:
        _age_key(job, archive, identity)  # a named encrypted archive: refused now if no key
        into = _to_mounts(to)
        decrypt = _decrypting(job, identity)
        return _remote_step(config, name, ops_image, remote, archive=archive, to=into, key=decrypt)
    if job.repository is not None:
        ctx = PlanContext(name, ops_image)
        return job.repository_command(ctx, "restore", archive, _to_mounts(to))
    target = str(job.target)
    archives = list_archives(engine, config, name, ops_image, clock)
    picked = _pick(archives, archive, name, target)
    secret, key = _age_key(job, picked, identity)
    spec = _restore_spec(job, target, ops_image, picked, to, key=key)
    return RunContainer(spec, tool="backup", stdin_secret=secret)


def restore(
    engine: Engine,
    config: Config,
    name: str,
    *,
    ops_image: str,
    archive: str,
    to: list[str],
    identity: str | None = None,
    clock: Clock | None = None,
    remote: str | None = None,
) -> dict[str, object]:
    """Restore ``archive`` (or ``latest``) into the job's sources, or into ``to`` volumes
    (``/archived/path=volume``); stop/start the job's ``stop`` containers around it. For a
    job with a repository, ``archive`` is a snapshot's id (or ``latest``: the job's newest),
    which the restic tool finds among the job's own snapshots. ``identity``: an age identity
    file (on the machine running this), given to the tool on stdin, to restore an encrypted
    archive (without it, a passphrase job's passphrase is given). With ``remote``, the
    archive is fetched from there, verified, decrypted (the key in the tool's request on
    stdin) and restored in one ops container."""
    job = backup_job(config, name)
    clock = clock or SystemClock()
    body = _restore_body(
        engine,
        config,
        name,
        job,
        ops_image=ops_image,
        archive=archive,
        to=to,
        identity=identity,
        clock=clock,
        remote=remote,
    )
    step = WithStopped(tuple(job.stop), (body,), job.stop_grace)
    result = _run_plan(engine, config, name, job, step, clock=clock)
    if job.repository is not None:
        try:
            result = {
                **ResticRestored.parse(result).to_json(),
                "stopped_and_started": result["stopped_and_started"],
            }
        except RequestError as e:
            raise BackupCommandError(
                f"the restic tool's restore result cannot be read: {e}"
            ) from None
    return result
