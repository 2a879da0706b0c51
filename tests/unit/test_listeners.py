"""The listeners' connections (the HTTP listener and the admin socket): bounded in
number, closed after a timeout, and a handler's error is an event, not a traceback."""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
import time
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
import structlog

from scheduler.admin import AdminServer, request_trigger
from scheduler.listeners import BoundedThreadingMixIn
from scheduler.status import Health, StatusServer
from tests import receiver

from .test_metrics import make_metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@contextlib.contextmanager
def listening(
    tmp_path: Path,
    timeout: float,
    bound: int,
    engine_error: Callable[[], str | None] = lambda: None,
) -> Iterator[StatusServer]:
    status = StatusServer(
        "127.0.0.1", 0, make_metrics(tmp_path), Health(lambda: True, engine_error),
        timeout=timeout, max_connections=bound,
    )  # fmt: skip
    status.start()
    try:
        yield status
    finally:
        status.stop()


@contextlib.contextmanager
def admin_listening(
    tmp_path: Path,
    timeout: float,
    bound: int,
    trigger: Callable[[str], tuple[int, dict[str, object]]],
) -> Iterator[AdminServer]:
    admin = AdminServer(tmp_path, trigger, timeout=timeout, max_connections=bound)
    admin.start()
    try:
        yield admin
    finally:
        admin.stop()


def handler_threads(server: StatusServer | AdminServer) -> int:
    """Live threads serving a connection of ``server``."""
    return sum(t.name == server.connection_thread_name for t in threading.enumerate())


