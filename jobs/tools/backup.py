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
and the next ``create`` removes the job's stale ``.partial`` files. The result is
one JSON line: archive, bytes, files, sha256, duration_s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from jobs.retention import SUFFIXES, Retention, archive_name, archive_time, to_delete

CHUNK = 1024 * 1024
HASH_QUEUE = 16
"""Chunks in flight to the hashing thread (bounded memory: 16 MiB)."""
NICE = ["nice", "-n", "10"]
"""tar and the compressor run below the hashing thread's priority: when the CPU is the
limit, the sha256 (one stream, one core at most) is the step that must not wait."""
COMPRESSORS = {"zstd": ["zstd", "-q", "-c", "-T0"], "gzip": ["gzip", "-c"], "none": None}
DECOMPRESSORS = {
    ".tar.zst": ["zstd", "-q", "-d", "-c"],
    ".tar.gz": ["gzip", "-d", "-c"],
    ".tar": None,
}
TAR_CREATE = ["tar", "--create", "--file=-", "--format=gnu", "--numeric-owner", "--directory=/"]
"""GNU format, tar's default: the POSIX (pax) format would add an extended header to
nearly every member for sub-second times, +8 % bytes and +25 % time on many small files
(docs/performance.md); backups keep modification times to the second."""


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
    """Remove what killed runs of ``job`` left under temporary names."""
    removed = []
    for stale in target.glob(f"{job}-*.partial"):
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    return removed


class _MemberCount:
    """Counts the members tar stored, from its index (one line per member: tar escapes
    newlines in names) — what went into the archive, without a second walk of the tree.
    ``wc -l`` counts, not a Python thread: tens of thousands of small pipe reads would
    contend for the GIL with the copy and hash loop (measured: +0.5 s on 84k files)."""

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        try:
            self._wc = subprocess.Popen(["wc", "-l"], stdin=read_fd, stdout=subprocess.PIPE)
        finally:
            os.close(read_fd)

    def release(self) -> None:
        """Close our end of the index pipe (tar holds its own; EOF when tar ends)."""
        os.close(self.write_fd)

    def result(self) -> int:
        out, _ = self._wc.communicate()
        if self._wc.returncode != 0:
            raise ToolError(f"counting the archive's members failed (exit {self._wc.returncode})")
        return int(out)

    def kill(self) -> None:
        if self._wc.poll() is None:
            self._wc.kill()
        self._wc.wait()


def _pipeline(
    relative: list[str], compression: str, index_fd: int
) -> tuple[list[subprocess.Popen[bytes]], IO[bytes]]:
    """tar (and a compressor) writing the archive to a pipe, and tar's index of members to
    ``index_fd``; return the processes and the archive's pipe."""
    tar = subprocess.Popen(
        [*NICE, *TAR_CREATE, "--verbose", f"--index-file=/dev/fd/{index_fd}", "--", *relative],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(index_fd,),
    )
    argv = COMPRESSORS[compression]
    if argv is None or tar.stdout is None:
        return [tar], _stdout(tar)
    compressor = subprocess.Popen([*NICE, *argv], stdin=tar.stdout, stdout=subprocess.PIPE)
    tar.stdout.close()  # the compressor holds it now
    return [tar, compressor], _stdout(compressor)


def _stdout(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    if proc.stdout is None:
        raise ToolError(f"{proc.args!r}: no output pipe")
    return proc.stdout


def _drain(stream: IO[bytes], path: Path) -> tuple[int, str]:
    """Copy the pipe into ``path`` (flushed to disk); return its size and sha256.

    The hash runs in its own thread (hashlib releases the GIL): on a CPU without SHA
    instructions sha256 is slower than zstd, and hashing in the copy loop would stall
    the compressor behind it."""
    digest, size = hashlib.sha256(), 0
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE)

    def hash_chunks() -> None:
        while (chunk := chunks.get()) is not None:
            digest.update(chunk)

    hasher = threading.Thread(target=hash_chunks, name="sha256", daemon=True)
    hasher.start()
    try:
        with path.open("wb") as out:
            while chunk := stream.read(CHUNK):
                chunks.put(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    finally:
        chunks.put(None)
        hasher.join()
    return size, digest.hexdigest()


def _check(procs: list[subprocess.Popen[bytes]], compression: str) -> None:
    """Every process of the pipeline ended well, or ToolError naming the one that failed.

    A failing compressor kills tar with SIGPIPE, so it is checked first: it is the cause."""
    tar = procs[0]
    message = tar.stderr.read().decode("utf-8", "replace").strip() if tar.stderr else ""
    codes = [proc.wait() for proc in procs]
    if len(procs) > 1 and codes[1] != 0:
        raise ToolError(f"{compression} failed (exit {codes[1]})")
    if codes[0] != 0:
        raise ToolError(f"tar failed (exit {codes[0]}): {message}")


def create(
    job: str, target: Path, sources: list[Path], compression: str, now: datetime | None = None
) -> dict[str, object]:
    """Archive ``sources`` into ``target``; return what the run reports."""
    missing = [str(s) for s in sources if not s.exists() and not s.is_symlink()]
    if missing:
        raise ToolError(f"nothing to back up at {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    clean_partials(target, job)
    began = time.monotonic()
    name = archive_name(job, now or datetime.now(UTC), compression)
    partial = target / (name + ".partial")
    relative = [str(s.absolute()).lstrip("/") or "." for s in sources]
    counter = _MemberCount()
    try:
        procs, stream = _pipeline(relative, compression, counter.write_fd)
    finally:
        counter.release()
    try:
        size, sha256 = _drain(stream, partial)
        _check(procs, compression)
        members = counter.result()
    except BaseException:
        partial.unlink(missing_ok=True)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        counter.kill()
        raise
    partial.replace(target / name)
    _write_atomically(target / f"{name}.sha256", f"{sha256}  {name}\n".encode())
    _fsync_dir(target)
    return {
        "archive": name,
        "bytes": size,
        "files": members,
        "sha256": sha256,
        "duration_s": round(time.monotonic() - began, 3),
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


def prune(job: str, target: Path, policy: Retention) -> list[str]:
    """Delete the archives (and checksums) of ``job`` that ``policy`` does not keep."""
    names = [p.name for p in target.iterdir() if p.is_file()]
    good = [n for n in names if f"{n}.sha256" in names]
    deleted = to_delete(job, names, policy, good)
    for name in deleted:
        (target / name).unlink(missing_ok=True)
        (target / f"{name}.sha256").unlink(missing_ok=True)
    return deleted


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
    """The job's archives in ``target``, newest first: name, time, bytes, good (has checksum)."""
    names = {p.name: p for p in target.iterdir() if p.is_file()} if target.is_dir() else {}
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


def _create_command(args: argparse.Namespace) -> dict[str, object]:
    sources = list(args.sources)
    if args.mounts:
        sources += volume_mounts(args.target)
    if not sources:
        raise ToolError("nothing to back up: no source path and no volume mounted")
    result = create(args.job, args.target, sources, args.compression)
    policy = Retention(
        args.keep_last, args.keep_daily, args.keep_weekly, args.keep_monthly, args.timezone
    )
    result["deleted"] = prune(args.job, args.target, policy)
    result["sources"] = [str(s) for s in sources]
    seconds = max(float(str(result["duration_s"])), 0.001)
    result["throughput_mib_s"] = round(int(str(result["bytes"])) / seconds / (1 << 20), 1)
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
            print(json.dumps(listing(args.job, args.target)))
            return 0
        else:
            result = restore(args.target, args.archive, args.root, args.only)
    except ToolError as e:
        print(f"backup: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
