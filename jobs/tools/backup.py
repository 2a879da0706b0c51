"""Make, check and restore backup archives (inside an ops container).

    python -m jobs.tools.backup create --job NAME --target DIR [--compression zstd] SOURCE...
    python -m jobs.tools.backup verify --target DIR ARCHIVE
    python -m jobs.tools.backup restore --target DIR [--only PATH]... ARCHIVE [--root /]

``create`` archives the SOURCE paths with GNU tar (its own default format: long and
non-ASCII names, numeric owners, permissions, symlinks, hard links, empty
directories; modification times to the second), compressed by zstd or gzip, into
``DIR/<job>-<UTC time>.tar[.zst|.gz]``.
The archive is written under ``<name>.partial``, its sha256 computed on the way,
flushed to disk, then renamed; ``<name>.sha256`` (sha256sum format) is written the
same way. A killed run therefore never leaves a final-named incomplete archive,
and the next ``create`` removes the job's stale ``.partial`` files. The result (a
control line on stderr, ``jobs.protocol``): archive, bytes (of the archive), files,
data_bytes (of the tar stream, before compression), sha256, archive_s (seconds it took).

``restore`` verifies the checksum, lists the archive (``tar --list``), and refuses before
writing anything if a member is under none of the volumes mounted here (the target
excepted). It then extracts, in one tar pass, each volume's members into a new staging
directory in that volume (``.crontainer-restore-<hex>``, the deepest mount for nested
ones), and moves the staged tree into place with renames on one file system, following
no link already in the volume: directories merge into real directories, anything else in
the way is replaced. A failed extraction removes the staging directories (the volumes are
untouched); a move that fails half-way stops and names the staging directory that holds
the rest. Entries the archive does not hold are kept. The result: archive, restored_to
(the root), volumes (those written), entries (members restored), duration_s.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from jobs.protocol.lines import emit, guarded, say
from jobs.retention import (
    SUFFIXES,
    Retention,
    archive_name,
    archive_time,
    future_archives,
    to_delete,
)
from jobs.tools.paths import mount_points

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 1024 * 1024
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
DECOMPRESSORS = {
    ".tar.zst": ["zstd", "-q", "-d", "-c"],
    ".tar.gz": ["gzip", "-d", "-c"],
    ".tar": None,
}
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


TOOL = "backup"
"""The prefix of the tool's diagnostics on stderr."""


class ToolError(Exception):
    """A failure with a message for the run's error."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def clean_partials(target: Path, job: str) -> list[str]:
    """Remove what killed runs of ``job`` left under temporary names: only names of this
    job's exact pattern (``<job>-<stamp>.tar[.zst|.gz][.sha256].partial``) — job ``db``
    never touches ``db-logs-….partial`` of a job ``db-logs`` sharing the target."""
    removed = []
    for stale in target.glob(f"{glob.escape(job)}-*.partial"):
        name = stale.name.removesuffix(".partial").removesuffix(".sha256")
        if archive_time(job, name) is None or stale.is_symlink() or not stale.is_file():
            continue
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    return removed


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


def _tail(fd: int, limit: int = 4096) -> str:
    end = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, end - limit), os.SEEK_SET)
    return os.read(fd, limit).decode("utf-8", "replace").strip()


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_fd, write_fd


def _start(
    argv: list[str],
    *,
    stdin: int | IO[bytes] | None = None,
    stdout: int | None = None,
    stderr: int | IO[bytes] | None = None,
    pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start one process of tar's pipeline; a program that cannot be started (not in the
    ops image, not executable) is the tool's error naming it, not a traceback."""
    try:
        return subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds, env=env
        )
    except OSError as e:
        raise ToolError(f"cannot start {argv[0]}: {e.strerror or e}") from None


