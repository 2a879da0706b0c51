"""DOCKER_HOST=tcp://… with TLS against a real dockerd (certificates made by openssl): jobs
run; a client with certificates of another CA is refused and the daemon exits 1."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from .conftest import Daemon, PrivateEngine, event, run_job

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
