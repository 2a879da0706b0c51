"""``crontainer backups`` and ``crontainer restore``: one-off ops containers from the CLI.

Both need the engine (the target may be a named volume the CLI cannot see) and
run ``python -m jobs.tools.backup`` in a container of the ops image, as the
daemon's backup runs do. ``restore`` stops and starts the job's ``stop``
containers like a backup run (in order, then in reverse, on every path).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.backup import TARGET_MOUNT, BackupJob
from jobs.plan import ContainerSpec, Mount, PullPolicy
from jobs.protocol import parse
from jobs.run import parse_volume
from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_RUN
from scheduler.errors import CrontainerError, EngineError

if TYPE_CHECKING:
    from scheduler.engine import Engine
    from scheduler.settings import Config

TOOL = ("python3", "-m", "jobs.tools.backup")
OPS_TIMEOUT_S = 6 * 3600.0


class BackupCommandError(CrontainerError):
    """A backups/restore command cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class OpsResult:
    """What a one-off ops container printed, and how it ended."""

    exit_code: int
    stdout: list[str]
    stderr: list[str]


def run_ops(
    engine: Engine, spec: ContainerSpec, *, daemon: str, job: str, timeout: float
) -> OpsResult:
    """Run one ops container to its end (under ``timeout``) and remove it."""
    engine.ensure_image(spec.image, spec.pull)
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
    labels = {LABEL_DAEMON: daemon, LABEL_JOB: job, LABEL_RUN: run_id}
    container = engine.create(spec, name=f"{daemon}-{job}-{run_id}", labels=labels)
    chunks: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    try:
        stream = engine.output(container)

        def pump() -> None:
            for name, chunk in stream:
                chunks[name] += chunk

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        engine.start(container)
        status = engine.wait(container, timeout)
        if status is None:
            engine.stop(container, 10)
            raise BackupCommandError(f"the ops container did not finish within {timeout:.0f}s")
        reader.join(5)
    finally:
        engine.remove(container)
    return OpsResult(
        status.exit_code,
        chunks["stdout"].decode("utf-8", "replace").splitlines(),
        chunks["stderr"].decode("utf-8", "replace").splitlines(),
    )


def backup_job(config: Config, name: str) -> BackupJob:
    """The job ``name`` if it is a backup job."""
    entry = config.jobs.get(name)
    if entry is None:
        raise BackupCommandError(f"no job {name!r} in {config.path}")
    if not isinstance(entry.job, BackupJob):
        raise BackupCommandError(f"job {name!r} is of kind {entry.job.kind!r}, not 'backup'")
    return entry.job


def _tool(engine: Engine, config: Config, job: str, spec: ContainerSpec) -> dict[str, object]:
    """The backup tool's result (its control line), or BackupCommandError with what it said."""
    ran = run_ops(engine, spec, daemon=config.daemon.name, job=job, timeout=OPS_TIMEOUT_S)
    messages = [parse(line.encode()) for line in ran.stderr]
    said = [line for line, message in zip(ran.stderr, messages, strict=True) if message is None]
    results = [m["result"] for m in messages if m is not None and "result" in m]
    result = results[-1] if results else None
    if ran.exit_code != 0 or not isinstance(result, dict):
        raise BackupCommandError("; ".join(said) or f"the backup tool exited {ran.exit_code}")
    return result


def list_archives(
    engine: Engine, config: Config, name: str, ops_image: str
) -> list[dict[str, object]]:
    """The job's archives, newest first (name, time, bytes, good)."""
    job = backup_job(config, name)
    spec = ContainerSpec(
        image=ops_image,
        command=(*TOOL, "list", "--job", name, "--target", TARGET_MOUNT),
        mounts=(Mount(job.target, TARGET_MOUNT, read_only=True),),
        network="none",
        pull=PullPolicy.MISSING,
        healthcheck=False,
    )
    archives = _tool(engine, config, name, spec).get("archives")
    if not isinstance(archives, list):
        raise BackupCommandError("the backup tool's listing is not a list")
    return archives


def _pick(archives: list[dict[str, object]], archive: str, name: str, target: str) -> str:
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


def _restore_spec(job: BackupJob, ops_image: str, archive: str, to: list[str]) -> ContainerSpec:
    """The ops container: into the job's own sources, or ``to`` volumes at archived paths."""
    command = [*TOOL, "restore", "--target", TARGET_MOUNT, "--root", "/"]
    mounts = [Mount(job.target, TARGET_MOUNT, read_only=True)]
    volumes_from: tuple[str, ...] = ()
    for item in to:
        path, sep, volume = item.partition("=")
        if not sep or not path.startswith("/") or not volume:
            raise BackupCommandError(f"--to {item!r}: write /archived/path=volume")
        mounts.append(Mount(volume, path))
        command += ["--only", path]
    if not to:
        mounts += [parse_volume(v.removesuffix(":ro").removesuffix(":rw")) for v in job.volumes]
        volumes_from = tuple(job.volumes_from)
    return ContainerSpec(
        image=ops_image,
        command=(*command, archive),
        mounts=tuple(mounts),
        volumes_from=volumes_from,
        network="none",
        pull=PullPolicy.MISSING,
        healthcheck=False,
    )


def restore(
    engine: Engine, config: Config, name: str, *, ops_image: str, archive: str, to: list[str]
) -> dict[str, object]:
    """Restore ``archive`` (or ``latest``) into the job's sources, or into ``to`` volumes
    (``/archived/path=volume``); stop/start the job's ``stop`` containers around it."""
    job = backup_job(config, name)
    chosen = _pick(list_archives(engine, config, name, ops_image), archive, name, job.target)
    spec = _restore_spec(job, ops_image, chosen, to)
    stopped: list[str] = []
    try:
        for container in job.stop:
            if engine.is_running(container):
                engine.stop(container, job.stop_grace)
                stopped.append(container)
        result = _tool(engine, config, name, spec)
    finally:
        _start_again(engine, stopped)
    result["stopped_and_started"] = stopped
    return result


def _start_again(engine: Engine, stopped: list[str]) -> None:
    failures = []
    for container in reversed(stopped):
        try:
            engine.start(container)
        except EngineError as e:
            failures.append(str(e))
    if failures:
        raise BackupCommandError("could not start again: " + "; ".join(failures))
