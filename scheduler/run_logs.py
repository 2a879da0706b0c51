"""``crontainer logs JOB [RUN_ID|latest] [--follow]``: a run's kept output file
(``scheduler/run_files.py``) found, printed, or followed while the run runs.

``latest`` is the newest run of the job whose file is there (the history's order; without
a history, the newest file). ``--follow`` prints the lines as they are written and ends at
the file's ``meta end`` line; or when the file, read to its end, was renamed or deleted
under it (the run ended); or when the history says the run is over (no attempt running,
none announced by a ``meta retry`` line) and the file has not grown for ``STALE_S`` (a
daemon that died in the middle of the run wrote no end line)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from scheduler.errors import CrontainerError
from scheduler.exits import EXIT_FAILURE
from scheduler.run_files import FINAL, META, RUNNING, is_end, run_path

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from scheduler.history import RunRecord

STALE_S = 5.0
"""``--follow``: a file of a run the history says is over ends the following after this
long without growing."""
POLL_S = 0.2
"""``--follow``: how often the file is read again once its end is reached."""
CHUNK = 64 * 1024


class RunLogsError(CrontainerError):
    """The run's file cannot be printed: the message and the command's exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Found:
    """The file of the run asked for."""

    run_id: str
    path: Path


def find(directory: Path, job: str, run: str, records: Sequence[RunRecord]) -> Found:
    """The file of ``run`` (a run id or ``latest``) of ``job`` in the output volume's
    ``directory``; ``records``: the job's runs in the history, newest first (possibly
    none). RunLogsError saying why there is none."""
    if run != "latest":
        path = run_path(directory, job, run)
        if path is not None:
            return Found(run, path)
        if any(r.run_id == run for r in records):
            raise RunLogsError(
                f"run {run} of job {job!r} has no output file in {directory / job}: "
                "a run that ended before the job kept its output, one deleted by "
                "on = 'failure' (it did not fail) or by keep, or one that never started"
            )
        raise RunLogsError(
            f"no run {run!r} of job {job!r} in the history nor in {directory / job} "
            f"(`crontainer history {job}` lists its runs)"
        )
    for record in records:
        path = run_path(directory, job, record.run_id)
        if path is not None:
            return Found(record.run_id, path)
    newest = _newest_file(directory / job)
    if newest is None:
        raise RunLogsError(f"job {job!r} has no output file in {directory / job} yet")
    return Found(newest.name.removesuffix(RUNNING).removesuffix(FINAL), newest)


def _newest_file(directory: Path) -> Path | None:
    """The run file last changed in ``directory``, if any."""
    try:
        files = [p for p in directory.iterdir() if p.name.endswith((FINAL, RUNNING))]
    except OSError:
        return None
    return max(files, key=lambda p: p.stat().st_mtime, default=None)


def copy(path: Path, out: BinaryIO) -> None:
    """Print the file as it is now."""
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            out.write(chunk)


def over(records: Sequence[RunRecord]) -> bool:
    """Whether the history says the run (``records``: its attempts) is over: it has
    attempts, and none is running."""
    return bool(records) and all(r.status != "running" for r in records)


def follow(
    path: Path,
    out: BinaryIO,
    history_says_over: Callable[[], bool],
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Print the file, then each line as it is written, until the run's end (see the
    module's words)."""
    with path.open("rb") as source:
        pending = b""
        last_line = b""
        grew = monotonic()
        while True:
            chunk = source.read(CHUNK)
            if chunk:
                grew = monotonic()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    out.write(line + b"\n")
                    if is_end(line.decode("utf-8", "replace")):
                        out.flush()
                        return
                    last_line = line
                out.flush()
                continue
            if not path.exists() or _stale(last_line, grew, monotonic(), history_says_over):
                _finish(source, out, pending)
                return
            sleep(POLL_S)


def _stale(
    last_line: bytes, grew: float, now: float, history_says_over: Callable[[], bool]
) -> bool:
    """The file stopped growing for ``STALE_S``, no retry is announced and the history
    says the run is over."""
    if now - grew < STALE_S:
        return False
    fields = last_line.split(b" ", 3)
    if len(fields) >= 3 and fields[1] == META.encode() and fields[2] == b"retry":  # noqa: PLR2004
        return False
    return history_says_over()


def _finish(source: BinaryIO, out: BinaryIO, pending: bytes) -> None:
    """What is left to read, then the end."""
    rest = pending + source.read()
    if rest:
        out.write(rest if rest.endswith(b"\n") else rest + b"\n")
    out.flush()
