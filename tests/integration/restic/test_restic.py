"""Backups into restic repositories on the real engine: a REST server (``rclone serve
restic`` in a container of the project's image, with basic auth) on a network of its own,
an SFTP server (OpenSSH's sshd, in an image the session makes from the local Debian base)
and a local repository in a volume. The snapshots restore into a tree identical to the
source; a second run adds almost nothing; retention forgets only the job's snapshots; a
host key known_hosts does not hold fails the run saying so; no secret reaches the ops
container's inspect data or the daemon's log."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.conftest import BUSYBOX, PROJECT_IMAGE, Daemon, event, output_of, unique
from tests.integration.helpers import SEED, SNAPSHOT, Inspector, cli, snapshot
from tests.integration.servers import keypair

from .conftest import (
    PASSWORD,
    REST_PASSWORD,
    data_container,
    outcomes,
    remote_job,
)

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def test_a_rest_repository_gets_deduplicated_snapshots_that_restore_the_identical_tree(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    network: str,
    rest_server: str,
) -> None:
    data = data_container(make, SEED)
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    watching = Inspector(engine)
    daemon = start_daemon(
        f"[jobs.db]\n{remote_job(data.name, network)}"
        f'repository = "{rest_server}"\ninit = true\n'
        f'stop = ["{app.name}"]\nstop_grace = "1s"\n'
        'check = "always"\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env={"TEST_RESTIC_PASSWORD": PASSWORD},
    )
    first = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=300)[0]
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    second = daemon.log.wait_for(event("run.succeeded", job="db"), count=2, timeout=300)[1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    watching.close()

    shown = rest_server.replace(REST_PASSWORD, "***")
    assert first["repository"] == second["repository"] == shown
    assert first["created_repository"] is True
    assert second["created_repository"] is False
    assert first["bytes_added"] > 200 * 1024 * 1024  # random data does not deduplicate…
    assert second["bytes_added"] < 1024 * 1024  # …and the second run adds almost nothing
    assert second["files_new"] == 0
    assert second["files_unmodified"] == first["files_new"]
    assert first["checked"] is True
    assert first["snapshot_id"] != second["snapshot_id"]
    app.reload()
    assert app.status == "running"

    # No secret anywhere the engine or the log shows.
    ops = watching.ops(daemon)
    assert ops, "no ops container was seen"
    assert watching.gone(daemon) == []
    for secret in (PASSWORD, REST_PASSWORD):
        assert secret not in json.dumps(ops)
        assert secret not in "".join(daemon.log.raw)

    # The snapshots, by hand with restic: tagged as the job's; restore the newest into a new
    # volume — the same tree as the source.
    by_hand = "restic snapshots --json --no-cache && "
    by_hand += "restic restore latest --no-cache --target /into >/dev/null"
    restic = ["sh", "-c", by_hand]
    restored = make_volume("crontainer-test-restored")
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        restic,
        network=network,
        volumes=[f"{restored}:/into"],
        environment={"RESTIC_REPOSITORY": rest_server, "RESTIC_PASSWORD": PASSWORD},
    )
    snapshots = json.loads(listing.splitlines()[0])
    assert [s["short_id"] for s in snapshots] == [first["snapshot_id"], second["snapshot_id"]]
    assert all(
        set(s["tags"]) == {"crontainer-job=db", f"crontainer-daemon={daemon.name}"}
        and s["hostname"] == daemon.name
        for s in snapshots
    )
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    # restic keeps the absolute path: the volume's /data is the source's root.
    tree = output_of(
        engine, PROJECT_IMAGE, ["python3", "-c", SNAPSHOT, "/v/data"], volumes=[f"{restored}:/v:ro"]
    )
    assert json.loads(tree) == snapshot(engine, source)
    restore_with_crontainer(
        engine, daemon, rest_server, network, source, [second["snapshot_id"], first["snapshot_id"]]
    )
    app.reload()
    assert app.status == "running"


def restore_with_crontainer(
    engine: docker.DockerClient,
    daemon: Daemon,
    rest_server: str,
    network: str,
    source: str,
    expected: list[str],
) -> None:
    """``crontainer backups db`` lists ``expected`` (short ids, newest first), not another
    job's snapshot made now in the same repository; with the source wiped, ``crontainer
    restore db`` gives its tree back as it was."""
    before = snapshot(engine, source)
    other = "restic backup --no-cache --host elsewhere --tag crontainer-job=other /data/sub"
    output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", other],
        network=network,
        volumes=[f"{source}:/data:ro"],
        environment={"RESTIC_REPOSITORY": rest_server, "RESTIC_PASSWORD": PASSWORD},
    )
    secrets = {"TEST_RESTIC_PASSWORD": PASSWORD}
    listed = json.loads(cli(daemon, "backups", "db", "--json", env=secrets))
    assert [s["short_id"] for s in listed] == expected
    assert all(s["paths"] == ["/data"] and s["hostname"] == daemon.name for s in listed)
    text = cli(daemon, "backups", "db", env=secrets)
    assert [line.split()[0] for line in text.splitlines()] == expected

    output_of(engine, BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
    assert snapshot(engine, source) != before
    restored = json.loads(cli(daemon, "restore", "db", env=secrets))
    assert restored["snapshot_id"] == expected[0]
    assert restored["volumes"] == ["/data"]
    assert len(restored["stopped_and_started"]) == 1
    assert snapshot(engine, source) == before


def test_a_local_repository_keeps_only_the_newest_snapshot_of_the_job(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    repo = make_volume("crontainer-test-repo")
    data = data_container(make)
    daemon = start_daemon(
        "[jobs.db]\n"
        'kind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n'
        f'volumes_from = ["{data.name}"]\nvolumes = ["{repo}:/repo"]\npaths = ["/data"]\n'
        'repository = "/repo/db"\npassword = "pw"\ninit = true\nkeep_last = 1\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    first = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=120)[0]
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    second = daemon.log.wait_for(event("run.succeeded", job="db"), count=2, timeout=120)[1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert first["forgotten"] == []
    assert second["forgotten"] == [first["snapshot_id"]]
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        ["restic", "snapshots", "--json", "--no-cache", "--no-lock"],
        volumes=[f"{repo}:/repo:ro"],
        environment={"RESTIC_REPOSITORY": "/repo/db", "RESTIC_PASSWORD": "pw"},
    )
    assert [s["short_id"] for s in json.loads(listing)] == [second["snapshot_id"]]


def test_an_sftp_repository_with_the_jobs_key_and_a_host_key_known_hosts_does_not_hold(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    network: str,
    sftp_server: tuple[str, Path, str],
    tmp_path: Path,
) -> None:
    """The job's key and known_hosts (a file, read at the run) get a snapshot onto the
    SFTP server; another job whose known_hosts holds another key for that host fails
    saying so and makes nothing. Neither the key nor the password is in the ops
    containers' inspect data or the daemon's log."""
    server, key, known = sftp_server
    _, stranger = keypair(tmp_path, "id_stranger")
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{server} {' '.join(stranger.split()[:2])}\n")
    data = data_container(make)
    watching = Inspector(engine)
    job = remote_job(data.name, network) + "init = true\n"
    daemon = start_daemon(
        f'[jobs.good]\n{job}repository = "sftp:backup@{server}:/srv/restic/app"\n'
        f'ssh = {{ key = {{ file = "{key}" }}, known_hosts = "{known}" }}\n'
        f'[jobs.bad]\n{job}repository = "sftp:backup@{server}:/srv/restic/other"\n'
        f'ssh = {{ key = {{ file = "{key}" }}, known_hosts = {{ file = "{wrong}" }} }}\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env={"TEST_RESTIC_PASSWORD": PASSWORD},
    )
    good, bad = outcomes(daemon, ("run.succeeded", "good"), ("run.failed", "bad"))
    watching.close()

    assert good["repository"] == f"sftp:backup@{server}:/srv/restic/app"
    assert good["created_repository"] is True
    assert bad["error"] == (
        f"cannot open repository sftp:backup@{server}:/srv/restic/other: host key of {server} "
        "does not match known_hosts (ssh.known_hosts): the host key changed, or known_hosts "
        "holds another one"
    )
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        ["sh", "-c", "test ! -e /srv/restic/other && restic snapshots --json --no-cache --no-lock"],
        volumes_from=[f"{server}:ro"],
        environment={"RESTIC_REPOSITORY": "/srv/restic/app", "RESTIC_PASSWORD": PASSWORD},
    )  # the bad job made nothing
    snapshots = json.loads(listing)
    assert [s["short_id"] for s in snapshots] == [good["snapshot_id"]]
    assert snapshots[0]["tags"] == ["crontainer-job=good", f"crontainer-daemon={daemon.name}"]

    # The ops containers of this daemon: one for each job.
    ours = watching.ops(daemon)
    labels = [c["Config"]["Labels"] for c in ours]
    jobs = [x.get("crontainer.job") for x in labels if x.get("crontainer.daemon") == daemon.name]
    assert sorted(j for j in jobs if j) == ["bad", "good"]
    key_lines = [line for line in key.read_text().splitlines() if "PRIVATE KEY" not in line]
    for secret in (PASSWORD, *key_lines):
        assert secret not in json.dumps(ours)
        assert secret not in "".join(daemon.log.raw)
