"""Job kind backup on the real engine: a data container's volume archived, listed with plain
tar, restored into a new volume identical to the original; stop order and restart on failure."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    TEST_LABELS,
    Daemon,
    Helpers,
    cli_environ,
    event,
    output_of,
    unique,
)
from .helpers import SEED, cli, first_success, snapshot

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
LABELS = TEST_LABELS


def container_moves(daemon: Daemon) -> list[tuple[str, str]]:
    """(event, container) of every stop/start of the run's stop containers, in order."""
    return [
        (e["event"], e["container"])
        for e in daemon.log.events
        if e.get("event", "").startswith("run.container_")
    ]


def backup_job(name: str, **keys: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[jobs.{name}]\nkind = "backup"\nschedule = "@yearly"\nrun_on_start = true\n{lines}\n'


def test_backup_list_restore_gives_the_identical_tree(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    """pre_exec → stop app then worker → archive → start worker then app → post_exec; the
    archive lists with plain tar and restores into a new volume exactly."""
    target, restored = (
        make_volume("crontainer-test-backups"),
        make_volume("crontainer-test-restored"),
    )
    data = make(BUSYBOX, ["sh", "-c", SEED], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    worker = make(BUSYBOX, ["sleep", "600"], name=unique("t-worker"))
    daemon = start_daemon(
        backup_job(
            "db",
            volumes_from=f'["{data.name}"]',
            target=f'"{target}"',
            stop=f'["{app.name}", "{worker.name}"]',
            stop_grace='"1s"',
            pre_exec=f'[{{ container = "{app.name}", command = "touch /tmp/pre-ran" }}]',
            post_exec=f'[{{ container = "{app.name}", command = "touch /tmp/post-ran" }}]',
            keep_last="3",
        ),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    done = first_success(daemon)
    archive = done["archive"]
    assert archive.startswith("db-")
    assert archive.endswith(".tar.zst")
    assert done["bytes"] > 200 * 1024 * 1024  # the random 200 MB file does not compress
    assert done["data_bytes"] > 200 * 1024 * 1024  # the tar stream before compression
    expected = done["data_bytes"] / done["archive_s"] / (1 << 20)
    assert done["throughput_mib_s"] == pytest.approx(expected, abs=0.06)
    moves = container_moves(daemon)
    assert moves == [
        ("run.container_stopped", app.name),
        ("run.container_stopped", worker.name),
        ("run.container_started", worker.name),
        ("run.container_started", app.name),
    ]
    for container in (app, worker):
        container.reload()
        assert container.status == "running"
    assert app.exec_run(["ls", "/tmp/pre-ran", "/tmp/post-ran"]).exit_code == 0
    listing = output_of(
        engine,
        PROJECT_IMAGE,
        ["tar", "-tf", f"/backup/{archive}"],
        volumes=[f"{target}:/backup:ro"],
    )
    assert "data/café ☃ naïve.txt" in listing.splitlines()

    archives = json.loads(cli(daemon, "backups", "db", "--json"))
    assert [(a["archive"], a["good"], a["bytes"]) for a in archives] == [
        (archive, True, done["bytes"])
    ]
    into_new = json.loads(
        cli(daemon, "restore", "db", "--archive", archive, "--to", f"/data={restored}")
    )
    assert into_new["archive"] == archive
    source_volume = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    before = snapshot(engine, source_volume)
    assert snapshot(engine, restored) == before
    assert done["files"] == len(before) == 11

    # Lose the data, restore the latest archive into the source itself: app and worker are
    # stopped and started again around it, as in a backup.
    output_of(
        engine, PROJECT_IMAGE, ["sh", "-c", "rm -rf /data/*"], volumes=[f"{source_volume}:/data"]
    )
    assert snapshot(engine, source_volume) != before
    into_source = json.loads(cli(daemon, "restore", "db"))
    assert into_source["stopped_and_started"] == [app.name, worker.name]
    assert snapshot(engine, source_volume) == before
    for container in (app, worker):
        container.reload()
        assert container.status == "running"


def test_restore_replaces_a_symlink_the_app_left_in_the_volume_instead_of_following_it(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    """The job archives files under /data/dir (its paths, so not the directory itself);
    the app then makes /data/dir a symlink to /tmp: `crontainer restore` makes /data/dir a
    real directory with the archived files, and keeps what the archive does not hold
    (a plain tar extraction followed the link into the ops container's /tmp, lost)."""
    target = make_volume("crontainer-test-backups")
    seed = "mkdir -p /data/dir/sub && echo a > /data/dir/a.txt && echo b > /data/dir/sub/b.txt"
    data = make(BUSYBOX, ["sh", "-c", seed], name=unique("t-data"), volumes=["/data"])
    assert data.wait(timeout=120)["StatusCode"] == 0, data.logs()
    daemon = start_daemon(
        backup_job(
            "db",
            volumes_from=f'["{data.name}"]',
            target=f'"{target}"',
            paths='["/data/dir/a.txt", "/data/dir/sub"]',
        ),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    daemon.log.wait_for(event("run.succeeded", job="db"), timeout=120)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    volume = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/data")
    before = snapshot(engine, volume)
    plant = "rm -rf /data/dir && ln -s /tmp /data/dir && echo new > /data/new.txt"
    output_of(engine, PROJECT_IMAGE, ["sh", "-c", plant], volumes=[f"{volume}:/data"])
    assert snapshot(engine, volume)["dir"][0] == stat.S_IFLNK

    restored = json.loads(cli(daemon, "restore", "db"))
    after = snapshot(engine, volume)
    assert after["dir"][0] == stat.S_IFDIR
    archived = ["dir/a.txt", "dir/sub", "dir/sub/b.txt"]
    assert {p: after[p] for p in archived} == {p: before[p] for p in archived}
    assert sorted(after) == sorted([".", "dir", *archived, "new.txt"])  # no staging left
    assert (restored["volumes"], restored["entries"]) == (["/data"], 3)


BIG = "head -c 629145600 /dev/urandom > /data/big.bin"  # 600 MB: the archive takes seconds


@pytest.fixture(scope="module")
def big(engine: docker.DockerClient) -> Iterator[Any]:
    """A data container whose volume at /data holds BIG, made once for the module: the
    tests that back it up only read it (none restores into it)."""
    helpers = Helpers(engine)
    try:
        data = helpers(BUSYBOX, ["sh", "-c", BIG], name=unique("t-data"), volumes=["/data"])
        assert data.wait(timeout=120)["StatusCode"] == 0
        yield data
    finally:
        helpers.close()


@pytest.mark.parametrize(
    ("keys", "ending"),
    [
        ({"paths": '["/data/not-there"]'}, "run.failed"),
        ({"timeout": '"1s"', "cpus": "0.05"}, "run.timed_out"),
    ],
    ids=["archive-fails", "archive-times-out"],
)
def test_stopped_containers_start_again_in_reverse_when_the_archive_fails_or_times_out(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    big: Any,
    keys: dict[str, str],
    ending: str,
) -> None:
    """The archive fails (a path that is not there) or outlives the timeout (5 % of a CPU:
    with the whole machine, 600 MB in the page cache are archived within the timeout and
    the stop grace): both running containers run again, started in reverse order; one
    that was not running stays stopped; no final-named archive is left."""
    target = make_volume("crontainer-test-backups")
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    worker = make(BUSYBOX, ["sleep", "600"], name=unique("t-worker"))
    idle = make(BUSYBOX, ["true"], name=unique("t-idle"))
    idle.wait(timeout=30)
    daemon = start_daemon(
        backup_job(
            "db",
            volumes_from=f'["{big.name}"]',
            target=f'"{target}"',
            stop=f'["{app.name}", "{idle.name}", "{worker.name}"]',
            stop_grace='"1s"',
            **keys,
        ),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    ended = daemon.log.wait_for(event(ending, job="db"), timeout=120)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    if ending == "run.failed":
        assert ended["exit_code"] == 1
        lines = [e["line"] for e in daemon.log.matching(event("run.output", job="db"))]
        assert lines[-1].startswith("backup: nothing to back up at /data/not-there")
    else:
        assert ended["reason"] == "timeout"
    assert container_moves(daemon) == [
        ("run.container_stopped", app.name),
        ("run.container_not_running", idle.name),
        ("run.container_stopped", worker.name),
        ("run.container_started", worker.name),
        ("run.container_started", app.name),
    ]
    for container in (app, worker):
        container.reload()
        assert container.status == "running"
    idle.reload()
    assert idle.status == "exited"
    assert all(name.endswith(".partial") for name in _target_files(engine, target))


def _wait_for_ops_container(engine: docker.DockerClient, daemon: Daemon) -> Any:
    deadline = time.monotonic() + 30
    while True:
        found = engine.containers.list(
            filters={"label": [f"crontainer.daemon={daemon.name}", "crontainer.job=db"]}
        )
        if found:
            return found[0]
        assert time.monotonic() < deadline, "the backup's ops container never ran"
        time.sleep(0.05)


def _wait_for_a_growing_partial(ops: Any) -> None:
    """Until the archive's .partial exists in the ops container's target and has grown
    between two looks: the archive is being written now."""
    deadline = time.monotonic() + 60
    sizes: list[int] = []
    while len(sizes) < 2 or not 0 < sizes[-2] < sizes[-1]:
        assert time.monotonic() < deadline, f"no growing .partial in the target: {sizes}"
        listing = ops.exec_run(["sh", "-c", "stat -c %s /backup/*.partial"]).output.split()
        sizes.append(int(listing[0]) if listing and listing[0].isdigit() else 0)


def _target_files(engine: docker.DockerClient, target: str) -> list[str]:
    return sorted(
        output_of(
            engine, PROJECT_IMAGE, ["ls", "-A", "/backup"], volumes=[f"{target}:/backup:ro"]
        ).split()
    )


def test_kill_9_of_the_backup_container_leaves_no_final_partial_and_the_next_run_cleans(
    start_daemon: Start,
    engine: docker.DockerClient,
    make_volume: Callable[[str], str],
    big: Any,
) -> None:
    """SIGKILL of the ops container mid-archive: run.failed, only a .partial in the target;
    the next run removes it and leaves one complete archive."""
    target = make_volume("crontainer-test-backups")
    daemon = start_daemon(
        backup_job("db", volumes_from=f'["{big.name}"]', target=f'"{target}"'),
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    ops = _wait_for_ops_container(engine, daemon)
    _wait_for_a_growing_partial(ops)  # mid-archive: the 600 MB take seconds more
    ops.kill()  # SIGKILL
    failed = daemon.log.wait_for(event("run.failed", job="db"), timeout=60)[0]
    assert failed["exit_code"] == 137
    left = _target_files(engine, target)
    assert all(name.endswith(".partial") for name in left), left
    again = subprocess.run(
        [sys.executable, "-m", "scheduler", "trigger", "db", "--state-dir", str(daemon.state_dir)],
        capture_output=True, text=True, check=False, env=cli_environ(),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    done = daemon.log.wait_for(event("run.succeeded", job="db"), timeout=120)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert _target_files(engine, target) == [done["archive"], f"{done['archive']}.sha256"]


def test_kill_9_of_the_daemon_mid_backup_its_successor_starts_the_app_again(
    start_daemon: Start,
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
    big: Any,
) -> None:
    """The daemon dies while the app is stopped for the archive: the successor adopts the
    archive, starts the app again once the archive has ended, and the target holds only
    complete archives."""
    target = make_volume("crontainer-test-backups")
    app = make(BUSYBOX, ["sleep", "600"], name=unique("t-app"))
    jobs = backup_job(
        "db",
        volumes_from=f'["{big.name}"]',
        target=f'"{target}"',
        stop=f'["{app.name}"]',
        stop_grace='"1s"',
    )
    first = start_daemon(jobs, daemon=f'ops_image = "{PROJECT_IMAGE}"')
    first.log.wait_for(event("run.container_stopped", container=app.name), timeout=60)
    ops = _wait_for_ops_container(engine, first)
    ops.pause()  # the archive cannot end before the successor is there to adopt it
    first.proc.kill()
    first.proc.wait(10)
    app.reload()
    assert app.status == "exited"  # left stopped by the dead daemon
    second = start_daemon(
        jobs.replace("run_on_start = true\n", ""),
        name=first.name,
        daemon=f'ops_image = "{PROJECT_IMAGE}"',
    )
    adopted = second.log.wait_for(event("run.adopted"), timeout=30)[0]
    ops.unpause()
    started = second.log.wait_for(event("run.container_started", container=app.name), timeout=120)[
        0
    ]
    ended = second.log.wait_for(event("run.succeeded", run_id=adopted["run_id"]), timeout=120)[0]
    names = [e.get("event") for e in second.log.events]
    # The app starts again only after the adopted archive ended (before the run is recorded).
    assert (
        names.index("run.adopted")
        < names.index("run.container_started")
        < names.index("run.succeeded")
    )
    assert started["run_id"] == ended["run_id"] == adopted["run_id"]
    assert ended["exit_code"] == 0
    app.reload()
    assert app.status == "running"
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0
    files = _target_files(engine, target)
    finals = [f for f in files if not f.endswith((".partial", ".sha256"))]
    assert all(f"{name}.sha256" in files for name in finals), files  # no incomplete final name
