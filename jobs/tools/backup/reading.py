"""Reading an archive with tar: decompressed on the way, in the C locale, each line tar prints
handed on (member names unescaped), failures of tar and the decompressor named."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING

from jobs.tools.backup.processes import ToolError, start, tail

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DECOMPRESSORS = {
    ".tar.zst": ["zstd", "-q", "-d", "-c"],
    ".tar.gz": ["gzip", "-d", "-c"],
    ".tar": None,
}
TAR_READ = ["tar", "--file=-", "--quoting-style=escape", "--no-wildcards", "--anchored"]
"""How a restore has tar read an archive on stdin: names printed with escapes (one line
per member, whatever its name holds), member names on the command line matched literally."""
_ESCAPED = re.compile(rb"\\(?:([0-7]{3})|(.))", re.DOTALL)
_C_ESCAPES = {b"a": 7, b"b": 8, b"f": 12, b"n": 10, b"r": 13, b"t": 9, b"v": 11}


def _suffix(name: str) -> str:
    for suffix in sorted(DECOMPRESSORS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise ToolError(f"{name}: not an archive name (.tar, .tar.zst or .tar.gz)")


def unescape_name(line: bytes) -> str:
    """A member name as tar's escape quoting style printed it (C locale), decoded."""

    def one(match: re.Match[bytes]) -> bytes:
        octal, code = match.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        return bytes([_C_ESCAPES[code]]) if code in _C_ESCAPES else code

    return os.fsdecode(_ESCAPED.sub(one, line))


def read_with_tar(archive: Path, argv: list[str], on_line: Callable[[bytes], None]) -> None:
    """Feed the archive, decompressed, to ``argv`` (tar, in the C locale: names are bytes);
    each line tar prints goes to ``on_line``. Raise ToolError with tar's message (and the
    decompressor's) if either fails."""
    decompress = DECOMPRESSORS[_suffix(archive.name)]
    procs: list[subprocess.Popen[bytes]] = []
    with (
        archive.open("rb") as source,
        tempfile.TemporaryFile() as tar_said,
        tempfile.TemporaryFile() as unpack_said,
    ):
        try:
            feed: IO[bytes] | None = source
            if decompress is not None:
                procs.append(
                    start(decompress, stdin=source, stdout=subprocess.PIPE, stderr=unpack_said)
                )
                feed = procs[0].stdout
            env = {**os.environ, "LC_ALL": "C"}
            tar = start(argv, stdin=feed, stdout=subprocess.PIPE, stderr=tar_said, env=env)
            procs.append(tar)
            if decompress is not None and feed is not None:
                feed.close()  # tar's now: the decompressor sees SIGPIPE if tar stops
            with tar.stdout or contextlib.nullcontext(()) as lines:
                for line in lines:
                    on_line(line.rstrip(b"\n"))
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            raise
        unpack = None if decompress is None else (decompress[0], procs[0], unpack_said.fileno())
        _check_readers(tar, tar_said.fileno(), unpack)


def _check_readers(
    tar: subprocess.Popen[bytes],
    tar_said: int,
    unpack: tuple[str, subprocess.Popen[bytes], int] | None,
) -> None:
    """Wait for tar and the decompressor (its name, process and messages); ToolError with
    what the failing ones said."""
    failures = []
    if tar.wait() != 0:
        failures.append(f"tar failed (exit {tar.returncode}): {tail(tar_said)}")
    if unpack is not None:
        name, proc, said = unpack
        code = proc.wait()
        # tar stops reading at the archive's end marker; a decompressor still writing the
        # last record's padding then dies of SIGPIPE: no failure, tar read the archive
        if code != 0 and not (code == -signal.SIGPIPE and tar.returncode == 0):
            failures.append(f"{name} failed (exit {code}): {tail(said)}")
    if failures:
        raise ToolError("; ".join(failures))