class _Pipeline:
    """tar (and a compressor) writing the archive straight into the partial file.

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
    ) -> None:
        self.compression = compression
        self.index, self.messages = _scratch(scratch), _scratch(scratch)
        self.procs: list[subprocess.Popen[bytes]] = []
        argv = COMPRESSORS[compression]
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
            if argv is None:
                self._tar(tar_argv, out_fd)
                return
            read_fd, write_fd = _pipe()
            try:
                self._tar(tar_argv, write_fd)
                self.procs.append(_start([*NICE, *argv], stdin=read_fd, stdout=out_fd))
            finally:
                os.close(read_fd)
                os.close(write_fd)
        except BaseException:
            self.kill()
            self.close()
            raise

    def _tar(self, argv: list[str], out_fd: int) -> None:
        self.procs.append(_start(argv, stdout=out_fd, stderr=self.messages, pass_fds=(self.index,)))

    def running(self) -> bool:
        """The last process, the one writing the archive, has not ended."""
        return self.procs[-1].poll() is None

    def check(self) -> tuple[int, int | None]:
        """Wait for every process; return the number of members and the bytes of the tar
        stream (the data before compression), or raise ToolError naming the one that
        failed (a failing compressor kills tar with SIGPIPE, so it is checked first: it is
        the cause)."""
        codes = [proc.wait() for proc in self.procs]
        said = _tail(self.messages)
        totals = TOTALS.search(said)
        if len(codes) > 1 and codes[1] != 0:
            raise ToolError(f"{self.compression} failed (exit {codes[1]})")
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
        os.close(self.index)
        os.close(self.messages)


def _follow(path: Path, pipeline: _Pipeline) -> tuple[int, str]:
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


def member_name(path: Path) -> str:
    """The name tar gives ``path`` in an archive made from the root (``--directory=/``):
    the absolute path without its leading slash, and ``.`` for the root itself."""
    return str(path.absolute()).lstrip("/") or "."


def create(
    job: str,
    target: Path,
    sources: list[Path],
    compression: str,
    now: datetime | None = None,
    *,
    exclude: list[Path] | None = None,
) -> dict[str, object]:
    """Archive ``sources`` into ``target`` (without the ``exclude`` trees); return what the run
    reports."""
    missing = [str(s) for s in sources if not s.exists() and not s.is_symlink()]
    if missing:
        raise ToolError(f"nothing to back up at {', '.join(missing)}")
    for source in sources:
        if _identity(source) == _identity(target) or source.absolute() in target.absolute().parents:
            raise ToolError(
                f"{source} holds the target {target}: the backup would hold its own archives"
            )
    target.mkdir(parents=True, exist_ok=True)
    clean_partials(target, job)
    began = time.monotonic()
    name = archive_name(job, now or datetime.now(UTC), compression)
    partial = target / (name + ".partial")
    relative = [member_name(s) for s in sources]
    out_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    pipeline: _Pipeline | None = None
    try:
        skip = [member_name(e) for e in exclude or []]
        pipeline = _Pipeline(relative, compression, out_fd, target, skip)
        size, sha256 = _follow(partial, pipeline)
        members, data_bytes = pipeline.check()
        os.fsync(out_fd)
    except BaseException:
        if pipeline is not None:
            pipeline.kill()
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(out_fd)
        if pipeline is not None:
            pipeline.close()
    partial.replace(target / name)
    _write_atomically(target / f"{name}.sha256", f"{sha256}  {name}\n".encode())
    _fsync_dir(target)
    return {
        "archive": name,
        "bytes": size,
        "files": members,
        "data_bytes": data_bytes,
        "sha256": sha256,
        "archive_s": round(time.monotonic() - began, 3),
    }


def volume_mounts(target: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The volumes mounted into this container (its --volumes-from and -v mounts), except
    the target (and what holds it or lies in it)."""
    target = target.absolute()
    return [
        point
        for point in mount_points(mountinfo)
        if point != target and target not in point.parents and point not in target.parents
    ]


def prune(
    job: str, target: Path, policy: Retention, made: str | None = None
) -> tuple[list[str], list[str]]:
    """Delete the archives (and checksums) of ``job`` that ``policy`` does not keep, never
    ``made`` (the archive just made); return them, and the archives stamped in the future
    (kept, and reported)."""
    names = [p.name for p in target.iterdir() if p.is_file()]
    good = [n for n in names if f"{n}.sha256" in names]
    now = datetime.now(UTC)
    protect = [made] if made else []
    deleted = to_delete(job, names, policy, good, now=now, protect=protect)
    for name in deleted:
        (target / name).unlink(missing_ok=True)
        (target / f"{name}.sha256").unlink(missing_ok=True)
    return deleted, future_archives(job, names, now)


