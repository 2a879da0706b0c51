"""Paths inside the volumes an ops container mounts (stdlib only).

The files a tool touches are written by the application, so they are hostile input: a
directory symlink in a volume can lead a glob out of it (``/logs/x -> /``), a symlink
named like a rotated log can lead a copy or a compression to any file of the container.
Tools therefore act only on paths whose real location lies inside a volume mounted into
the container, and never follow a symlink at the last step of a path they write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

if TYPE_CHECKING:
    from collections.abc import Container, Sequence

SYSTEM_MOUNTS = frozenset({"/", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})
"""Mounts the engine makes in every container: never a volume."""
SYSTEM_TREES = ("/proc", "/sys", "/dev")
P = TypeVar("P", str, Path)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The volumes mounted into this container (its ``--volumes-from`` and ``-v`` mounts):
    every mount but the engine's own files and the system trees."""
    found: set[Path] = set()
    for line in mountinfo.read_text().splitlines():
        text = _unescape(line.split()[4])
        if text in SYSTEM_MOUNTS or any(
            text == tree or text.startswith(tree + "/") for tree in SYSTEM_TREES
        ):
            continue
        found.add(Path(text))
    return sorted(found)


def holder(path: P, points: Container[P]) -> P | None:
    """The deepest of ``points`` that is ``path`` or one of its parents (the mounted volume
    that holds it); None when none is. The parents are ``path`` cut at each ``/`` from the
    right, as written: ``/data`` holds ``/data/x``, never ``/data2``; a ``str`` is not
    normalized (``./data/x`` is not under ``data``), the way tar matches a member's name."""
    text = str(path)
    while True:
        if type(path)(text) in points:
            return type(path)(text)
        head, slash, _ = text.rpartition("/")
        if not slash or text == "/":
            return None
        text = head or "/"


def inside(path: Path, roots: Sequence[Path] | None) -> bool:
    """``path``'s real location (every symlink resolved) lies in one of ``roots``. ``None``:
    no bound (a tool run outside a container, as the unit tests do)."""
    if roots is None:
        return True
    real = Path(os.path.realpath(path))
    for root in roots:
        top = Path(os.path.realpath(root))
        if real == top or top in real.parents:
            return True
    return False


def regular(path: Path) -> bool:
    """``path`` itself is a regular file (a symlink to one is not)."""
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def open_file(path: str | Path) -> BinaryIO:
    """``path`` opened for reading, never through a symlink in its last component (one
    put there after the file was chosen): that is ``OSError`` (ELOOP), like a missing file."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
