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

    from jobs.tools.backup.keys import AgeKey

DECOMPRESSORS = {
    ".tar.zst": ["zstd", "-q", "-d", "-c"],
    ".tar.gz": ["gzip", "-d", "-c"],
    ".tar": None,
}
NO_MATCH = ("no identity matched any of the recipients", "incorrect passphrase")
"""What age 1.1 says when the identity (or passphrase) given is not the archive's."""
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


def _readers(name: str, key: AgeKey | None) -> list[tuple[str, list[str]]]:
    """The programs before tar (name, argv): age decrypting with ``key`` (an ``….age``
    archive), then the decompressor."""
    decompress = DECOMPRESSORS[_suffix(name)]
    chain = []
    if name.endswith(AGE_SUFFIX):
        if key is None:
            raise ToolError(
                f"{name} is encrypted: restoring it needs an age identity or the passphrase"
            )
        chain.append(("age", key.argv()))
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
    archive: Path, argv: list[str], on_line: Callable[[bytes], None], key: AgeKey | None = None
) -> None:
    """Feed the archive, decrypted with ``key`` (an ``….age`` one) and decompressed, to
    ``argv`` (tar, in the C locale: names are bytes); each line tar prints goes to
    ``on_line``. Raise ToolError with what failed said."""
    chain = _readers(archive.name, key)
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as held:
        feed: IO[bytes] | None = held.enter_context(archive.open("rb"))
        said = [held.enter_context(tempfile.TemporaryFile()) for _ in range(len(chain) + 1)]
        try:
            for (_, program), messages in zip(chain, said, strict=False):
                procs.append(_start_reader(program, feed, messages, key, held))
                if feed is not None and len(procs) > 1:
                    feed.close()  # the reader's now: the writer sees SIGPIPE if it stops
                feed = procs[-1].stdout
            env = {**os.environ, "LC_ALL": "C"}
            procs.append(start(argv, stdin=feed, stdout=subprocess.PIPE, stderr=said[-1], env=env))
            if chain and feed is not None:
                feed.close()
            with procs[-1].stdout or contextlib.nullcontext(()) as lines:
                for line in lines:
                    on_line(line.rstrip(b"\n"))
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            raise
        readers = [(n, p, f.fileno()) for (n, _), p, f in zip(chain, procs, said, strict=False)]
        _check_readers(archive.name, procs[-1], said[-1].fileno(), readers, key)


def _start_reader(
    program: list[str],
    feed: IO[bytes] | None,
    messages: IO[bytes],
    key: AgeKey | None,
    held: contextlib.ExitStack,
) -> subprocess.Popen[bytes]:
    """One program before tar; age gets the key (its identity's descriptor, or a terminal
    typing the passphrase, closed when the reading ends)."""
    if program[0] != "age" or key is None:
        return start(program, stdin=feed, stdout=subprocess.PIPE, stderr=messages)
    terminal = key.terminal()
    if terminal is not None:
        held.callback(terminal.close)
    out = subprocess.PIPE
    fds = key.pass_fds()
    return start(program, stdin=feed, stdout=out, stderr=messages, pass_fds=fds, terminal=terminal)


def _check_readers(
    name: str,
    tar: subprocess.Popen[bytes],
    tar_said: int,
    readers: list[tuple[str, subprocess.Popen[bytes], int]],
    key: AgeKey | None,
) -> None:
    """Wait for tar and the programs feeding it (name, process, messages); ToolError with
    what the failing ones said. age failing is the cause of whatever failed after it: a
    key that does not decrypt the archive is said so."""
    failures = []
    for program, proc, said in readers:
        code = proc.wait()
        # tar stops reading at the archive's end marker; a reader still writing the last
        # record's padding then dies of SIGPIPE: no failure, tar read the archive
        if code != 0 and not (code == -signal.SIGPIPE and tar.wait() == 0):
            message = tail(said)
            if program == "age":
                message = message.splitlines()[0] if message else ""  # not age's report link
            if program == "age" and key is not None and any(m in message for m in NO_MATCH):
                raise ToolError(f"{key.what} does not decrypt {name} ({message})")
            if program == "age":
                raise ToolError(f"age failed (exit {code}): {message}")
            failures.append(f"{program} failed (exit {code}): {message}")
    if tar.wait() != 0:
        failures.insert(0, f"tar failed (exit {tar.returncode}): {tail(tar_said)}")
    if failures:
        raise ToolError("; ".join(failures))
