"""``restore``: an archive's members checked against the volumes mounted here, extracted into
a staging directory in each volume, then moved into place following no link already there."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.tools.backup.listing import verify
from jobs.tools.backup.processes import TOOL, ToolError
from jobs.tools.backup.reading import TAR_READ, read_with_tar, unescape_name
from jobs.tools.paths import holder
from jobs.tools.staging import Placing, Staging

if TYPE_CHECKING:
    from jobs.protocol.backup import RestoreResult
    from jobs.tools.backup.keys import AgeKey

MAX_NAMED = 5
"""How many of the archive's paths an error names (then how many more there are)."""


def _bre(text: str) -> str:
    """``text`` as a POSIX basic regular expression that matches just itself."""
    return re.sub(r"([\\.\[*^$])", r"\\\1", text)


@dataclass
class _Members:
    """What the archive (or its selected part) holds, by the volume each member goes to."""

    by_mount: dict[str, int] = field(default_factory=dict)
    """Mount (its path relative to the root) → how many members go into it."""
    directories: set[str] = field(default_factory=set)
    """The members that are directories (names without the trailing slash)."""
    count: int = 0
    homeless: list[str] = field(default_factory=list)
    """The first MAX_NAMED members under no mounted volume, and how many there are."""
    homeless_count: int = 0
    refused: list[str] = field(default_factory=list)
    """The first MAX_NAMED members restore does not take (absolute names, '..' in a name,
    a non-directory where a volume is mounted), and how many there are."""
    refused_count: int = 0

    def refuse(self, text: str) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_NAMED:
            self.refused.append(text)


def _list_members(
    archive: Path, selection: list[str], mounts: set[str], key: AgeKey | None
) -> _Members:
    """``tar --list`` of the archive (a first pass through it), every member matched to the
    deepest mount whose path holds it."""
    found = _Members()
    # The directories on the way to a mount point: a file placed there would replace the
    # directory that holds the mount (and what is mounted in it).
    holding = {m.rsplit("/", depth)[0] for m in mounts for depth in range(1, m.count("/") + 1)}

    def one(line: bytes) -> None:
        name = unescape_name(line)
        path = name.rstrip("/")
        parts = path.split("/")
        found.count += 1
        if name.endswith("/"):
            found.directories.add(path)
        elif path in mounts or path in holding:
            where = "there" if path in mounts else "under it"
            found.refuse(f"/{path} (not a directory, but a volume is mounted {where})")
            return
        if name.startswith("/") or ".." in parts:
            found.refuse(name)
            return
        mount = holder(path, mounts)
        if mount is not None:
            found.by_mount[mount] = found.by_mount.get(mount, 0) + 1
            return
        found.homeless_count += 1
        if len(found.homeless) < MAX_NAMED:
            found.homeless.append("/" + path)

    read_with_tar(archive, [*TAR_READ, "--list", "--", *selection], one, key)
    return found


def named(names: list[str], count: int) -> str:
    """The first of ``count`` paths (``names``, at most MAX_NAMED), and how many more."""
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _transform(mounts: list[str], staging: str) -> str:
    """tar's --transform that puts the member ``m`` or ``m/x`` at ``m/<staging>`` or
    ``m/<staging>/x`` for the deepest of ``mounts`` (given the deepest first: a regex
    engine that takes the first alternative that matches then agrees with POSIX's longest
    one) — hard-link targets too, symlink targets never."""
    free = [c for c in map(chr, range(1, 32)) if all(c not in m for m in mounts)]
    if not free:
        raise ToolError("the volumes' paths leave no delimiter for tar's --transform")
    d, pattern = free[0], "\\|".join(_bre(m) for m in mounts)
    return f"s{d}^\\({pattern}\\)\\(/.*\\)\\{{0,1\\}}${d}\\1/{staging}\\2{d}rhS"


def _stage(
    archive: Path,
    root: Path,
    staging: Staging,
    volumes: dict[str, Path],
    *,
    selection: list[str],
    key: AgeKey | None,
) -> None:
    """Make the staging directory in each volume (``volumes``: by mount, the deepest
    first) and extract the members into them in one pass. On any failure, remove them
    all."""
    mounts = list(volumes)
    extract = [
        *TAR_READ,
        "--extract",
        "--numeric-owner",
        "--same-permissions",
        f"--directory={root}",
        f"--transform={_transform(mounts, staging.name)}",
        "--",
        *(selection or mounts),
    ]
    try:
        for volume in volumes.values():
            staging.make(volume)
        read_with_tar(archive, extract, lambda _: None, key)
    except BaseException:
        staging.discard()
        raise


def _members_to_restore(
    archive: Path, selection: list[str], mounts: set[str], key: AgeKey | None
) -> _Members:
    """The archive's (selected) members, or ToolError if one cannot be restored here."""
    try:
        members = _list_members(archive, selection, mounts, key)
    except ToolError as e:
        raise ToolError(f"could not read {archive.name} (nothing restored): {e}") from None
    if members.refused_count:
        raise ToolError(
            f"{archive.name} holds members restore does not take (nothing restored): "
            f"{named(members.refused, members.refused_count)}"
        )
    if members.homeless_count:
        raise ToolError(
            f"{archive.name} holds paths under no volume mounted here (nothing restored): "
            f"{named(members.homeless, members.homeless_count)}"
        )
    return members


def _stage_and_place(
    archive: Path,
    root: Path,
    at: dict[str, Path],
    members: _Members,
    selection: list[str],
    *,
    key: AgeKey | None,
) -> None:
    """Extract into a staging directory in each receiving volume, then move into place."""
    receiving = {m: at[m] for m in sorted(members.by_mount, key=len, reverse=True)}
    with Staging(TOOL, ToolError, root) as staging:
        for volume in receiving.values():  # the deepest first
            staging.open(volume)
        try:
            _stage(archive, root, staging, receiving, selection=selection, key=key)
        except ToolError as e:
            raise ToolError(f"could not extract {archive.name} (nothing restored): {e}") from None
        staging.place(Placing(members.directories))


def restore(
    target: Path,
    name: str,
    mounts: list[Path],
    only: list[str] | None = None,
    root: Path = Path("/"),
    *,
    key: AgeKey | None = None,
) -> RestoreResult:
    """Verify the archive, then restore it into the volumes mounted at ``mounts`` (the
    archive's path ``p`` belongs at ``root/p``, and goes to the deepest mount holding it):
    each volume's members are extracted into a new staging directory in that volume, then
    moved into place following no link already there (README, "How a restore writes").
    ``only``: just these absolute paths of the archive. ``key``: what decrypts an ``….age``
    archive."""
    began = time.monotonic()
    verify(target, name)
    archive = target / name
    root = root.absolute()
    at = {str(m.relative_to(root)): m for m in map(Path.absolute, mounts) if root in m.parents}
    selection = [p.strip("/") for p in only or []]
    members = _members_to_restore(archive, selection, set(at), key)
    if members.by_mount:  # else an archive (or a selection) without members: nothing to do
        _stage_and_place(archive, root, at, members, selection, key=key)
    return {
        "archive": name,
        "restored_to": str(root),
        "volumes": sorted(str(at[m]) for m in members.by_mount),
        "entries": members.count,
        "duration_s": round(time.monotonic() - began, 3),
    }
