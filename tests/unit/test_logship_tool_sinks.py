"""The logship tool's sinks and its stdin, pinned exactly: the bytes each sink sends, the
documented defaults (statuses, attempts, waits, pacing), errors that name the sink without
its secrets, and the feed's end mark and EOF."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from jobs.protocol.ship import SyslogSinkSpec
from jobs.tools import logship
from jobs.tools.logship import cli, sinks
from tests.control import result_of
from tests.receiver import PostReceiver, serving

if TYPE_CHECKING:
    from collections.abc import Iterator

T = "2026-11-28T12:00:00.000000Z"


class Clock:
    """Stands for ``time`` in the tool: ``sleep`` only moves ``now`` on, and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sinks, "time", SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep))
    return fake


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A TCP port that refuses connections for the whole test: bound, never listening (so
    no other process can take it meanwhile)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])


@pytest.fixture
def udp6() -> Iterator[socket.socket]:
    """A UDP socket on the IPv6 loopback. This machine kind has one: its absence is a
    failure, not a skip."""
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        server.bind(("::1", 0))
    except OSError as e:
        server.close()
        pytest.fail(f"no IPv6 loopback: cannot bind UDP on [::1] ({e})")
    with server:
        yield server


# --- redaction and the NDJSON record -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@logs.example:8443/in?token=s3cret#frag", "https://logs.example:8443/in"),
        ("http://user@logs.example/in?a=1", "http://logs.example/in"),
        ("http://logs.example/in", "http://logs.example/in"),
    ],
)
def test_redact_keeps_scheme_host_port_and_path_only(url: str, shown: str) -> None:
    assert logship.redact(url) == shown


def test_ndjson_records_each_carry_their_own_time_source_and_stream() -> None:
    """Records that share a time (one read), or a source, still each carry their own
    time, source and stream."""
    t1, t2 = T, T.replace("12:00", "12:01")
    records: list[logship.Record] = [
        (t1, "a", "1", None),
        (t1, "b", "2", None),
        (t1, "b", "3", "stdout"),
        (t1, "b", "4", "stderr"),
        (t2, "b", "5", "stderr"),
        (t2, "b", "6", "stderr"),
    ]
    encoded = logship.NdjsonEncoder("h", "j").encode(records)
    got = [json.loads(x) for x in encoded.splitlines()]
    expected: list[dict[str, Any]] = []
    for when, source, line, stream in records:
        record: dict[str, Any] = {"time": when, "host": "h", "job": "j", "source": source}
        if stream is not None:
            record["stream"] = stream
        expected.append({**record, "line": line})
    assert got == expected


def test_a_lone_surrogate_from_a_container_goes_through_file_and_syslog_sinks(
    tmp_path: Path,
) -> None:
    """A container's line may hold a lone surrogate (JSON ``\\ud83d``): it is delivered,
    encoded as its UTF-8 surrogate bytes, by the NDJSON sinks and by syslog."""
    out = tmp_path / "out.ndjson"
    sink = logship.FileSink(str(out), logship.NdjsonEncoder("h", "j"))
    sink.send([(T, "container:a:stdout", "x\ud83d", "stdout")])
    sink.close()
    assert out.read_bytes().endswith(b'"line":"x\xed\xa0\xbd"}\n')
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    syslog = logship.SyslogSink(
        SyslogSinkSpec(f"udp://127.0.0.1:{server.getsockname()[1]}"), "h", "j"
    )
    syslog.send([(T, "container:a:stdout", "x\ud83d", "stdout")])
    syslog.close()
    assert server.recv(65535).endswith(b"] x\xed\xa0\xbd")
    server.close()


# --- file, stdout, unknown ------------------------------------------------------------------


