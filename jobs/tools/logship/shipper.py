"""The shipping loop: files then containers' records, in batches, checkpoints reported.

After each batch the sink acknowledged, the checkpoints it made true are reported (a
control line for the daemon); a run stops at its ``max_bytes``."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.protocol.lines import emit, say
from jobs.protocol.ship import MAX_LINE, ShipRequest
from jobs.tools.logship.sinks import TOOL, Record, ShipError, Sink, make_sink
from jobs.tools.logship.tracking import FileState, plan_files
from jobs.tools.paths import mount_points, open_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

READ_CHUNK = 1024 * 1024
"""Bytes read from a file at a time (``cli`` reads stdin with the same size)."""


def now_text() -> str:
    """The current UTC time as RFC 3339 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


Mark = dict[str, object]


@dataclass
class Shipper:
    """Collects records into batches; after the sink took a batch, reports the checkpoints
    it made true, so the daemon advances them only for delivered lines. A file's mark is its
    FileState, read at flush time (its offset is then the end of the batch's last line)."""

    sink: Sink
    batch_lines: int
    batch_bytes: int
    max_bytes: int
    max_line: int = MAX_LINE
    report: Callable[[dict[str, object]], None] = emit
    gone: threading.Event = field(default_factory=threading.Event)
    records: list[Record] = field(default_factory=list)
    marks: dict[str, FileState | Mark] = field(default_factory=dict)
    forget: set[str] = field(default_factory=set)
    pending_bytes: int = 0
    lines: int = 0
    shipped_bytes: int = 0
    batches: int = 0
    cut_lines: int = 0
    cut_bytes: int = 0

    @property
    def full(self) -> bool:
        """This run has shipped (or holds) its ``max_bytes``."""
        return self.shipped_bytes + self.pending_bytes >= self.max_bytes

    @property
    def batch_full(self) -> bool:
        return len(self.records) >= self.batch_lines or self.pending_bytes >= self.batch_bytes

    def add(self, record: Record, size: int, source: str, mark: FileState | Mark) -> None:
        """Queue a record of ``size`` bytes; ``mark``: ``source``'s checkpoint once it is
        delivered."""
        self.records.append(record)
        self.marks[source] = mark
        self.forget.discard(source)
        self.pending_bytes += size
        if self.batch_full:
            self.flush()

    def change(self, source: str, mark: Mark | None) -> None:
        """Set (or, with None, forget) ``source``'s checkpoint with the next report."""
        if mark is None:
            self.forget.add(source)
            self.marks.pop(source, None)
        else:
            self.marks[source] = mark
            self.forget.discard(source)

    def flush(self) -> None:
        """Send what is queued; report the checkpoints it makes true."""
        if self.gone.is_set():
            raise ShipError(
                "the daemon went away (its stdin closed): stopped before the next batch"
            )
        if self.records:
            self.sink.send(self.records)
            self.lines += len(self.records)
            self.shipped_bytes += self.pending_bytes
            self.batches += 1
        if self.marks or self.forget:
            marks = {k: v.mark() if isinstance(v, FileState) else v for k, v in self.marks.items()}
            self.report({"checkpoint": marks, "forget": sorted(self.forget)})
        self.records, self.marks, self.forget, self.pending_bytes = [], {}, set(), 0


def ship_file(state: FileState, shipper: Shipper) -> None:
    """Ship the complete lines of one file after ``state.offset``, until max_bytes; a line
    longer than max_line goes cut to max_line bytes (the rest is skipped)."""
    try:
        f = open_file(state.path)
    except OSError as e:
        say(TOOL, f"{state.path}: {e.strerror}")
        return
    with f:
        f.seek(state.offset)
        partial = bytearray()  # the line that starts at state.offset, its newline not read yet
        while not shipper.full:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                break
            when = now_text()  # the time these lines were read
            shipper.marks[state.key] = state
            shipper.forget.discard(state.key)
            if state.skipping:
                chunk = _skip(state, shipper, chunk)
            lines = chunk.split(b"\n")
            if len(lines) == 1:  # no newline: the partial line grows in place
                partial += chunk
            else:
                if partial:  # at most max_line bytes, joined once to the end of its line
                    lines[0] = b"".join((partial, lines[0]))
                partial = bytearray(lines.pop())  # no newline yet: not a complete line
                if not _ship_lines(state, shipper, lines, when):
                    return
            if len(partial) > shipper.max_line:
                _cut(state, shipper, partial, when)
                partial = bytearray()


