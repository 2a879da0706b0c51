"""Job kind rotate on the real engine: an app writes numbered lines and reopens its log on
SIGHUP while rotations run; every number survives exactly once (rename), or at most once
(copytruncate, as documented); pruning, no-op runs and a missing app."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import docker
import pytest

from .conftest import (
    BUSYBOX,
    PROJECT_IMAGE,
    ROOT,
    TEST_LABELS,
    Daemon,
    event,
    output_of,
    toml_value,
    unique,
)

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
LABELS = TEST_LABELS
OPS = f'ops_image = "{PROJECT_IMAGE}"'
LOG_DIR = "/var/log/app"
WRITER = f"""
i=0
exec 3>>{LOG_DIR}/app.log
trap 'exec 3>&-; exec 3>>{LOG_DIR}/app.log' HUP
trap 'exit 0' TERM
while true; do i=$((i+1)); echo "$i" >&3; usleep 500; done
"""
"""The app: numbered lines, its log reopened on SIGHUP (as nginx or any daemon does)."""

READ_ALL = f"""
cd {LOG_DIR}
for f in app.log*; do
  case "$f" in
    *.zst) zstd -q -d -c "$f" ;;
    *.gz) gzip -d -c "$f" ;;
    *) cat "$f" ;;
  esac
done
"""


def rotate_job(name: str, **keys: object) -> str:
    table: dict[str, object] = {"kind": "rotate", "schedule": "@yearly"}
    table.update(keys)
    return f"[jobs.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())


def trigger(daemon: Daemon, job: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "trigger", job, "--state-dir", str(daemon.state_dir)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def ended(daemon: Daemon, job: str, count: int, timeout: float = 60) -> dict[str, Any]:
    found = daemon.log.wait_for(
        lambda e: e.get("event") in ("run.succeeded", "run.failed") and e.get("job") == job,
        timeout=timeout,
        count=count,
    )
    return found[count - 1]


def files_in(engine: docker.DockerClient, volume_holder: str) -> list[str]:
    out = output_of(engine, PROJECT_IMAGE, ["ls", "-1", LOG_DIR], volumes_from=[volume_holder])
    return sorted(out.split())


def all_numbers(engine: docker.DockerClient, volume_holder: str) -> list[int]:
    """Every line of the live and rotated files, decompressed with zstd -d / gzip -d."""
    out = output_of(engine, PROJECT_IMAGE, ["sh", "-c", READ_ALL], volumes_from=[volume_holder])
    return [int(line) for line in out.split()]


def live_file_reaches(app: Any, size: int, timeout: float = 30) -> None:
    """Until the app's live log file holds at least ``size`` bytes."""
    deadline = time.monotonic() + timeout
    while True:
        found = app.exec_run(["sh", "-c", f"stat -c %s {LOG_DIR}/app.log"]).output.strip()
        if found.isdigit() and int(found) >= size:
            return
        assert time.monotonic() < deadline, f"the live log stayed under {size} bytes"
        time.sleep(0.05)


def rotate_while_writing(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any], **keys: object
) -> tuple[list[int], list[str], Daemon]:
    """Five rotations under a writing app; then the app stops; returns every number read
    back, the files, and the daemon."""
    app = make(BUSYBOX, ["sh", "-c", WRITER], name=unique("t-app"), volumes=[LOG_DIR])
    daemon = start_daemon(
        rotate_job(
            "rot",
            volumes_from=app.name,
            paths=[f"{LOG_DIR}/*.log"],
            max_size="1KiB",
            signal={"containers": [app.name], "signal": "HUP"},
            **keys,
        ),
        daemon=OPS,
    )
    daemon.log.wait_for(event("daemon.started"), timeout=30)
    for count in range(1, 6):
        live_file_reaches(app, 1024)  # over max_size: this rotation has something to do
        trigger(daemon, "rot")
        done = ended(daemon, "rot", count)
        assert done["event"] == "run.succeeded", done
        assert len(done["rotated"]) == 1
    app.kill(signal="SIGTERM")
    app.wait(timeout=30)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    return all_numbers(engine, app.name), files_in(engine, app.name), daemon


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_rename_rotation_keeps_every_line_exactly_once(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any], compression: str
) -> None:
    numbers, files, daemon = rotate_while_writing(
        start_daemon, engine, make, compression=compression
    )
    assert numbers, "the app wrote nothing"
    assert Counter(numbers) == Counter(range(1, max(numbers) + 1))  # every number, once
    rotated = [f for f in files if f != "app.log"]
    assert len(rotated) == 5
    if compression == "zstd":
        assert all(f.endswith(".zst") for f in rotated), files
    signalled = daemon.log.matching(event("run.signal_sent", signal="SIGHUP"))
    assert len(signalled) == 5
    # The signal comes after the rotation and before the compression container.
    names = [e.get("event") for e in daemon.log.events]
    first_rotation = names.index("run.file_rotated")
    assert first_rotation < names.index("run.signal_sent")


