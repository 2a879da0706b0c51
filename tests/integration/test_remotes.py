"""Archives copied off the host (``copy_to``) on the real engine: to an SFTP server (Debian's
sshd, key authentication, host key checked), to a WebDAV server (``rclone serve webdav`` with
a user and a password, in a container of the project's image) and to an S3 bucket (moto's
server), each on a user-defined network. The archive and its checksum are on each under
their final names, nothing partial; with the local archives deleted, a restore from each
remote gives the identical tree back; a remote that is down fails the run naming it, the
local archive kept, and the next run uploads what is missing; no secret reaches an ops
container's inspect data or the daemon's log."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import BUSYBOX, PROJECT_IMAGE, Daemon, output_of, unique
from .helpers import CUT_SEED, SEED, SMALL_SEED, Inspector, cli, first_success, snapshot
from .servers import (
    DAV_PASSWORD,
    dav_files,
    make_bucket,
    next_run_after_restart,
    partial_upload,
    start_dav,
    wait_until_it_says,
)

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
SFTP_FOLDER = "/srv/restic/copies"
"""Where the copies go on the SFTP server (its volume, writable by the user backup)."""


def remotes(sftp: tuple[str, Path, str] | None, dav: Any) -> str:
    """The ``[daemon]`` text: the ops image and the remotes ``box`` (SFTP) and ``dav``."""
    text = f'ops_image = "{PROJECT_IMAGE}"\n'
    if sftp is not None:
        host, key, known = sftp
        text += (
            f'[daemon.remotes.box]\ntype = "sftp"\nhost = "{host}"\nuser = "backup"\n'
            f'path = "{SFTP_FOLDER}"\nkey = {{ file = "{key}" }}\nknown_hosts = """{known}"""\n'
        )
    return text + (
        f'[daemon.remotes.dav]\ntype = "webdav"\nurl = "http://{dav.name}:8080"\n'
        'user = "dav"\npassword = { env = "TEST_DAV_PASSWORD" }\npath = "copies"\n'
    )


def ended(found: dict[str, Any]) -> bool:
    return found.get("event") in ("run.succeeded", "run.failed")


def known_hosts(engine: docker.DockerClient, server: str) -> str:
    """Every host key of the SFTP server, as ``ssh-keyscan`` gives them (rclone 1.60 checks
    the ECDSA key when the host has one)."""
    code, out = engine.containers.get(server).exec_run(
        ["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]
    )
    assert code == 0, out
    return "\n".join(f"{server} {' '.join(line.split()[:2])}" for line in out.decode().splitlines())


def files_in(server: Any, folder: str) -> list[str]:
    code, out = server.exec_run(["ls", "-A", folder])
    assert code == 0, out
    return sorted(out.decode().split())


def test_archives_copied_to_sftp_and_webdav_restore_the_identical_tree_from_each(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    network: str,
    sftp_server: tuple[str, Path, str],
    dav_server: Any,
) -> None:
    data = make(BUSYBOX, ["sh", "-c", SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    target = make_volume("crontainer-test-backups")
    secrets = {"TEST_DAV_PASSWORD": DAV_PASSWORD}
    watching = Inspector(engine)
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\ntarget = "{target}"\n'
        f'copy_to = ["box", "dav"]\nnetwork = "{network}"\n'
        f'stop = ["{app.name}"]\nstop_grace = "1s"\n',
        daemon=remotes(
            (sftp_server[0], sftp_server[1], known_hosts(engine, sftp_server[0])), dav_server
        ),
        env=secrets,
    )
    done = first_success(daemon, timeout=600)
    watching.close()
    name = done["archive"]
    assert [(c["remote"], c["uploaded"], c["bytes"]) for c in done["copies"]] == [
        ("box", [name], done["bytes"]),
        ("dav", [name], done["bytes"]),
    ]
    assert all(c["verified_by"].startswith("size") for c in done["copies"])
    app.reload()
    assert app.status == "running"

    # Both remotes hold the archive and its checksum under their final names, nothing else.
    sftp = engine.containers.get(sftp_server[0])
    assert files_in(sftp, SFTP_FOLDER) == [name, f"{name}.sha256"]
    assert files_in(dav_server, "/dav/copies") == [name, f"{name}.sha256"]
    code, remote_sum = dav_server.exec_run(["sha256sum", f"/dav/copies/{name}"])
    assert code == 0
    assert remote_sum.decode().split()[0] == done["sha256"]

    # No secret anywhere the engine or the log shows.
    key_text = sftp_server[1].read_text()
    ops = watching.ops(daemon)
    assert len(ops) >= 2, "the archive's and the copy's containers were not seen"
    shown = json.dumps(ops) + "".join(daemon.log.raw)
    assert DAV_PASSWORD not in shown
    assert all(line not in shown for line in key_text.splitlines()[1:-1])

    # The local archives gone and the source wiped: each remote gives the tree back.
    before = snapshot(engine, source)
    output_of(engine, BUSYBOX, ["sh", "-c", "rm -f /t/*"], volumes=[f"{target}:/t"])
    assert json.loads(cli(daemon, "backups", "db", "--json")) == []
    for remote, archive in (("box", "latest"), ("dav", name)):
        listed = json.loads(cli(daemon, "backups", "db", "--from", remote, "--json", env=secrets))
        assert [(a["archive"], a["good"]) for a in listed] == [(name, True)]
        output_of(engine, BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
        assert snapshot(engine, source) != before
        restored = json.loads(
            cli(daemon, "restore", "db", "--from", remote, "--archive", archive, env=secrets)
        )
        assert (restored["archive"], restored["remote"]) == (name, remote)
        assert restored["stopped_and_started"] == [app.name]
        assert snapshot(engine, source) == before


@pytest.fixture
def copying(
    start_daemon: Start,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    network: str,
) -> Callable[[str, str, str], tuple[Daemon, str]]:
    """Start a daemon (``daemon``: its remotes) whose job ``db`` backs up a data container
    ``seed`` fills into a target volume of its own, copying to ``copy_to`` (a TOML list);
    the daemon and the target."""

    def start(seed: str, copy_to: str, daemon: str) -> tuple[Daemon, str]:
        data = make(BUSYBOX, ["sh", "-c", seed], name=unique("t-data"), volumes=["/data"])
        assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
        target = make_volume("crontainer-test-backups")
        started = start_daemon(
            "[jobs.db]\n"
            'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
            f'volumes_from = ["{data.name}"]\ntarget = "{target}"\n'
            f'copy_to = {copy_to}\nnetwork = "{network}"\n',
            daemon=daemon,
            env={"TEST_DAV_PASSWORD": DAV_PASSWORD},
        )
        return started, target

    return start


def test_a_remote_that_is_down_fails_the_run_and_the_next_run_uploads_what_is_missing(
    copying: Callable[[str, str, str], tuple[Daemon, str]],
    engine: docker.DockerClient,
    dav_server: Any,
) -> None:
    daemon, target = copying("echo a > /data/a", '["dav"]', remotes(None, dav_server))
    first = daemon.log.wait_for(ended, timeout=120)[0]
    assert first["event"] == "run.succeeded", first
    assert first["copies"][0]["uploaded"] == [first["archive"]]

    dav_server.stop(timeout=1)
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    failed = daemon.log.wait_for(ended, count=2, timeout=180)[1]
    assert failed["event"] == "run.failed", failed
    assert "copy to remote 'dav' failed: rclone" in failed["error"]
    assert DAV_PASSWORD not in failed["error"]
    second = failed["archive"]
    local = output_of(engine, BUSYBOX, ["ls", "/t"], volumes=[f"{target}:/t:ro"]).split()
    assert second in local
    assert f"{second}.sha256" in local

    dav_server.start()
    wait_until_it_says(dav_server, "WebDav Server started", times=2)
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    third = daemon.log.wait_for(ended, count=3, timeout=180)[2]
    assert third["event"] == "run.succeeded", third
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert third["copies"][0]["uploaded"] == [third["archive"], second]
    names = [first["archive"], second, third["archive"]]
    assert files_in(dav_server, "/dav/copies") == sorted([*names, *(f"{n}.sha256" for n in names)])


def test_an_upload_cut_mid_way_leaves_nothing_partial_under_a_final_name(
    copying: Callable[[str, str, str], tuple[Daemon, str]],
    engine: docker.DockerClient,
    make: Callable[..., Any],
    network: str,
) -> None:
    """The WebDAV server (limited to 2 MiB/s: the 20 MiB upload takes seconds) is killed
    while the archive is being uploaded: the run fails naming it, the server holds only the
    job's .partial; the next run removes it and copies the archives whole (the server back
    without the limit, lifted through its remote control: the two archives need not take
    twenty seconds more)."""
    dav = start_dav(network, make, "--bwlimit", "2M", "--rc")
    daemon, _ = copying(CUT_SEED, '["dav"]', remotes(None, dav))
    partial = partial_upload(dav, "/dav/copies", daemon)  # the upload under way
    dav.kill()
    cut = daemon.log.wait_for(ended, timeout=180)[0]
    assert cut["event"] == "run.failed", cut
    assert "copy to remote 'dav' failed: rclone" in cut["error"]
    assert partial == [f"{cut['archive']}.partial"]
    assert dav_files(engine, dav) == partial  # nothing under a final name

    done = next_run_after_restart(daemon, dav, ended)
    assert done["event"] == "run.succeeded", done
    names = [cut["archive"], done["archive"]]
    assert done["copies"][0]["uploaded"] == names[::-1]
    assert files_in(dav, "/dav/copies") == sorted([*names, *(f"{n}.sha256" for n in names)])
    code, sums = dav.exec_run(["sh", "-c", "cd /dav/copies && sha256sum -c *.sha256"])
    assert code == 0, sums


def test_an_sftp_host_not_in_known_hosts_fails_the_run_saying_so(
    copying: Callable[[str, str, str], tuple[Daemon, str]],
    sftp_server: tuple[str, Path, str],
    dav_server: Any,
    engine: docker.DockerClient,
) -> None:
    """known_hosts holds the server's keys under another name: the copy to it fails saying
    the host is not in known_hosts, nothing reaches it, and the other remote is copied."""
    host, key, _ = sftp_server
    elsewhere = known_hosts(engine, host).replace(f"{host} ", "elsewhere.example ")
    daemon, _ = copying(
        "echo a > /data/a", '["box", "dav"]', remotes((host, key, elsewhere), dav_server)
    )
    failed = daemon.log.wait_for(ended, timeout=120)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert failed["event"] == "run.failed", failed
    assert "copy to remote 'box' failed: rclone lsjson:" in failed["error"]
    assert "knownhosts: key is unknown (the host is not in known_hosts)" in failed["error"]
    assert "'dav'" not in failed["error"]
    assert [c["uploaded"] for c in failed["copies"]] == [[], [failed["archive"]]]
    code, out = engine.containers.get(host).exec_run(["ls", "/srv/restic"])
    assert code == 0
    assert out.decode().split() == []


S3_SECRET = "s3-copy-secret-never-shown"  # noqa: S105 - the test's S3 secret key


def test_archives_copied_to_an_s3_bucket_restore_the_identical_tree(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    network: str,
    s3_server: str,
) -> None:
    """copy_to an S3 remote (moto's server): the archive and its checksum in the bucket under
    the folder, the secret key shown nowhere, and a restore from the bucket alone gives the
    tree back."""
    make_bucket(engine, network, s3_server, "copies")
    data = make(BUSYBOX, ["sh", "-c", SMALL_SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    target = make_volume("crontainer-test-backups")
    secrets = {"TEST_S3_SECRET": S3_SECRET}
    watching = Inspector(engine)
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\ntarget = "{target}"\n'
        f'copy_to = ["s3"]\nnetwork = "{network}"\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"\n'
        f'[daemon.remotes.s3]\ntype = "s3"\nendpoint = "{s3_server}"\nbucket = "copies"\n'
        'path = "app/db"\naccess_key_id = "backup"\n'
        'secret_access_key = { env = "TEST_S3_SECRET" }\n',
        env=secrets,
    )
    done = first_success(daemon, timeout=600)
    watching.close()
    name = done["archive"]
    assert [(c["remote"], c["uploaded"], c["bytes"]) for c in done["copies"]] == [
        ("s3", [name], done["bytes"])
    ]
    assert done["copies"][0]["verified_by"].startswith("size")
    listing = "import sys, urllib.request as r; print(r.urlopen(sys.argv[1]).read().decode())"
    said = output_of(
        engine, PROJECT_IMAGE, ["python3", "-c", listing, f"{s3_server}/copies?prefix=app/db/"],
        network=network,
    )  # fmt: skip
    assert f"<Key>app/db/{name}</Key>" in said
    assert f"<Key>app/db/{name}.sha256</Key>" in said
    assert ".partial" not in said
    shown = json.dumps(watching.ops(daemon)) + "".join(daemon.log.raw)
    assert S3_SECRET not in shown

    before = snapshot(engine, source)
    output_of(engine, BUSYBOX, ["sh", "-c", "rm -f /t/*"], volumes=[f"{target}:/t"])
    output_of(engine, BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
    listed = json.loads(cli(daemon, "backups", "db", "--from", "s3", "--json", env=secrets))
    assert [(a["archive"], a["good"]) for a in listed] == [(name, True)]
    restored = json.loads(cli(daemon, "restore", "db", "--from", "s3", env=secrets))
    assert (restored["archive"], restored["remote"]) == (name, "s3")
    assert snapshot(engine, source) == before
