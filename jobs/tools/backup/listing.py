"""The archives of a job in the target: listed, checked against their ``.sha256``, pruned by
the job's retention."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobs.retention import archive_time, future_archives, to_delete
from jobs.tools.backup.processes import CHUNK, ToolError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from jobs.protocol.backup import ArchiveEntry
    from jobs.retention import Retention


def prune(
    job: str, target: Path, policy: Retention, made: str | None = None
) -> tuple[list[str], list[str]]:
    """Delete the archives (and checksums) of ``job`` that ``policy`` does not keep, never
    ``made`` (the archive just made); return them, and the archives stamped in the future
    (kept, and reported)."""
    names = [p.name for p in target.iterdir() if p.is_file()]
    good = [n for n in names if f"{n}.sha256" in names]
    now = datetime.now(UTC)
    protect = [made] if made else []
    deleted = to_delete(job, names, policy, good, now=now, protect=protect)
    for name in deleted:
        (target / name).unlink(missing_ok=True)
        (target / f"{name}.sha256").unlink(missing_ok=True)
    return deleted, future_archives(job, names, now)


def verify(target: Path, name: str) -> str:
    """Check the archive against its .sha256 file; return the digest or raise ToolError."""
    archive, sidecar = target / name, target / f"{name}.sha256"
    if not archive.is_file():
        raise ToolError(f"{archive}: no such archive")
    try:
        expected = sidecar.read_text().split()[0]
    except (OSError, IndexError):
        raise ToolError(f"{sidecar}: no checksum for this archive (incomplete?)") from None
    digest = hashlib.sha256()
    with archive.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ToolError(
            f"{archive}: checksum mismatch (expected {expected}, got {digest.hexdigest()})"
        )
    return expected


def listing(job: str, target: Path) -> list[ArchiveEntry]:
    """The job's archives in ``target``, newest first: name, time, bytes, good (has checksum),
    future (stamped later than now: made while the clock was wrong)."""
    paths = [p for p in target.iterdir() if p.is_file()] if target.is_dir() else []
    return entries(job, {p.name: p.stat().st_size for p in paths})


def entries(job: str, sizes: Mapping[str, int]) -> list[ArchiveEntry]:
    """The job's archives among the files ``sizes`` names (a folder's, a remote's), newest
    first, as ``listing`` gives them."""
    future = set(future_archives(job, sizes, datetime.now(UTC)))
    found: list[ArchiveEntry] = []
    for name, size in sizes.items():
        when = archive_time(job, name)
        if when is not None:
            good = f"{name}.sha256" in sizes
            found.append(
                {
                    "archive": name,
                    "time": when.isoformat(),
                    "bytes": size,
                    "good": good,
                    "future": name in future,
                }
            )
    return sorted(found, key=lambda a: a["time"], reverse=True)