def test_copytruncate_loses_at_most_what_was_written_during_the_copy(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any]
) -> None:
    """The documented behaviour: no line twice, lines in order, a few may be lost (those
    written between the copy and the truncation); the app needs no signal."""
    numbers, files, _ = rotate_while_writing(
        start_daemon, engine, make, mode="copytruncate", compression="gzip"
    )
    counts = Counter(numbers)
    assert max(counts.values()) == 1, "a line appears twice"
    assert sorted(numbers) == sorted(counts)
    lost = max(numbers) - len(numbers)
    assert 0 <= lost < max(numbers) // 2, lost
    assert len([f for f in files if f.endswith(".gz")]) == 5


def test_thresholds_pruning_and_a_missing_app(
    start_daemon: Start, engine: docker.DockerClient, make: Callable[..., Any]
) -> None:
    """Under max_size: nothing rotates and nobody is signalled. Over it, with the app to
    signal missing: the rotation happens, the run fails saying the signal failed, the file
    is compressed anyway; keep_last and keep_age prune exactly the expected files."""
    logs = make(BUSYBOX, ["sleep", "600"], name=unique("t-logs"), volumes=[LOG_DIR])
    old = ["20260101T000000Z", "20261101T000000Z", "20261120T000000Z"]
    seed = f"printf 'small\\n' > {LOG_DIR}/app.log; " + "; ".join(
        f"printf '{stamp}\\n' | gzip -c > {LOG_DIR}/app.log.{stamp}.gz" for stamp in old
    )
    seed += f"; printf 'not ours\\n' > {LOG_DIR}/app.log.old"
    code, out = logs.exec_run(["sh", "-c", seed])
    assert code == 0, out
    missing = unique("t-nobody")
    daemon = start_daemon(
        rotate_job(
            "rot",
            volumes_from=logs.name,
            paths=[f"{LOG_DIR}/*.log"],
            max_size="1KiB",
            compression="gzip",
            keep_last=3,
            keep_age="100d",
            signal={"containers": [missing]},
            run_on_start=True,
        ),
        daemon=OPS,
    )
    quiet = ended(daemon, "rot", 1)
    assert quiet["event"] == "run.succeeded", quiet
    assert quiet["rotated"] == []
    assert not daemon.log.matching(event("run.signal_sent"))
    # keep_age: the January file is older than 100 days; the other two stay
    assert files_in(engine, logs.name) == [
        "app.log",
        "app.log.20261101T000000Z.gz",
        "app.log.20261120T000000Z.gz",
        "app.log.old",
    ]
    code, out = logs.exec_run(["sh", "-c", f"seq 1 500 >> {LOG_DIR}/app.log"])
    assert code == 0, out
    trigger(daemon, "rot")
    failed = ended(daemon, "rot", 2)
    assert failed["event"] == "run.failed"
    assert failed["error"].startswith("rotated 1 file(s), but telling the app failed: ")
    assert missing in failed["error"]
    files = files_in(engine, logs.name)
    new = [f for f in files if f.startswith("app.log.2") and f not in
           ("app.log.20261101T000000Z.gz", "app.log.20261120T000000Z.gz")]  # fmt: skip
    assert len(new) == 1, files
    assert new[0].endswith(".gz"), files  # compressed despite the failure
    assert len([f for f in files if f.startswith("app.log.2")]) == 3
    assert "app.log.old" in files  # not a name of ours
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
