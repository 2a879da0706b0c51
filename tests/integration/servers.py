"""Servers the real-engine tests back up to: a user-defined network of a test's own, an SFTP
server (OpenSSH's sshd, in an image made from the local Debian base once a machine and
kept, key authentication), an S3 server (moto's server mode, likewise), a WebDAV server (``rclone
serve webdav`` in the project's image). The fixtures are the conftest's (it imports them)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from .conftest import BUSYBOX, PROJECT_IMAGE, TEST_LABELS, output_of, unique
from .helpers import cli

LABELS = TEST_LABELS
DAV_PASSWORD = "dav-Hk2-test-password"  # noqa: S105 - the test WebDAV server's
BASE_IMAGE = os.environ.get("CRONTAINER_BASE_IMAGE", "crontainer-base:bookworm")
SSHD_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*_key* \\
 && usermod -s /bin/sh -p '*' backup \\
 && mkdir -p /var/backups/.ssh /srv/restic /run/sshd \\
 && chown backup /var/backups/.ssh /srv/restic && chmod 700 /var/backups/.ssh
"""
"""An SFTP server's image: Debian's sshd without host keys, the user ``backup`` (Debian's,
home /var/backups) may log in, /srv/restic is writable by it."""
SSHD = 'ssh-keygen -A && echo "$AUTHORIZED" > /var/backups/.ssh/authorized_keys && '
SSHD += "exec /usr/sbin/sshd -D -e"
"""Its command: host keys of its own, the key in $AUTHORIZED lets ``backup`` in."""
S3_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN python3 -m venv /opt/moto \\
 && /opt/moto/bin/pip install --no-cache-dir "moto[s3]" flask flask-cors