def _suffix(name: str) -> str:
    for suffix in sorted(DECOMPRESSORS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise ToolError(f"{name}: not an archive name (.tar, .tar.zst or .tar.gz)")


def verify(target: Path, name: str) -> str:
    """Check the archive against its .sha256 file; return the digest or raise ToolError."""
    archive, sidecar = target / name, target / f"{name}.sha256"
    if not archive.is_file():
        raise ToolError(f"{archive}: no such archive")
    try:
        expected = sidecar.read_text().split()[0]
    except (OSError, IndexError):
        raise ToolError(f"{sidecar}: no checksum for this archive (incomplete?)") from None
    digest = hashlib.sha256()
    with archive.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ToolError(
            f"{archive}: checksum mismatch (expected {expected}, got {digest.hexdigest()})"
        )
    return expected


def listing(job: str, target: Path) -> list[dict[str, object]]:
    """The job's archives in ``target``, newest first: name, time, bytes, good (has checksum),
    future (stamped later than now: made while the clock was wrong)."""
    names = {p.name: p for p in target.iterdir() if p.is_file()} if target.is_dir() else {}
    future = set(future_archives(job, names, datetime.now(UTC)))
    found = []
    for name, path in names.items():
        when = archive_time(job, name)
        if when is not None:
            good = f"{name}.sha256" in names
            found.append(
                {
                    "archive": name,
                    "time": when.isoformat(),
                    "bytes": path.stat().st_size,
                    "good": good,
                    "future": name in future,
                }
            )
    return sorted(found, key=lambda a: str(a["time"]), reverse=True)


STAGING_PREFIX = ".crontainer-restore-"
"""A restore's staging directory in each volume: this prefix and 16 random hex digits."""
TAR_READ = ["tar", "--file=-", "--quoting-style=escape", "--no-wildcards", "--anchored"]
"""How a restore has tar read an archive on stdin: names printed with escapes (one line
per member, whatever its name holds), member names on the command line matched literally."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ESCAPED = re.compile(rb"\\(?:([0-7]{3})|(.))", re.DOTALL)
_C_ESCAPES = {b"a": 7, b"b": 8, b"f": 12, b"n": 10, b"r": 13, b"t": 9, b"v": 11}
MAX_NAMED = 5
"""How many of the archive's paths an error names (then how many more there are)."""


def _unescape_name(line: bytes) -> str:
    """A member name as tar's escape quoting style printed it (C locale), decoded."""

    def one(match: re.Match[bytes]) -> bytes:
        octal, code = match.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        return bytes([_C_ESCAPES[code]]) if code in _C_ESCAPES else code

    return os.fsdecode(_ESCAPED.sub(one, line))


def _bre(text: str) -> str:
    """``text`` as a POSIX basic regular expression that matches just itself."""
    return re.sub(r"([\\.\[*^$])", r"\\\1", text)


def _read_with_tar(archive: Path, argv: list[str], on_line: Callable[[bytes], None]) -> None:
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
                    _start(decompress, stdin=source, stdout=subprocess.PIPE, stderr=unpack_said)
                )
                feed = procs[0].stdout
            env = {**os.environ, "LC_ALL": "C"}
            tar = _start(argv, stdin=feed, stdout=subprocess.PIPE, stderr=tar_said, env=env)
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
        failures.append(f"tar failed (exit {tar.returncode}): {_tail(tar_said)}")
    if unpack is not None:
        name, proc, said = unpack
        code = proc.wait()
        # tar stops reading at the archive's end marker; a decompressor still writing the
        # last record's padding then dies of SIGPIPE: no failure, tar read the archive
        if code != 0 and not (code == -signal.SIGPIPE and tar.returncode == 0):
            failures.append(f"{name} failed (exit {code}): {_tail(said)}")
    if failures:
        raise ToolError("; ".join(failures))


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


def _list_members(archive: Path, selection: list[str], mounts: set[str]) -> _Members:
    """``tar --list`` of the archive (a first pass through it), every member matched to the
    deepest mount whose path holds it."""
    found = _Members()

    def one(line: bytes) -> None:
        name = _unescape_name(line)
        path = name.rstrip("/")
        parts = path.split("/")
        found.count += 1
        if name.endswith("/"):
            found.directories.add(path)
        elif path in mounts:
            found.refuse(f"/{path} (not a directory, but a volume is mounted there)")
            return
        if name.startswith("/") or ".." in parts:
            found.refuse(name)
            return
        for depth in range(len(parts), 0, -1):
            mount = "/".join(parts[:depth])
            if mount in mounts:
                found.by_mount[mount] = found.by_mount.get(mount, 0) + 1
                return
        found.homeless_count += 1
        if len(found.homeless) < MAX_NAMED:
            found.homeless.append("/" + path)

    _read_with_tar(archive, [*TAR_READ, "--list", "--", *selection], one)
    return found