@contextlib.contextmanager
def peak_of(count: Callable[[], int]) -> Iterator[list[int]]:
    """Sample ``count`` in a thread until the block ends; yields [the highest seen]."""
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], count())
            stop.wait(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(5)
        peak[0] = max(peak[0], count())


def healthz(status: StatusServer) -> tuple[int, str] | None:
    """/healthz's status and body; None if the connection was closed without an answer."""
    try:
        return receiver.get(f"http://127.0.0.1:{status.port}/healthz", timeout=10)
    except (urllib.error.URLError, ConnectionError):
        return None


def until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server has closed ``sock`` (its end read or a reset), without waiting."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_closed(sockets: list[socket.socket], count: int) -> set[socket.socket]:
    """Wait until the server has closed ``count`` of ``sockets``; return those."""
    closed: set[socket.socket] = set()

    def enough() -> bool:
        closed.update(s for s in sockets if s not in closed and closed_by_server(s))
        return len(closed) >= count

    assert until(enough), f"{len(closed)} of {len(sockets)} closed, expected {count}"
    return closed


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_connections_beyond_the_bound_are_closed_at_once(tmp_path: Path) -> None:
    """With the bound reached, more connections are closed at once without a thread
    (http.busy once); the held ones stay; once they end, /healthz answers again."""
    with (
        listening(tmp_path, timeout=60, bound=4) as status,
        structlog.testing.capture_logs() as logs,
        contextlib.ExitStack() as stack,
    ):
        with peak_of(lambda: handler_threads(status)) as peak:
            sockets = [stack.enter_context(connect(status.port)) for _ in range(12)]
            closed = wait_closed(sockets, 8)
        held = [sock for sock in sockets if sock not in closed]
        assert len(held) == 4
        assert peak[0] == 4
        assert status.connections == 4
        assert not any(closed_by_server(sock) for sock in held)
        assert healthz(status) is None  # refused too: closed without an answer
        for sock in held:
            sock.close()
        assert until(lambda: status.connections == 0)
        assert healthz(status) == (200, '{"status": "ok"}\n')
    (busy,) = [e for e in logs if e["event"] == "http.busy"]
    assert busy == {**busy, "max_connections": 4, "log_level": "warning"}


def test_idle_connections_are_closed_after_the_timeout_then_healthz_answers(
    tmp_path: Path,
) -> None:
    """Three times the bound of idle connections: never more handler threads than the
    bound; every one is closed by the server, and then /healthz answers."""
    with listening(tmp_path, timeout=0.3, bound=4) as status, contextlib.ExitStack() as stack:
        with peak_of(lambda: handler_threads(status)) as peak:
            sockets = [stack.enter_context(connect(status.port)) for _ in range(12)]
            wait_closed(sockets, 12)
            assert until(lambda: status.connections == 0)
        assert 1 <= peak[0] <= 4
        assert healthz(status) == (200, '{"status": "ok"}\n')


def test_an_idle_connection_is_closed_by_the_server_after_the_timeout(tmp_path: Path) -> None:
    """A connection that sends nothing is closed by the server once the timeout passed."""
    with listening(tmp_path, timeout=0.3, bound=4) as status:
        started = time.monotonic()  # before the server can have accepted it
        with connect(status.port) as sock:
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
            assert time.monotonic() - started >= 0.3
        assert until(lambda: status.connections == 0)


def test_a_slow_client_is_closed_after_the_timeout_though_it_keeps_sending(
    tmp_path: Path,
) -> None:
    """A client that trickles a header a byte at a time (each read waits less than the
    timeout) is still closed once the timeout passed since it connected."""
    with listening(tmp_path, timeout=0.5, bound=4) as status:
        started = time.monotonic()  # before the server can have accepted it
        sock = connect(status.port)
        closed, deadline = False, started + 10
        with sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\nX-Slow: ")
            while not closed and time.monotonic() < deadline:
                if select.select([sock], [], [], 0.05)[0]:
                    closed = closed_by_server(sock)
                    continue
                try:
                    sock.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
        assert closed
        assert time.monotonic() - started >= 0.5
        assert until(lambda: status.connections == 0)


def test_an_exception_in_a_handler_is_an_event_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler that raises closes that connection and logs http.request_failed with
    the error; nothing is written to stderr, and the listener goes on."""
    broken = [True]

    def engine_error() -> str | None:
        if broken[0]:
            raise RuntimeError("boom")
        return None

    with (
        listening(tmp_path, timeout=10, bound=4, engine_error=engine_error) as status,
        structlog.testing.capture_logs() as logs,
    ):
        assert healthz(status) is None  # closed without an answer
        broken[0] = False
        assert healthz(status) == (200, '{"status": "ok"}\n')
    (failed,) = [e for e in logs if e["event"] == "http.request_failed"]
    assert failed == {**failed, "log_level": "warning", "error": "RuntimeError: boom"}
    assert "Traceback" not in capsys.readouterr().err


def test_the_admin_socket_bounds_and_times_out_its_connections(tmp_path: Path) -> None:
    """The admin socket: never more handler threads than the bound, idle connections
    closed after the timeout, then a trigger works."""

    def trigger(job: str) -> tuple[int, dict[str, object]]:
        return 202, {"run_id": "r1", "job": job}

    def unix() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(admin.path))
        return sock

    with (
        admin_listening(tmp_path, timeout=0.3, bound=2, trigger=trigger) as admin,
        contextlib.ExitStack() as stack,
    ):
        with peak_of(lambda: handler_threads(admin)) as peak:
            sockets = [stack.enter_context(unix()) for _ in range(6)]
            wait_closed(sockets, 6)
            assert until(lambda: admin.connections == 0)
        assert 1 <= peak[0] <= 2
        assert request_trigger(tmp_path, "db") == (202, {"run_id": "r1", "job": "db"})


def test_an_exception_in_an_admin_handler_is_an_event_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trigger that raises closes that connection and logs admin.request_failed;
    nothing on stderr, and the next trigger is answered."""
    calls: list[str] = []

    def trigger(job: str) -> tuple[int, dict[str, object]]:
        calls.append(job)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return 202, {"run_id": "r2", "job": job}

    with (
        admin_listening(tmp_path, timeout=10, bound=2, trigger=trigger),
        structlog.testing.capture_logs() as logs,
    ):
        with pytest.raises(ConnectionError):  # closed without an answer
            request_trigger(tmp_path, "db")
        assert request_trigger(tmp_path, "db") == (202, {"run_id": "r2", "job": "db"})
    (failed,) = [e for e in logs if e["event"] == "admin.request_failed"]
    assert failed == {**failed, "log_level": "warning", "error": "RuntimeError: boom"}
    assert "Traceback" not in capsys.readouterr().err


def test_listeners_stopped_before_they_started_close_their_sockets(tmp_path: Path) -> None:
    """The daemon enters a listener into its ExitStack as soon as it is bound, before it
    serves: ``stop`` then returns (no serving loop to wait for), the HTTP port is free
    again and the admin socket file is gone."""
    status = StatusServer(
        "127.0.0.1", 0, make_metrics(tmp_path), Health(lambda: True, lambda: None)
    )
    admin = AdminServer(tmp_path, lambda job: (404, {}))

    def stop_both() -> None:
        status.stop()
        admin.stop()

    stopping = threading.Thread(target=stop_both, daemon=True)
    stopping.start()
    stopping.join(10)
    assert not stopping.is_alive(), "stop waited for a serving loop that never began"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", status.port))
    assert not admin.path.exists()


class _Pong(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(b"pong\n")


class _LineServer(BoundedThreadingMixIn, socketserver.TCPServer):
    """A bounded TCP server answering each line with ``pong``."""


def test_a_stop_ends_the_serving_loop_at_once_not_at_its_next_poll() -> None:
    """shutdown wakes serve_forever: a loop that would next look for a stop in an hour
    serves a connection (it does not wait for the poll to accept it) and, asked to stop,
    ends — twice, so the wake is spent by the first stop."""
    server = _LineServer(("127.0.0.1", 0), _Pong, label="test")
    address = cast("tuple[str, int]", server.server_address)
    try:
        for _ in range(2):
            loop = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
            loop.start()
            with socket.create_connection(address, timeout=30) as client:
                client.sendall(b"ping\n")
                assert client.makefile("rb").readline() == b"pong\n"
            stopper = threading.Thread(target=server.shutdown, daemon=True)
            stopper.start()
            stopper.join(60)  # a hang guard: the poll would come after 3600 s
            loop.join(60)
            assert not stopper.is_alive()
            assert not loop.is_alive()
    finally:
        server.server_close()
