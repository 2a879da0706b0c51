"""Each run's whole output kept in a file, ``<job>/<run_id>.log`` in the job's output volume
(``output = { volume = … }``), written by the daemon as the output comes.

The file's format: one line per line of output, UTF-8 (bytes that are not are replaced by
U+FFFD), ending in LF::

    2026-12-04T10:15:06.123456Z stdout the line as the process wrote it
    2026-12-04T10:15:06.130002Z stderr+cut the first max_output_line bytes of a longer line
    2026-12-04T10:15:07.000000Z meta retry attempt=2 delay_s=10.0
    2026-12-04T10:15:09.000000Z meta truncated max_size=10485760
    2026-12-04T10:15:09.500000Z meta end status=failed exit_code=1 dropped_lines=1 dropped_bytes=34

The time is when the daemon read the line (UTC; the lines of one chunk of output read at
once share it); the second field is the stream:
``stdout``, ``stderr`` (``+cut``: the line was longer than ``[daemon] max_output_line`` and
is cut there, as in ``run.output``), or ``meta``, the daemon's own lines: ``retry
attempt=N delay_s=D`` when a failed attempt is to be tried again after D seconds,
``truncated`` once the output reached the job's ``max_size`` (the further lines are
counted, not written), and ``end`` last, with the run's status (``crashed``: a bug ended
the run; kept) and exit code and what was dropped. A run's file is
``<run_id>.log.running`` while it runs; at its end it becomes ``<run_id>.log``
(``on = "always"``, or a failed or timed_out run), or is deleted. A run its daemon could
not end (the engine went away, the daemon died) keeps a ``.running`` file until the run is
settled (``settle``): then a ``meta`` line says how, and the end line follows, with
``unknown`` for what was dropped. When a run of the job ends, its ended files older than
``keep`` go (by their time of last change); a ``.running`` file never does.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.errors import CrontainerError, EngineError, EngineNotFoundError
from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from jobs.base import OutputSpec
    from scheduler.engine import Engine
    from scheduler.settings import JobEntry

RUNNING = ".log.running"
"""A running run's file name ends so."""
FINAL = ".log"
"""An ended run's kept file name ends so."""
META = "meta"
"""The stream field of the daemon's own lines."""
ENGINE = "engine"
"""``[daemon] output_dir``'s word for the engine's own directory of each volume."""
FLUSH_AT = 64 * 1024
"""Buffered bytes are written out at the end of each chunk of output read, or at this."""
KEPT_STATUSES = frozenset({"failed", "timed_out"})
"""The statuses whose files ``on = "failure"`` keeps."""


class OutputDirError(CrontainerError):
    """An output volume the daemon cannot reach."""


