"""Backups with ``copy_to`` and no ``target`` on the real engine: the archive streamed straight
to the first remote (SFTP: Debian's sshd, key authentication) between the app's stop and
start, age-encrypted, then copied from there to a WebDAV server; both hold it under its final
name with its checksum, neither readable without the identity; a restore from each (the first
without ``--from``) gives the identical tree back. The WebDAV server killed mid-stream: the
run fails naming it, nothing under a final name; the next run succeeds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from .conftest import BUSYBOX, Daemon, output_of, unique
from .helpers import CUT_SEED, SMALL_SEED, Inspector, cli, first_success, snapshot
from .servers import DAV_PASSWORD, dav_files, next_run_after_restart, partial_upload, start_dav
from .test_backup_encrypted import key_pair
from .test_remotes import SFTP_FOLDER, ended, files_in, known_hosts, remotes

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
SECRETS = {"TEST_DAV_PASSWORD": DAV_PASSWORD}


def test_an_encrypted_archive_streamed_to_sftp_and_copied_to_webdav_restores_from_each(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    network: str,
    sftp_server: tuple[str, Path, str],
    dav_server: Any,
    tmp_path: Path,
) -> None:
    data = make(BUSYBOX, ["sh", "-c", SMALL_SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    identity, public = key_pair(tmp_path, "identity")
    watching = Inspector(engine)
    box = (sftp_server[0], sftp_server[1], known_hosts(engine, sftp_server[0]))
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\ncopy_to = ["box", "dav"]\nnetwork = "{network}"\n'
        f'encrypt = {{ recipients = ["{public}"] }}\n'
        f'stop = ["{app.name}"]\nstop_grace = "1s"\n',
        daemon=remotes(box, dav_server),
        env=SECRETS,
    )
    done = first_success(daemon, timeout=300)
    watching.close()
    name = done["archive"]
    assert name.endswith(".tar.zst.age")
    assert done["encrypted"] is True
    assert done["files"] > 0
    assert [(c["remote"], c["uploaded"], c["bytes"]) for c in done["copies"]] == [
        ("box", [name], done["bytes"]),
        ("dav", [name], done["bytes"]),
    ]
    app.reload()
    assert app.status == "running"
    stopped = [e for e in daemon.log.events if e.get("event") == "run.container_stopped"]
    assert [e.get("container") for e in stopped] == [app.name]

    # No archive on the host: the stream's container mounted the sources only; both remotes
    # hold the archive and its checksum, the bytes of the stream, unreadable without the key.
    ops = watching.ops(daemon)
    streaming = [o for o in ops if o["Config"]["Cmd"][-1] == "jobs.tools.remote"]
    assert len(streaming) == 2, [o["Config"]["Cmd"] for o in ops]
    assert streaming[0]["Mounts"]
    assert all(m["RW"] is False for m in streaming[0]["Mounts"])
    assert streaming[0]["HostConfig"]["VolumesFrom"] == [f"{data.name}:ro"]
    assert DAV_PASSWORD not in json.dumps(ops) + "".join(daemon.log.raw)
    sftp = engine.containers.get(sftp_server[0])
    assert files_in(sftp, SFTP_FOLDER) == [name, f"{name}.sha256"]
    assert files_in(dav_server, "/dav/copies") == [name, f"{name}.sha256"]
    for server, folder in ((sftp, SFTP_FOLDER), (dav_server, "/dav/copies")):
        code, said = server.exec_run(["sh", "-c", f"cd {folder} && sha256sum -c {name}.sha256"])
        assert code == 0, said
    code, _ = dav_server.exec_run(["zstd", "-t", f"/dav/copies/{name}"])
    assert code != 0  # age's bytes, not zstd's

    # The source wiped: the first remote (no --from) and the other give the tree back.
    before = snapshot(engine, source)
    listed = json.loads(cli(daemon, "backups", "db", "--json", env=SECRETS))
    assert [(a["archive"], a["good"]) for a in listed] == [(name, True)]
    for remote in (None, "dav"):
        output_of(engine, BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
        assert snapshot(engine, source) != before
        chosen = () if remote is None else ("--from", remote)
        restored = json.loads(
            cli(daemon, "restore", "db", *chosen, "--identity", str(identity), env=SECRETS)
        )
        assert (restored["archive"], restored["remote"]) == (name, remote or "box")
        assert snapshot(engine, source) == before


def test_a_stream_cut_mid_way_fails_naming_the_remote_and_the_next_run_succeeds(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    network: str,
) -> None:
    """The WebDAV server (limited to 2 MiB/s: the 20 MiB stream takes seconds) is killed
    while the archive streams into it: the run fails naming the remote, the server holds
    at most the job's ``.partial``; the next run removes it and leaves one whole archive."""
    dav = start_dav(network, make, "--bwlimit", "2M", "--rc")
    data = make(BUSYBOX, ["sh", "-c", CUT_SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\ncopy_to = ["dav"]\nnetwork = "{network}"\n',
        daemon=remotes(None, dav),
        env=SECRETS,
    )
    partial_upload(dav, "/dav/copies", daemon)  # the stream under way
    dav.kill()
    cut = daemon.log.wait_for(ended, timeout=180)[0]
    assert cut["event"] == "run.failed", cut
    assert "stream to remote 'dav' failed: rclone rcat" in cut["error"], cut["error"]
    assert DAV_PASSWORD not in cut["error"]
    assert [n for n in dav_files(engine, dav) if not n.endswith(".partial")] == []

    done = next_run_after_restart(daemon, dav, ended)
    assert done["event"] == "run.succeeded", done
    name = done["archive"]
    assert files_in(dav, "/dav/copies") == [name, f"{name}.sha256"]
    code, sums = dav.exec_run(["sh", "-c", "cd /dav/copies && sha256sum -c *.sha256"])
    assert code == 0, sums
