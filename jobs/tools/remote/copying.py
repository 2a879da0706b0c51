"""A job's archives on one destination: the ones it lacks uploaded under a temporary name,
checked, renamed (the archive, then its ``.sha256``); the stale temporary files of earlier
runs removed; the retention applied there as in the target; the listing; one archive
fetched back and verified."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.remote import Copied
from jobs.retention import Retention, archive_time, to_delete
from jobs.tools.backup.listing import entries
from jobs.tools.backup.processes import CHUNK
from jobs.tools.remote.rclone import RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobs.protocol.backup import ArchiveEntry
    from jobs.protocol.remote import RemoteRequest
    from jobs.tools.remote.rclone import Rclone

PARTIAL = ".partial"
SIDECAR = ".sha256"
HASHES = ("sha256", "sha1", "md5")
"""The hashes compared, in this order, when the backend gives one."""


def policy(request: RemoteRequest) -> Retention:
    """The job's retention, as the target's."""
    keep = request.keep
    rules = (keep.get("last"), keep.get("daily"), keep.get("weekly"), keep.get("monthly"))
    return Retention(*rules, request.timezone)


def wanted(job: str, target: Path, rules: Retention) -> list[str]:
    """The job's complete archives in ``target`` that its retention keeps, newest first."""
    names = [p.name for p in target.iterdir() if p.is_file()]
    good = [n for n in names if n + SIDECAR in names and archive_time(job, n) is not None]
    dropped = set(to_delete(job, good, rules, good, now=datetime.now(UTC)))
    kept = [n for n in good if n not in dropped]
    return sorted(kept, key=lambda n: str(archive_time(job, n)), reverse=True)


def _own_partial(job: str, name: str) -> bool:
    """``name`` is a temporary file of this job's uploads: ``<archive>[.sha256].partial``."""
    base = name.removesuffix(PARTIAL).removesuffix(SIDECAR)
    return name.endswith(PARTIAL) and archive_time(job, base) is not None


def _digest(path: Path, kind: str) -> str:
    digest = hashlib.new(kind)
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def upload(rclone: Rclone, local: Path) -> str:
    """``local`` to ``<name>.partial`` on the destination, checked (size, and a hash the
    backend gives), then renamed to its name; how it was checked."""
    partial = local.name + PARTIAL
    rclone.run("copyto", str(local), rclone.path(partial))
    size, hashes = rclone.stat(partial)
    if size != local.stat().st_size:
        rclone.run("deletefile", rclone.path(partial))
        raise RemoteError(f"{local.name}: {size} bytes arrived of {local.stat().st_size}")
    kind = next((k for k in HASHES if k in hashes), None)
    if kind is not None and hashes[kind].lower() != _digest(local, kind):
        rclone.run("deletefile", rclone.path(partial))
        raise RemoteError(f"{local.name}: the {kind} of the uploaded file differs")
    rclone.run("moveto", rclone.path(partial), rclone.path(local.name))
    return f"size+{kind}" if kind else "size"


def copy(rclone: Rclone, request: RemoteRequest, name: str) -> Copied:
    """The job's archives the destination lacks, uploaded (newest first); then retention
    there, never deleting the newest archive of the target."""
    job, target, rules = request.job, Path(request.target), policy(request)
    present = rclone.files()
    for stale in (n for n in present if _own_partial(job, n)):
        rclone.run("deletefile", rclone.path(stale))
    keep = wanted(job, target, rules)
    uploaded: list[str] = []
    sent, checks = 0, set()
    for archive in keep:
        if archive in present and archive + SIDECAR in present:
            continue
        checks.add(upload(rclone, target / archive))
        upload(rclone, target / (archive + SIDECAR))
        uploaded.append(archive)
        sent += (target / archive).stat().st_size
        present[archive] = present[archive + SIDECAR] = 0
    names = [n for n in present if not n.endswith(PARTIAL)]
    good = [n for n in names if n + SIDECAR in names]
    deleted = to_delete(job, names, rules, good, now=datetime.now(UTC), protect=keep[:1])
    for archive in deleted:
        for file in (archive, archive + SIDECAR):
            if file in present:
                rclone.run("deletefile", rclone.path(file))
    verified = "+".join(sorted(checks)) if checks else None
    return Copied(name, tuple(uploaded), sent, verified, tuple(deleted))


def remote_listing(rclone: Rclone, job: str) -> list[ArchiveEntry]:
    """The job's archives on the destination, newest first (as the target's listing)."""
    return entries(job, {n: s for n, s in rclone.files().items() if not n.endswith(PARTIAL)})


def fetch(
    rclone: Rclone,
    job: str,
    archive: str,
    into: Path,
    before: Callable[[str], None] | None = None,
) -> str:
    """Download ``archive`` (``latest``: the newest complete one not stamped in the future)
    and its checksum into ``into``; the archive's name. ``before``: called with the name
    before anything is downloaded (it may refuse it by raising)."""
    listed = remote_listing(rclone, job)
    if archive == "latest":
        good = [a for a in listed if a["good"] and not a.get("future")]
        if not good:
            raise RemoteError(f"no complete archive of job {job!r} on the remote")
        archive = good[0]["archive"]
    elif not any(a["archive"] == archive and a["good"] for a in listed):
        known = ", ".join(a["archive"] for a in listed[:5]) or "none"
        raise RemoteError(f"no complete archive {archive!r} on the remote (newest: {known})")
    if before is not None:
        before(archive)
    for name in (archive, archive + SIDECAR):
        rclone.run("copyto", rclone.path(name), str(into / name))
    return archive
