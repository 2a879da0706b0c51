"""The admin endpoint: HTTP over a Unix socket in the state directory, never TCP.

``POST /jobs/<name>/trigger`` (the name percent-encoded) runs a job now, under its
concurrency policy. Answers: 202 ``{"run_id": …}``; 404 unknown job (with ``jobs``, the
names it knows: the config's and the containers' label jobs); 409 skipped (``forbid``
and the previous run still runs). The socket is created mode 0600: whoever can use it
can run jobs, i.e. whoever can already reach the state directory as root.
Connections are bounded in number and time as on the HTTP listener
(``scheduler.listeners``): a hung client does not hold a thread.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from scheduler.listeners import (
    CONNECTION_TIMEOUT_S,
    MAX_CONNECTIONS,
    BoundedThreadingMixIn,
    Listener,
)
from scheduler.logs import get_logger
from scheduler.runs import Status

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime
    from pathlib import Path

    from scheduler.runner import Runner
    from scheduler.settings import JobEntry

SOCKET_NAME = "admin.sock"
CLIENT_TIMEOUT_S = 10.0


class _Server(BoundedThreadingMixIn, socketserver.UnixStreamServer):
    pass


class AdminServer(Listener):
    """Serves the admin API on ``<state_dir>/admin.sock`` in a thread: at most
    ``max_connections`` at once, each closed after ``timeout`` seconds."""

    def __init__(
        self,
        state_dir: Path,
        trigger: Callable[[str], tuple[int, dict[str, object]]],
        *,
        timeout: float = CONNECTION_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.path = state_dir / SOCKET_NAME
        self.path.unlink(missing_ok=True)  # a dead predecessor's; we hold the daemon lock
        handler = _handler(trigger)
        old_umask = os.umask(0o177)
        try:
            server = _Server(
                str(self.path), handler, label="admin", timeout=timeout,
                max_connections=max_connections,
            )  # fmt: skip
        finally:
            os.umask(old_umask)
        super().__init__(server)

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        super().stop()
        self.path.unlink(missing_ok=True)


def _handler(
    trigger: Callable[[str], tuple[int, dict[str, object]]],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "trigger":  # noqa: PLR2004
                status, body = trigger(unquote(parts[1]))
            else:
                status, body = 404, {"error": f"no such endpoint: POST {self.path}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            get_logger().debug("admin.request", request=format % args)

    return Handler


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=CLIENT_TIMEOUT_S)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def request_trigger(state_dir: Path, job: str) -> tuple[int, dict[str, object]]:
    """Ask the running daemon to run ``job`` now; raise OSError if no daemon listens."""
    connection = _UnixConnection(str(state_dir / SOCKET_NAME))
    try:
        # Quoted: a name typed on the command line may hold anything (a '/', a space).
        connection.request("POST", f"/jobs/{quote(job, safe='')}/trigger")
        response = connection.getresponse()
        body: dict[str, object] = json.loads(response.read() or b"{}")
        return response.status, body
    finally:
        connection.close()


def trigger(
    runner: Runner, jobs: Mapping[str, JobEntry], job: str, now: datetime
) -> tuple[int, dict[str, object]]:
    """Run ``job`` now (what the endpoint answers): under the job's concurrency policy."""
    entry = jobs.get(job)
    if entry is None:
        return 404, {"error": f"unknown job {job!r}", "jobs": sorted(jobs)}
    get_logger().info("job.triggered", job=job)
    dispatched = runner.dispatch(entry, now, trigger="manual")
    if dispatched.status is Status.SKIPPED:
        return 409, {"error": "skipped: the previous run is still running (concurrency = forbid)"}
    if dispatched.status is not None:
        return 503, {"error": f"{dispatched.status.value}: {dispatched.reason}"}
    return 202, {"run_id": dispatched.run_id, "job": job}