def _named(names: list[str], count: int) -> str:
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


class _Placing:
    """Moves a staged tree into its volume, following no link that is in the volume."""

    def __init__(self, directories: set[str]) -> None:
        self.directories = directories

    def merge(self, staged_parent: int, name: str, dest: int, path: str) -> None:
        """Move the entries of the staged directory ``name`` (in ``staged_parent``) into the
        real directory ``dest``, remove it, then give ``dest`` its owner, mode and times if
        it is a member of the archive (``path``)."""
        staged = os.open(name, _DIRECTORY, dir_fd=staged_parent)
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
            inner = os.open(name, _DIRECTORY, dir_fd=dest)
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
    archive: Path, root: Path, staging: str, fds: dict[str, int], *, selection: list[str]
) -> None:
    """Make the staging directory in each mount (``fds``, the deepest first) and extract
    the members into them in one pass. On any failure, remove them all."""
    mounts = list(fds)
    extract = [
        *TAR_READ,
        "--extract",
        "--numeric-owner",
        "--same-permissions",
        f"--directory={root}",
        f"--transform={_transform(mounts, staging)}",
        "--",
        *(selection or mounts),
    ]
    made: list[tuple[str, os.stat_result]] = []
    try:
        for mount in mounts:
            times = os.fstat(fds[mount])
            try:
                os.mkdir(staging, 0o700, dir_fd=fds[mount])
            except OSError as e:
                raise ToolError(f"cannot make {root / mount / staging}: {e.strerror}") from None
            made.append((mount, times))
        _read_with_tar(archive, extract, lambda _: None)
    except BaseException:
        for mount, times in made:
            try:
                shutil.rmtree(staging, dir_fd=fds[mount])
                os.utime(fds[mount], ns=(times.st_atime_ns, times.st_mtime_ns))
            except OSError as e:
                say(TOOL, f"could not remove the staging directory {root / mount / staging}: {e}")
        raise


def _half_moved(error: BaseException, mounts: list[Path], staging: str) -> str:
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


def _members_to_restore(archive: Path, selection: list[str], mounts: set[str]) -> _Members:
    """The archive's (selected) members, or ToolError if one cannot be restored here."""
    try:
        members = _list_members(archive, selection, mounts)
    except ToolError as e:
        raise ToolError(f"could not read {archive.name} (nothing restored): {e}") from None
    if members.refused_count:
        raise ToolError(
            f"{archive.name} holds members restore does not take (nothing restored): "
            f"{_named(members.refused, members.refused_count)}"
        )
    if members.homeless_count:
        raise ToolError(
            f"{archive.name} holds paths under no volume mounted here (nothing restored): "
            f"{_named(members.homeless, members.homeless_count)}"
        )
    return members


def _stage_and_place(
    archive: Path, root: Path, at: dict[str, Path], members: _Members, selection: list[str]
) -> None:
    """Extract into a staging directory in each receiving volume, then move into place."""
    receiving = sorted(members.by_mount, key=len, reverse=True)  # the deepest first
    staging = STAGING_PREFIX + secrets.token_hex(8)
    fds: dict[str, int] = {}
    try:
        for mount in receiving:
            try:
                fds[mount] = os.open(at[mount], _DIRECTORY)
            except OSError as e:
                raise ToolError(f"cannot restore into {at[mount]}: {e.strerror}") from None
        try:
            _stage(archive, root, staging, fds, selection=selection)
        except ToolError as e:
            raise ToolError(f"could not extract {archive.name} (nothing restored): {e}") from None
        placing = _Placing(members.directories)
        for done, mount in enumerate(receiving):
            try:
                placing.merge(fds[mount], staging, fds[mount], mount)
            except (OSError, RecursionError) as e:
                raise ToolError(
                    _half_moved(e, [at[m] for m in receiving[done:]], staging)
                ) from None
    finally:
        for fd in fds.values():
            os.close(fd)


