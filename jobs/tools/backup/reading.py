"""Reading an archive with tar: decrypted (age) and decompressed on the way, in the C locale,
each line tar prints handed on (member names unescaped), failures of tar and its feeders
named."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING

from jobs.retention import AGE_SUFFIX
from jobs.tools.backup.processes import ToolError, start, tail

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DECOMPRESSORS = {
    ".tar.zst": ["zstd", "-q", "-d", "-c"],
    ".tar.gz": ["gzip", "-d", "-c"],
    ".tar": None,
}
AGE_DECRYPT = ["age", "--decrypt"]
NO_MATCH = "no identity matched any of the recipients"
"""What age 1.1 says when the identity given is not one the archive was encrypted to."""
TAR_READ = ["tar", "--file=-", "--quoting-style=escape", "--no-wildcards", "--anchored"]
"""How a restore has tar read an archive on stdin: names printed with escapes (one line
per member, whatever its name holds), member names on the command line matched literally."""
_ESCAPED = re.compile(rb"\\(?:([0-7]{3})|(.))", re.DOTALL)
_C_ESCAPES = {b"a": 7, b"b": 8, b"f": 12, b"n": 10, b"r": 13, b"t": 9, b"v": 11}


def _suffix(name: str) -> str:
    for suffix in sorted(DECOMPRESSORS, key=len, reverse=True):
        if name.removesuffix(AGE_SUFFIX).endswith(suffix):
            return suffix
    raise ToolError(
        f"{name}: not an archive name (.tar, .tar.zst or .tar.gz, then .age if encrypted)"
    )


def _readers(name: str, identity: int | None) -> list[tuple[str, list[str]]]:
    """The programs before tar (name, argv): age decrypting with the identity file open at
    ``identity`` (an ``….age`` archive), then the decompressor."""
    decompress = DECOMPRESSORS[_suffix(name)]
    chain = []
    if name.endswith(AGE_SUFFIX):
        if identity is None:
            raise ToolError(f"{name} is encrypted: restoring it needs an age identity")
        chain.append(("age", [*AGE_DECRYPT, f"--identity=/dev/fd/{identity}"]))
    if decompress is not None:
        chain.append((decompress[0], decompress))
    return chain


def unescape_name(line: bytes) -> str:
    """A member name as tar's escape quoting style printed it (C locale), decoded."""

    def one(match: re.Match[bytes]) -> bytes:
        octal, code = match.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        return bytes([_C_ESCAPES[code]]) if code in _C_ESCAPES else code

    return os.fsdecode(_ESCAPED.sub(one, line))


def read_with_tar(
    archive: Path, argv: list[str], on_line: Callable[[bytes], None], identity: int | None = None
) -> None:
    """Feed the archive, decrypted (``identity``: a descriptor of an age identity file) and
    decompressed, to ``argv`` (tar, in the C locale: names are bytes); each line tar prints
    goes to ``on_line``. Raise ToolError with what failed said."""
    chain = _readers(archive.name, identity)
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as files:
        feed: IO[bytes] | None = files.enter_context(archive.open("rb"))
        said = [files.enter_context(tempfile.TemporaryFile()) for _ in range(len(chain) + 1)]
        try:
            for (_, program), messages in zip(chain, said, strict=False):
                keep = (identity,) if identity is not None and program[0] == "age" else ()
                procs.append(
                    start(
                        program, stdin=feed, stdout=subprocess.PIPE, stderr=messages, pass_fds=keep
                    )
                )
                if feed is not None and procs[-1] is not procs[0]:
                    feed.close()  # the reader's now: the writer sees SIGPIPE if it stops
                feed = procs[-1].stdout
            env = {**os.environ, "LC_ALL": "C"}
            tar = start(argv, stdin=feed, stdout=subprocess.PIPE, stderr=said[-1], env=env)
            if chain and feed is not None:
                feed.close()
            with tar.stdout or contextlib.nullcontext(()) as lines:
                for line in lines:
                    on_line(line.rstrip(b"\n"))
        except BaseException:
            for proc in [*procs, *([tar] if "tar" in locals() else [])]:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            raise
        readers = [(n, p, f.fileno()) for (n, _), p, f in zip(chain, procs, said, strict=False)]
        _check_readers(archive.name, tar, said[-1].fileno(), readers)


def _check_readers(
    name: str,
    tar: subprocess.Popen[bytes],
    tar_said: int,
    readers: list[tuple[str, subprocess.Popen[bytes], int]],
) -> None:
    """Wait for tar and the programs feeding it (name, process, messages); ToolError with
    what the failing ones said. age failing is the cause of whatever failed after it: an
    identity that matches none of the archive's recipients is said so."""
    failures = []
    for program, proc, said in readers:
        code = proc.wait()
        # tar stops reading at the archive's end marker; a reader still writing the last
        # record's padding then dies of SIGPIPE: no failure, tar read the archive
        if code != 0 and not (code == -signal.SIGPIPE and tar.wait() == 0):
            message = tail(said)
            if program == "age" and NO_MATCH in message:
                raise ToolError(f"the identity does not decrypt {name} ({message})")
            if program == "age":
                raise ToolError(f"age failed (exit {code}): {message}")
            failures.append(f"{program} failed (exit {code}): {message}")
    if tar.wait() != 0:
        failures.insert(0, f"tar failed (exit {tar.returncode}): {tail(tar_said)}")
    if failures:
        raise ToolError("; ".join(failures))
