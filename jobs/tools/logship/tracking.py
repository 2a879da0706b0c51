"""File checkpoints: matching files to checkpoints, rotation detection, where a file stands.

At start each checkpoint is matched to the file that holds its lines now — renamed or
copied by a rotation — and a ``FileState`` says where shipping of each file stands; its
``mark()`` is the checkpoint a delivered batch makes true."""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.protocol.lines import say
from jobs.tools.logship.sinks import TOOL
from jobs.tools.paths import inside, open_file

if TYPE_CHECKING:
    from collections.abc import Mapping

FINGERPRINT_BYTES = 1024
"""A checkpoint's fingerprint covers at most this many of its file's first bytes."""


def fingerprint(path: str, length: int) -> str | None:
    """sha256 of the first ``length`` bytes of ``path`` (None if it is shorter or gone)."""
    try:
        with open_file(path) as f:
            head = f.read(length)
    except OSError:
        return None
    if len(head) < length:
        return None
    return hashlib.sha256(head).hexdigest()


@dataclass
class FileState:
    """Where shipping of one file stands."""

    path: str
    dev: int
    ino: int
    offset: int = 0
    fp: str = ""
    fplen: int = 0
    skipping: bool = False
    """The bytes after ``offset``, up to the next newline, are the rest of a cut line."""

    @classmethod
    def resumed(cls, path: str, dev: int, ino: int, checkpoint: Mapping[str, Any]) -> FileState:
        """Where ``checkpoint`` left a file that still holds its content."""
        return cls(
            path,
            dev,
            ino,
            int(checkpoint["offset"]),
            checkpoint["fp"],
            checkpoint["fplen"],
            skipping=checkpoint.get("skipping") is True,
        )

    @property
    def key(self) -> str:
        return f"file:{self.dev}:{self.ino}"

    def mark(self) -> dict[str, object]:
        """The checkpoint at ``offset``; the fingerprint covers up to 1 KiB of what was
        decided (computed here, once per batch, not per line). ``skipping`` only when set:
        checkpoints without it read as before."""
        length = min(self.offset, FINGERPRINT_BYTES)
        if length != self.fplen:
            self.fp, self.fplen = fingerprint(self.path, length) or "", length
        mark: dict[str, object] = {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.offset,
            "fp": self.fp,
            "fplen": self.fplen,
        }
        if self.skipping:
            mark["skipping"] = True
        return mark


def _matches(path: str, info: os.stat_result, checkpoint: Mapping[str, Any]) -> bool:
    """``path`` holds the content ``checkpoint`` describes (at least up to its offset)."""
    if info.st_size < int(checkpoint["offset"]):
        return False
    return fingerprint(path, int(checkpoint["fplen"])) == str(checkpoint["fp"])


def _regular_files(directory: str) -> dict[str, os.stat_result]:
    found: dict[str, os.stat_result] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                found[entry.path] = entry.stat(follow_symlinks=False)
        except OSError:
            continue
    return found


def _live_files(
    patterns: list[str], roots: list[Path] | None
) -> dict[tuple[int, int], tuple[str, os.stat_result]]:
    """Regular files matching the globs (absolute patterns: glob.glob, not Path.glob), by
    device and inode; a match outside ``roots`` (a directory symlink leading out of the
    volumes) is left alone with a diagnostic."""
    current: dict[tuple[int, int], tuple[str, os.stat_result]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):  # noqa: PTH207 - absolute patterns
            try:
                info = Path(path).lstat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if not inside(Path(path), roots):
                say(TOOL, f"{path} leads out of the mounted volumes (a symlink): not shipped")
                continue
            current.setdefault((info.st_dev, info.st_ino), (path, info))
    return current


def plan_files(
    patterns: list[str],
    checkpoints: Mapping[str, Mapping[str, Any]],
    roots: list[Path] | None = None,
) -> tuple[list[FileState], dict[str, dict[str, object] | None]]:
    """What to read, in order (rotated remainders first), and the checkpoints that change
    before anything is read: ``None`` forgets one (its file is gone), a mark resets one (a
    live file truncated by copytruncate starts again from 0). ``roots``: the volumes files
    may be read from (None: anywhere, for a tool run outside a container)."""
    current = _live_files(patterns, roots)
    rotated: dict[tuple[int, int], FileState] = {}
    resumed: dict[tuple[int, int], FileState] = {}
    changes: dict[str, dict[str, object] | None] = {}
    for key, cp in sorted(checkpoints.items()):
        if not key.startswith("file:"):
            continue
        ident = (int(cp["dev"]), int(cp["ino"]))
        live = current.get(ident)
        if live is not None and _matches(live[0], live[1], cp):
            resumed[ident] = FileState.resumed(live[0], *ident, cp)
            continue
        found = _find_rotated(cp, ident, current, roots)
        if found is not None and found.key != key and found.key in checkpoints:
            found = None  # the copy has a checkpoint of its own: that one says where it stands
        if found is not None:
            rotated.setdefault((found.dev, found.ino), found)
        if found is not None and found.key == key:
            continue  # renamed out of the live names: the same checkpoint goes on
        if live is not None:
            changes[key] = FileState(live[0], *ident).mark()  # truncated: from 0 again
        else:
            changes[key] = None
    states = list(rotated.values())
    for ident, (path, _info) in current.items():
        if ident not in rotated:
            states.append(resumed.get(ident) or FileState(path, *ident))
    return states, changes


def _find_rotated(
    cp: Mapping[str, Any],
    ident: tuple[int, int],
    current: dict[tuple[int, int], tuple[str, os.stat_result]],
    roots: list[Path] | None,
) -> FileState | None:
    """The file that holds ``cp``'s lines now, outside the live names: renamed (same inode)
    or copied (same first bytes, different inode) into the same directory (if it is still
    inside ``roots``)."""
    directory = str(Path(str(cp["path"])).parent)
    if not inside(Path(directory), roots):
        return None
    candidates = _regular_files(directory)
    copies = []
    for path, info in candidates.items():
        if (info.st_dev, info.st_ino) == ident:
            if (info.st_dev, info.st_ino) not in current and _matches(path, info, cp):
                return FileState.resumed(path, *ident, cp)
            continue
        if (info.st_dev, info.st_ino) in current:
            continue  # a live file: it has (or gets) its own checkpoint
        if _matches(path, info, cp):
            copies.append((info.st_mtime, path, info))
    if not copies:
        return None
    _mtime, path, info = max(copies)  # the newest copy: the last rotation
    return FileState.resumed(path, info.st_dev, info.st_ino, cp)
