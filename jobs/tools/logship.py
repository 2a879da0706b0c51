"""Ship new log lines to a sink, at least once (inside an ops container).

    python -m jobs.tools.logship            # the request arrives on stdin

stdin, written by the daemon: the first line is the request (JSON) — ``job``,
``host``, ``sink``, ``paths`` (globs), ``max_bytes``, ``max_line``, ``batch_lines``,
``batch_bytes`` and ``checkpoints`` (``{source: data}`` as last reported) —;
then, one JSON object per line, records of containers' logs read by the daemon
through the Docker API: ``source``, ``time``, ``stream``, ``line`` and ``cp``
(the checkpoint that holds once this record is delivered); then ``{"end": true}``.
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
"""

from __future__ import annotations

import base64
import glob
import hashlib
import http.client
import json
import os
import queue
import socket
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring as _quote  # json's C string escaper
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jobs.protocol import emit, guarded, say
from jobs.tools.paths import inside, mount_points

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

PREFIX_CACHE = 4096
"""Record prefixes (time, source, stream) kept by the NDJSON encoder."""
FINGERPRINT_BYTES = 1024
READ_CHUNK = 1024 * 1024
MAX_LINE = 1024 * 1024
"""``max_line``'s default (the job's config and a request without it): a longer line is
shipped cut to this many bytes."""
FEED_QUEUE = 1000
"""Container records read ahead from the daemon's stdin."""
DEFAULT_UDP_RATE = 5000.0
"""Syslog datagrams per second (``udp_rate``; 0: no limit)."""
UDP_MAX = 65000
"""Longest syslog datagram sent over UDP (a longer message is cut)."""
FACILITIES = {
    name: number
    for number, name in enumerate(
        [
            "kern",
            "user",
            "mail",
            "daemon",
            "auth",
            "syslog",
            "lpr",
            "news",
            "uucp",
            "cron",
            "authpriv",
            "ftp",
            "ntp",
            "audit",
            "alert",
            "clock",
            "local0",
            "local1",
            "local2",
            "local3",
            "local4",
            "local5",
            "local6",
            "local7",
        ]
    )
}
SEVERITIES = {
    name: number
    for number, name in enumerate(
        ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
    )
}


TOOL = "logship"
"""The prefix of the tool's diagnostics on stderr."""


class ShipError(Exception):
    """A failure with a message for the run's error (never a secret in it)."""


def now_text() -> str:
    """The current UTC time as RFC 3339 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def redact(url: str) -> str:
    """``url`` without user, password or query (they may hold secrets)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- sinks ------------------------------------------------------------------------


Record = tuple[str, str, str, str | None]
"""One line to ship: (time, source, line, stream — None for a file)."""


class Sink(Protocol):
    """Delivers a batch of records or raises ShipError; returning means acknowledged."""

    def send(self, records: list[Record]) -> None: ...

    def close(self) -> None: ...


class NdjsonEncoder:
    """Records as NDJSON bytes: ``{"time","host","job","source"[,"stream"],"line"}``. The
    part before the line is built once per (time, source, stream) — lines of a file read
    together share it — and the line is escaped by json's C encoder."""

    def __init__(self, host: str, job: str) -> None:
        self._origin = f'"host":{_quote(host)},"job":{_quote(job)},"source":'
        self._prefixes: dict[tuple[str, str, str | None], str] = {}

    def _prefix(self, key: tuple[str, str, str | None]) -> str:
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) > PREFIX_CACHE:
                self._prefixes.clear()
            when, source, stream = key
            prefix = f'{{"time":{_quote(when)},{self._origin}{_quote(source)},'
            if stream is not None:
                prefix += f'"stream":{_quote(stream)},'
            prefix += '"line":'
            self._prefixes[key] = prefix
        return prefix

    def encode(self, records: list[Record]) -> bytes:
        parts: list[str] = []
        key: tuple[str, str, str | None] | None = None
        prefix = ""
        for when, source, line, stream in records:
            if key is None or when is not key[0] or source is not key[1] or stream != key[2]:
                key = (when, source, stream)  # lines read together share their prefix
                prefix = self._prefix(key)
            parts.append(f"{prefix}{_quote(line)}}}\n")
        return "".join(parts).encode("utf-8", "surrogatepass")


