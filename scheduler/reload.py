"""Noticing and describing a change of the config.

The file is watched by polling its content (a digest), not with inotify: a
bind-mounted file replaced on the host (editors and config management write a
new file and rename it) is a new inode that inotify inside the container never
hears about. Mount the config's directory, not the file, so the new file shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from scheduler.settings import JobEntry


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # missing or unreadable: a change like any other


class ConfigWatcher:
    """Tells whether the file's content differs from the last time it was seen."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen = _digest(path)

    def changed(self) -> bool:
        """True once per change of content (or of existence)."""
        now = _digest(self._path)
        if now == self._seen:
            return False
        self._seen = now
        return True


@dataclass(frozen=True, slots=True)
class JobChanges:
    """Which jobs a new config adds, removes and changes (by name, sorted)."""

    added: list[str]
    removed: list[str]
    changed: list[str]


def diff_jobs(old: Mapping[str, JobEntry], new: Mapping[str, JobEntry]) -> JobChanges:
    """Compare two job sets by their validated definitions."""
    return JobChanges(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(name for name in set(old) & set(new) if old[name].job != new[name].job),
    )
