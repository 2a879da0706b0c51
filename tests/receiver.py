"""Local HTTP for tests: a receiver of what the daemon and its tools POST (sinks,
webhooks), and a GET of what the daemon serves."""

from __future__ import annotations

import contextlib
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
