"""A restore's staging directories and the move into place (stdlib only), shared by the tar
restore (``jobs.tools.backup.restore``) and the restic restore
(``jobs.tools.restic.restoring``): what they write goes first into a fresh, private
directory at the top of each receiving volume — on the volume's own file system, so every
later move is a rename — and is then moved into the volume following no link already
there (README, "How a restore writes")."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Self

from jobs.protocol.lines import say

if TYPE_CHECKING:
    from collections.abc import Container

STAGING_PREFIX = ".crontainer-restore-"
"""A restore's staging directory in each volume: this prefix and 16 random hex digits."""
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Placing:
    """Moves a staged tree into its volume, following no link that is in the volume.
    ``directories``: the paths (relative to the root) of the directories whose owner, mode
    and times are restored too (the staged ones)."""

    def __init__(self, directories: Container[str]) -> None:
        self.directories = directories

    def merge(self, staged_parent: int, name: str, dest: int, path: str) -> None:
        """Move the entries of the staged directory ``name`` (in ``staged_parent``) into the
        real directory ``dest``, remove it, then give ``dest`` its owner, mode and times if
        it is a member of the archive (``path``)."""
        staged = os.open(name, DIRECTORY, dir_fd=staged_parent)
        try:
            meta = os.fstat(staged)  # before moving entries out changes its times
            with os.scandir(staged) as entries:
                names = [entry.name for entry in entries]
            for child in names:
                self.place(staged, dest, child, f"{path}/{child}")
        finally:
            os.close(staged)
        os.rmdir(name, dir_fd=staged_parent)
        if path in self.directories:
            os.chown(dest, meta.st_uid, meta.st_gid)  # first: chown clears setuid bits
            os.chmod(dest, stat.S_IMODE(meta.st_mode))
            os.utime(dest, ns=(meta.st_atime_ns, meta.st_mtime_ns))

    def place(self, staged: int, dest: int, name: str, path: str) -> None:
        """Put the staged entry ``name`` at ``name`` in ``dest``: a directory merges into a
        real directory; anything else in the way is removed, never followed."""
        mode = os.lstat(name, dir_fd=staged).st_mode
        try:
            there: int | None = os.lstat(name, dir_fd=dest).st_mode
        except FileNotFoundError:
            there = None
        if there is not None and stat.S_ISDIR(mode) and stat.S_ISDIR(there):
            inner = os.open(name, DIRECTORY, dir_fd=dest)
            try:
                self.merge(staged, name, inner, path)
            finally:
                os.close(inner)
            return
        if there is not None and stat.S_ISDIR(there):
            shutil.rmtree(name, dir_fd=dest)  # by descriptors: follows no link inside
        elif there is not None and stat.S_ISDIR(mode):
            os.unlink(name, dir_fd=dest)  # a file or a link where the archive has a directory
        # a file or a link where the archive has a file or a link: the rename replaces it
        os.rename(name, name, src_dir_fd=staged, dst_dir_fd=dest)


def half_moved(error: BaseException, mounts: list[Path], staging: str) -> str:
    """The error of a move into place that stopped in ``mounts[0]``: what is where."""
    first, rest = mounts[0], [str(m / staging) for m in mounts[1:]]
    said = f"moving the restored tree into place failed: {error}; {first} holds a mix of old "
    if (first / staging).is_dir():
        said += f"and restored entries; the rest of the restored tree is in {first / staging}"
    else:  # every entry moved; the volume's own owner, mode or times were not set
        said += "and restored entries: every entry was moved, not every directory's owner, "
        said += "mode and times set"
    if rest:
        said += f"; not moved yet, those volumes untouched: {', '.join(rest)}"
    return said


class Staging:
    """One restore's staging directories: ``name`` (STAGING_PREFIX and 16 random hex
    digits, mode 0700) made at the top of each receiving volume, each volume opened once,
    following no link. ``tool`` names the tool in diagnostics; its failures are ``error``s.
    A context manager: the volumes' descriptors are closed at its end."""

    def __init__(self, tool: str, error: type[Exception], root: Path = Path("/")) -> None:
        self.name = STAGING_PREFIX + secrets.token_hex(8)
        self.tool, self.error, self.root = tool, error, root
        self.fds: dict[Path, int] = {}
        self.made: dict[Path, os.stat_result] = {}
        """The volumes given a staging directory, in that order: their times before."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def open(self, volume: Path) -> int:
        """The volume's directory, opened once, following no link at its last step."""
        if volume not in self.fds:
            try:
                self.fds[volume] = os.open(volume, DIRECTORY)
            except OSError as e:
                raise self.error(f"cannot restore into {volume}: {e.strerror}") from None
        return self.fds[volume]

    def make(self, volume: Path) -> None:
        """Make the staging directory at the top of ``volume``."""
        fd = self.open(volume)
        times = os.fstat(fd)
        try:
            os.mkdir(self.name, 0o700, dir_fd=fd)
        except OSError as e:
            raise self.error(f"cannot make {volume / self.name}: {e.strerror}") from None
        self.made[volume] = times

    def discard(self) -> None:
        """Remove every staging directory made (a restore that failed before its move into
        place), each volume's top directory getting its times back; one that cannot be
        removed is said in a diagnostic line."""
        for volume, times in self.made.items():
            try:
                shutil.rmtree(self.name, dir_fd=self.fds[volume])
                os.utime(self.fds[volume], ns=(times.st_atime_ns, times.st_mtime_ns))
            except OSError as e:
                say(self.tool, f"could not remove the staging directory {volume / self.name}: {e}")

    def place(self, placing: Placing, *, whole_paths: bool = False) -> None:
        """Move each volume's staged tree into it, the deepest volume first, and remove its
        staging directory; a move that fails is an ``error`` saying what is where. The
        staged tree is the staging directory itself, or (``whole_paths``: restic restores
        a snapshot's paths whole) the volume's path below it."""
        ordered = sorted(self.made, key=lambda p: len(p.parts), reverse=True)
        for done, volume in enumerate(ordered):
            key = str(volume.relative_to(self.root))
            staged = PurePath(self.name, key if whole_paths else "")
            fd = self.fds[volume]
            try:
                parent = os.open(staged.parent, DIRECTORY, dir_fd=fd)
                try:
                    placing.merge(parent, staged.name, fd, key)
                finally:
                    os.close(parent)
                if whole_paths:  # the directories on the way to the staged tree
                    shutil.rmtree(self.name, dir_fd=fd)
            except (OSError, RecursionError) as e:
                raise self.error(half_moved(e, ordered[done:], self.name)) from None