class FileSink:
    """Appends NDJSON to a file; a batch is acknowledged once it is fsynced."""

    def __init__(self, path: str, encoder: NdjsonEncoder) -> None:
        self._encoder = encoder
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ShipError(f"file sink {path}: {e.strerror}") from None
        self._path = path

    def send(self, records: list[Record]) -> None:
        data = memoryview(self._encoder.encode(records))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as e:
            raise ShipError(f"file sink {self._path}: {e.strerror}") from None

    def close(self) -> None:
        os.close(self._fd)


class StdoutSink:
    """Prints NDJSON records: the shipping container's log driver carries them on."""

    def __init__(self, encoder: NdjsonEncoder) -> None:
        self._encoder = encoder

    def send(self, records: list[Record]) -> None:
        try:
            sys.stdout.buffer.write(self._encoder.encode(records))
            sys.stdout.buffer.flush()
        except OSError as e:
            raise ShipError(f"stdout sink: {e.strerror}") from None

    def close(self) -> None:
        return None


@dataclass
class Retrying:
    """Attempts with exponential backoff: ``retries`` more after the first."""

    retries: int = 3
    delay: float = 1.0
    delay_max: float = 30.0

    def run(self, what: str, action: Any) -> None:  # noqa: ANN401 - a callable
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.delay * 2 ** (attempt - 1), self.delay_max))
            try:
                action()
            except ShipError as e:
                last = str(e)
                say(TOOL, f"{what}: {last} (attempt {attempt + 1})")
                continue
            return
        raise ShipError(f"{what}: gave up after {self.retries + 1} attempts: {last}")


class HttpSink:
    """POSTs a batch as NDJSON; acknowledged by one of ``ok_status``."""

    def __init__(self, config: dict[str, Any], encoder: NdjsonEncoder) -> None:
        self._encoder = encoder
        url = urllib.parse.urlsplit(str(config["url"]))
        self._headers = {"Content-Type": "application/x-ndjson", **config.get("headers", {})}
        if url.username is not None:  # user:password@ in the URL: HTTP basic auth
            pair = (
                f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password or '')}"
            )
            self._headers.setdefault(
                "Authorization", "Basic " + base64.b64encode(pair.encode()).decode()
            )
            host = url.hostname or ""
            url = url._replace(netloc=f"{host}:{url.port}" if url.port else host)
        self._url = urllib.parse.urlunsplit(url)
        self._shown = redact(self._url)
        self._timeout = float(config.get("timeout", 10.0))
        self._ok = set(config.get("ok_status", [200, 201, 202, 204]))
        self._retry = Retrying(int(config.get("retries", 3)), float(config.get("retry_delay", 1.0)))

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by the config
            self._url, data=body, headers=self._headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError) as e:
            raise ShipError(str(getattr(e, "reason", e))) from None
        except (http.client.HTTPException, ValueError) as e:  # their texts may quote the URL
            raise ShipError(
                f"not an HTTP answer, or a request that cannot be sent ({type(e).__name__})"
            ) from None
        if status not in self._ok:
            raise ShipError(f"status {status}")

    def send(self, records: list[Record]) -> None:
        body = self._encoder.encode(records)
        self._retry.run(f"http sink {self._shown}", lambda: self._post(body))

    def close(self) -> None:
        return None


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _ascii_token(value: str, limit: int) -> str:
    """A syslog header field: printable ASCII without spaces, or ``-``."""
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]  # noqa: PLR2004
    return token or "-"


