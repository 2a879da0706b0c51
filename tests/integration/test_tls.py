"""DOCKER_HOST=tcp://… with TLS against a real dockerd (certificates made by openssl): jobs
run; a client with certificates of another CA is refused and the daemon exits 1."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from .conftest import BUSYBOX, Daemon, PrivateEngine, event, run_job, unique

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
PORT = 2376


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path) -> None:
    directory.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=crontainer-test-ca", cwd=directory)  # fmt: skip


def sign(ca: Path, out: Path, name: str, cn: str, extensions: str) -> None:
    """``out/<name>-key.pem`` and ``out/<name>.pem``, signed by the CA in ``ca``."""
    (out / f"{name}.ext").write_text(extensions)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=out)  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca / "ca.pem"),
            "-CAkey", str(ca / "ca-key.pem"), "-CAcreateserial", "-out", f"{name}.pem",
            "-days", "2", "-extfile", f"{name}.ext", cwd=out)  # fmt: skip


def client_dir(ca: Path, where: Path) -> Path:
    """A DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem."""
    where.mkdir(parents=True)
    sign(ca, where, "client", "crontainer", "extendedKeyUsage=clientAuth\n")
    (where / "cert.pem").write_bytes((where / "client.pem").read_bytes())
    (where / "key.pem").write_bytes((where / "client-key.pem").read_bytes())
    (where / "ca.pem").write_bytes((ca / "ca.pem").read_bytes())
    return where


@pytest.fixture
def tls(tmp_path: Path, engine: docker.DockerClient) -> Iterator[tuple[PrivateEngine, Path]]:
    """A private dockerd that also listens on 127.0.0.1:2376 (in its own network namespace)
    with TLS, verifying clients against a test CA."""
    ca = tmp_path / "ca"
    make_ca(ca)
    sign(
        ca, ca, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    private = PrivateEngine(
        engine,
        extra_args=(
            f"--host=tcp://127.0.0.1:{PORT}",
            "--tlsverify",
            f"--tlscacert={ca / 'ca.pem'}",
            f"--tlscert={ca / 'server.pem'}",
            f"--tlskey={ca / 'server-key.pem'}",
        ),
    )
    yield private, ca
    private.close()


def tls_env(cert_path: Path) -> dict[str, str]:
    return {
        "DOCKER_HOST": f"tcp://127.0.0.1:{PORT}",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(cert_path),
        # Set in many images; requests would let it replace DOCKER_CERT_PATH's CA.
        "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "CURL_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }


def test_jobs_run_over_tls_and_a_foreign_certificate_is_refused(
    start_daemon: Start, tls: tuple[PrivateEngine, Path], tmp_path: Path
) -> None:
    private, ca = tls
    good = client_dir(ca, tmp_path / "client")
    daemon = start_daemon(
        run_job("over-tls", ["true"], schedule="@yearly", run_on_start=True),
        daemon='ops_image = "busybox:latest"',
        env=tls_env(good),
        prefix=private.in_its_network(),
    )
    daemon.log.wait_for(event("run.succeeded", job="over-tls"), timeout=60)
    daemon.signal()
    assert daemon.wait_exit(60) == 0

    other = tmp_path / "other-ca"
    make_ca(other)
    foreign = client_dir(other, tmp_path / "foreign")
    refused = start_daemon(
        run_job("over-tls", ["true"], schedule="@yearly"),
        daemon='ops_image = "busybox:latest"\nengine_wait = "2s"',
        env=tls_env(foreign),
        prefix=private.in_its_network(),
    )
    assert refused.wait_exit(60) == 1
    failed = refused.log.wait_for(event("daemon.failed"), timeout=10)[0]
    assert failed["reason"] == "engine_unavailable"
    assert "certificate" in failed["error"].lower(), failed  # refused for its certificate


def test_output_of_a_run_and_an_exec_comes_as_it_is_written_over_tls(
    start_daemon: Start, tls: tuple[PrivateEngine, Path], tmp_path: Path
) -> None:
    """Over TLS, a run job's and an exec job's output arrive while they run: each prints a
    line, then sleeps past its timeout, and its line is logged before the run is stopped;
    the timed-out exec's process is killed. (Waiting on the socket's fd while the TLS layer
    already held the decrypted rest of a frame kept each line back until the next bytes
    came — the kill; an exec's process id line held back so would leave it running.)"""
    private, ca = tls
    app = private.client.containers.run(
        BUSYBOX, ["sleep", "3600"], name=unique("t-app"), detach=True
    )
    jobs = run_job(
        "runs",
        ["sh", "-c", "echo first-runs; sleep 600"],
        schedule="@yearly",
        run_on_start=True,
        timeout="4s",
    ) + (
        '[jobs.execs]\nkind = "exec"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'container = "{app.name}"\ncommand = ["sh", "-c", "echo first-execs; sleep 600"]\n'
        'timeout = "4s"\nstop_grace = "1s"\n'
    )
    daemon = start_daemon(
        jobs,
        daemon='ops_image = "busybox:latest"',
        env=tls_env(client_dir(ca, tmp_path / "client")),
        prefix=private.in_its_network(),
    )
    for job in ("runs", "execs"):
        daemon.log.wait_for(event("run.timed_out", job=job), timeout=60)
        order = [
            e["line"] if e["event"] == "run.output" else e["event"]
            for e in daemon.log.events
            if e.get("job") == job and e["event"] in {"run.output", "run.stopping"}
        ]
        assert order == [f"first-{job}", "run.stopping"], order
    assert [e for e in daemon.log.events if e["event"] == "run.cancel_failed"] == []
    deadline = time.monotonic() + 30
    while any("sleep 600" in p[-1] for p in private.client.api.top(app.id)["Processes"]):
        assert time.monotonic() < deadline, "the timed-out exec's process still runs"
        time.sleep(0.2)
    daemon.signal()
    assert daemon.wait_exit(60) == 0
