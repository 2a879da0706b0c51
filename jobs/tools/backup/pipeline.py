"""The archive being written: tar (then a compressor, then age) into the partial file, hashed
behind them.

``Pipeline`` starts the processes and checks how they ended; ``follow`` reads the file
behind the writer and returns its size and sha256 once the writer has ended."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from typing import TYPE_CHECKING

from jobs.tools.backup.keys import Terminal, encrypting
from jobs.tools.backup.processes import CHUNK, ToolError, start, tail

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

RECORD_BLOCKS = 64
"""tar records of 32 KiB (64 blocks) instead of tar's 10 KiB: a third of the writes into
the compressor's pipe (measured: -0.2 CPU s per GiB). The archive's end is padded to a
record: 32 KiB stays below a pipe's 64 KiB, so `zstd -dc A | tar -x` under `pipefail`
never sees the decompressor killed by SIGPIPE when tar stops at the end marker."""
PIPE_BYTES = 1024 * 1024
"""Size asked for the tar → compressor pipe (Linux's default is 64 KiB); fewer context
switches between the two. Without the right to grow it, the default stays."""
FOLLOW_PAUSE = 0.005
"""Seconds the hashing loop waits when it has caught up with the compressor."""
NICE = ["nice", "-n", "10"]
"""tar and the compressor run below the tool's priority: the sha256 (one stream, one
core at most) is the chain that ends last when the data does not compress, and it must
not wait for a CPU (80 % incompressible GiB: 4.5 s → 3.5 s, docs/performance.md)."""
WRITEBACK = 8 * 1024 * 1024
"""Every this many bytes hashed, the hashing loop starts their writeback to disk and
drops them from the page cache: the final fsync has little left to wait for, and a
backup does not push the application's data out of the cache."""
COMPRESSORS = {"zstd": ["zstd", "-q", "-c", "-T0"], "gzip": ["gzip", "-c"], "none": None}
TAR_CREATE = [
    "tar",
    "--create",
    "--file=-",
    f"--blocking-factor={RECORD_BLOCKS}",
    "--format=gnu",
    "--numeric-owner",
    "--directory=/",
]
"""GNU format, tar's default: the POSIX (pax) format would add an extended header to
nearly every member for sub-second times, +8 % bytes and +25 % time on many small files
(docs/performance.md); backups keep modification times to the second."""


TOTALS = re.compile(r"^Total bytes written: (\d+).*$\n?", re.MULTILINE)
"""What tar's --totals prints on its stderr when it ends."""


def _scratch(directory: Path) -> int:
    """An unnamed read-write file: on the target's file system when it supports that
    (O_TMPFILE; nothing to clean after a kill), else in memory."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        return os.memfd_create("crontainer-backup")


def _lines(fd: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    count = 0
    while chunk := os.read(fd, CHUNK):
        count += chunk.count(b"\n")
    return count


def pipe() -> tuple[int, int]:
    """A pipe (read end, write end) of PIPE_BYTES where this process may grow it."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_fd, write_fd


Filter = tuple[str, list[str], bytes | None]
"""A program after tar: its name, its command line, what to type into its terminal."""


def filters(compression: str, recipients: list[str], passphrase: bytes | None) -> list[Filter]:
    """The programs after tar, each reading the one before: the compressor, then age when
    there are recipients (public keys: no secret on its command line) or a passphrase."""
    chain: list[Filter] = []
    compress = COMPRESSORS[compression]
    if compress is not None:
        chain.append((compression, compress, None))
    if recipients or passphrase is not None:
        chain.append(("age", *encrypting(recipients, passphrase)))
    return chain


