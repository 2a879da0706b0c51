"""A REST server (``rclone serve restic``) killed in the middle of an upload, on the real
engine: the run fails naming the repository, and once the server is back the next run
succeeds and ``restic check`` passes with no partial snapshot listed.

restic takes about three minutes of its own retries to give up: the cut itself is made
before the package's first test (``upload_cut`` in the package's conftest), and this
test, moved to the session's end, waits for the failure the cut leads to."""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import event
from tests.integration.helpers import cli
from tests.integration.restic.conftest import REST_PASSWORD, Cut, by_hand
from tests.integration.servers import wait_until_it_says

if TYPE_CHECKING:
    import docker


pytestmark = pytest.mark.integration


def test_the_server_killed_mid_upload_fails_the_run_and_the_next_run_succeeds_and_checks(
    upload_cut: Cut | None, engine: docker.DockerClient
) -> None:
    """The REST server killed while the 200 MB file is uploaded: the run fails naming the
    repository; the server back, the next run succeeds, its ``restic check`` passes, and
    the repository lists only that run's snapshot."""
    assert upload_cut is not None
    daemon, server = upload_cut.daemon, upload_cut.server
    repository, network = upload_cut.repository, upload_cut.network
    failed = daemon.log.wait_for(event("run.failed", job="db"), timeout=600)[0]
    restarted = int(time.time())
    server.start()
    wait_until_it_says(server, "Serving restic REST API", since=restarted)
    cli(daemon, "trigger", "db", "--state-dir", str(daemon.state_dir))
    done = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=600)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0

    shown = repository.replace(REST_PASSWORD, "***")
    # restic's own account of why it gave up (not one of its notices that it retries)
    assert failed["error"].startswith("backup failed: unable to "), failed["error"]
    assert "retrying" not in failed["error"]
    assert f'"{shown.removeprefix("rest:")}/' in failed["error"]
    assert failed["error"].endswith(f"lookup {server.name} on 127.0.0.11:53: no such host")
    assert REST_PASSWORD not in "".join(daemon.log.raw)
    assert done["checked"] is True
    listed = json.loads(by_hand(engine, network, repository, "snapshots --json --no-lock"))
    assert [s["short_id"] for s in listed] == [done["snapshot_id"]]
    assert by_hand(engine, network, repository, "list locks --no-lock").split() == []
