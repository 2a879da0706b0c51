"""What keeping a run's output in a file (``output``) costs the thread that reads the run's
output: the same chunks fed to the daemon's OutputLog without and with a RunFile.

    python bench/output_file.py [LINES] [LINE_BYTES] [CHUNK_BYTES]

Prints, for each way, the CPU time per line (best of 5); the file is written out once per
chunk read (one write call a chunk at most). The events go to a logger that drops them
(the daemon's logging is the same either way; the file is not bounded by
``max_output_per_run``, the log is). For comparison, the last line: what a line costs as a
``run.output`` event (JSON to /dev/null), which every line up to that bound is.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from jobs.base import OutputSpec
from scheduler import logs
from scheduler.output import EventLog, OutputLog
from scheduler.run_files import RunFile


class Drop:
    """A logger that drops every event."""

    def info(self, event: str, **kw: object) -> object:
        del event, kw
        return None


def chunks(lines: int, line_bytes: int, chunk_bytes: int) -> list[bytes]:
    """``lines`` lines of ``line_bytes`` (newline included), cut into chunks as a stream."""
    data = (b"x" * (line_bytes - 1) + b"\n") * lines
    return [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]


def feed(
    pieces: list[bytes], directory: Path | None, run: int, log: EventLog | None = None
) -> float:
    """CPU seconds to feed ``pieces`` (to a file of run ``run`` in ``directory``, if given;
    with ``log``, every line logged there)."""
    if log is None:
        output = OutputLog(Drop(), max_line=16 * 1024, max_total=1024 * 1024)
    else:
        output = OutputLog(log, max_line=16 * 1024, max_total=1024**3)
    file = None
    if directory is not None:
        spec = OutputSpec(max_size=1024**3)
        file = RunFile(directory / "job", f"run{run}", spec, lambda: datetime.now(UTC))
        output.file = file
    began = time.process_time()
    for piece in pieces:
        output.feed("stdout", piece)
    output.close()
    spent = time.process_time() - began
    if file is not None:
        file.close("succeeded", 0)
    return spent


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    line_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    chunk_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    pieces = chunks(lines, line_bytes, chunk_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        for label, directory in (("log only", None), ("log + file", Path(tmp))):
            best = min(feed(pieces, directory, run) for run in range(5))
            per_line = best / lines * 1e6
            print(f"{label:11} {per_line:6.2f} µs/line  {best:6.3f} s CPU")
        with Path(os.devnull).open("w") as null:
            logs.configure("json", "info", null)
            best = min(feed(pieces, None, run, logs.get_logger()) for run in range(3))
        print(
            f"every line a run.output event (JSON, to /dev/null): {best / lines * 1e6:.2f} µs/line"
        )
        size = next((Path(tmp) / "job").iterdir()).stat().st_size
        print(
            f"{lines} lines of {line_bytes} bytes in {len(pieces)} chunks of {chunk_bytes} "
            f"bytes; each file {size} bytes"
        )


if __name__ == "__main__":
    main()
