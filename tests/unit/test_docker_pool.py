"""The engine client's connections over a Unix socket: one pool, reused across paths.

docker-py's own adapter made a pool (and a connection) per request URL and kept 25, so a
run's container id in each path meant a new connection per request, and with many runs
at once a pool still in use was closed under another thread.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import pytest

from scheduler.docker_engine import SOCKET_POOL_SIZE, DockerEngine

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A fake engine on a Unix socket: answers every GET with a container's inspect,
    counting the connections it accepted."""

    daemon_threads = True
    request_queue_size = 128  # 48 clients connect at once (a Unix socket refuses beyond it)

    def __init__(self, path: str) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()
        super().__init__(path, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        request, address = super().get_request()
        with self.lock:
            self.connections += 1
        return request, address or ("local", 0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engine

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Engine)
        with server.lock:
            server.paths.append(self.path)
        if self.path.endswith("/version"):  # the client's version check at connect
            body = json.dumps({"ApiVersion": "1.41"}).encode()
        else:
            body = json.dumps({"Id": self.path.rsplit("/", 2)[-2], "State": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Engine]:
    server = _Engine(str(tmp_path / "docker.sock"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
    yield server
    server.shutdown()
    server.server_close()


def test_requests_to_many_containers_share_one_connection(engine: _Engine) -> None:
    api = DockerEngine.connect(timeout=5)._api
    connected = engine.connections  # the version check at connect
    ids = [f"{i:012x}" for i in range(60)]
    answers = [api.inspect_container(cid)["Id"] for cid in ids]
    assert answers == ids
    assert len(engine.paths) - 1 == 60
    assert engine.connections - connected == 1


def test_many_threads_at_once_then_reuse_what_the_pool_kept(engine: _Engine) -> None:
    api = DockerEngine.connect(timeout=5)._api
    ids = [f"{i:012x}" for i in range(400)]
    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(lambda cid: api.inspect_container(cid)["Id"], ids))
    assert answers == ids
    assert engine.connections < len(ids)
    after = engine.connections
    again = [api.inspect_container(cid)["Id"] for cid in reversed(ids)]
    assert again == ids[::-1]
    assert engine.connections == after  # the kept connections serve every container's path
    assert SOCKET_POOL_SIZE >= 16
