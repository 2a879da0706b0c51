"""A run's output: split into lines, logged as ``run.output`` events, bounded.

Bounds (both in ``[daemon]``): a line longer than ``max_output_line`` bytes is
cut (the event says ``truncated: true``); after ``max_output_per_run`` bytes
of a run, further lines are counted but not logged, and one
``run.output_truncated`` event says how many were dropped. With a run file
(``output`` in the job), every line goes to it as well, bounded by the job's own
``max_size`` instead (``scheduler/run_files.py``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scheduler.run_files import RunFile


class EventLog(Protocol):
    """The part of a structlog logger this module uses."""

    def info(self, event: str, **kw: object) -> object:
        """Log one event."""


class OutputLog:
    """Feed raw chunks per stream; lines come out as events and a bounded tail."""

    def __init__(self, log: EventLog, max_line: int, max_total: int, tail_lines: int = 20) -> None:
        self._log = log
        self._max_line = max_line
        self._max_total = max_total
        self._partial: dict[str, bytearray] = {}
        self._skipping: set[str] = set()  # streams inside an over-long line
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.logged_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.file: RunFile | None = None
        """The run's file, if its output is kept: set before the process starts."""

    def feed(self, stream: str, chunk: bytes) -> None:
        """Take the next bytes of ``stream``; emit every completed line (then the run file
        writes them out: one write per chunk read)."""
        self._lines(stream, chunk)
        if self.file is not None:
            self.file.flush()

    def _lines(self, stream: str, chunk: bytes) -> None:
        buffer = self._partial.setdefault(stream, bytearray())
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > self._max_line and stream not in self._skipping:
                    self._emit(stream, bytes(buffer[: self._max_line]), truncated=True)
                    self._skipping.add(stream)
                if stream in self._skipping:
                    buffer.clear()
                return
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            if stream in self._skipping:
                self._skipping.discard(stream)
                continue
            self._emit(stream, line[: self._max_line], truncated=len(line) > self._max_line)

    def close(self) -> None:
        """Emit what is left without a newline, then the truncation summary."""
        for stream, buffer in self._partial.items():
            if buffer and stream not in self._skipping:
                self._emit(
                    stream, bytes(buffer[: self._max_line]), truncated=len(buffer) > self._max_line
                )
            buffer.clear()
        if self.file is not None:
            self.file.flush()
        if self.dropped_lines:
            self._log.info(
                "run.output_truncated",
                dropped_lines=self.dropped_lines,
                dropped_bytes=self.dropped_bytes,
                limit_bytes=self._max_total,
            )

    def _emit(self, stream: str, raw: bytes, *, truncated: bool) -> None:
        if self.file is not None:
            self.file.line(stream, raw, cut=truncated)
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.tail.append(text)
        if self.logged_bytes + len(raw) > self._max_total:
            self.dropped_lines += 1
            self.dropped_bytes += len(raw)
            return
        self.logged_bytes += len(raw)
        if truncated:
            self._log.info("run.output", stream=stream, line=text, truncated=True)
        else:
            self._log.info("run.output", stream=stream, line=text)
