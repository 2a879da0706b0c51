"""What every part of the backup tool shares: its error, its name on stderr, and starting the
programs it drives (tar, zstd, gzip) and reading what they said."""

from __future__ import annotations

import os
import subprocess
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.tools.backup.keys import Terminal

CHUNK = 1024 * 1024

TOOL = "backup"
"""The prefix of the tool's diagnostics on stderr."""


class ToolError(Exception):
    """A failure with a message for the run's error."""


def tail(fd: int, limit: int = 4096) -> str:
    end = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, end - limit), os.SEEK_SET)
    return os.read(fd, limit).decode("utf-8", "replace").strip()


def start(
    argv: list[str],
    *,
    stdin: int | IO[bytes] | None = None,
    stdout: int | None = None,
    stderr: int | IO[bytes] | None = None,
    pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    terminal: Terminal | None = None,
) -> subprocess.Popen[bytes]:
    """Start one process of tar's pipeline (in a new session whose controlling terminal is
    ``terminal``, if given); a program that cannot be started (not in the ops image, not
    executable) is the tool's error naming it, not a traceback."""
    try:
        proc = subprocess.Popen(
            argv if terminal is None else terminal.wrap(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=pass_fds if terminal is None else (*pass_fds, terminal.slave),
            env=env,
            start_new_session=terminal is not None,
        )
    except OSError as e:
        raise ToolError(f"cannot start {argv[0]}: {e.strerror or e}") from None
    if terminal is not None:
        terminal.started()
    return proc