class Pipeline:
    """tar (then a compressor, then age) writing the archive straight into the partial file.

    tar's index of members (one line each: tar escapes newlines in names) and its
    messages go to unnamed scratch files: counting members costs no second walk of the
    tree, and neither output can fill a pipe nobody reads while the archive is made."""

    def __init__(
        self,
        relative: list[str],
        compression: str,
        out_fd: int,
        scratch: Path,
        exclude: list[str] | None = None,
        *,
        recipients: list[str] | None = None,
        passphrase: bytes | None = None,
    ) -> None:
        self.chain = filters(compression, recipients or [], passphrase)
        self.terminals: list[Terminal] = []
        self.index, self.messages = _scratch(scratch), _scratch(scratch)
        self.said = [_scratch(scratch) for _ in self.chain]
        self.procs: list[subprocess.Popen[bytes]] = []
        tar_argv = [
            *NICE,
            *TAR_CREATE,
            "--totals",
            "--verbose",
            f"--index-file=/dev/fd/{self.index}",
        ]
        if exclude:  # exact archive names, anchored at the start: nothing else matches
            tar_argv += ["--anchored", "--no-wildcards", *(f"--exclude={e}" for e in exclude)]
        tar_argv += ["--", *relative]
        try:
            self._start(tar_argv, out_fd)
        except BaseException:
            self.kill()
            self.close()
            raise

    def _start(self, tar_argv: list[str], out_fd: int) -> None:
        """tar, then each filter reading the one before; the last writes ``out_fd``."""
        ends = [pipe() for _ in self.chain]  # (read, write): tar → first filter → …
        try:
            first_out = ends[0][1] if ends else out_fd
            self.procs.append(
                start(tar_argv, stdout=first_out, stderr=self.messages, pass_fds=(self.index,))
            )
            for number, (_, argv, answer) in enumerate(self.chain):
                output = ends[number + 1][1] if number + 1 < len(ends) else out_fd
                said = self.said[number]
                terminal = None if answer is None else Terminal(answer)
                if terminal is not None:
                    self.terminals.append(terminal)
                command = [*NICE, *argv]
                reading = ends[number][0]
                self.procs.append(
                    start(command, stdin=reading, stdout=output, stderr=said, terminal=terminal)
                )
        finally:
            for read_fd, write_fd in ends:
                os.close(read_fd)
                os.close(write_fd)

    def running(self) -> bool:
        """The last process, the one writing the archive, has not ended."""
        return self.procs[-1].poll() is None

    def check(self) -> tuple[int, int | None]:
        """Wait for every process; return the number of members and the bytes of the tar
        stream (the data before compression), or raise ToolError naming the one that
        failed (a failing filter kills the programs before it with SIGPIPE, so the last one
        that failed is the cause: checked first)."""
        codes = [proc.wait() for proc in self.procs]
        said = tail(self.messages)
        totals = TOTALS.search(said)
        ran = list(zip(self.chain, codes[1:], self.said, strict=True))
        for (name, _, _), code, fd in reversed(ran):
            if code != 0:
                message = tail(fd)
                raise ToolError(f"{name} failed (exit {code})" + (f": {message}" * bool(message)))
        if codes[0] != 0:
            said = TOTALS.sub("", said).strip()
            raise ToolError(f"tar failed (exit {codes[0]}): {said}")
        # None only if an ops image's tar speaks another language
        return _lines(self.index), int(totals.group(1)) if totals else None

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def close(self) -> None:
        for fd in (self.index, self.messages, *self.said):
            os.close(fd)
        for terminal in self.terminals:
            terminal.close()


def follow(path: Path, pipeline: Pipeline) -> tuple[int, str]:
    """Hash the archive while the pipeline writes it, reading the file behind the
    writer (from the page cache); return its size and sha256 once the writer ended.

    The hash never holds the writer back: on a CPU without SHA instructions sha256
    (about 320 MiB/s) is slower than zstd on incompressible data, and behind a pipe it
    would stall the compressor; behind the file it falls back and catches up while tar
    reads small, compressible files. The bytes never pass through this process on their
    way to disk either: reading the file is one copy, a pipe through the tool was two
    and a write."""
    digest, size, done = hashlib.sha256(), 0, 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as archive:
        while True:
            ended = not pipeline.running()  # before the read: then an empty read is the end
            count = archive.readinto(buffer)
            if count:
                digest.update(view[:count])
                size += count
                if size - done >= WRITEBACK:
                    os.posix_fadvise(archive.fileno(), done, size - done, os.POSIX_FADV_DONTNEED)
                    done = size
            elif ended:
                return size, digest.hexdigest()
            else:
                time.sleep(FOLLOW_PAUSE)
