"""The protocol between the daemon and the ops tools under ``jobs.tools`` (stdlib only).

A tool talks to the daemon on its **stderr**, one *control line* per message::

    @crontainer {"result": {...}}          the tool's result (once, at the end)
    @crontainer {"checkpoint": {...}, "forget": [...]}   logship: a delivered batch
    @crontainer {"warning": {"event": "backup.future_archive", ...}}

Everything else a tool prints on stderr is a diagnostic, and every diagnostic goes
through ``say``, which escapes control characters: a file name holding a newline
(``x\\n@crontainer {...}``) is printed as ``x\\x0a@crontainer {...}`` inside one line
that starts with the tool's name, so no diagnostic can ever begin a line with the
control mark. ``guarded`` routes uncaught exceptions (the main thread's and other
threads') through ``say`` too. The daemon takes control lines out of the output
before the output's limits apply (a result is never cut), bounds their length, and
checks what each message holds before it acts on it.

The daemon talks to a tool on its command line, or (logship) on its **stdin**: the first
line is a ``ShipRequest`` (below) — one type, built by the plan (``jobs.logship``),
completed and written by the daemon, read by the tool (``jobs.tools.logship``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

CONTROL = "@crontainer "
"""The start of a control line."""
CONTROL_MARK = CONTROL.encode()
MAX_CONTROL_LINE = 64 * 1024 * 1024
"""The longest control message the daemon accepts, in bytes after the mark (a result
listing 100,000 rotated files fits many times over); the output's own limits never apply
to control lines."""
WARNING_EVENTS = frozenset({"backup.future_archive"})
"""The events a tool may ask the daemon to log (``{"warning": {"event": …}}``)."""

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` on one line: control characters (newlines included) as ``\\xNN``."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(message: dict[str, object], stream: IO[str] | None = None) -> None:
    """Write one control line (flushed: the daemon acts on it at once)."""
    out = stream or sys.stderr
    out.write(CONTROL + json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def say(tool: str, text: str, stream: IO[str] | None = None) -> None:
    """Write one diagnostic line ``<tool>: <text>``, escaped (never a control line)."""
    out = stream or sys.stderr
    out.write(f"{tool}: {escape(text)}\n")
    out.flush()


def parse(line: bytes) -> dict[str, object] | None:
    """The message of a control line (without its newline), else None."""
    if not line.startswith(CONTROL_MARK) or len(line) - len(CONTROL_MARK) > MAX_CONTROL_LINE:
        return None
    try:
        message = json.loads(line[len(CONTROL_MARK) :])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def guarded(tool: str, main: Callable[[], int]) -> int:
    """Run a tool's ``main``: an uncaught exception anywhere (other threads included) is
    printed through ``say`` — escaped — and ends the tool with exit code 3."""

    def in_thread(args: threading.ExceptHookArgs) -> None:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value))
        say(tool, f"internal error in thread {args.thread.name if args.thread else '?'}: {text}")

    threading.excepthook = in_thread
    try:
        return main()
    except Exception as e:  # the tool's last resort: say it, escaped
        say(tool, "internal error: " + "".join(traceback.format_exception(e)))
        return 3


# --- logship's request: the first line of the tool's stdin ------------------------------

MAX_BYTES = 256 * 1024 * 1024
"""``max_bytes``' default: about this much per run; the rest waits for the next."""
MAX_LINE = 1024 * 1024
"""``max_line``'s default: a longer line is shipped cut to this many bytes."""
BATCH_LINES = 1000
"""``batch_lines``' default: at most this many lines per batch."""
BATCH_BYTES = 1024 * 1024
"""``batch_bytes``' default: at most about this many bytes per batch."""
SINK_TIMEOUT = 10.0
"""Seconds an http or syslog sink waits for its receiver."""
SINK_RETRIES = 3
"""More attempts per batch after a failure (http, syslog)."""
SINK_RETRY_DELAY = 1.0
"""Seconds before the second attempt; doubled for each further one (up to 30)."""
OK_STATUS = (200, 201, 202, 204)
"""The HTTP statuses that acknowledge a batch."""
FACILITY = "user"
SEVERITY = "info"
APP_NAME = "crontainer"
UDP_RATE = 5000.0
"""Syslog datagrams per second (0: no limit)."""
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
"""Syslog facilities by name, and their numbers (RFC 5424)."""
SEVERITIES = {
    name: number
    for number, name in enumerate(
        ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
    )
}
"""Syslog severities by name, and their numbers."""


class RequestError(ValueError):
    """A logship request the tool cannot read. The message names the field and the JSON
    type it had, never its value (a header's value may be a secret)."""


@dataclass(frozen=True, slots=True)
class FileSinkSpec:
    """Append NDJSON to ``path`` (a path inside the shipping container)."""

    TYPE: ClassVar[str] = "file"
    path: str


@dataclass(frozen=True, slots=True)
class StdoutSinkSpec:
    """Print NDJSON on stdout: the shipping container's log driver carries it on."""

    TYPE: ClassVar[str] = "stdout"


@dataclass(frozen=True, slots=True)
class HttpSinkSpec:
    """POST each batch as NDJSON to ``url``; delivered when the status is in ``ok_status``."""

    TYPE: ClassVar[str] = "http"
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = SINK_TIMEOUT
    ok_status: tuple[int, ...] = OK_STATUS
    retries: int = SINK_RETRIES
    retry_delay: float = SINK_RETRY_DELAY

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


@dataclass(frozen=True, slots=True)
class SyslogSinkSpec:
    """RFC 5424 messages to ``address`` (``udp://host:port`` or ``tcp://host:port``)."""

    TYPE: ClassVar[str] = "syslog"
    address: str
    facility: str = FACILITY
    severity: str = SEVERITY
    app_name: str = APP_NAME
    timeout: float = SINK_TIMEOUT
    retries: int = SINK_RETRIES
    retry_delay: float = SINK_RETRY_DELAY
    udp_rate: float = UDP_RATE


