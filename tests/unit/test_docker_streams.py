"""The engine's hijacked connections are closed to the fd when their stream ends: docker-py
keeps them in a reference cycle, so a close that leaves the socket to the garbage collector
held one fd per run and exec until its next full pass (the soak, bench/soak.py)."""

from __future__ import annotations

import contextlib
import gc
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from scheduler.docker_streams import DockerOutput, DockerStdin, frames

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def frame(stream: int, data: bytes) -> bytes:
    """One frame of the engine's multiplexed stream (1 stdout, 2 stderr)."""
    return struct.pack(">BxxxL", stream, len(data)) + data


@pytest.fixture
def hijacked() -> Iterator[tuple[Any, socket.socket, socket.socket]]:
    """What docker-py hands over: the SocketIO under an HTTP response's buffered reader,
    the response (here the reader) still referring to it; and the engine's end."""
    ours, engine = socket.socketpair()
    reader = ours.makefile("rb")  # as http.client reads the response (one io reference)
    sock: Any = reader.raw
    sock._response = reader  # docker-py's cycle
    gc.disable()  # the cycle must not be what frees it here
    try:
        yield sock, ours, engine
    finally:
        gc.enable()
        engine.close()
        ours.close()


def test_the_output_stream_closes_its_socket_when_it_ends(
    hijacked: tuple[Any, socket.socket, socket.socket],
) -> None:
    sock, ours, engine = hijacked
    engine.sendall(frame(1, b"out\n") + frame(2, b"err\n"))
    engine.shutdown(socket.SHUT_WR)
    assert list(DockerOutput(sock)) == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert ours.fileno() == -1


def test_an_exec_stream_closed_early_closes_its_socket(
    hijacked: tuple[Any, socket.socket, socket.socket],
) -> None:
    sock, ours, engine = hijacked
    engine.sendall(frame(1, b"first\n") + frame(1, b"second\n"))
    chunks = frames(sock)
    assert next(chunks) == ("stdout", b"first\n")
    chunks.close()  # a reader that stops before the end
    assert ours.fileno() == -1


def test_closing_stdin_closes_its_socket(
    hijacked: tuple[Any, socket.socket, socket.socket],
) -> None:
    sock, ours, engine = hijacked
    stdin = DockerStdin(sock)
    stdin.write(b"line\n")
    stdin.close()
    assert engine.recv(100) == b"line\n"
    assert engine.recv(100) == b""  # the engine sees the end of its stdin
    assert ours.fileno() == -1


# --- over TLS (DOCKER_HOST=tcp://… with DOCKER_TLS_VERIFY): docker-py hands over the
# SSLSocket itself, its HTTP response's reader (a SocketIO over it) still referring to it.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key for the engine's end."""
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
         "-out", "cert.pem", "-days", "1", "-subj", "/CN=engine"],
        cwd=where, check=True, capture_output=True,
    )  # fmt: skip
    return where / "cert.pem", where / "key.pem"


@pytest.fixture
def tls_hijacked(
    certificate: tuple[Path, Path],
) -> Iterator[tuple[Any, ssl.SSLSocket]]:
    """Our end (an SSLSocket with docker-py's ``_response`` reader over it) and the engine's
    end (an SSLSocket too), over a socket pair, handshake done."""
    ours_raw, engine_raw = socket.socketpair()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*certificate)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    made: list[ssl.SSLSocket] = []
    handshake = threading.Thread(
        target=lambda: made.append(server.wrap_socket(engine_raw, server_side=True))
    )
    handshake.start()
    ours = client.wrap_socket(ours_raw, server_hostname="engine")
    handshake.join(10)
    (engine,) = made
    ours.settimeout(60)  # as docker-py leaves it: the client's timeout
    sock: Any = ours
    sock._response = ours.makefile("rb")  # one io reference, as http.client's reader
    gc.disable()
    try:
        yield sock, engine
    finally:
        gc.enable()
        engine.close()
        ours.close()


def in_thread(work: Callable[[], object]) -> object:
    """``work``'s result, from a thread; fails the test if it is still blocked after 10 s
    (a hang detector: the data it waits for was sent before)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(10)
    assert result, "blocked: the data was sent, but never read"
    return result[0]


def test_a_frame_over_tls_is_read_while_the_connection_stays_open(
    tls_hijacked: tuple[Any, ssl.SSLSocket],
) -> None:
    """The engine sends a frame (header and data in one TLS record) and then nothing: it is
    read at once. Waiting on the fd first (docker-py's frames_iter) blocked with the rest
    of the record already decrypted in the TLS layer, until more bytes or the end came."""
    sock, engine = tls_hijacked
    engine.sendall(frame(2, b"crontainer-exec-pid 7\n"))
    chunks = frames(sock)
    assert in_thread(lambda: next(chunks)) == ("stderr", b"crontainer-exec-pid 7\n")
    engine.sendall(frame(1, b"first\n") + frame(1, b"second\n"))
    assert in_thread(lambda: [next(chunks), next(chunks)]) == [
        ("stdout", b"first\n"),
        ("stdout", b"second\n"),
    ]
    engine.shutdown(socket.SHUT_WR)  # the end of the stream
    assert in_thread(lambda: list(chunks)) == []
    assert sock.fileno() == -1


def test_a_tls_stream_closed_early_closes_its_socket(
    tls_hijacked: tuple[Any, ssl.SSLSocket],
) -> None:
    """A reader that stops before the end releases the fd, the response's reader too."""
    sock, engine = tls_hijacked
    engine.sendall(frame(1, b"first\n") + frame(1, b"second\n"))
    chunks = frames(sock)
    assert in_thread(lambda: next(chunks)) == ("stdout", b"first\n")
    chunks.close()
    assert sock.fileno() == -1


def test_output_over_tls_ends_when_closed_from_another_thread(
    tls_hijacked: tuple[Any, ssl.SSLSocket],
) -> None:
    """``DockerOutput.close`` ends a reader waiting for output that never comes (a
    container removed before it started), and its socket is closed."""
    sock, _ = tls_hijacked
    output = DockerOutput(sock)
    read: list[object] = []
    reader = threading.Thread(target=lambda: read.append(list(output)), daemon=True)
    reader.start()
    output.close()
    reader.join(10)
    assert read == [[]]
    assert sock.fileno() == -1


def test_stdin_over_tls_is_written_through_tls_and_closed(
    tls_hijacked: tuple[Any, ssl.SSLSocket],
) -> None:
    """What is written to a container's stdin reaches the engine decrypted; closing it ends
    the engine's read and releases the fd."""
    sock, engine = tls_hijacked
    stdin = DockerStdin(sock)
    stdin.write(b"line\n")
    stdin.close()
    engine.settimeout(10)
    assert engine.recv(100) == b"line\n"
    with contextlib.suppress(ssl.SSLError):  # an end without close_notify: ragged, or EOF
        assert engine.recv(100) == b""
    assert sock.fileno() == -1