def _ship_lines(state: FileState, shipper: Shipper, lines: list[bytes], when: str) -> bool:
    """Queue the complete ``lines`` read at ``state.offset``, cut to max_line bytes, and
    send each batch they fill; False once the run has its max_bytes. The per-line loop is
    kept tight: a 1 GiB log is ten million lines."""
    path, key, max_line = state.path, state.key, shipper.max_line
    most_lines, most_bytes = shipper.batch_lines, shipper.batch_bytes
    longest = max_line + 1  # the size of the longest line shipped whole, its newline included
    records, pending = shipper.records, shipper.pending_bytes
    for raw in lines:
        size = len(raw) + 1
        state.offset += size
        if size > longest:
            raw = raw[:max_line]  # noqa: PLW2901 - the line cut
            shipper.cut_lines += 1
            shipper.cut_bytes += size - longest
            size = longest
        elif raw[-1:] == b"\r":
            raw = raw[:-1]  # noqa: PLW2901 - the line without its CR
        records.append((when, path, raw.decode("utf-8", "replace"), None))
        pending += size
        if len(records) >= most_lines or pending >= most_bytes:
            shipper.pending_bytes = pending
            shipper.flush()
            records, pending = shipper.records, 0
            if shipper.full:
                return False
            shipper.marks[key] = state
    shipper.pending_bytes = pending
    return True


def _cut(state: FileState, shipper: Shipper, partial: bytearray, when: str) -> None:
    """Ship the first max_line bytes of ``partial`` — the start of a line already longer,
    its newline not read yet — and skip the rest of that line from here on, in this run
    or (the checkpoint says ``skipping``) a later one."""
    state.offset += len(partial)
    state.skipping = True
    shipper.cut_lines += 1
    shipper.cut_bytes += len(partial) - shipper.max_line
    del partial[shipper.max_line :]
    line = partial.decode("utf-8", "replace")
    shipper.add((when, state.path, line, None), shipper.max_line + 1, state.key, state)


def _skip(state: FileState, shipper: Shipper, chunk: bytes) -> bytes:
    """Skip the rest of a cut line: ``chunk`` up to its first newline. Return what follows
    that newline (nothing while the line goes on)."""
    end = chunk.find(b"\n")
    if end < 0:
        state.offset += len(chunk)
        shipper.cut_bytes += len(chunk)
        return b""
    state.offset += end + 1
    shipper.cut_bytes += end
    state.skipping = False
    return chunk[end + 1 :]


def ship_records(records: Iterable[dict[str, Any]], shipper: Shipper) -> None:
    """Ship the daemon's records of containers' logs, in the order they come."""
    for item in records:
        if shipper.full:
            break
        line = str(item["line"])
        record = (str(item["time"]), str(item["source"]), line, str(item["stream"]))
        shipper.add(record, len(line.encode()) + 1, str(item["source"]), item["cp"])


def run(
    data: object,
    records: Iterable[dict[str, Any]],
    report: Callable[[dict[str, object]], None] = emit,
    gone: threading.Event | None = None,
) -> dict[str, object]:
    """Ship files then containers' records; return the result for the daemon. ``data``: the
    request's JSON, read by ``ShipRequest.parse`` (a bad one raises RequestError).
    ``report`` gets each checkpoint message (by default: a control line on stderr);
    once ``gone`` is set no further batch is sent."""
    request = ShipRequest.parse(data)
    host = socket.gethostname() if request.host is None else request.host
    sink = make_sink(request.sink, host, request.job)
    shipper = Shipper(
        sink,
        request.batch_lines,
        request.batch_bytes,
        request.max_bytes,
        request.max_line,
        report,
        gone or threading.Event(),
    )
    roots = mount_points() if request.confine else None
    states, changes = plan_files(list(request.paths), request.checkpoints or {}, roots)
    for key, mark in changes.items():
        shipper.change(key, mark)
    try:
        for state in states:
            if shipper.full:
                break
            ship_file(state, shipper)
        if not shipper.full:
            ship_records(records, shipper)
        shipper.flush()
    finally:
        sink.close()
    return {
        "lines": shipper.lines,
        "bytes": shipper.shipped_bytes,
        "batches": shipper.batches,
        "files": len(states),
        "backlog": shipper.full,
        "cut_lines": shipper.cut_lines,
        "cut_bytes": shipper.cut_bytes,
    }
