"""The engine's hijacked connections are closed to the fd when their stream ends: docker-py
keeps them in a reference cycle, so a close that leaves the socket to the garbage collector
held one fd per run and exec until its next full pass (the soak, bench/soak.py)."""

from __future__ import annotations

import gc
import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

from scheduler.docker_streams import DockerOutput, DockerStdin, frames

if TYPE_CHECKING:
    from collections.abc import Iterator


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
