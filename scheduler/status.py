"""The daemon's HTTP listener (``[daemon] http``): ``/metrics``, ``/healthz``, ``/readyz``,
and with ``[daemon] ui`` the status page (``scheduler.ui``). GET and HEAD only.

Read-only: the admin API (run a job now) is never on it — that stays on the Unix
socket in the state directory. Connections are bounded in number and time
(``scheduler.listeners``): it listens on all interfaces of the container.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, ClassVar, cast

from scheduler.listeners import (
    CONNECTION_TIMEOUT_S,
    MAX_CONNECTIONS,
    BoundedThreadingMixIn,
    Listener,
)
from scheduler.logs import get_logger
from scheduler.ui_html import HEADERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from scheduler.metrics import Metrics
    from scheduler.ui import StatusPages

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    """What /healthz and /readyz answer from: the scheduler loop, the engine, the start."""

    def __init__(
        self,
        loop_alive: Callable[[], bool],
        engine_error: Callable[[], str | None],
        state_error: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._loop_alive = loop_alive
        self._engine_error = engine_error
        self._state_error = state_error
        self.ready = threading.Event()
        """Set once the first reconcile (settling what an earlier daemon left) is done."""

    def healthy(self) -> tuple[bool, dict[str, object]]:
        """(healthy, the JSON body)."""
        if not self._loop_alive():
            return False, {"status": "unhealthy", "reason": "the scheduler loop is not running"}
        error = self._engine_error()
        if error is not None:
            return False, {"status": "unhealthy", "reason": f"the engine does not answer: {error}"}
        error = self._state_error()
        if error is not None:
            reason = f"the state database refuses writes: {error}"
            return False, {"status": "unhealthy", "reason": reason}
        return True, {"status": "ok"}

    def readiness(self) -> tuple[bool, dict[str, object]]:
        if self.ready.is_set():
            return True, {"status": "ready"}
        return False, {"status": "starting", "reason": "settling what an earlier daemon left"}


class _Server(BoundedThreadingMixIn, HTTPServer):
    pass


class StatusServer(Listener):
    """A small threaded HTTP server; the constructor binds at once (a taken port fails
    early). At most ``max_connections`` at once, each closed after ``timeout`` seconds."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        health: Health,
        *,
        timeout: float = CONNECTION_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        pages: StatusPages | None = None,
    ) -> None:
        handler = type(
            "Handler", (_Handler,), {"metrics": metrics, "health": health, "pages": pages}
        )
        super().__init__(
            _Server(
                (host, port),
                handler,
                label="http",
                timeout=timeout,
                max_connections=max_connections,
            )
        )

    @property
    def port(self) -> int:
        host_and_port = cast("tuple[str, int]", self._server.server_address)
        return int(host_and_port[1])


class _Handler(BaseHTTPRequestHandler):
    metrics: ClassVar[Metrics]
    health: ClassVar[Health]
    pages: ClassVar[StatusPages | None]
    server_version = "crontainer"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.metrics.render(), METRICS_TYPE, head=head)
        elif path in ("/healthz", "/readyz"):
            check = self.health.healthy if path == "/healthz" else self.health.readiness
            good, body = check()
            self._json(200 if good else 503, body, head=head)
        elif (found := self.pages.answer(self.path) if self.pages else None) is not None:
            self._send(found.status, found.body, found.content_type, head=head, page=True)
        else:
            paths = "/metrics, /healthz, /readyz" + (
                ", /, /jobs/<job>, /runs/<run_id>" if self.pages else ""
            )
            self._json(404, {"error": f"no such path {path!r}: {paths}"}, head=head)

    def do_POST(self) -> None:
        self._json(405, {"error": "read-only: the admin API is on the state directory's socket"})

    def _json(self, status: int, body: dict[str, object], *, head: bool = False) -> None:
        self._send(status, json.dumps(body).encode() + b"\n", "application/json", head=head)

    def _send(
        self, status: int, body: bytes, content_type: str, *, head: bool = False, page: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 405:  # noqa: PLR2004 - Method Not Allowed
            self.send_header("Allow", "GET, HEAD")
        if page:
            for name, value in HEADERS:
                self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        get_logger().debug("http.request", line=format % args)
