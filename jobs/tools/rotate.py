"""Rotate log files in volumes, then compress and prune (inside ops containers).

    python -m jobs.tools.rotate rotate (--state JSON | --state-stdin) [--max-size N] [--max-age S]
        [--min-size N] [--mode rename|copytruncate] GLOB...
    python -m jobs.tools.rotate finish [--compression zstd|gzip|none]
        [--delay-compression] [--keep-last N] [--keep-age S] GLOB...

Two phases, because the daemon signals the app between them: the app keeps
writing into a renamed file until it reopens its log, so the rotated file is
compressed only after the signal (and once it stopped growing).

``rotate`` decides per live file (the globs' matches that are not rotated files):
it rotates when ``size >= max-size``, or when ``max-age`` passed since the last
rotation (the state, kept by the daemon) and ``size >= min-size``; an empty file
is never rotated. A file seen for the first time starts its age now. ``rename``
moves the file to ``<name>.<UTC YYYYmmddTHHMMSSZ>`` and creates an empty one
with the same mode and owner; ``copytruncate`` copies, then truncates in place
(lines written between the copy and the truncation are lost). Its result (a control
line): ``rotated`` ([{path, to}]) and ``state`` ({path: {since}}), a ``RotateResult``.
The daemon passes the state on stdin (``--state-stdin``): it grows with the number of
files, and one argument may hold at most 128 KiB.

``finish`` compresses every rotated file not compressed yet (with
``--delay-compression``, all but the newest of each live file) and deletes
rotated files beyond ``keep-last`` (newest kept) or older than ``keep-age``. Its
result: ``compressed`` and ``deleted``, a ``FinishResult``.

The command line is a ``RotateRequest`` or a ``FinishRequest``, the results and the
state are typed too: all in ``jobs.protocol.rotate``, shared with the plan and the
daemon.

Only names of the exact pattern ``<live name>.<stamp>[-N][.zst|.gz]`` are ever
compressed or deleted.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import emit, guarded, say
from jobs.protocol.rotate import (
    FinishRequest,
    FinishResult,
    RotateRequest,
    RotateResult,
    State,
    parse_command,
    read_state,
)
from jobs.tools.paths import inside, mount_points, open_file, regular

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_ROTATED = re.compile(
    r"^(?P<base>.+)\.(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?(?P<ext>\.zst|\.gz)?$"
)
COMPRESSORS = {"zstd": (["zstd", "-q", "-c"], ".zst"), "gzip": (["gzip", "-n", "-c"], ".gz")}
QUIET_S = 1.0
"""A rotated file is compressed once its size stayed the same this long (the app has
reopened its log)."""
QUIET_MAX_S = 30.0
STALE_PARTIAL_S = 60.0
"""A compression's partial file untouched this long was left by a killed run."""


TOOL = "rotate"
"""The prefix of the tool's diagnostics on stderr."""


class RotateError(Exception):
    """A failure with a message for the run's error."""


def _rotation(name: str, base: str) -> tuple[datetime, int] | None:
    """The rotation time and the '-N' (0 without) in ``name`` if it is a rotated file of live
    file ``base``."""
    match = _ROTATED.match(name)
    if match is None or match["base"] != base:
        return None
    try:
        stamp = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # a name of our pattern with no such time (month 13): not ours
        return None
    return stamp, int(match["n"] or 0)


def live_files(patterns: list[str], roots: list[Path] | None = None) -> list[Path]:
    """Regular files matching the globs, rotated files excluded (absolute patterns). A match
    that is a symlink, or whose real location is outside ``roots`` (a directory symlink
    leading out of the volumes), is left alone with a diagnostic."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(pattern)):  # noqa: PTH207 - absolute patterns
            path = Path(name)
            if not regular(path) or _ROTATED.match(path.name) is not None:
                continue
            if not inside(path, roots):
                say(TOOL, f"{path} leads out of the mounted volumes (a symlink): left alone")
                continue
            found.setdefault(str(path), path)
    return list(found.values())


def _free_name(path: Path, now: datetime) -> Path:
    """A rotated name no file, link or dangling link holds yet."""
    stamp = now.astimezone(UTC).strftime(STAMP_FORMAT)
    candidate, n = path.with_name(f"{path.name}.{stamp}"), 0
    while any(
        os.path.lexists(candidate.with_name(candidate.name + ext)) for ext in ("", ".zst", ".gz")
    ):
        n += 1
        candidate = path.with_name(f"{path.name}.{stamp}-{n}")
    return candidate


def _create(path: Path, mode: int = 0o600) -> int:
    """A new file at ``path``, never through a symlink nor over anything there."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def _rename(path: Path, to: Path) -> None:
    info = path.stat()
    path.rename(to)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, info.st_mode & 0o7777)
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
        os.fchmod(fd, info.st_mode & 0o7777)
    finally:
        os.close(fd)


