"""``create``: one archive of the sources into the target, written under a partial name,
flushed, then renamed, with its ``.sha256``; and which paths a run archives (the volumes
mounted here, less the target seen again)."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.retention import archive_name, archive_time
from jobs.tools.backup.pipeline import Pipeline, follow
from jobs.tools.backup.processes import ToolError
from jobs.tools.paths import mount_points

if TYPE_CHECKING:
    from jobs.protocol.backup import Archived


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def clean_partials(target: Path, job: str) -> list[str]:
    """Remove what killed runs of ``job`` left under temporary names: only names of this
    job's exact pattern (``<job>-<stamp>.tar[.zst|.gz][.age][.sha256].partial``) — job ``db``
    never touches ``db-logs-….partial`` of a job ``db-logs`` sharing the target."""
    removed = []
    for stale in target.glob(f"{glob.escape(job)}-*.partial"):
        name = stale.name.removesuffix(".partial").removesuffix(".sha256")
        if archive_time(job, name) is None or stale.is_symlink() or not stale.is_file():
            continue
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    return removed


def throughput_mib_s(data_bytes: int | None, size: int, seconds: float) -> float:
    """What a run reports as ``throughput_mib_s``: the tar stream's bytes (the archive's when
    tar's totals could not be read) per second of making it, in MiB."""
    return round((data_bytes or size) / max(seconds, 0.001) / (1 << 20), 1)


def member_name(path: Path) -> str:
    """The name tar gives ``path`` in an archive made from the root (``--directory=/``):
    the absolute path without its leading slash, and ``.`` for the root itself."""
    return str(path.absolute()).lstrip("/") or "."


def create(
    job: str,
    target: Path,
    sources: list[Path],
    compression: str,
    now: datetime | None = None,
    *,
    exclude: list[Path] | None = None,
    recipients: list[str] | None = None,
    passphrase: bytes | None = None,
) -> Archived:
    """Archive ``sources`` into ``target`` (without the ``exclude`` trees), age-encrypted to
    ``recipients`` if any (or with ``passphrase``); return what the run reports."""
    check_sources(sources, target)
    target.mkdir(parents=True, exist_ok=True)
    clean_partials(target, job)
    began = time.monotonic()
    encrypted = bool(recipients) or passphrase is not None
    name = archive_name(job, now or datetime.now(UTC), compression, encrypted=encrypted)
    partial = target / (name + ".partial")
    making = _Making(compression, exclude or [], recipients or [], passphrase)
    size, sha256, members, data_bytes = _write(partial, sources, making)
    partial.replace(target / name)
    _write_atomically(target / f"{name}.sha256", f"{sha256}  {name}\n".encode())
    _fsync_dir(target)
    return {
        "archive": name,
        "encrypted": encrypted,
        "bytes": size,
        "files": members,
        "data_bytes": data_bytes,
        "sha256": sha256,
        "archive_s": round(time.monotonic() - began, 3),
    }


def check_sources(sources: list[Path], target: Path | None) -> None:
    """ToolError if there is no source, or one is missing or holds the target."""
    if not sources:
        raise ToolError("nothing to back up: no source path and no volume mounted")
    missing = [str(s) for s in sources if not s.exists() and not s.is_symlink()]
    if missing:
        raise ToolError(f"nothing to back up at {', '.join(missing)}")
    if target is None:
        return
    for source in sources:
        if _identity(source) == _identity(target) or source.absolute() in target.absolute().parents:
            raise ToolError(
                f"{source} holds the target {target}: the backup would hold its own archives"
            )


@dataclass(frozen=True, slots=True)
class _Making:
    """How an archive is made: its compression, the trees left out, the age recipients or
    passphrase."""

    compression: str
    exclude: list[Path]
    recipients: list[str]
    passphrase: bytes | None


def _write(partial: Path, sources: list[Path], making: _Making) -> tuple[int, str, int, int | None]:
    """Write the archive into ``partial`` (a new file, flushed to disk); return its size, its
    sha256, its number of members and the bytes of its tar stream. On any failure the partial
    file is removed."""
    relative = [member_name(s) for s in sources]
    out_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    pipeline: Pipeline | None = None
    try:
        skip = [member_name(e) for e in making.exclude]
        pipeline = Pipeline(
            relative,
            making.compression,
            out_fd,
            partial.parent,
            skip,
            recipients=making.recipients,
            passphrase=making.passphrase,
        )
        size, sha256 = follow(partial, pipeline)
        members, data_bytes = pipeline.check()
        os.fsync(out_fd)
    except BaseException:
        if pipeline is not None:
            pipeline.kill()
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(out_fd)
        if pipeline is not None:
            pipeline.close()
    return size, sha256, members, data_bytes


def volume_mounts(target: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The volumes mounted into this container (its --volumes-from and -v mounts), except
    the target (and what holds it or lies in it)."""
    target = target.absolute()
    return [
        point
        for point in mount_points(mountinfo)
        if point != target and target not in point.parents and point not in target.parents
    ]


def _identity(path: Path) -> tuple[int, int] | None:
    """A directory's device and inode: the same for every mount of one volume."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def target_aliases(target: Path, points: list[Path]) -> list[Path]:
    """The mount points that show the target's own directory again: the target volume
    mounted a second time, e.g. through ``volumes_from`` an app that mounts it too."""
    mark = _identity(target)
    return [p for p in points if mark is not None and _identity(p) == mark]
