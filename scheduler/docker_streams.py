"""The engine's streams the daemon reads and writes: a container's attached stdin and output,
an exec's output, and the timestamped lines of a log.

docker-py hands a hijacked connection over as the ``SocketIO`` under its HTTP response, which
holds it in a reference cycle (``sock._response``): closing that ``SocketIO`` alone leaves the
socket's fd open until the garbage collector's next full pass. ``close_hijacked`` closes the
socket itself: a daemon at 5 runs a second otherwise held hundreds of such fds between passes.

Over TLS (``DOCKER_HOST=tcp://…`` with ``DOCKER_TLS_VERIFY``) docker-py hands over the
``ssl.SSLSocket`` itself, its response's reader still holding a reference to it (so its
own ``close`` leaves the fd open: the response is closed too). Everything is read and
written through the socket's TLS layer (``recv``, ``sendall``), never by its fd, and a
read never waits on the fd first: docker-py's ``frames_iter`` polls the fd before each
read, which blocks while the TLS layer already holds the decrypted rest of a record (a
frame's data after its header) until more bytes come — a line of output, or an exec's
process id, held back until the container's next output or its end."""

from __future__ import annotations

import socket
import struct
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from docker.utils.socket import STDERR, STDOUT

from scheduler.docker_errors import translated
from scheduler.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator


FRAME_HEADER = 8
"""A multiplexed frame's header: the stream (1 stdout, 2 stderr), 3 zero bytes, the data's
length (big-endian, 4 bytes)."""
READ_SIZE = 65536
"""At most this much of a frame's data is read at once."""


class DockerStdin:
    """The attached stdin socket of a container (docker-py's hijacked connection)."""

    def __init__(self, sock: Any) -> None:  # noqa: ANN401 - docker-py's socket
        self._sock = sock
        self._raw = _socket_of(sock)

    def write(self, data: bytes) -> None:
        try:
            self._raw.sendall(data)
        except OSError as e:
            raise EngineError(f"writing to the container's stdin: {e}") from e

    def close(self) -> None:
        with suppress(OSError):
            self._raw.shutdown(socket.SHUT_WR)
        close_hijacked(self._sock)


def close_hijacked(sock: Any) -> None:  # noqa: ANN401 - docker-py's socket
    """Close docker-py's hijacked connection ``sock`` (a ``SocketIO``, or a socket over TLS)
    and the socket under it, so that its fd is released now."""
    raw = getattr(sock, "_sock", None)  # before the close, which forgets it
    response = getattr(sock, "_response", None)
    with suppress(OSError):
        sock.close()  # the SocketIO: gives its hold on the socket back
    if response is not None:
        # Its reader is a SocketIO of the socket too: over TLS, ``sock`` is the socket
        # itself, and its close waits for that reader's.
        with suppress(Exception):  # a response half read or already closed
            response.close()
    if raw is not None:
        with suppress(OSError):
            raw.close()  # the socket: its fd (it waits for no other SocketIO of it)


def _socket_of(sock: Any) -> Any:  # noqa: ANN401 - docker-py's socket
    """The socket to read and write: the one under docker-py's ``SocketIO`` (Unix socket),
    or ``sock`` itself (an ``ssl.SSLSocket`` over TLS: its ``recv``/``sendall`` go through
    its TLS layer, and it has no ``_sock``)."""
    return getattr(sock, "_sock", sock)


def _exactly(read: Callable[[int], bytes], size: int) -> bytes | None:
    """``size`` bytes from ``read``; None at the stream's end (a part frame is dropped)."""
    data = b""
    while len(data) < size:
        chunk = read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def frames(sock: Any) -> Generator[tuple[str, bytes]]:  # noqa: ANN401 - docker-py's socket
    """The ``stdout``/``stderr`` chunks of multiplexed frames read from the hijacked
    connection ``sock``, which is closed at their end (or when they are closed)."""
    names = {STDOUT: "stdout", STDERR: "stderr"}
    raw = _socket_of(sock)
    try:
        with translated("reading the container's output"):
            raw.settimeout(None)  # output may pause for longer than an API call lasts
            # A blocking recv, never a wait on the fd first: over TLS the data may be in
            # the TLS layer already (recv returns it; the fd has nothing more to say).
            while (header := _exactly(raw.recv, FRAME_HEADER)) is not None:
                stream, size = struct.unpack(">BxxxL", header)
                while size > 0:
                    chunk = raw.recv(min(size, READ_SIZE))
                    if not chunk:
                        return
                    size -= len(chunk)
                    if stream in names:
                        yield names[stream], chunk
    finally:
        close_hijacked(sock)


class DockerOutput:
    """A container's attached output (docker-py's hijacked connection, multiplexed frames)
    that ``close`` can end from another thread: the engine never ends the stream of a
    container removed before it started."""

    def __init__(self, sock: Any) -> None:  # noqa: ANN401 - docker-py's socket
        self._sock = sock
        self._raw = _socket_of(sock)
        self._raw.settimeout(None)  # output may pause for longer than an API call lasts

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return frames(self._sock)

    def close(self) -> None:
        """Shut the connection down: the reader sees its end (and closes it)."""
        with suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)


def parse_log_time(text: str) -> int:
    """Docker's RFC 3339 time with up to 9 fractional digits (``…T12:00:01.5Z``) as UNIX
    nanoseconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def log_lines(
    chunks: Iterator[bytes], since_ns: int, until_ns: int, what: str
) -> Iterator[tuple[int, str, bytes]]:
    """Split docker's timestamped log stream into lines; keep those in [since, until]."""
    rest = b""
    with translated(what):
        for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from _in_window(lines, since_ns, until_ns)
    # The last entry of a container's log may lack its newline (the container ended).
    yield from _in_window([rest] if rest else [], since_ns, until_ns)


def _in_window(
    lines: list[bytes], since_ns: int, until_ns: int
) -> Iterator[tuple[int, str, bytes]]:
    for line in lines:
        stamp, _, text = line.partition(b" ")
        try:
            ns = parse_log_time(stamp.decode())
        except ValueError:
            continue  # not a timestamped line (cannot happen with timestamps=True)
        if since_ns <= ns <= until_ns:
            yield ns, stamp.decode(), text
