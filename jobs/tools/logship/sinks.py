"""The sinks a batch of records is delivered to: a file, stdout, HTTP and syslog."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote  # json's C string escaper
from pathlib import Path
from typing import Any, Protocol

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import say
from jobs.protocol.ship import (
    FACILITIES,
    SEVERITIES,
    FileSinkSpec,
    HttpSinkSpec,
    SinkSpec,
    StdoutSinkSpec,
    SyslogSinkSpec,
    parse_sink,
)

PREFIX_CACHE = 4096
"""Record prefixes (time, source, stream) kept by the NDJSON encoder."""
UDP_MAX = 65000
"""Longest syslog datagram sent over UDP (a longer message is cut)."""
TOOL = "logship"
"""The prefix of the tool's diagnostics on stderr."""


class ShipError(Exception):
    """A failure with a message for the run's error (never a secret in it)."""


def redact(url: str) -> str:
    """``url`` without user, password or query (they may hold secrets)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


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

    def __init__(self, spec: HttpSinkSpec, encoder: NdjsonEncoder) -> None:
        self._encoder = encoder
        url = urllib.parse.urlsplit(spec.url)
        self._headers = {"Content-Type": "application/x-ndjson", **spec.headers}
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
        self._timeout = spec.timeout
        self._ok = set(spec.ok_status)
        self._retry = Retrying(spec.retries, spec.retry_delay)

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

    def __init__(self, spec: SyslogSinkSpec, host: str, job: str) -> None:
        self._host = _ascii_token(host, 255)
        self._job = _sd_escape(job)
        address = urllib.parse.urlsplit(spec.address)
        self._proto = address.scheme
        if address.hostname is None or address.port is None:
            raise ShipError(f"syslog sink: no host and port in {spec.address!r}")
        self._where = (address.hostname, address.port)
        facility = FACILITIES[spec.facility]
        severity = SEVERITIES[spec.severity]
        self._pri = facility * 8 + severity
        self._app = _ascii_token(spec.app_name, 48)
        self._sock: socket.socket | None = None
        self._retry = Retrying(spec.retries, spec.retry_delay)
        self._timeout = spec.timeout
        rate = spec.udp_rate
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


def make_sink(config: SinkSpec | Mapping[str, Any], host: str, job: str) -> Sink:
    """The sink ``config`` names: a request's sink, or its JSON object (read here with
    ``parse_sink``; a bad one raises ShipError naming the field)."""
    if isinstance(config, Mapping):
        try:
            config = parse_sink(config)
        except RequestError as e:
            raise ShipError(str(e)) from None
    if isinstance(config, FileSinkSpec):
        return FileSink(config.path, NdjsonEncoder(host, job))
    if isinstance(config, StdoutSinkSpec):
        return StdoutSink(NdjsonEncoder(host, job))
    if isinstance(config, HttpSinkSpec):
        return HttpSink(config, NdjsonEncoder(host, job))
    return SyslogSink(config, host, job)