def stamp(at: datetime) -> str:
    """``at`` as the file writes times: RFC 3339 in UTC with microseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_line(at: datetime, stream: str, text: str) -> bytes:
    """One line of the file (``text`` holds no newline)."""
    return f"{stamp(at)} {stream} {text}\n".encode("utf-8", "replace")


def is_end(line: str) -> bool:
    """Whether ``line`` (of a run's file) is its ``meta end`` line: the run has ended."""
    parts = line.split(" ", 3)
    return len(parts) >= 3 and parts[1] == META and parts[2].rstrip("\n") == "end"  # noqa: PLR2004


def run_path(directory: Path, job: str, run_id: str) -> Path | None:
    """Run ``run_id``'s file in the output directory ``directory``: the kept one, else the
    one being written; None when there is neither."""
    for suffix in (FINAL, RUNNING):
        path = directory / job / f"{run_id}{suffix}"
        if path.is_file():
            return path
    return None


class RunFile:
    """One run's file while the run runs: lines in, bounded by ``max_size``, buffered and
    written out at each ``flush``; ``close`` writes the end line and keeps or deletes it.
    Safe to call from the threads reading output and the run's own; a failed write ends
    the writing (``error`` says why), never the run."""

    def __init__(
        self, directory: Path, run_id: str, spec: OutputSpec, now: Callable[[], datetime]
    ) -> None:
        """Create ``<directory>/<run_id>.log.running`` (``directory`` is made if missing, not
        its parent: the volume); OSError if it cannot be."""
        directory.mkdir(exist_ok=True)
        self.path = directory / f"{run_id}{RUNNING}"
        self.final = directory / f"{run_id}{FINAL}"
        self._spec = spec
        self._now = now
        self._file = self.path.open("xb", buffering=0)
        self._buffer = bytearray()
        self._stamp: str | None = None
        self._lock = threading.Lock()
        self._written = 0
        self._full = False
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.error: str | None = None

    @property
    def closed(self) -> bool:
        """Whether the file has ended (``close``)."""
        return self._file.closed

    def line(self, stream: str, raw: bytes, *, cut: bool = False) -> None:
        """A line of ``stream`` (without its newline), cut or not; past ``max_size``, counted.
        Its time is the first line's of its chunk (until the next ``flush``): the lines of
        one chunk were read at once."""
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        at = self._stamp or stamp(self._now())
        self._stamp = at
        data = f"{at} {f'{stream}+cut' if cut else stream} {text}\n".encode("utf-8", "replace")
        with self._lock:
            if self._file.closed:
                return
            if self._full or self._written + len(data) > self._spec.max_size:
                self._drop(len(raw))
                return
            self._written += len(data)
            self._buffer += data
            if len(self._buffer) >= FLUSH_AT:
                self._write_out()

    def _drop(self, size: int) -> None:
        """Count a line past ``max_size``; the first one writes the truncation line."""
        if not self._full:
            self._full = True
            self._buffer += file_line(
                self._now(), META, f"truncated max_size={self._spec.max_size}"
            )
        self.dropped_lines += 1
        self.dropped_bytes += size

    def meta(self, text: str) -> None:
        """A line of the daemon's own (``retry attempt=2 delay_s=10.0``), written out now."""
        with self._lock:
            if not self._file.closed:
                self._buffer += file_line(self._now(), META, text)
                self._write_out()

    def flush(self) -> None:
        """Write out what is buffered (at the end of each chunk of output read); the next
        line takes a new time."""
        self._stamp = None
        with self._lock:
            self._write_out()

    def _write_out(self) -> None:
        if not self._buffer or self._file.closed or self.error is not None:
            self._buffer.clear()
            return
        try:
            with memoryview(self._buffer) as data:
                done = 0
                while done < len(data):  # a raw file may take only a part (a full disk)
                    taken = self._file.write(data[done:])
                    if not taken:
                        raise OSError(f"{self.path}: nothing written")  # noqa: TRY301
                    done += taken
        except OSError as e:
            self.error = str(e)
        self._buffer.clear()

    def close(self, status: str, exit_code: int | None, *, keep: bool | None = None) -> Path | None:
        """The end line, then the file kept under its final name or deleted (``keep``: by
        default as the job's ``on`` says for ``status``). The kept file's path, else None."""
        if keep is None:
            keep = kept(self._spec, status)
        end = end_text(status, exit_code, self.dropped_lines, self.dropped_bytes)
        with self._lock:
            if self._file.closed:
                return None
            self._buffer += file_line(self._now(), META, end)
            self._write_out()
            try:
                self._file.close()
            except OSError as e:
                self.error = self.error or str(e)
        try:
            return _keep_or_delete(self.path, self.final, keep=keep)
        except OSError as e:
            self.error = self.error or str(e)
        return None

    def abandon(self) -> None:
        """Stop writing, without an end line: the file stays ``.running`` for whoever learns
        how the run ended (the engine went away: the settling when it is back)."""
        with self._lock:
            self._write_out()
            if not self._file.closed:
                self._file.close()


def kept(spec: OutputSpec, status: str) -> bool:
    """Whether a run's file that ended with ``status`` is kept, as ``on`` says."""
    return spec.on == "always" or status in KEPT_STATUSES


def end_text(status: str, exit_code: int | None, lines: int | str, size: int | str) -> str:
    """The end line's text (after ``meta``)."""
    code = "none" if exit_code is None else str(exit_code)
    return f"end status={status} exit_code={code} dropped_lines={lines} dropped_bytes={size}"


def _keep_or_delete(path: Path, final: Path, *, keep: bool) -> Path | None:
    """Rename ``path`` to ``final`` (returned), or delete it (None)."""
    if keep:
        path.rename(final)
        return final
    path.unlink()
    return None


def prune(directory: Path, keep: float, now: datetime) -> int:
    """Delete the ended run files in ``directory`` last changed more than ``keep`` seconds
    before ``now``; how many. A ``.running`` file is never deleted, however old: its run
    may still go on quietly, or wait to be settled (which ends it)."""
    limit = now.timestamp() - keep
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.endswith(FINAL):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                Path(entry.path).unlink()
                removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to delete: the next prune sees it again
    return removed


class OutputDirs:
    """Where each output volume is for this process: ``<output_dir>/<volume>`` (the volume
    mounted there), or the engine's own directory of it (``output_dir = "engine"``)."""

    def __init__(self, output_dir: str, engine: Engine | None) -> None:
        self._output_dir = output_dir
        self._engine = engine
        self._known: dict[str, Path] = {}

    def of(self, volume: str) -> Path:
        """The volume's directory, which exists; OutputDirError saying why not."""
        known = self._known.get(volume)
        if known is not None and known.is_dir():
            return known
        path = self._find(volume)
        if not path.is_dir():
            if self._output_dir == ENGINE:
                raise OutputDirError(f"volume {volume!r}: its directory {path} is not here")
            raise OutputDirError(
                f"volume {volume!r} is not mounted at {path} (mount it there: -v {volume}:{path})"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputDirError(f"volume {volume!r}: {path} is not writable by this process")
        self._known[volume] = path
        return path

    def _find(self, volume: str) -> Path:
        if self._output_dir != ENGINE:
            return Path(self._output_dir) / volume
        if self._engine is None:
            raise OutputDirError(f"volume {volume!r}: output_dir = 'engine' needs the engine")
        try:
            return Path(self._engine.volume_path(volume))
        except EngineNotFoundError:
            raise OutputDirError(
                f"volume {volume!r} does not exist on the engine (docker volume create {volume})"
            ) from None
        except EngineError as e:
            raise OutputDirError(f"volume {volume!r}: {e}") from e

    def problems(self, jobs: Mapping[str, JobEntry]) -> list[str]:
        """Why each enabled job's output volume cannot be reached, as ``jobs.<name>.output:``
        lines (a volume once per job that names it)."""
        found: list[str] = []
        for name, entry in jobs.items():
            spec = entry.job.output
            if spec is None or not entry.job.enabled:
                continue
            try:
                self.of(spec.volume)
            except OutputDirError as e:
                found.append(f"jobs.{name}.output.volume: {e}")
        return found


class RunFiles:
    """The daemon's run files: one opened per run of a job with ``output``, closed at the
    run's end (then the job's old files pruned)."""

    def __init__(self, dirs: OutputDirs, now: Callable[[], datetime]) -> None:
        self._dirs = dirs
        self._now = now
        self._log = get_logger()

    def open(self, job: str, spec: OutputSpec | None, run_id: str) -> RunFile | None:
        """Run ``run_id``'s file, if its job keeps output and the file can be made (else
        ``run.output_file_failed``; the run goes on without it)."""
        if spec is None:
            return None
        try:
            return RunFile(self._dirs.of(spec.volume) / job, run_id, spec, self._now)
        except (OutputDirError, OSError) as e:
            self._log.warning("run.output_file_failed", volume=spec.volume, error=str(e))
            return None

    def close(
        self,
        job: str,
        spec: OutputSpec,
        file: RunFile,
        *,
        status: str,
        exit_code: int | None,
        keep: bool | None = None,
    ) -> Path | None:
        """End ``file`` with the run's status (kept as ``on`` says, or as ``keep``); then
        prune the job's files older than ``keep``. The kept file's path, else None."""
        final = file.close(status, exit_code, keep=keep)
        if file.error is not None:
            self._log.warning("run.output_file_failed", volume=spec.volume, error=file.error)
        directory = file.path.parent
        removed = prune(directory, spec.keep, self._now())
        if removed:
            self._log.info("output.pruned", job=job, files=removed, keep_s=spec.keep)
        return final

    def settle(
        self,
        job: str,
        spec: OutputSpec | None,
        run_id: str,
        *,
        status: str,
        exit_code: int | None,
        how: str,
    ) -> None:
        """End the ``.running`` file a run left without an end line (its daemon died, or the
        engine went away) once its end is known: a ``meta`` line saying ``how`` it was
        settled, the end line (what was dropped is not known), kept or deleted as ``on``
        says. Nothing if the job keeps no output or there is no such file."""
        if spec is None:
            return
        try:
            directory = self._dirs.of(spec.volume) / job
            path = directory / f"{run_id}{RUNNING}"
            if not path.is_file():
                return
            with path.open("ab") as file:
                now = self._now()
                file.write(file_line(now, META, how))
                file.write(file_line(now, META, end_text(status, exit_code, "unknown", "unknown")))
            _keep_or_delete(path, directory / f"{run_id}{FINAL}", keep=kept(spec, status))
        except (OutputDirError, OSError) as e:
            self._log.warning(
                "run.output_file_failed", run_id=run_id, volume=spec.volume, error=str(e)
            )
