"""A job's archives on one destination: the ones it lacks uploaded under a temporary name,
checked, renamed (the archive, then its ``.sha256``); the stale temporary files of earlier
runs removed; the retention applied there as in the target; the listing; one archive
fetched back and verified."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from jobs.protocol.remote import Copied
from jobs.retention import Retention, archive_time, to_delete
from jobs.tools.backup.listing import entries
from jobs.tools.backup.processes import CHUNK
from jobs.tools.remote.rclone import GONE, RemoteError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from pathlib import Path

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


def wanted(job: str, names: Collection[str], rules: Retention) -> list[str]:
    """The job's complete archives among ``names`` that its retention keeps, newest first."""
    good = [n for n in names if n + SIDECAR in names and archive_time(job, n) is not None]
    dropped = set(to_delete(job, good, rules, good, now=datetime.now(UTC)))
    kept = [n for n in good if n not in dropped]
    return sorted(kept, key=lambda n: str(archive_time(job, n)), reverse=True)


def _own_partial(job: str, name: str) -> bool:
    """``name`` is a temporary file of this job's uploads: ``<archive>[.sha256].partial``."""
    base = name.removesuffix(PARTIAL).removesuffix(SIDECAR)
    return name.endswith(PARTIAL) and archive_time(job, base) is not None


def clear_partials(rclone: Rclone, job: str, present: dict[str, int]) -> None:
    """Delete what killed runs of ``job`` left under temporary names on the destination
    (``present``: its files, updated)."""
    for stale in [n for n in present if _own_partial(job, n)]:
        rclone.run("deletefile", rclone.path(stale), allow=GONE)
        del present[stale]


def prune(
    rclone: Rclone, job: str, rules: Retention, present: dict[str, int], protect: list[str]
) -> list[str]:
    """The job's archives on the destination (``present``) its retention does not keep,
    deleted with their checksums, never one of ``protect``; their names."""
    names = [n for n in present if not n.endswith(PARTIAL)]
    good = [n for n in names if n + SIDECAR in names]
    deleted = to_delete(job, names, rules, good, now=datetime.now(UTC), protect=protect)
    for archive in deleted:
        for file in (archive, archive + SIDECAR):
            if file in present:
                rclone.run("deletefile", rclone.path(file), allow=GONE)
    return deleted


def _digest(path: Path, kind: str) -> str:
    digest = hashlib.new(kind)
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Origin(Protocol):
    """Where the archives copied come from."""

    def names(self) -> dict[str, int]:
        """The files there and their sizes."""

    def send(self, rclone: Rclone, name: str, to: str) -> None:
        """Copy file ``name`` to rclone's file ``to`` on the destination."""

    def digest(self, name: str, kind: str) -> str | None:
        """The ``kind`` hash of file ``name``, if it can be had."""


@dataclass(frozen=True, slots=True)
class Target:
    """The archives in the job's target, mounted here."""

    path: Path

    def names(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in self.path.iterdir() if p.is_file()}

    def send(self, rclone: Rclone, name: str, to: str) -> None:
        rclone.run("copyto", str(self.path / name), to)

    def digest(self, name: str, kind: str) -> str | None:
        return _digest(self.path / name, kind)


@dataclass(frozen=True, slots=True)
class FirstDestination:
    """The archives on the first destination of a streamed backup (rclone's source), as
    listed once (``files``)."""

    rclone: Rclone
    files: dict[str, int]

    def names(self) -> dict[str, int]:
        return self.files

    def send(self, rclone: Rclone, name: str, to: str) -> None:
        rclone.run("copyto", rclone.source_path(name), to)

    def digest(self, name: str, kind: str) -> str | None:
        return self.rclone.stat(name, self.rclone.source_path(name), kind)[1].get(kind)


def check_upload(
    rclone: Rclone,
    name: str,
    place: str,
    *,
    size: int,
    offered: tuple[str, ...],
    digest: Callable[[str], str | None],
) -> str:
    """File ``name`` uploaded to rclone's ``place``, compared with what was sent: its size
    (``size``), then the first hash of HASHES the backend offers (``offered``) and gives for
    it, against ``digest`` of that kind (None: unknown); how it was checked. A mismatch
    raises RemoteError."""
    kind = next((k for k in HASHES if k in offered), None)
    arrived, hashes = rclone.stat(name, place, kind)
    if arrived != size:
        raise RemoteError(f"{name}: {arrived} bytes arrived of {size}")
    given = hashes.get(kind) if kind else None
    expected = digest(kind) if kind and given else None
    if kind is None or given is None or expected is None:
        return "size"
    if given.lower() != expected.lower():
        raise RemoteError(f"{name}: the {kind} of the uploaded file differs")
    return f"size+{kind}"


def upload(rclone: Rclone, origin: Origin, name: str, size: int) -> str:
    """File ``name`` of ``origin`` (``size`` bytes) to ``<name>.partial`` on the destination,
    checked (``check_upload``), then renamed to its name; how it was checked."""
    partial = rclone.path(name + PARTIAL)
    origin.send(rclone, name, partial)
    try:
        how = check_upload(
            rclone,
            name,
            partial,
            size=size,
            offered=rclone.hashes(),
            digest=lambda kind: origin.digest(name, kind),
        )
    except RemoteError:
        rclone.run("deletefile", partial, allow=GONE)
        raise
    rclone.run("moveto", partial, rclone.path(name))
    return how


def copy(rclone: Rclone, request: RemoteRequest, name: str, origin: Origin) -> Copied:
    """The job's archives of ``origin`` the destination lacks, uploaded (newest first); then
    retention there, never deleting the newest archive of the origin."""
    job, rules = request.job, policy(request)
    present = rclone.files()
    clear_partials(rclone, job, present)
    files = origin.names()
    keep = wanted(job, files, rules)
    uploaded: list[str] = []
    sent, checks = 0, set()
    for archive in keep:
        if archive in present and archive + SIDECAR in present:
            continue
        checks.add(upload(rclone, origin, archive, files[archive]))
        upload(rclone, origin, archive + SIDECAR, files[archive + SIDECAR])
        uploaded.append(archive)
        sent += files[archive]
        present[archive] = present[archive + SIDECAR] = 0
    deleted = prune(rclone, job, rules, present, keep[:1])
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