SinkSpec = FileSinkSpec | StdoutSinkSpec | HttpSinkSpec | SyslogSinkSpec
"""Where a logship run delivers its batches; ``type`` on the wire."""


@dataclass(frozen=True, slots=True)
class ShipRequest:
    """What one logship run is to do. The plan builds it without ``host`` and
    ``checkpoints``; the daemon completes both (and the sink's secret headers) and writes
    ``to_json()`` as the first line of the tool's stdin; the tool reads it with ``parse``."""

    job: str
    sink: SinkSpec
    paths: tuple[str, ...] = ()
    """Absolute globs of the files to ship."""
    max_bytes: int = MAX_BYTES
    max_line: int = MAX_LINE
    batch_lines: int = BATCH_LINES
    batch_bytes: int = BATCH_BYTES
    confine: bool = False
    """Read files only inside the volumes mounted into the container (the plan's always do;
    a tool run outside a container reads anywhere)."""
    host: str | None = None
    """The engine's host name, for the records (None: the host the tool runs on)."""
    checkpoints: Mapping[str, Mapping[str, object]] | None = None
    """The job's file checkpoints, ``{source: checkpoint}`` as the tool last reported them."""

    def __post_init__(self) -> None:
        if self.checkpoints is not None:
            object.__setattr__(self, "checkpoints", MappingProxyType(dict(self.checkpoints)))

    def to_json(self) -> str:
        """The request as the tool reads it: one line of JSON (without its newline);
        ``host`` and ``checkpoints`` only once they are set."""
        sink = {"type": self.sink.TYPE, **_json_object(self.sink)}
        return json.dumps({**_json_object(self), "sink": sink})

    @classmethod
    def parse(cls, value: object) -> ShipRequest:
        """The request from its JSON (``json.loads`` of the tool's first stdin line). A key
        left out takes the default above; a bad one raises RequestError naming it."""
        fields = _Fields(value, "")
        return cls(
            fields.text("job"),
            parse_sink(fields.table("sink")),
            **fields.given(
                {
                    "paths": fields.texts,
                    "max_bytes": fields.integer,
                    "max_line": fields.integer,
                    "batch_lines": fields.integer,
                    "batch_bytes": fields.integer,
                    "confine": fields.flag,
                    "host": fields.text,
                    "checkpoints": fields.tables,
                }
            ),
        )


def parse_sink(value: object) -> SinkSpec:
    """A request's ``sink`` object as its spec; RequestError names a bad field."""
    fields = _Fields(value, "sink")
    kind = fields.data.get("type")
    if kind == FileSinkSpec.TYPE:
        return FileSinkSpec(fields.text("path"))
    if kind == StdoutSinkSpec.TYPE:
        return StdoutSinkSpec()
    retrying = {"timeout": fields.number, "retries": fields.integer, "retry_delay": fields.number}
    if kind == HttpSinkSpec.TYPE:
        return HttpSinkSpec(
            fields.text("url"),
            **fields.given(
                {"headers": fields.text_table, "ok_status": fields.integers, **retrying}
            ),
        )
    if kind == SyslogSinkSpec.TYPE:
        return SyslogSinkSpec(
            fields.text("address"),
            **fields.given(
                {
                    "facility": lambda key: fields.choice(key, FACILITIES),
                    "severity": lambda key: fields.choice(key, SEVERITIES),
                    "app_name": fields.text,
                    "udp_rate": fields.number,
                    **retrying,
                }
            ),
        )
    raise RequestError(f"unknown sink type {kind!r}")


_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class _Fields:
    """One JSON object of a request, read key by key: a key missing (where it is required)
    or of the wrong type raises RequestError naming it (``sink.timeout``)."""

    def __init__(self, value: object, name: str) -> None:
        if not isinstance(value, dict):
            where = f"request field {name!r}" if name else "the request"
            raise RequestError(f"{where}: expected an object, got {_json_type(value)}")
        self.data: dict[str, object] = value
        self._prefix = f"{name}." if name else ""

    def _error(self, key: str, expected: str) -> RequestError:
        got = _json_type(self.data[key]) if key in self.data else "nothing"
        return RequestError(f"request field {self._prefix + key!r}: expected {expected}, got {got}")

    def given(self, readers: Mapping[str, Callable[[str], object]]) -> dict[str, Any]:
        """The keys present, each read by its reader (the defaults stand for the others)."""
        return {key: read(key) for key, read in readers.items() if key in self.data}

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._error(key, "a string")
        return value

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._error(key, "an integer")
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self._error(key, "a number")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self._error(key, "true or false")
        return value

    def choice(self, key: str, names: Collection[str]) -> str:
        value = self.text(key)
        if value not in names:
            raise RequestError(f"request field {self._prefix + key!r}: unknown {key} {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._error(key, "an array of strings")
        return tuple(value)

    def integers(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self._error(key, "an array of integers")
        return tuple(value)

    def text_table(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._error(key, "an object of strings")
        return value

    def table(self, key: str) -> dict[str, object]:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self._error(key, "an object")
        return value

    def tables(self, key: str) -> dict[str, dict[str, object]]:
        value = self.data.get(key)
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise self._error(key, "an object of objects")
        return value


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _json_object(spec: ShipRequest | SinkSpec) -> dict[str, object]:
    """A spec's fields as JSON takes them (None left out): mappings as objects, tuples as
    arrays."""
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    return {name: _plain(value) for name, value in values.items() if value is not None}


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
