"""Private registries against a real one: Debian's docker-registry as a process on
127.0.0.1 (htpasswd auth, TLS with a CA made by openssl, which the engine trusts through
/etc/docker/certs.d). Wrong credentials: the run fails, reason pull_denied, naming the
registry; the credentials of a config.json (as ``docker login`` writes it, or from a
credential helper) and a job's registry_auth pull the image; no password is ever logged."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from .conftest import BUSYBOX, Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
USER = "puller"
PASSWORD = "pw-" + uuid.uuid4().hex
WRONG = "wrong-" + uuid.uuid4().hex
CERTS_D = Path("/etc/docker/certs.d")
"""Where the engine looks for a registry's CA, at each pull (no restart)."""


@dataclass(frozen=True)
class Registry:
    host: str
    """``127.0.0.1:<port>``"""
    image: str
    """A busybox-based image pushed there with credentials (not on the engine)."""
    directory: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "") -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}")
    return done.stdout


def certificates(directory: Path) -> None:
    """ca.pem, and server.pem / server-key.pem for 127.0.0.1 signed by it."""
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=crontainer-registry-ca", cwd=directory)  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory)  # fmt: skip


def wait_until_serving(host: str, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    """The registry answers /v2/ over TLS (401: it wants credentials)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited ({proc.returncode})")
        try:
            urllib.request.urlopen(f"https://{host}/v2/", context=context, timeout=2)
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("docker-registry did not answer within 20 s")


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, engine: docker.DockerClient
) -> Iterator[Registry]:
    """A registry with one user, one image pushed by it; the engine trusts its CA. All of it
    (process, CA file, image tags) is gone afterwards."""
    for program in ("docker-registry", "htpasswd", "openssl", "docker"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: scripts/test.sh installs it (test_tools)")
    directory = tmp_path_factory.mktemp("registry")
    certificates(directory)
    (directory / "htpasswd").write_text(run("htpasswd", "-Bbn", USER, PASSWORD, cwd=directory))
    host = f"127.0.0.1:{free_port()}"
    (directory / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
        f"http:\n  addr: {host}\n  secret: {uuid.uuid4().hex}\n"
        f"  tls:\n    certificate: {directory / 'server.pem'}\n"
        f"    key: {directory / 'server-key.pem'}\n"
        f"auth:\n  htpasswd:\n    realm: crontainer-test\n    path: {directory / 'htpasswd'}\n"
    )
    trusted = CERTS_D / host
    made_certs_d = not CERTS_D.exists()
    trusted.mkdir(parents=True)
    shutil.copy(directory / "ca.pem", trusted / "ca.crt")
    with (directory / "registry.log").open("wb") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(directory / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    image = f"{host}/crontainer-test/busybox:{uuid.uuid4().hex[:8]}"
    try:
        wait_until_serving(host, directory / "ca.pem", proc)
        client_config = directory / "client"  # docker login's, not the daemon's
        client_config.mkdir()
        env = {**os.environ, "DOCKER_CONFIG": str(client_config)}
        run("docker", "login", "-u", USER, "--password-stdin", host, cwd=directory, env=env,
            stdin=PASSWORD)  # fmt: skip
        engine.images.get(BUSYBOX).tag(image)
        run("docker", "push", "-q", image, cwd=directory, env=env)
        engine.images.remove(image)
        yield Registry(host, image, directory)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(trusted, ignore_errors=True)
        if made_certs_d:
            with contextlib.suppress(OSError):  # another test's registry may use it
                CERTS_D.rmdir()
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(image)


def docker_config(path: Path, **content: object) -> Path:
    path.write_text(json.dumps(content))
    return path


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(password_file: Path) -> dict[str, object]:
    """A registry_auth table: the user, the password read from ``password_file``."""
    return {"username": USER, "password": {"file": str(password_file)}}


def assert_never_logged(daemon: Daemon, *secrets: str) -> None:
    text = "".join(daemon.log.raw)
    for secret in secrets:
        assert secret not in text
        assert base64.b64encode(f"{USER}:{secret}".encode()).decode() not in text


def test_wrong_credentials_are_denied_naming_the_registry_and_config_json_and_registry_auth_pull(
    registry: Registry, start_daemon: Start, tmp_path: Path
) -> None:
    """Three jobs pull the image at every run: with a wrong registry_auth the run fails,
    reason pull_denied, naming the registry (not the password); with the daemon's
    config.json (docker login's auths) and with a right registry_auth it runs."""
    config = docker_config(
        tmp_path / "config.json", auths={registry.host: auth_entry(USER, PASSWORD)}
    )
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text(WRONG)
    image = registry.image
    jobs = (
        run_job("denied", ["true"], image=image, pull="always", registry_auth=login(wrong_file))
        + run_job("from_config", ["true"], image=image, pull="always")
        + run_job(
            "own_auth", ["true"], image=image, pull="always", registry_auth=login(password_file)
        )
    )
    daemon = start_daemon(jobs, daemon=f'registry_config = "{config}"')
    failed = daemon.log.wait_for(event("run.failed", job="denied"), timeout=60)[0]
    assert failed["reason"] == "pull_denied"
    assert f"registry {registry.host} denied the pull" in failed["error"]
    assert "the job's registry_auth" in failed["error"]
    for job in ("from_config", "own_auth"):
        done = daemon.log.wait_for(event("run.succeeded", job=job), timeout=60)[0]
        assert done["exit_code"] == 0
    assert not daemon.log.matching(event("run.succeeded", job="denied"))
    assert not daemon.log.matching(
        lambda e: e.get("event") == "run.failed" and e.get("job") != "denied"
    )
    daemon.signal()
    assert daemon.wait_exit(60) == 0
    assert_never_logged(daemon, PASSWORD, WRONG)


def test_a_credential_helper_of_the_config_json_is_asked_at_each_pull(
    registry: Registry, start_daemon: Start, tmp_path: Path
) -> None:
    """credHelpers names docker-credential-<name> on PATH: its answer pulls the image; a
    config.json whose helper is missing fails the run naming the helper."""
    helpers = tmp_path / "bin"
    helpers.mkdir()
    asked = tmp_path / "asked"
    helper = helpers / "docker-credential-crontainertest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'echo "$server" >> {asked}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    good = docker_config(tmp_path / "good.json", credHelpers={registry.host: "crontainertest"})
    daemon = start_daemon(
        run_job("helped", ["true"], image=registry.image, pull="always"),
        daemon=f'registry_config = "{good}"',
        env={"PATH": f"{helpers}:/usr/local/bin:/usr/bin:/bin"},
    )
    daemon.log.wait_for(event("run.succeeded", job="helped"), count=2, timeout=60)
    assert asked.read_text().split()[:2] == [registry.host, registry.host]
    # the helper goes away: the next pull says which one is missing
    helper.unlink()
    failed = daemon.log.wait_for(event("run.failed", job="helped"), timeout=60)[0]
    assert "docker-credential-crontainertest" in failed["error"]
    assert "not on the daemon's PATH" in failed["error"]
    daemon.signal()
    assert daemon.wait_exit(60) == 0
    assert_never_logged(daemon, PASSWORD)