def _copytruncate(path: Path, to: Path) -> None:
    info = path.stat()
    # One descriptor for the copy and the truncation: both act on the file that was opened,
    # never through a symlink put in its place.
    with os.fdopen(os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC), "r+b") as live:
        with os.fdopen(_create(to), "wb") as copy:
            shutil.copyfileobj(live, copy)
            os.fchown(copy.fileno(), info.st_uid, info.st_gid)
        shutil.copystat(path, to, follow_symlinks=False)
        live.truncate(0)


def rotate(
    request: RotateRequest,
    state: State,
    *,
    now: datetime,
    roots: list[Path] | None = None,
) -> dict[str, object]:
    """Rotate what is due; return what was rotated and the new state."""
    moves: list[tuple[str, str]] = []
    new_state: State = {}
    max_size, max_age = request.max_size, request.max_age
    for path in live_files(list(request.paths), roots):
        key = str(path)
        since = datetime.fromisoformat(state.get(key, {}).get("since", now.isoformat()))
        size = path.stat().st_size
        due_size = max_size is not None and size >= max_size
        due_age = max_age is not None and now - since >= timedelta(seconds=max_age)
        if size > 0 and (due_size or (due_age and size >= request.min_size)):
            to = _free_name(path, now)
            (_rename if request.mode == "rename" else _copytruncate)(path, to)
            moves.append((key, str(to)))
            since = now
        new_state[key] = {"since": since.isoformat()}
    return RotateResult(tuple(moves), new_state).to_json()


def _wait_quiet(path: Path) -> bool:
    """Until ``path`` stopped growing for QUIET_S (the app reopened its log); False if it
    still grows after QUIET_MAX_S (the app has not reopened: leave it uncompressed)."""
    if time.time() - path.stat().st_mtime >= QUIET_S:
        return True  # not written to lately: an older rotation, or the app reopened long ago
    deadline = time.monotonic() + QUIET_MAX_S
    last = path.stat().st_size
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        size = path.stat().st_size
        if size != last:
            last, quiet_since = size, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return True
    return False


