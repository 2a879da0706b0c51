"""logship's request: what one run is to do, the first line of the tool's stdin (stdlib
only). One type, built by the plan (``jobs.logship``), completed and written by the daemon
(``scheduler.steps.ship``), read by the tool (``jobs.tools.logship``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from jobs.protocol.fields import Fields, RequestError, json_object

if TYPE_CHECKING:
    from collections.abc import Mapping

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
        sink = {"type": self.sink.TYPE, **json_object(self.sink)}
        return json.dumps({**json_object(self), "sink": sink})

    @classmethod
    def parse(cls, value: object) -> ShipRequest:
        """The request from its JSON (``json.loads`` of the tool's first stdin line). A key
        left out takes the default above; a bad one raises RequestError naming it."""
        fields = Fields(value, "")
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
    fields = Fields(value, "sink")
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