def test_the_file_sink_creates_its_directories_and_a_0644_file(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out.ndjson"
    old = os.umask(0o022)
    try:
        sink = logship.FileSink(str(out), logship.NdjsonEncoder("h", "j"))
    finally:
        os.umask(old)
    sink.send([(T, "s", "x", None)])
    sink.close()
    assert out.stat().st_mode & 0o777 == 0o644
    assert json.loads(out.read_text())["line"] == "x"


def test_file_and_stdout_sink_errors_name_the_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(logship.ShipError) as opening:
        logship.FileSink(str(tmp_path), logship.NdjsonEncoder("h", "j"))
    assert str(opening.value) == f"file sink {tmp_path}: Is a directory"
    full = logship.FileSink("/dev/full", logship.NdjsonEncoder("h", "j"))
    with pytest.raises(logship.ShipError) as writing:
        full.send([(T, "s", "x", None)])
    full.close()
    assert str(writing.value) == "file sink /dev/full: No space left on device"
    with Path("/dev/full").open("wb", buffering=0) as device:
        monkeypatch.setattr("sys.stdout", SimpleNamespace(buffer=device))
        with pytest.raises(logship.ShipError) as printing:
            logship.StdoutSink(logship.NdjsonEncoder("h", "j")).send([(T, "s", "x", None)])
        monkeypatch.undo()
    assert str(printing.value) == "stdout sink: No space left on device"


def test_an_unknown_sink_type_is_named() -> None:
    with pytest.raises(logship.ShipError, match="unknown sink type 'nope'"):
        logship.make_sink({"type": "nope"}, "h", "j")


# --- http -------------------------------------------------------------------------------


class Receiver(PostReceiver):
    """Answers with the next status of ``script`` (200 when it runs out); counts POSTs."""

    script: ClassVar[list[int]] = []
    posts: ClassVar[list[bytes]] = []

    def take(self, body: bytes) -> int:
        self.posts.append(body)
        return self.script.pop(0) if self.script else 200


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.script, Receiver.posts = [], []
    with serving(Receiver) as port:
        yield f"http://127.0.0.1:{port}/ingest"


@pytest.mark.parametrize(
    ("status", "delivered"),
    [(200, True), (201, True), (202, True), (204, True), (203, False), (205, False)],
)
def test_http_default_ok_status_is_200_201_202_204(
    receiver: str, clock: Clock, status: int, *, delivered: bool
) -> None:
    Receiver.script = [status]
    sink = logship.make_sink({"type": "http", "url": receiver, "retries": 0}, "h", "j")
    if delivered:
        sink.send([(T, "s", "x", None)])
    else:
        with pytest.raises(logship.ShipError, match=f"status {status}$"):
            sink.send([(T, "s", "x", None)])
    assert len(Receiver.posts) == 1


@pytest.mark.parametrize(
    ("config", "attempts", "waits"),
    [
        ({}, 4, [1.0, 2.0, 4.0]),
        ({"retries": 4, "retry_delay": 0.5}, 5, [0.5, 1.0, 2.0, 4.0]),
        ({"retries": 3, "retry_delay": 10}, 4, [10.0, 20.0, 30.0]),
        ({"retries": 0}, 1, []),
    ],
)
def test_http_attempts_and_waits_between_them(
    receiver: str,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    attempts: int,
    waits: list[float],
) -> None:
    """``retries`` more attempts after the first (3 by default), waiting ``retry_delay``
    (1 s by default) before the second, doubling, at most 30 s; each failed attempt is a
    diagnostic with its number; the error names the sink's URL without secrets."""
    Receiver.script = [503] * 10
    url = receiver.replace("http://", "http://user:pw@") + "?token=s3cret"
    sink = logship.make_sink({"type": "http", "url": url, **config}, "h", "j")
    with pytest.raises(logship.ShipError) as caught:
        sink.send([(T, "s", "x", None)])
    assert str(caught.value) == (
        f"http sink {receiver}: gave up after {attempts} attempts: status 503"
    )
    assert len(Receiver.posts) == attempts
    assert clock.sleeps == waits
    assert capsys.readouterr().err.splitlines() == [
        f"logship: http sink {receiver}: status 503 (attempt {n})" for n in range(1, attempts + 1)
    ]


class Captured:
    """Stands for urllib's urlopen: keeps each request and its timeout, answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def __call__(self, request: Any, timeout: Any = "unset") -> Any:
        self.calls.append((request, timeout))
        return self

    def __enter__(self) -> Any:
        return SimpleNamespace(status=200)

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    ("config", "url", "authorization", "timeout"),
    [
        (
            {"url": "http://user:p%40ss@logs.example/in?x=1"},
            "http://logs.example/in?x=1",
            "Basic " + base64.b64encode(b"user:p@ss").decode(),
            10.0,
        ),
        (
            {"url": "http://user@logs.example:8080/in", "timeout": 2.5},
            "http://logs.example:8080/in",
            "Basic " + base64.b64encode(b"user:").decode(),
            2.5,
        ),
        (
            {"url": "http://u:p@logs.example/in", "headers": {"Authorization": "Bearer t"}},
            "http://logs.example/in",
            "Bearer t",
            10.0,
        ),
        ({"url": "http://logs.example/in"}, "http://logs.example/in", None, 10.0),
    ],
)
def test_http_request_url_basic_auth_and_timeout(
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, Any],
    url: str,
    authorization: str | None,
    timeout: float,
) -> None:
    """``user:password@`` becomes basic authentication (a configured Authorization header
    wins) and leaves the URL; the request is a POST of NDJSON with the sink's timeout
    (10 s by default)."""
    captured = Captured()
    monkeypatch.setattr(urllib.request, "urlopen", captured)
    logship.make_sink({"type": "http", **config}, "h", "j").send([(T, "s", "x", None)])
    ((request, used_timeout),) = captured.calls
    assert request.full_url == url
    assert request.get_method() == "POST"
    assert request.get_header("Authorization") == authorization
    assert request.get_header("Content-type") == "application/x-ndjson"
    assert used_timeout == timeout


def test_http_errors_say_what_failed(clock: Clock, refusing_port: int) -> None:
    """A refused connection gives its reason; a receiver that never answers fails after the
    sink's timeout as ``timed out``."""
    port = refusing_port
    sink = logship.make_sink(
        {"type": "http", "url": f"http://127.0.0.1:{port}/", "retries": 0}, "h", "j"
    )
    with pytest.raises(logship.ShipError) as refused:
        sink.send([(T, "s", "x", None)])
    assert str(refused.value) == (
        f"http sink http://127.0.0.1:{port}/: gave up after 1 attempts: "
        "[Errno 111] Connection refused"
    )
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def hold() -> None:
        listener.settimeout(5)
        try:
            held.append(listener.accept()[0])
        except OSError:
            return
        done.wait(5)  # then close: a sink without its timeout would see the end instead
        held[0].close()

    threading.Thread(target=hold, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    sink = logship.make_sink({"type": "http", "url": url, "retries": 0, "timeout": 0.3}, "h", "j")
    try:
        with pytest.raises(logship.ShipError) as silent:
            sink.send([(T, "s", "x", None)])
    finally:
        done.set()
        listener.close()
    assert str(silent.value) == f"http sink {url}: gave up after 1 attempts: timed out"


# --- syslog -------------------------------------------------------------------------------


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    yield server
    server.close()


def syslog_message(server: socket.socket, config: dict[str, Any], host: str, job: str) -> str:
    address = f"udp://127.0.0.1:{server.getsockname()[1]}"
    sink = logship.make_sink({"type": "syslog", "address": address, **config}, host, job)
    sink.send([(T, 'a\\b"c]d', "the line", None)])
    sink.close()
    return server.recv(65535).decode()


@pytest.mark.parametrize(
    ("host", "field"),
    [
        ("my host\x7f!~", "myhost!~"),
        ("", "-"),
        (" \t", "-"),
        ("h" * 300, "h" * 255),
    ],
)
def test_syslog_hostname_is_printable_ascii_without_spaces_at_most_255(
    udp: socket.socket, host: str, field: str
) -> None:
    message = syslog_message(udp, {}, host, "j")
    assert message.split(" ")[1:3] == [T, field]


def test_syslog_defaults_and_structured_data_escapes(udp: socket.socket) -> None:
    """By default user.info (14) and APP-NAME ``crontainer``; the source and the job are
    escaped as RFC 5424 PARAM-VALUEs (backslash, quote, bracket)."""
    message = syslog_message(udp, {}, "box", 'j"]\\')
    assert message == (
        f"<14>1 {T} box crontainer - - "
        '[crontainer@32473 source="a\\\\b\\"c\\]d" job="j\\"\\]\\\\"] the line'
    )


def test_syslog_facility_severity_and_app_name(udp: socket.socket) -> None:
    message = syslog_message(
        udp, {"facility": "local0", "severity": "err", "app_name": "a p" + "x" * 60}, "box", "j"
    )
    assert message.split(" ")[:4] == [f"<{16 * 8 + 3}>1", T, "box", "ap" + "x" * 46]


def test_syslog_over_ipv6(udp6: socket.socket) -> None:
    udp6.settimeout(5)
    sink = logship.make_sink(
        {"type": "syslog", "address": f"udp://[::1]:{udp6.getsockname()[1]}"}, "h", "j"
    )
    sink.send([(T, "s", "over six", None)])
    sink.close()
    assert udp6.recv(65535).endswith(b"] over six")


def test_a_syslog_address_without_a_port_is_named() -> None:
    with pytest.raises(logship.ShipError) as caught:
        logship.make_sink({"type": "syslog", "address": "udp://logs.example"}, "h", "j")
    assert str(caught.value) == "syslog sink: no host and port in 'udp://logs.example'"


@pytest.mark.parametrize(
    ("rate", "waits"),
    [(None, [1 / 5000] * 3), (4.0, [0.25] * 3), (1.0, [1.0] * 3), (0.5, [2.0] * 3), (0, [])],
)
def test_syslog_udp_keeps_to_udp_rate(
    udp: socket.socket, clock: Clock, rate: float | None, waits: list[float]
) -> None:
    """``udp_rate`` datagrams per second (5000 by default; 0: no limit): the first at once,
    each next one a 1/rate later."""
    config: dict[str, Any] = {
        "type": "syslog",
        "address": f"udp://127.0.0.1:{udp.getsockname()[1]}",
    }
    if rate is not None:
        config["udp_rate"] = rate
    sink = logship.make_sink(config, "h", "j")
    sink.send([(T, "s", f"line {i}", None) for i in range(4)])
    sink.close()
    assert [udp.recv(65535).decode().rsplit(" ", 1)[1] for _ in range(4)] == ["0", "1", "2", "3"]
    assert clock.sleeps == pytest.approx(waits)


@pytest.mark.parametrize(
    ("config", "attempts", "waits"),
    [({}, 4, [1.0, 2.0, 4.0]), ({"retries": 1, "retry_delay": 0.25}, 2, [0.25])],
)
def test_a_syslog_receiver_that_is_down(
    clock: Clock, refusing_port: int, config: dict[str, Any], attempts: int, waits: list[float]
) -> None:
    port = refusing_port
    sink = logship.make_sink(
        {"type": "syslog", "address": f"tcp://127.0.0.1:{port}", **config}, "h", "j"
    )
    with pytest.raises(logship.ShipError) as caught:
        sink.send([(T, "s", "x", None)])
    assert str(caught.value) == (
        f"syslog sink tcp://127.0.0.1:{port}: gave up after {attempts} attempts: "
        "[Errno 111] Connection refused"
    )
    assert clock.sleeps == waits


def test_a_syslog_receiver_that_stops_reading_fails_after_the_timeout() -> None:
    """Over TCP a receiver that takes no more bytes: the batch fails after the sink's
    ``timeout`` with ``timed out``."""
    listener = socket.create_server(("127.0.0.1", 0))  # never accepts, never reads
    done = threading.Event()

    def close_later() -> None:
        done.wait(5)  # then reset: a sink without its timeout would see that instead
        listener.close()

    threading.Thread(target=close_later, daemon=True).start()
    where = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    sink = logship.make_sink(
        {"type": "syslog", "address": where, "retries": 0, "timeout": 0.3}, "h", "j"
    )
    try:
        with pytest.raises(logship.ShipError) as caught:
            sink.send([(T, "s", "x" * (32 << 20), None)])
    finally:
        done.set()
    assert str(caught.value) == f"syslog sink {where}: gave up after 1 attempts: timed out"


def test_a_udp_send_refused_closes_and_the_next_attempt_connects_again(
    clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """No receiver yet: the second datagram is refused (ICMP), the attempt fails with that
    reason; the receiver is up for the retry, which connects again and delivers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reserved:
        reserved.bind(("127.0.0.1", 0))  # the port is held until right before the send
        port = int(reserved.getsockname()[1])
        sink = logship.make_sink(
            {"type": "syslog", "address": f"udp://127.0.0.1:{port}", "udp_rate": 0}, "h", "j"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.settimeout(5)
        clock.on_sleep.append(lambda: server.bind(("127.0.0.1", port)))
        sink.send([(T, "s", "one", None), (T, "s", "two", None)])
        sink.close()
        assert [server.recv(65535).decode().rsplit(" ", 1)[1] for _ in range(2)] == [
            "one",
            "two",
        ]
    assert capsys.readouterr().err.splitlines() == [
        f"logship: syslog sink udp://127.0.0.1:{port}: [Errno 111] Connection refused (attempt 1)"
    ]


# --- stdin ------------------------------------------------------------------------------------


def drained(feed: logship.DaemonFeed) -> list[dict[str, Any]]:
    """Every item the feed yields, read in a thread; fails if the feed never ends."""
    items: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: items.extend(feed), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "the feed never ended"
    return items


def test_the_feed_ignores_what_follows_the_end_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the end mark nothing more is queued, however much comes: the reader reaches
    EOF (the daemon gone) even with a small queue."""
    monkeypatch.setattr(cli, "FEED_QUEUE", 2)
    lines = [b'{"line": "a"}\n', b'{"end": true}\n', *[b'{"line": "late"}\n'] * 5]
    feed = logship.DaemonFeed(iter(lines))
    assert feed.gone.wait(5)
    assert [item["line"] for item in drained(feed)] == ["a"]


def test_the_feed_ends_at_eof_without_an_end_mark() -> None:
    feed = logship.DaemonFeed(iter([b'{"line": "a"}\n', b'{"line": "b"}\n']))
    assert [item["line"] for item in drained(feed)] == ["a", "b"]
    assert feed.gone.wait(5)


def test_read_lines_splits_a_descriptor_into_lines_across_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "READ_CHUNK", 3)
    read_end, write_end = os.pipe()
    os.write(write_end, b"first\n\nsecond line\nlast")
    os.close(write_end)
    try:
        assert list(logship.read_lines(read_end)) == [b"first", b"", b"second line", b"last"]
    finally:
        os.close(read_end)


class Stdin:
    """A stdin whose descriptor is the read end of a pipe the test writes."""

    def __init__(self, data: bytes) -> None:
        self.read_end, self.write_end = os.pipe()
        os.write(self.write_end, data)

    def fileno(self) -> int:
        return self.read_end

    def close(self) -> None:
        os.close(self.write_end)


def run_main(monkeypatch: pytest.MonkeyPatch, data: bytes, *, eof: bool = False) -> int:
    stdin = Stdin(data)
    if eof:
        stdin.close()
    monkeypatch.setattr("sys.stdin", stdin)
    before = set(threading.enumerate())
    try:
        return logship.main()
    finally:
        if not eof:
            stdin.close()  # the daemon lets go of stdin once the tool is done
        for reader in set(threading.enumerate()) - before:
            reader.join(10)  # the feed's reader sees EOF and ends
            assert not reader.is_alive()
        os.close(stdin.read_end)


@pytest.mark.parametrize("data", [b"not json\n", b""])
def test_main_without_a_json_request_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    assert run_main(monkeypatch, data, eof=True) == 2
    assert capsys.readouterr().err == "logship: the first line of stdin is not the JSON request\n"


def test_main_reports_a_failure_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    request = {"job": "j", "host": "h", "sink": {"type": "nope"}}
    assert run_main(monkeypatch, json.dumps(request).encode() + b"\n") == 1
    assert capsys.readouterr().err == "logship: unknown sink type 'nope'\n"


def test_main_stops_when_the_daemon_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdin closed right after the request (the daemon died): the tool sends no batch and
    reports nothing as delivered; exit 1 with the reason."""

    class Settled(logship.DaemonFeed):
        """The feed, returned once it has seen stdin's end."""

        def __init__(self, stream: Iterator[bytes]) -> None:
            super().__init__(stream)
            assert self.gone.wait(5)

    monkeypatch.setattr(cli, "DaemonFeed", Settled)
    log = tmp_path / "app.log"
    log.write_text("line 1\n")
    out = tmp_path / "out.ndjson"
    request = {"job": "j", "host": "h", "sink": {"type": "file", "path": str(out)}}
    data = json.dumps({**request, "paths": [str(log)]}).encode() + b"\n"
    assert run_main(monkeypatch, data, eof=True) == 1
    assert capsys.readouterr().err == (
        "logship: the daemon went away (its stdin closed): stopped before the next batch\n"
    )
    assert not out.exists() or out.read_text() == ""


def test_main_ships_the_fed_records_and_emits_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The request, then container records and the end mark, read in small pieces: the
    records are shipped, their checkpoint reported, then the result; exit 0."""
    monkeypatch.setattr(cli, "READ_CHUNK", 5)
    out = tmp_path / "out.ndjson"
    request = {"job": "j", "host": "h", "sink": {"type": "file", "path": str(out)}}
    record = {"source": "container:a:stdout", "time": T, "stream": "stdout", "line": "hi"}
    data = b"".join(
        json.dumps(x).encode() + b"\n"
        for x in [request, {**record, "cp": {"ns": 1}}, {"end": True}]
    )
    assert run_main(monkeypatch, data) == 0
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == ["hi"]
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(x.removeprefix("@crontainer ")) for x in lines] == [
        {"checkpoint": {"container:a:stdout": {"ns": 1}}, "forget": []},
        {
            "result": {
                "lines": 1,
                "bytes": 3,
                "batches": 1,
                "files": 0,
                "backlog": False,
                "cut_lines": 0,
                "cut_bytes": 0,
            }
        },
    ]


def test_the_tool_exits_when_done_while_the_daemon_still_holds_its_stdin(tmp_path: Path) -> None:
    """The daemon keeps stdin open while the run lasts: the tool, done, exits all the same
    (the thread still reading stdin never holds the process)."""
    out = tmp_path / "out.ndjson"
    request = {"job": "j", "host": "h", "sink": {"type": "file", "path": str(out)}}
    record = {"source": "container:a:stdout", "time": T, "stream": "stdout", "line": "hi"}
    entry = "import sys; from jobs.tools import logship; sys.exit(logship.main())"
    tool = subprocess.Popen(  # main in a fresh interpreter (as python -m runs it)
        [sys.executable, "-c", entry],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tool.stdin is not None
    assert tool.stderr is not None
    try:
        for item in [request, {**record, "cp": {"ns": 1}}, {"end": True}]:
            tool.stdin.write(json.dumps(item).encode() + b"\n")
        tool.stdin.flush()
        code = tool.wait(timeout=60)
    finally:
        tool.stdin.close()
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert code == 0
    assert result_of(tool.stderr.read().decode().splitlines()[-1])["lines"] == 1  # the last line
    tool.stderr.close()
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == ["hi"]
