"""restic over S3 on the real engine (moto's S3 server in a container on a network of the
test's own): a snapshot into a bucket that exists, listed and restored by crontainer into
the identical tree, the S3 secret key given as a file and shown nowhere; a bucket that does
not exist fails a job with ``init = false`` in restic's words and is created by restic for
one with ``init = true``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import BUSYBOX, PROJECT_IMAGE
from tests.integration.helpers import SMALL_SEED, Inspector, cli, snapshot
from tests.integration.restic.conftest import PASSWORD, data_container, outcomes, remote_job
from tests.integration.servers import make_bucket

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import docker

    from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

S3_SECRET = "s3-secret-key-never-shown"  # noqa: S105 - the test's S3 secret key


def test_an_s3_repository_snapshots_lists_and_restores_and_a_missing_bucket_says_so(
    start_daemon: Callable[..., Daemon],
    engine: docker.DockerClient,
    make: Callable[..., Any],
    network: str,
    s3_server: str,
    tmp_path: Path,
) -> None:
    make_bucket(engine, network, s3_server, "backups")
    secret = tmp_path / "s3_secret"
    secret.write_text(S3_SECRET + "\n")
    data = data_container(make, SMALL_SEED)
    job = remote_job(data.name, network) + (
        f'env = {{ AWS_ACCESS_KEY_ID = "crontainer", AWS_SECRET_ACCESS_KEY = {{ file = "{secret}" }} }}\n'
    )
    watching = Inspector(engine)
    daemon = start_daemon(
        f'[jobs.db]\n{job}repository = "s3:{s3_server}/backups/app"\ninit = true\n'
        f'[jobs.nobucket]\n{job}repository = "s3:{s3_server}/missing/app"\n'
        f'[jobs.newbucket]\n{job}repository = "s3:{s3_server}/made-by-restic/app"\ninit = true\n',
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
        env={"TEST_RESTIC_PASSWORD": PASSWORD},
    )
    made, missing, created = outcomes(
        daemon, ("run.succeeded", "db"), ("run.failed", "nobucket"), ("run.succeeded", "newbucket")
    )
    watching.close()

    assert made["repository"] == f"s3:{s3_server}/backups/app"
    assert made["created_repository"] is True
    assert made["files_new"] == made["files_processed"] > 0
    assert missing["error"] == (
        f"repository s3:{s3_server}/missing/app does not exist (init = false): unable to open "
        "config file: Stat: The specified bucket does not exist"
    )
    assert created["created_repository"] is True  # restic's init made the bucket too

    secrets = {"TEST_RESTIC_PASSWORD": PASSWORD}
    listed = json.loads(cli(daemon, "backups", "db", "--json", env=secrets))
    assert [s["short_id"] for s in listed] == [made["snapshot_id"]]
    assert listed[0]["paths"] == ["/data"]
    source = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    before = snapshot(engine, source)
    wipe = make(BUSYBOX, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source}:/data"])
    assert wipe.wait(timeout=60)["StatusCode"] == 0
    assert snapshot(engine, source) != before
    restored = json.loads(cli(daemon, "restore", "db", env=secrets))
    assert restored["snapshot_id"] == made["snapshot_id"]
    assert snapshot(engine, source) == before

    ops = watching.ops(daemon)
    assert len(ops) >= 3  # an ops container for each job at least
    for shown in (json.dumps(ops), "".join(daemon.log.raw)):
        assert S3_SECRET not in shown
        assert PASSWORD not in shown