class SyslogSink:
    """RFC 5424 messages over UDP, or over TCP framed by octet counting (RFC 6587)."""

    def __init__(self, config: dict[str, Any], host: str, job: str) -> None:
        self._host = _ascii_token(host, 255)
        self._job = _sd_escape(job)
        address = urllib.parse.urlsplit(str(config["address"]))
        self._proto = address.scheme
        if address.hostname is None or address.port is None:
            raise ShipError(f"syslog sink: no host and port in {config['address']!r}")
        self._where = (address.hostname, address.port)
        facility = FACILITIES[str(config.get("facility", "user"))]
        severity = SEVERITIES[str(config.get("severity", "info"))]
        self._pri = facility * 8 + severity
        self._app = _ascii_token(str(config.get("app_name", "crontainer")), 48)
        self._sock: socket.socket | None = None
        self._retry = Retrying(int(config.get("retries", 3)), float(config.get("retry_delay", 1.0)))
        self._timeout = float(config.get("timeout", 10.0))
        rate = float(config.get("udp_rate", DEFAULT_UDP_RATE))
        self._gap = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    def _pace(self) -> None:
        """UDP has no back-pressure: a burst overflows the receiver's socket buffer (on
        Linux about 270 small datagrams by default) and is lost. Keep to ``udp_rate``."""
        if self._gap:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(self._next, now) + self._gap

    def _message(self, record: Record) -> bytes:
        when, source, line, _stream = record
        data = f'[crontainer@32473 source="{_sd_escape(source)}" job="{self._job}"]'
        return f"<{self._pri}>1 {when} {self._host} {self._app} - - {data} {line}".encode(
            "utf-8", "surrogatepass"
        )

    def _connect(self) -> socket.socket:
        if self._sock is None:
            kind = socket.SOCK_DGRAM if self._proto == "udp" else socket.SOCK_STREAM
            family = socket.AF_INET6 if ":" in self._where[0] else socket.AF_INET
            sock = socket.socket(family, kind)
            sock.settimeout(self._timeout)
            try:
                sock.connect(self._where)
            except OSError as e:
                sock.close()
                raise ShipError(str(e)) from None
            self._sock = sock
        return self._sock

    def _send_all(self, messages: list[bytes]) -> None:
        sock = self._connect()
        try:
            if self._proto == "udp":
                for message in messages:
                    self._pace()
                    sock.send(message[:UDP_MAX])
            else:
                sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        except OSError as e:
            self.close()
            raise ShipError(str(e)) from None

    def send(self, records: list[Record]) -> None:
        messages = [self._message(r) for r in records]
        where = f"syslog sink {self._proto}://{self._where[0]}:{self._where[1]}"
        self._retry.run(where, lambda: self._send_all(messages))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def make_sink(config: dict[str, Any], host: str, job: str) -> Sink:
    """The sink the request names."""
    kind = config.get("type")
    if kind == "file":
        return FileSink(str(config["path"]), NdjsonEncoder(host, job))
    if kind == "stdout":
        return StdoutSink(NdjsonEncoder(host, job))
    if kind == "http":
        return HttpSink(config, NdjsonEncoder(host, job))
    if kind == "syslog":
        return SyslogSink(config, host, job)
    raise ShipError(f"unknown sink type {kind!r}")


# --- batching ---------------------------------------------------------------------


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


# --- files --------------------------------------------------------------------------


