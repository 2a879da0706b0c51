"""Make, check and restore backup archives (inside an ops container).

    python -m jobs.tools.backup create --job NAME --target DIR [--compression zstd] SOURCE...
    python -m jobs.tools.backup verify --target DIR ARCHIVE
    python -m jobs.tools.backup restore --target DIR ARCHIVE [--root /]

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
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from jobs.protocol import emit, guarded, say
from jobs.retention import (
    SUFFIXES,
    Retention,
    archive_name,
    archive_time,
    future_archives,
    to_delete,
)

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
                self.procs.append(subprocess.Popen([*NICE, *argv], stdin=read_fd, stdout=out_fd))
            finally:
                os.close(read_fd)
                os.close(write_fd)
        except BaseException:
            self.kill()
            self.close()
            raise

    def _tar(self, argv: list[str], out_fd: int) -> None:
        self.procs.append(
            subprocess.Popen(argv, stdout=out_fd, stderr=self.messages, pass_fds=(self.index,))
        )

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
    relative = [str(s.absolute()).lstrip("/") or "." for s in sources]
    out_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    pipeline: _Pipeline | None = None
    try:
        skip = [str(e.absolute()).lstrip("/") for e in exclude or []]
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


_SYSTEM_MOUNTS = ("/", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf")
_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def volume_mounts(target: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The volumes mounted into this container (its --volumes-from and -v mounts), except
    the target and the engine's own files (/etc/hosts…) and system trees."""
    found: set[Path] = set()
    target = target.absolute()
    for line in mountinfo.read_text().splitlines():
        point = Path(_unescape(line.split()[4]))
        text = str(point)
        if text in _SYSTEM_MOUNTS or any(
            text == t or text.startswith(t + "/") for t in _SYSTEM_TREES
        ):
            continue
        if point == target or target in point.parents or point in target.parents:
            continue
        found.add(point)
    return sorted(found)


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


def restore(
    target: Path, name: str, root: Path, only: list[str] | None = None
) -> dict[str, object]:
    """Verify, then extract the archive under ``root`` (owners, modes and links as stored);
    ``only``: just these absolute paths of the archive."""
    began = time.monotonic()
    verify(target, name)
    decompress = DECOMPRESSORS[_suffix(name)]
    archive = target / name
    members = [p.lstrip("/") for p in only or []]
    extract = [
        "tar",
        "--extract",
        "--file=-",
        "--numeric-owner",
        "--same-permissions",
        f"--directory={root}",
        "--",
        *members,
    ]
    with archive.open("rb") as source:
        if decompress is None:
            done = subprocess.run(extract, stdin=source, capture_output=True, check=False)
        else:
            unpack = subprocess.Popen(decompress, stdin=source, stdout=subprocess.PIPE)
            done = subprocess.run(extract, stdin=unpack.stdout, capture_output=True, check=False)
            if unpack.stdout is not None:
                unpack.stdout.close()
            if unpack.wait() != 0:
                raise ToolError(f"decompressing {name} failed (exit {unpack.returncode})")
    if done.returncode != 0:
        raise ToolError(
            f"tar could not extract {name}: {done.stderr.decode('utf-8', 'replace').strip()}"
        )
    return {
        "archive": name,
        "restored_to": str(root),
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
            result = restore(args.target, args.archive, args.root, args.only)
    except ToolError as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