"""
"""An S3 server's image: moto's server mode (PyPI, through the base's pip, which trusts
the host's CA bundle: scripts/engine.sh) with S3 alone — its S3 extra and the web
framework the server mode runs on, not the ``server`` extra's dependencies of every
other AWS service (a CloudFormation linter among them), which took twice as long to
install."""
S3_PORT = 5000


@contextmanager
def own_network(engine: docker.DockerClient) -> Iterator[str]:
    """A user-defined network (labelled) while the block lasts: its name."""
    made = engine.networks.create(unique("t-net"), labels=LABELS)
    try:
        yield made.name
    finally:
        made.reload()
        for container in made.containers:
            made.disconnect(container, force=True)
        made.remove()


@pytest.fixture
def network(engine: docker.DockerClient) -> Iterator[str]:
    """A user-defined network of the test's own."""
    with own_network(engine) as name:
        yield name


def wait_until_it_says(server: Any, words: str, times: int = 1, since: int | None = None) -> None:
    """Wait (10 s at most) until a server's log (from ``since``, a Unix time) says ``words``
    (``times`` times: once per start): it is ready."""
    for _ in range(100):
        server.reload()
        if server.logs(since=since).decode(errors="replace").count(words) >= times:
            return
        assert server.status == "running", server.logs()
        threading.Event().wait(0.1)
    pytest.fail(f"{server.name} did not start: {server.logs()!r}")


def partial_upload(server: Any, folder: str, daemon: Any, timeout: float = 120) -> list[str]:
    """Wait until ``folder`` of ``server`` holds a ``.partial`` (an upload under way); the
    ``.partial`` names. Fails when the daemon's run ended, the daemon exited or ``timeout``
    seconds passed first (a poll without an end would hang the suite)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = [e for e in daemon.log.events if e.get("event") in ("run.succeeded", "run.failed")]
        assert not ended, f"the run ended before its upload was seen: {ended[0]}"
        assert daemon.proc.poll() is None, f"the daemon exited: {daemon.log.raw[-10:]}"
        _, out = server.exec_run(["sh", "-c", f"ls {folder} 2>/dev/null"])
        partial = [n for n in out.decode().split() if n.endswith(".partial")]
        if partial:
            return partial
    pytest.fail(f"no .partial in {folder} within {timeout:.0f} s: {daemon.log.raw[-10:]}")


def dav_files(engine: docker.DockerClient, dav: Any, folder: str = "copies") -> list[str]:
    """What the WebDAV server's volume holds in ``folder`` (read from the volume: the
    server may be down)."""
    held = next(m["Name"] for m in dav.attrs["Mounts"] if m["Destination"] == "/dav")
    listed = output_of(engine, BUSYBOX, ["ls", f"/v/{folder}"], volumes=[f"{held}:/v:ro"])
    return listed.split()


def next_run_after_restart(daemon: Any, dav: Any, ended: Callable[[Any], bool]) -> Any:
    """Start the WebDAV server again (its bandwidth limit, if it was started with one and
    ``--rc``, lifted: only the cut needed it), trigger job ``db``'s second run and stop the
    daemon (exit 0); that run's end event."""
    dav.start()
    wait_until_it_says(dav, "WebDav Server started", times=2)
    if "--rc" in dav.attrs["Config"]["Cmd"]:
        unlimited = dav.exec_run(["rclone", "rc", "core/bwlimit", "rate=off"])
        assert unlimited.exit_code == 0, unlimited.output
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    done = daemon.log.wait_for(ended, count=2, timeout=300)[1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    return done


def build(engine: docker.DockerClient, dockerfile: str, tag: str) -> str:
    """Build ``dockerfile`` as ``tag``, reaching the internet through the host's network as
    scripts/engine.sh does; a failure fails the test with the build's output. The tag."""
    try:
        engine.images.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=tag,
            network_mode="host",
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as e:
        said = "".join(str(part.get("stream", "")) for part in e.build_log)
        pytest.fail(f"cannot make {tag} (Debian's mirror, PyPI?): {e}\n{said}")
    return tag


def kept_image(engine: docker.DockerClient, dockerfile: str, what: str) -> str:
    """The image ``dockerfile`` makes, made from the local base the first time on this
    machine (through Debian's mirror or PyPI with the host's network, as scripts/engine.sh
    builds) and kept: its tag, ``crontainer-test-<what>:<hash>``. The hash is of the
    Dockerfile and of the base image's id, so a changed Dockerfile or a rebuilt base makes
    a new image, never reuses the old one. It has no test label: no session removes it."""
    base = engine.images.get(BASE_IMAGE).id
    digest = hashlib.sha256(f"{base}\n{dockerfile}".encode()).hexdigest()[:12]
    tag = f"crontainer-test-{what}:{digest}"
    try:
        engine.images.get(tag)
    except docker.errors.ImageNotFound:
        build(engine, dockerfile, tag)
    return tag


@pytest.fixture(scope="session")
def sshd_image(engine: docker.DockerClient) -> str:
    """The SFTP server's image (``kept_image``: made once a machine, about 10 s)."""
    return kept_image(engine, SSHD_DOCKERFILE, "sshd")


@pytest.fixture(scope="session")
def s3_image(engine: docker.DockerClient) -> str:
    """The S3 server's image (``kept_image``: made once a machine, about 25 s)."""
    return kept_image(engine, S3_DOCKERFILE, "s3")


@pytest.fixture
def s3_server(s3_image: str, network: str, make: Callable[..., Any]) -> str:
    """moto's S3 server on ``network`` (any key is let in): its ``http://name:port``."""
    name = unique("t-s3")
    server = make(
        s3_image,
        ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", str(S3_PORT)],  # noqa: S104
        name=name,
        network=network,
    )
    wait_until_it_says(server, "Running on")
    return f"http://{name}:{S3_PORT}"


def make_bucket(engine: docker.DockerClient, network: str, endpoint: str, bucket: str) -> None:
    """Create ``bucket`` on the S3 server at ``endpoint`` (a PUT, from a helper container
    on ``network``)."""
    put = (
        "import sys, urllib.request as r; "
        "print(r.urlopen(r.Request(sys.argv[1], method='PUT')).status)"
    )
    said = output_of(
        engine, BASE_IMAGE, ["python3", "-c", put, f"{endpoint}/{bucket}"], network=network
    )
    assert said.strip() == "200", said


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key pair (no passphrase): the private key's file, the public key."""
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, key.with_suffix(".pub").read_text().strip()


@pytest.fixture
def sftp_server(
    sshd_image: str, network: str, make: Callable[..., Any], tmp_path: Path
) -> tuple[str, Path, str]:
    """sshd on ``network`` that lets ``backup`` in with a key of the test's own: its name,
    that key's file, and the known_hosts line of its host key."""
    key, public = keypair(tmp_path, "id_backup")
    name = unique("t-sshd")
    server = make(
        sshd_image,
        ["sh", "-c", SSHD],
        name=name,
        network=network,
        environment={"AUTHORIZED": public},
        volumes=["/srv/restic"],  # for the test to read the repositories
    )
    wait_until_it_says(server, "Server listening")
    code, host_key = server.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    assert code == 0, host_key
    return name, key, f"{name} {' '.join(host_key.decode().split()[:2])}"


def start_dav(network: str, make: Callable[..., Any], *more: str) -> Any:
    """``rclone serve webdav`` on ``network`` with a user and a password (``more``: more
    of its options); its container."""
    server = make(
        PROJECT_IMAGE,
        ["rclone", "serve", "webdav", "/dav", "--addr", ":8080", "--user", "dav", "--pass",
         DAV_PASSWORD, "--dir-cache-time", "0s", *more],
        name=unique("t-dav"),
        network=network,
        volumes=["/dav"],
    )  # fmt: skip
    wait_until_it_says(server, "WebDav Server started")
    return server


@pytest.fixture
def dav_server(network: str, make: Callable[..., Any]) -> Any:
    """A WebDAV server of the test's own."""
    return start_dav(network, make)


MARIADB_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server \\
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \\
 && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
"""
"""A MariaDB server's image: Debian's ``mariadb-server`` on the local Debian base, its
data directory empty (a volume mounted there starts empty: see ``MARIADB``)."""
MARIADB = "mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null && "
MARIADB += "exec mariadbd --user=mysql"
"""Its command: a data directory made if there is none, then the server (root gets in
over the local socket, as in the ``mariadb`` image)."""


def mariadb_image(engine: docker.DockerClient) -> str:
    """The MariaDB server's image (``kept_image``: made once a machine, about 20 s)."""
    return kept_image(engine, MARIADB_DOCKERFILE, "mariadb")


def start_mariadb(make: Callable[..., Any], image: str, volume: str | None = None) -> Any:
    """A MariaDB server (its data in ``volume``, or in an anonymous volume) once it answers
    queries: its container."""
    server = make(
        image,
        ["sh", "-c", MARIADB],
        name=unique("t-db"),
        volumes=[f"{volume}:/var/lib/mysql" if volume else "/var/lib/mysql"],
    )
    deadline = time.monotonic() + 120
    while server.exec_run(["mariadb", "-e", "SELECT 1"]).exit_code != 0:
        server.reload()
        assert server.status == "running", server.logs()
        assert time.monotonic() < deadline, f"MariaDB did not answer: {server.logs()!r}"
        time.sleep(0.2)
    return server
