"""Ship new log lines to a sink, at least once (inside an ops container).

    python -m jobs.tools.logship            # the request arrives on stdin

stdin, written by the daemon: the first line is the request, a ``ShipRequest``
(``jobs.protocol``) as JSON — ``job``, ``host``, ``sink``, ``paths`` (globs),
``max_bytes``, ``max_line``, ``batch_lines``, ``batch_bytes``, ``confine`` and
``checkpoints`` (``{source: data}`` as last reported) —; then, one JSON object per
line, records of containers' logs read by the daemon through the Docker API:
``source``, ``time``, ``stream``, ``line`` and ``cp`` (the checkpoint that holds once
this record is delivered); then ``{"end": true}``.
The daemon keeps stdin open while the run lasts: EOF means it is gone, and the
tool stops before its next batch (nobody would record that batch's checkpoint).

stderr carries control lines (``jobs.protocol``): ``{"checkpoint": {...},
"forget": [...]}`` after each batch the sink acknowledged (the daemon stores
them in one transaction), and ``{"result": {...}}`` at the end. Anything else
on stderr is a diagnostic, escaped so that it can never pass for a control line
(a file name may hold a newline). The ``stdout`` sink writes the records to stdout.

A file's checkpoint is its device, inode, the offset after the last byte decided
(delivered, or skipped as the rest of a cut line), a sha256 of its first bytes (up to
1 KiB, within that part) and ``"skipping": true`` while the bytes after the offset, up
to the next newline, belong to a line already cut.
At start every checkpoint is matched to a file: the same inode whose first
bytes still match (renamed or not — a rename rotation); else a file in the same
directory with the same first bytes and at least the offset's length (the copy
of a copytruncate rotation); the rest of that file is shipped first, then the
live file from where its checkpoint says (from 0 if it is new or was
truncated). A line without its newline yet is left for a later run.

A line longer than ``max_line`` bytes (not counting its newline) is shipped cut to
its first ``max_line`` bytes and the rest of it, up to its newline, is skipped
(counted in the result's ``cut_lines`` and ``cut_bytes``): at most about ``max_line``
plus one read of a line is ever held, and every byte is read once. A line still
without its newline that is already longer is cut at once, and its checkpoint says
``skipping``: a later run skips on from there to the newline.

The modules: ``cli`` (``main``: the request and the feed of records from stdin),
``shipper`` (``run``: files then records, in batches, checkpoints reported),
``tracking`` (file checkpoints: matching files to them, rotations) and ``sinks``;
``__main__`` runs ``cli.main``. Their API is named here too.
"""

from jobs.tools.logship.cli import DaemonFeed, main, read_lines
from jobs.tools.logship.shipper import READ_CHUNK, Shipper, now_text, run, ship_file, ship_records
from jobs.tools.logship.sinks import (
    TOOL,
    FileSink,
    HttpSink,
    NdjsonEncoder,
    Record,
    Retrying,
    ShipError,
    Sink,
    StdoutSink,
    SyslogSink,
    make_sink,
    redact,
)
from jobs.tools.logship.tracking import FINGERPRINT_BYTES, FileState, fingerprint, plan_files

__all__ = [
    "FINGERPRINT_BYTES",
    "READ_CHUNK",
    "TOOL",
    "DaemonFeed",
    "FileSink",
    "FileState",
    "HttpSink",
    "NdjsonEncoder",
    "Record",
    "Retrying",
    "ShipError",
    "Shipper",
    "Sink",
    "StdoutSink",
    "SyslogSink",
    "fingerprint",
    "main",
    "make_sink",
    "now_text",
    "plan_files",
    "read_lines",
    "redact",
    "run",
    "ship_file",
    "ship_records",
]