def _unchanged(path: Path, before: os.stat_result) -> bool:
    after = path.stat()
    return (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _compress(path: Path, compression: str) -> Path | None:
    """``path`` compressed (the original removed), or None — left as it is for the next run —
    when it is still being written: deleting it then would lose what the app writes into it
    before it reopens its log."""
    argv, ext = COMPRESSORS[compression]
    final = path.with_name(path.name + ext)
    partial = path.with_name(final.name + ".partial")
    if not _wait_quiet(path):
        say(TOOL, f"{path} still grows (has the app reopened its log?): not compressed")
        return None
    before = path.stat()
    try:
        fd = _create(partial)
    except FileExistsError:
        say(TOOL, f"{partial} exists and is not ours to replace: {path} not compressed")
        return None
    try:
        source = open_file(path)  # a symlink put there meanwhile is not followed
    except OSError as e:
        os.close(fd)
        partial.unlink(missing_ok=True)
        say(TOOL, f"{path}: {e.strerror}: not compressed")
        return None
    with source, os.fdopen(fd, "wb") as out:
        done = subprocess.run(
            [*argv], stdin=source, stdout=out, stderr=subprocess.PIPE, check=False
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RotateError(
                f"{compression} failed on {path}: {done.stderr.decode('utf-8', 'replace').strip()}"
            )
        out.flush()
        os.fsync(out.fileno())
    shutil.copystat(path, partial, follow_symlinks=False)
    os.chown(partial, before.st_uid, before.st_gid, follow_symlinks=False)
    partial.rename(final)
    if not _unchanged(path, before):  # written to during the compression: keep the original
        final.unlink(missing_ok=True)
        say(TOOL, f"{path} was written to while compressed: left for the next run")
        return None
    path.unlink()
    return final


def _stale_partials(live: Path, now: float) -> list[Path]:
    """What a killed compression of ``live``'s rotated files left: only names of the exact
    pattern ``<live>.<stamp>[-N].zst|gz.partial``, regular files, untouched for
    STALE_PARTIAL_S (so never one still being written)."""
    found = []
    for path in live.parent.glob(f"{glob.escape(live.name)}.*.partial"):
        match = _ROTATED.match(path.name.removesuffix(".partial"))
        if match is None or match["base"] != live.name or match["ext"] is None:
            continue
        if regular(path) and now - path.lstat().st_mtime >= STALE_PARTIAL_S:
            found.append(path)
    return found


def _rotated_of(live: Path) -> list[tuple[datetime, Path]]:
    """``live``'s rotated files (regular files of the exact pattern), newest first: by their
    time, then, within one second, in the order they were made ('', '-1', '-2' … '-10',
    whatever the extension), then by name — a plain file and its compressed twin of one
    stamp and N (a crash between compressing and unlinking, or '.gz' beside '.zst') get an
    order that does not depend on the directory's listing order."""
    found: list[tuple[datetime, int, str, Path]] = []
    for path in live.parent.iterdir():
        rotation = _rotation(path.name, live.name)
        if rotation is not None and regular(path):
            found.append((*rotation, path.name, path))
    found.sort(reverse=True)  # names differ within one directory: paths are never compared
    return [(stamp, path) for stamp, _n, _name, path in found]


def finish(
    request: FinishRequest,
    *,
    now: datetime,
    roots: list[Path] | None = None,
) -> dict[str, object]:
    """Compress rotated files, then prune them; return what was done. A rotated file that is
    still being written (the app has not reopened its log) is neither compressed nor
    deleted."""
    compressed: list[str] = []
    deleted: list[str] = []
    compression, keep_last, keep_age = request.compression, request.keep_last, request.keep_age
    for live in live_files(list(request.paths), roots):
        for stale in _stale_partials(live, time.time()):
            stale.unlink(missing_ok=True)  # a killed compression
        rotated = _rotated_of(live)
        growing: set[Path] = set()
        if compression != "none":
            pending = [p for _, p in rotated if not p.name.endswith((".zst", ".gz"))]
            newest = rotated[0][1] if rotated else None
            for path in pending:
                if request.delay_compression and path == newest:
                    continue
                packed = _compress(path, compression)
                if packed is not None:
                    compressed.append(str(packed))
                elif regular(path):
                    growing.add(path)
            rotated = [
                (stamp, p if p.exists() else p.with_name(p.name + COMPRESSORS[compression][1]))
                for stamp, p in rotated
            ]
        for index, (stamp, path) in enumerate(rotated):
            too_many = keep_last is not None and index >= keep_last
            too_old = keep_age is not None and now - stamp > timedelta(seconds=keep_age)
            if (too_many or too_old) and _may_delete(path, growing):
                path.unlink(missing_ok=True)
                deleted.append(str(path))
    return FinishResult(tuple(compressed), tuple(deleted)).to_json()


def _may_delete(path: Path, growing: set[Path]) -> bool:
    """A compressed file is ours and complete; an uncompressed one goes only once nothing
    writes into it any more (its app may not have reopened its log yet)."""
    if path not in growing and (path.name.endswith((".zst", ".gz")) or _wait_quiet(path)):
        return True
    say(TOOL, f"{path} is still being written: not deleted")
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 with the result as a control line, 1 with the error on stderr, 2
    when the state from the daemon cannot be read (a bug: say what)."""
    request = parse_command(argv)
    roots = mount_points() if request.confine else None
    try:
        result = _run(request, datetime.now(UTC), roots)
    except (RotateError, OSError) as e:
        say(TOOL, str(e))
        return 1
    except RequestError as e:
        say(TOOL, f"the state cannot be used: {e}")
        return 2
    except json.JSONDecodeError as e:
        say(TOOL, f"the state is not valid JSON: {e}")
        return 2
    emit({"result": result})
    return 0


def _run(
    request: RotateRequest | FinishRequest, now: datetime, roots: list[Path] | None
) -> dict[str, object]:
    """Do what ``request`` asks; the state comes from stdin's first line unless given."""
    if isinstance(request, RotateRequest):
        text = sys.stdin.readline() if request.state is None else request.state
        return rotate(request, read_state(text), now=now, roots=roots)
    return finish(request, now=now, roots=roots)


if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
