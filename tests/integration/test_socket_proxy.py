"""crontainer through a socket proxy (Debian's haproxy with path and method rules, as
Tecnativa's docker-socket-proxy does): jobs run through the sections it passes; a section it
denies (exec) fails the run with a clear error instead of hanging."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from .conftest import BUSYBOX, TEST_LABELS, Daemon, event, run_job, socket_path, unique

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]

ALLOWED = "_ping|version|info|containers|images"
"""The sections the proxy passes: what run jobs need (README: the list per job kind)."""
WRITABLE = "containers|images"
"""Where it also passes POST and DELETE (Tecnativa's POST=1 for these sections only)."""


def haproxy_config(port: int, engine_socket: str) -> str:
    return f"""
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 15m
    timeout server 15m
    timeout tunnel 1h
frontend docker
    bind 127.0.0.1:{port}
    acl section path,url_dec -m reg -i ^(/v[0-9.]+)?/({ALLOWED})(/|$)
    acl writable path,url_dec -m reg -i ^(/v[0-9.]+)?/({WRITABLE})(/|$)
    http-request deny unless section
    http-request deny unless METH_GET or METH_HEAD or writable
    default_backend engine
backend engine
    server dockerd {engine_socket}
"""


@pytest.fixture
def proxy() -> Iterator[str]:
    binary = shutil.which("haproxy")
    assert binary, "haproxy is not installed (scripts/test.sh installs it)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="crontainer-haproxy-"))
    config = work / "haproxy.cfg"
    config.write_text(haproxy_config(port, socket_path()))
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert proc.poll() is None, "haproxy exited"
        assert time.monotonic() < deadline, "haproxy did not listen"
        time.sleep(0.1)
    yield f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(work, ignore_errors=True)


def test_jobs_run_through_a_socket_proxy_and_a_denied_section_fails_clearly(
    start_daemon: Start, engine: docker.DockerClient, proxy: str
) -> None:
    app = engine.containers.run(
        BUSYBOX, ["sleep", "600"], name=unique("t-app"), detach=True, labels=TEST_LABELS
    )
    try:
        daemon = start_daemon(
            run_job("through", ["sh", "-c", "echo via proxy"], schedule="@yearly",
                    run_on_start=True)
            + f'[jobs.denied]\nkind = "exec"\nschedule = "@yearly"\nrun_on_start = true\n'
            f'container = "{app.name}"\ncommand = "true"\ntimeout = "1m"\n',
            daemon='ops_image = "busybox:latest"',
            env={"DOCKER_HOST": proxy},
        )  # fmt: skip
        daemon.log.wait_for(event("run.succeeded", job="through"), timeout=60)
        output = daemon.log.matching(event("run.output", job="through"))
        assert [e["line"] for e in output] == ["via proxy"]
        failed = daemon.log.wait_for(event("run.failed", job="denied"), timeout=60)[0]
        assert failed["error"].startswith(
            "starting the exec: 403 Forbidden: refused by a proxy in front of the engine ("
        ), failed
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(60) == 0
    finally:
        app.remove(force=True)
