"""Listing the job's snapshots and restoring one: the snapshots of the job's host with
both its tags (newest first), and a restore that lets restic write only into a fresh
staging directory inside each receiving volume, then moves the entries into place as the
tar restore does (``jobs.tools.staging``: following no link in the volume)."""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.restic import ResticRestored, ResticSnapshot
from jobs.tools.backup.restore import MAX_NAMED, named
from jobs.tools.paths import holder, mount_points
from jobs.tools.restic.runner import TOOL, Restic, ResticError
from jobs.tools.restic.steps import MOUNTINFO, local_repository
from jobs.tools.staging import Placing, Staging

if TYPE_CHECKING:
    from jobs.protocol.restic import ResticRequest

_GLOB = re.compile(r"[*?[\\]")
"""What restic's ``--include`` patterns read as a glob, escaped in a volume's path."""
_NANOS = re.compile(r"(\.\d{6})\d+")
"""The digits of a time past the microseconds (Python's ISO times stop there)."""


def job_snapshots(restic: Restic, request: ResticRequest) -> list[ResticSnapshot]:
    """The job's snapshots — its host, both its tags — newest first."""
    args = ["snapshots", "--json", *request.selection()]
    done = restic.run(args)
    listed = next((v for v in done.values if isinstance(v, list)), None)
    if done.code != 0 or listed is None:
        raise ResticError(f"cannot list the snapshots: {done.reason()}")
    try:
        found = [ResticSnapshot.parse(s, f"snapshots[{i}]") for i, s in enumerate(listed)]
    except ValueError as e:
        raise ResticError(f"restic's listing cannot be read: {e}") from None
    return sorted(found, key=lambda s: _instant(s.time), reverse=True)


def _instant(text: str) -> datetime:
    """A snapshot's time (restic's RFC 3339, nanoseconds, the making host's offset) as an
    instant; one that cannot be read sorts as the oldest."""
    try:
        when = datetime.fromisoformat(_NANOS.sub(r"\1", text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def choose(snapshots: list[ResticSnapshot], request: ResticRequest) -> ResticSnapshot:
    """The request's snapshot among the job's own: ``latest``, or the one whose id starts
    with the given id."""
    if request.snapshot == "latest":
        if not snapshots:
            raise ResticError(f"job {request.job!r} has no snapshot in the repository")
        return snapshots[0]
    matching = [s for s in snapshots if s.id.startswith(request.snapshot)]
    if len(matching) != 1:
        what = "no snapshot" if not matching else f"{len(matching)} snapshots"
        raise ResticError(f"job {request.job!r} has {what} with the id {request.snapshot!r}")
    return matching[0]


def receiving(snapshot: ResticSnapshot, request: ResticRequest, points: list[Path]) -> list[Path]:
    """The volumes the snapshot's paths (or the request's ``only``) go into, the shallowest
    first; a path under no volume mounted here fails before anything is written."""
    if request.only:
        stray = [p for p in request.only if Path(p) not in points]
        if stray:
            listed = named(stray[:MAX_NAMED], len(stray))
            raise ResticError(f"no volume mounted at {listed} (nothing restored)")
        return sorted({Path(p) for p in request.only}, key=lambda p: len(p.parts))
    homeless = [p for p in snapshot.paths if holder(Path(p), points) is None]
    if homeless:
        raise ResticError(
            f"snapshot {snapshot.short_id} holds paths under no volume mounted here "
            f"(nothing restored): {named(homeless[:MAX_NAMED], len(homeless))}"
        )
    holders = {holder(Path(p), points) for p in snapshot.paths}
    return sorted((h for h in holders if h is not None), key=lambda p: len(p.parts))


class _Every:
    """Every staged directory gets its owner, mode and times: restic restored each one of
    the snapshot's tree, the volume's own root too."""

    def __contains__(self, path: object) -> bool:
        return True


def _stage(
    restic: Restic,
    snapshot: ResticSnapshot,
    volumes: list[Path],
    points: list[Path],
    staging: Staging,
    *,
    follow: bool,
) -> None:
    """Restore each volume's part of the snapshot into its staging directory, the
    shallowest first. What restic staged where another volume is mounted inside (one of
    ``points``) is taken out — that volume restores on its own when it is one of
    ``volumes`` or ``follow`` (the restore is of everything, no ``only``)."""
    queue = list(volumes)
    while queue:
        volume = queue.pop(0)
        staging.make(volume)
        args = ["restore", snapshot.id, "--target", str(volume / staging.name)]
        restored = restic.run([*args, "--include", _GLOB.sub(r"\\\g<0>", str(volume))])
        if restored.code != 0:
            raise ResticError(f"cannot restore {volume}: {restored.reason()}")
        if not _staged(volume, staging).is_dir():
            raise ResticError(f"snapshot {snapshot.short_id} holds nothing at {volume}")
        for inner in (p for p in points if p != volume and holder(p.parent, points) == volume):
            staged = _staged_directory(_staged(volume, staging), volume, inner)
            if staged is None:
                continue
            shutil.rmtree(staged)
            if follow and inner not in [*queue, *staging.made]:
                queue.append(inner)


def _staged_directory(top: Path, volume: Path, inner: Path) -> Path | None:
    """Where restic staged (under ``top``, the staged ``volume``) the directory at which
    the volume ``inner`` is mounted now, reached through no link it staged; None when the
    snapshot holds nothing there. A link or a file on the way is a ResticError: placed, it
    would replace the directory that holds ``inner``'s mount point."""
    path = top
    for part in inner.relative_to(volume).parts:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            shown = volume / path.relative_to(top)
            raise ResticError(
                f"the snapshot holds a link or a file at {shown}, where the volume {inner} is "
                "mounted now"
            )
        if not path.exists():
            return None
    return path


def _staged(volume: Path, staging: Staging) -> Path:
    """Where restic put the volume's part of the snapshot: its full path in the staging
    directory (restic 0.14 restores a snapshot's paths whole, not a subfolder)."""
    return volume / staging.name / volume.relative_to("/")


def restore(restic: Restic, request: ResticRequest, mountinfo: Path = MOUNTINFO) -> ResticRestored:
    """Restore the request's snapshot of the job into the volumes mounted here (README,
    "How a restore writes"); nothing is written when a path has no volume or restic fails."""
    began = time.monotonic()
    snapshot = choose(job_snapshots(restic, request), request)
    repository = local_repository(request)
    points = [
        p
        for p in mount_points(mountinfo)
        if repository is None or not (p == repository or p in repository.parents)
    ]
    volumes = receiving(snapshot, request, points)
    with Staging(TOOL, ResticError) as staging:
        try:
            _stage(restic, snapshot, volumes, points, staging, follow=not request.only)
        except BaseException as e:
            staging.discard()
            if isinstance(e, ResticError):
                raise ResticError(f"{e} (nothing restored)") from None
            raise
        staging.place(Placing(_Every()), whole_paths=True)
        written = list(staging.made)
    return ResticRestored(
        restic.redact.repository,
        snapshot.short_id,
        tuple(str(v) for v in sorted(written)),
        round(time.monotonic() - began, 3),
    )
