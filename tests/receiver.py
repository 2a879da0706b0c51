"""Local HTTP for tests: a receiver of what the daemon and its tools POST (sinks,
webhooks), and a GET of what the daemon serves."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PostReceiver(BaseHTTPRequestHandler):
    """Reads each POST's body and answers, with an empty body, the status ``take`` gives;
    quiet. Subclasses keep what they were sent in class attributes."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.take(body))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def take(self, body: bytes) -> int:
        """Keep what matters of ``body``; return the status to answer."""
        raise NotImplementedError

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[PostReceiver], port: int = 0) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 (``port``, or any free one) in a thread; yield the
    port; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def get(url: str, timeout: float) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@contextlib.contextmanager
def garbage_server() -> Iterator[str]:
    """A raw TCP server that reads each request, answers a line that is not HTTP and
    closes; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := connection.recv(65536)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            while len(body) < length and (chunk := connection.recv(65536)):
                body += chunk
            connection.sendall(b"garbage\r\n\r\n")
            connection.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            answer(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close would not)
        listener.close()
        thread.join(5)
