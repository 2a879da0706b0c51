"""Connections of the daemon's listeners (the HTTP listener and the admin socket):
a thread each, at most ``max_connections`` at once, each closed after ``timeout``.

An idle or slow client must not hold a thread: the socket's timeout ends a read or
write that waits that long, and the serving loop shuts down a connection open longer
than that whatever it is doing (a client trickling a byte at a time never waits on
one read that long). A connection beyond the bound is closed at once, without a
thread. Errors in a handler are log events, never a traceback on stderr. A stop ends the
serving loop at once (a byte on a pipe wakes it), not at its next poll.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import socket
import socketserver
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from scheduler.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    _Request = socket.socket | tuple[bytes, socket.socket]

CONNECTION_TIMEOUT_S = 10.0
"""A connection is closed this long after it was accepted (an answer takes far less)."""
MAX_CONNECTIONS = 32
"""Connections served at once; one more is closed at once."""
BUSY_LOG_INTERVAL_S = 60.0
"""``<label>.busy`` is logged at most this often (a flood must not flood the logs)."""
ERROR_TEXT_MAX = 200


class BoundedThreadingMixIn(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """Put first in the bases of a stream server (``HTTPServer``, ``UnixStreamServer``)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    """The kernel's queue of connections not yet accepted (socketserver's 5 drops a
    burst's SYNs: the client retries after a second)."""

    def __init__(
        self,
        address: Any,  # noqa: ANN401 - (host, port) or a path, as the server class takes
        handler: Callable[[Any, Any, Any], socketserver.BaseRequestHandler],
        *,
        label: str,
        timeout: float = CONNECTION_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.label = label
        """The event prefix (``http``, ``admin``) and the start of thread names."""
        self.connection_timeout = timeout
        self.max_connections = max_connections
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._refused = 0
        self._busy_logged_at: float | None = None
        self._stop_asked = threading.Event()
        self._loop_ended = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        super().__init__(address, handler)

    @property
    def connection_thread_name(self) -> str:
        """The name of every thread serving a connection of this listener."""
        address = self.server_address
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        return f"{self.label}-connection {where}"

    @property
    def connections(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._deadlines)

    def process_request(self, request: _Request, client_address: object) -> None:
        request = cast("socket.socket", request)  # a stream server's
        with self._lock:
            full = len(self._deadlines) >= self.max_connections
            if not full:
                self._deadlines[request] = time.monotonic() + self.connection_timeout
        if full:
            self._refuse(request)
            return
        request.settimeout(self.connection_timeout)
        threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=self.connection_thread_name,
            daemon=True,
        ).start()

    def _refuse(self, request: socket.socket) -> None:
        """Close a connection beyond the bound; say so at most every BUSY_LOG_INTERVAL_S."""
        self._refused += 1
        now = time.monotonic()
        if self._busy_logged_at is None or now - self._busy_logged_at >= BUSY_LOG_INTERVAL_S:
            get_logger().warning(
                f"{self.label}.busy", max_connections=self.max_connections, refused=self._refused
            )
            self._refused, self._busy_logged_at = 0, now
        self.shutdown_request(request)

    def shutdown_request(self, request: _Request) -> None:
        with self._lock:  # forgotten before it is closed: service_actions never sees it closed
            if isinstance(request, socket.socket):
                self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Shut down connections open longer than the timeout (the serving loop calls
        this at least every poll interval); their threads then see the end and finish."""
        now = time.monotonic()
        with self._lock:
            for request, deadline in self._deadlines.items():
                if deadline <= now:
                    with contextlib.suppress(OSError):
                        request.shutdown(socket.SHUT_RDWR)
                    self._deadlines[request] = math.inf  # once is enough

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """socketserver's loop, which ``shutdown`` also wakes (a byte on a pipe it watches):
        a stop does not wait out ``poll_interval``, which stays the longest pause between
        two ``service_actions``."""
        listening = cast("socketserver.TCPServer", self).fileno()  # a stream server's
        self._loop_ended.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(listening, selectors.EVENT_READ)
                selector.register(self._wake_read, selectors.EVENT_READ)
                while not self._stop_asked.is_set():
                    ready = {key.fd for key, _ in selector.select(poll_interval)}
                    if self._stop_asked.is_set():
                        break
                    if listening in ready:  # accept and serve, as socketserver's loop does
                        self._handle_request_noblock()  # type: ignore[attr-defined]
                    self.service_actions()
        finally:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 64)
            self._stop_asked.clear()
            self._loop_ended.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has returned (call it only while the
        loop serves or is about to: it waits for the loop to end)."""
        self._stop_asked.set()
        os.write(self._wake_write, b"\0")
        self._loop_ended.wait()

    def server_close(self) -> None:
        with self._lock:
            for request in self._deadlines:
                with contextlib.suppress(OSError):
                    request.shutdown(socket.SHUT_RDWR)
        super().server_close()
        wake, self._wake_read, self._wake_write = (self._wake_read, self._wake_write), -1, -1
        for descriptor in wake:  # once: a descriptor closed twice may be another's by then
            if descriptor >= 0:
                os.close(descriptor)

    def handle_error(self, request: _Request, client_address: object) -> None:  # noqa: ARG002
        """An exception in a handler: an event (debug if the client went away or was too
        slow, warning for anything else) instead of socketserver's traceback on stderr."""
        error = sys.exception()
        log = get_logger()
        say = log.debug if isinstance(error, OSError) else log.warning
        say(
            f"{self.label}.request_failed",
            error=f"{type(error).__name__}: {error}"[:ERROR_TEXT_MAX],
        )


class Listener:
    """A bounded server served by a thread of its own: what the HTTP listener and the admin
    socket share (``start``, ``stop``, and what tests count)."""

    def __init__(self, server: BoundedThreadingMixIn) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=server.label, daemon=True)

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return self._server.connections

    @property
    def connection_thread_name(self) -> str:
        """The name of each thread that serves a connection."""
        return self._server.connection_thread_name

    def start(self) -> None:
        """Begin serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it began); close the connections still open and the socket."""
        if self._thread.ident is not None:  # shutdown() waits for a serve_forever that began
            self._server.shutdown()
        self._server.server_close()