def fingerprint(path: str, length: int) -> str | None:
    """sha256 of the first ``length`` bytes of ``path`` (None if it is shorter or gone)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(length)
    except OSError:
        return None
    if len(head) < length:
        return None
    return hashlib.sha256(head).hexdigest()


@dataclass
class FileState:
    """Where shipping of one file stands."""

    path: str
    dev: int
    ino: int
    offset: int = 0
    fp: str = ""
    fplen: int = 0
    skipping: bool = False
    """The bytes after ``offset``, up to the next newline, are the rest of a cut line."""

    @classmethod
    def resumed(cls, path: str, dev: int, ino: int, checkpoint: dict[str, Any]) -> FileState:
        """Where ``checkpoint`` left a file that still holds its content."""
        return cls(
            path,
            dev,
            ino,
            int(checkpoint["offset"]),
            checkpoint["fp"],
            checkpoint["fplen"],
            skipping=checkpoint.get("skipping") is True,
        )

    @property
    def key(self) -> str:
        return f"file:{self.dev}:{self.ino}"

    def mark(self) -> dict[str, object]:
        """The checkpoint at ``offset``; the fingerprint covers up to 1 KiB of what was
        decided (computed here, once per batch, not per line). ``skipping`` only when set:
        checkpoints without it read as before."""
        length = min(self.offset, FINGERPRINT_BYTES)
        if length != self.fplen:
            self.fp, self.fplen = fingerprint(self.path, length) or "", length
        mark: dict[str, object] = {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.offset,
            "fp": self.fp,
            "fplen": self.fplen,
        }
        if self.skipping:
            mark["skipping"] = True
        return mark


def _matches(path: str, info: os.stat_result, checkpoint: dict[str, Any]) -> bool:
    """``path`` holds the content ``checkpoint`` describes (at least up to its offset)."""
    if info.st_size < int(checkpoint["offset"]):
        return False
    return fingerprint(path, int(checkpoint["fplen"])) == str(checkpoint["fp"])


def _regular_files(directory: str) -> dict[str, os.stat_result]:
    found: dict[str, os.stat_result] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                found[entry.path] = entry.stat(follow_symlinks=False)
        except OSError:
            continue
    return found


def _live_files(
    patterns: list[str], roots: list[Path] | None
) -> dict[tuple[int, int], tuple[str, os.stat_result]]:
    """Regular files matching the globs (absolute patterns: glob.glob, not Path.glob), by
    device and inode; a match outside ``roots`` (a directory symlink leading out of the
    volumes) is left alone with a diagnostic."""
    current: dict[tuple[int, int], tuple[str, os.stat_result]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):  # noqa: PTH207 - absolute patterns
            try:
                info = Path(path).lstat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if not inside(Path(path), roots):
                say(TOOL, f"{path} leads out of the mounted volumes (a symlink): not shipped")
                continue
            current.setdefault((info.st_dev, info.st_ino), (path, info))
    return current


def plan_files(
    patterns: list[str], checkpoints: dict[str, dict[str, Any]], roots: list[Path] | None = None
) -> tuple[list[FileState], dict[str, dict[str, object] | None]]:
    """What to read, in order (rotated remainders first), and the checkpoints that change
    before anything is read: ``None`` forgets one (its file is gone), a mark resets one (a
    live file truncated by copytruncate starts again from 0). ``roots``: the volumes files
    may be read from (None: anywhere, for a tool run outside a container)."""
    current = _live_files(patterns, roots)
    rotated: dict[tuple[int, int], FileState] = {}
    resumed: dict[tuple[int, int], FileState] = {}
    changes: dict[str, dict[str, object] | None] = {}
    for key, cp in sorted(checkpoints.items()):
        if not key.startswith("file:"):
            continue
        ident = (int(cp["dev"]), int(cp["ino"]))
        live = current.get(ident)
        if live is not None and _matches(live[0], live[1], cp):
            resumed[ident] = FileState.resumed(live[0], *ident, cp)
            continue
        found = _find_rotated(cp, ident, current, roots)
        if found is not None and found.key != key and found.key in checkpoints:
            found = None  # the copy has a checkpoint of its own: that one says where it stands
        if found is not None:
            rotated.setdefault((found.dev, found.ino), found)
        if found is not None and found.key == key:
            continue  # renamed out of the live names: the same checkpoint goes on
        if live is not None:
            changes[key] = FileState(live[0], *ident).mark()  # truncated: from 0 again
        else:
            changes[key] = None
    states = list(rotated.values())
    for ident, (path, _info) in current.items():
        if ident not in rotated:
            states.append(resumed.get(ident) or FileState(path, *ident))
    return states, changes


def _find_rotated(
    cp: dict[str, Any],
    ident: tuple[int, int],
    current: dict[tuple[int, int], tuple[str, os.stat_result]],
    roots: list[Path] | None,
) -> FileState | None:
    """The file that holds ``cp``'s lines now, outside the live names: renamed (same inode)
    or copied (same first bytes, different inode) into the same directory (if it is still
    inside ``roots``)."""
    directory = str(Path(str(cp["path"])).parent)
    if not inside(Path(directory), roots):
        return None
    candidates = _regular_files(directory)
    copies = []
    for path, info in candidates.items():
        if (info.st_dev, info.st_ino) == ident:
            if (info.st_dev, info.st_ino) not in current and _matches(path, info, cp):
                return FileState.resumed(path, *ident, cp)
            continue
        if (info.st_dev, info.st_ino) in current:
            continue  # a live file: it has (or gets) its own checkpoint
        if _matches(path, info, cp):
            copies.append((info.st_mtime, path, info))
    if not copies:
        return None
    _mtime, path, info = max(copies)  # the newest copy: the last rotation
    return FileState.resumed(path, info.st_dev, info.st_ino, cp)


def ship_file(state: FileState, shipper: Shipper) -> None:
    """Ship the complete lines of one file after ``state.offset``, until max_bytes; a line
    longer than max_line goes cut to max_line bytes (the rest is skipped)."""
    try:
        f = Path(state.path).open("rb")  # noqa: SIM115 - entered below, after the error check
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


class DaemonFeed:
    """Reads the daemon's stdin after the request, in a thread: container records until
    the end mark, then nothing until EOF. EOF means the daemon is gone (it keeps stdin open
    while the run lasts): ``gone`` is set, and the shipper stops before its next batch —
    nobody would record its checkpoint."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.gone = threading.Event()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=FEED_QUEUE)
        self._stream = stream
        threading.Thread(target=self._read, name="feed", daemon=True).start()

    def _read(self) -> None:
        ended = False
        try:
            for raw in self._stream:
                if ended or not raw.strip():
                    continue
                item = json.loads(raw)
                if item.get("end"):
                    ended = True
                    self._queue.put(None)
                else:
                    self._queue.put(item)
        finally:
            if not ended:
                self._queue.put(None)
            self.gone.set()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self._queue.get()) is not None:
            yield item