def restore(
    target: Path,
    name: str,
    mounts: list[Path],
    only: list[str] | None = None,
    root: Path = Path("/"),
) -> dict[str, object]:
    """Verify the archive, then restore it into the volumes mounted at ``mounts`` (the
    archive's path ``p`` belongs at ``root/p``, and goes to the deepest mount holding it):
    each volume's members are extracted into a new staging directory in that volume, then
    moved into place following no link already there (README, "How a restore writes").
    ``only``: just these absolute paths of the archive."""
    began = time.monotonic()
    verify(target, name)
    archive = target / name
    root = root.absolute()
    at = {str(m.relative_to(root)): m for m in map(Path.absolute, mounts) if root in m.parents}
    selection = [p.strip("/") for p in only or []]
    members = _members_to_restore(archive, selection, set(at))
    if members.by_mount:  # else an archive (or a selection) without members: nothing to do
        _stage_and_place(archive, root, at, members, selection)
    return {
        "archive": name,
        "restored_to": str(root),
        "volumes": sorted(str(at[m]) for m in members.by_mount),
        "entries": members.count,
        "duration_s": round(time.monotonic() - began, 3),
    }


def _identity(path: Path) -> tuple[int, int] | None:
    """A directory's device and inode: the same for every mount of one volume."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def target_aliases(target: Path, points: list[Path]) -> list[Path]:
    """The mount points that show the target's own directory again: the target volume
    mounted a second time, e.g. through ``volumes_from`` an app that mounts it too."""
    mark = _identity(target)
    return [p for p in points if mark is not None and _identity(p) == mark]


def _create_command(args: argparse.Namespace) -> dict[str, object]:
    points = volume_mounts(args.target)
    aliases = target_aliases(args.target, points)
    for alias in aliases:
        say(TOOL, f"{alias} is the target volume mounted again: left out of the archive")
    sources = list(args.sources)
    if args.mounts:
        sources += [p for p in points if p not in aliases]
    if not sources:
        raise ToolError("nothing to back up: no source path and no volume mounted")
    result = create(args.job, args.target, sources, args.compression, exclude=aliases)
    policy = Retention(
        args.keep_last, args.keep_daily, args.keep_weekly, args.keep_monthly, args.timezone
    )
    result["deleted"], future = prune(args.job, args.target, policy, str(result["archive"]))
    if future:
        emit({"warning": {"event": "backup.future_archive", "archives": future}})
    result["sources"] = [str(s) for s in sources]
    seconds = max(float(str(result["archive_s"])), 0.001)
    measured = result["data_bytes"] or result["bytes"]
    result["throughput_mib_s"] = round(int(str(measured)) / seconds / (1 << 20), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 with a JSON line, or 1 with the error on stderr."""
    parser = argparse.ArgumentParser(prog="python -m jobs.tools.backup")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create")
    make.add_argument("--job", required=True)
    make.add_argument("--target", required=True, type=Path)
    make.add_argument("--compression", choices=sorted(SUFFIXES), default="zstd")
    make.add_argument("--mounts", action="store_true", help="back up every volume mounted here")
    for rule in ("last", "daily", "weekly", "monthly"):
        make.add_argument(f"--keep-{rule}", type=int)
    make.add_argument("--timezone", default="UTC", help="the zone of days, weeks and months")
    make.add_argument("sources", nargs="*", type=Path)
    check = commands.add_parser("verify")
    check.add_argument("--target", required=True, type=Path)
    check.add_argument("archive")
    back = commands.add_parser("restore")
    back.add_argument("--target", required=True, type=Path)
    back.add_argument("--root", type=Path, default=Path("/"))
    back.add_argument(
        "--only", action="append", help="restore just this archived path (repeatable)"
    )
    back.add_argument("archive")
    show = commands.add_parser("list")
    show.add_argument("--job", required=True)
    show.add_argument("--target", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            result: dict[str, object] = _create_command(args)
        elif args.command == "verify":
            result = {"archive": args.archive, "sha256": verify(args.target, args.archive)}
        elif args.command == "list":
            result = {"archives": listing(args.job, args.target)}
        else:
            mounts = volume_mounts(args.target)
            result = restore(args.target, args.archive, mounts, args.only, args.root)
    except ToolError as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