def run(
    request: dict[str, Any],
    records: Iterable[dict[str, Any]],
    report: Callable[[dict[str, object]], None] = emit,
    gone: threading.Event | None = None,
) -> dict[str, object]:
    """Ship files then containers' records; return the result for the daemon.
    ``report`` gets each checkpoint message (by default: a control line on stderr);
    once ``gone`` is set no further batch is sent."""
    job, host = str(request["job"]), str(request.get("host", socket.gethostname()))
    sink = make_sink(request["sink"], host, job)
    shipper = Shipper(
        sink,
        int(request.get("batch_lines", 1000)),
        int(request.get("batch_bytes", 1 << 20)),
        int(request.get("max_bytes", 1 << 30)),
        int(request.get("max_line", MAX_LINE)),
        report,
        gone or threading.Event(),
    )
    roots = mount_points() if request.get("confine") else None
    states, changes = plan_files(
        list(request.get("paths", [])), request.get("checkpoints", {}), roots
    )
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


def read_lines(fd: int) -> Iterator[bytes]:
    """Lines of a file descriptor, read with os.read: a thread blocked here holds no lock of
    Python's buffered stdin, so the interpreter can exit while it waits."""
    rest = b""
    while chunk := os.read(fd, READ_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def main() -> int:
    """Read the request from stdin, ship, report; exit 1 with the error on failure."""
    stdin = read_lines(sys.stdin.fileno())
    first = next(stdin, b"")
    try:
        request = json.loads(first)
    except ValueError:
        say(TOOL, "the first line of stdin is not the JSON request")
        return 2
    feed = DaemonFeed(stdin)
    try:
        result = run(request, feed, gone=feed.gone)
    except ShipError as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(guarded(TOOL, main))
