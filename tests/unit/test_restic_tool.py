"""The restic tool (``python -m jobs.tools.restic``) against the real restic binary and local
repositories: the snapshot it makes and reports, retention that forgets only the job's own
snapshots, the check when due, stale locks, and failures that say why without a secret."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.protocol.restic import ResticRequest
from jobs.tools.restic.runner import Restic
from jobs.tools.restic.steps import own_pids
from tests.control import result_of

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
"""The project's root: ``python -m jobs.tools.restic`` run from here is this tree's tool."""
PASSWORD = "pw-Zq8-made-up"  # noqa: S105 - a made-up one
ENV_SECRET = "key-Vv3-made-up"  # noqa: S105 - made up too
"""An ``env`` value: never shown either."""
DAEMON = "crontainer"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty repository made once (``restic init`` calibrates its key for seconds);
    each test copies it."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    restic(repo, "init")
    return repo


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    """An empty repository of the test's own."""
    return Path(shutil.copytree(template, tmp_path / "repo"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """What the job backs up: a 256 KiB file of random bytes and two small ones."""
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "random.bin").write_bytes(os.urandom(256 * 1024))
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    return root


def restic(repo: Path, *args: str, password: str = PASSWORD) -> str:
    """Run restic on ``repo`` as the test's setup or witness; its stdout."""
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": password}
    done = subprocess.run(
        ["restic", "--no-cache", *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def snapshots(repo: Path) -> list[dict[str, Any]]:
    found = json.loads(restic(repo, "snapshots", "--json"))
    assert isinstance(found, list)
    return found


def request(repo: Path | str, paths: list[Path], **fields: Any) -> dict[str, Any]:
    """The request of job ``db``, its secrets completed as the daemon does."""
    made = ResticRequest(
        "db",
        DAEMON,
        str(repo),
        paths=tuple(str(p) for p in paths),
        password=PASSWORD,
        env={"SOME_TOKEN": ENV_SECRET},
    )
    return {**json.loads(made.to_json()), **fields}


def tool(
    tmp_path: Path, value: dict[str, Any] | str, *prefix: str
) -> subprocess.CompletedProcess[str]:
    """The tool as the ops container runs it, the request on stdin (after ``prefix``, a
    command it runs under); its temporary files (restic's cache) in ``tmp_path``."""
    line = value if isinstance(value, str) else json.dumps(value)
    ran = subprocess.run(
        [*prefix, sys.executable, "-m", "jobs.tools.restic"],
        input=line + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=120,
        check=False,
    )
    for secret in (PASSWORD, ENV_SECRET):
        assert secret not in ran.stdout + ran.stderr
    return ran


def last_line(ran: subprocess.CompletedProcess[str]) -> str:
    """The tool's last diagnostic: what the daemon shows as the run's error."""
    return ran.stderr.splitlines()[-1]


def old_snapshot(repo: Path, data: Path, days: int, *, job: str = "db", host: str = DAEMON) -> str:
    """A snapshot ``days`` ago (restic's ``--time``) of ``job`` on ``host``; its short id."""
    at = (datetime.now(UTC) - timedelta(days=days)).astimezone()
    out = restic(
        repo, "backup", "--json", "--host", host, "--time", at.strftime("%Y-%m-%d %H:%M:%S"),
        "--tag", f"crontainer-job={job}", "--tag", f"crontainer-daemon={DAEMON}", str(data),
    )  # fmt: skip
    summary = json.loads(out.splitlines()[-1])
    return str(summary["snapshot_id"])


# --- backups ----------------------------------------------------------------------------


def test_a_first_backup_makes_a_tagged_snapshot_and_a_second_adds_almost_nothing(
    tmp_path: Path, data: Path
) -> None:
    """``init = true`` creates the missing repository; the snapshot carries the daemon as
    host and the job's tags; the next run finds every file unmodified and adds only its
    own metadata."""
    repo = tmp_path / "new-repo"
    first = tool(tmp_path, request(repo, [data], init=True))
    assert first.returncode == 0, first.stderr
    made = result_of(first.stderr)
    assert made["created_repository"] is True
    assert made["repository"] == str(repo)
    assert (made["files_new"], made["files_processed"]) == (3, 3)
    assert made["bytes_added"] > 256 * 1024
    assert made["forgotten"] == []
    assert made["checked"] is False
    (snapshot,) = snapshots(repo)
    assert snapshot["short_id"] == made["snapshot_id"]
    assert snapshot["hostname"] == DAEMON
    assert sorted(snapshot["tags"]) == [f"crontainer-daemon={DAEMON}", "crontainer-job=db"]
    assert snapshot["paths"] == [str(data)]

    second = result_of(tool(tmp_path, request(repo, [data], init=True)).stderr)
    assert second["created_repository"] is False
    assert (second["files_new"], second["files_changed"], second["files_unmodified"]) == (0, 0, 3)
    assert second["bytes_added"] < 4096
    assert len(snapshots(repo)) == 2


def counting_restic(tmp_path: Path) -> tuple[str, Callable[[], list[str]]]:
    """A PATH whose ``restic`` notes each start and runs the real one; the commands it
    was started for so far."""
    shim = tmp_path / "bin"
    shim.mkdir()
    started = tmp_path / "started"
    started.touch()
    (shim / "restic").write_text(
        f'#!/bin/sh\necho "$*" >> {started}\nexec {shutil.which("restic")} "$@"\n'
    )
    (shim / "restic").chmod(0o755)
    return f"{shim}:{os.environ['PATH']}", lambda: [
        line.split()[0] for line in started.read_text().splitlines()
    ]


def test_a_run_with_nothing_in_its_way_starts_restic_only_for_its_steps(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """Each restic started on a repository derives its key first (``restic init`` tunes that
    to about half a second): the backup opens the repository itself, so a run on a sound
    repository without stale locks starts restic for the backup and the forget only — no
    opening and no listing of locks before them (docs/performance.md)."""
    path, started = counting_restic(tmp_path)
    ran = tool(tmp_path, request(repo, [data], keep={"last": 1}), "env", f"PATH={path}")
    assert ran.returncode == 0, ran.stderr
    assert started() == ["backup", "forget"]
    assert len(snapshots(repo)) == 1


def test_a_missing_repository_without_init_fails_saying_so(tmp_path: Path, data: Path) -> None:
    repo = tmp_path / "nowhere"
    ran = tool(tmp_path, request(repo, [data]))
    assert ran.returncode == 1
    assert last_line(ran) == (
        f"restic: repository {repo} does not exist (init = false): unable to open config file: "
        f"stat {repo}/config: no such file or directory"
    )  # restic's own words follow
    assert "@crontainer" not in ran.stderr
    assert not repo.exists()


def test_a_wrong_password_fails_saying_so_and_shows_no_secret(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """The password the tool was given is not the repository's: the run fails naming the
    repository; neither that password nor an env value appears (``tool`` checks)."""
    ran = tool(tmp_path, request(repo, [data], password=PASSWORD + "-wrong"))
    assert ran.returncode == 1
    assert ran.stderr == f"restic: wrong password for repository {repo}\n"
    assert PASSWORD + "-wrong" not in ran.stderr


def test_an_unreachable_repository_fails_with_restic_s_reason_its_password_redacted(
    tmp_path: Path, data: Path
) -> None:
    """A REST server that does not answer: restic's own reason, the URL's password never
    shown — even with ``init = true``, nothing is created."""
    url = f"rest:http://backup:{PASSWORD}@127.0.0.1:9/app"
    ran = tool(tmp_path, request(url, [data], init=True))
    assert ran.returncode == 1
    last = last_line(ran)
    assert last.startswith(
        "restic: cannot open repository rest:http://backup:***@127.0.0.1:9/app: "
    )
    assert "connection refused" in last


def test_unreadable_files_fail_the_run_counting_them_and_name_no_secret(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """restic's exit 3 (the snapshot made without some files) is a failure that counts
    them; restic's own error line names the file — a name holding a secret is redacted."""
    for name in (f"{ENV_SECRET}.txt", "other.txt"):
        (data / name).write_text("unreadable\n")
        (data / name).chmod(0)
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    ran = tool(tmp_path, request(repo, [data]), *(prefix if os.geteuid() == 0 else []))
    assert ran.returncode == 1
    (snapshot,) = snapshots(repo)
    assert last_line(ran) == (
        f"restic: 2 file(s) could not be read: snapshot {snapshot['short_id']} lacks them"
    )
    assert f"restic: cannot read {data}/***.txt (archival): open: Permission denied" in (
        ran.stderr.splitlines()
    )


def test_a_path_that_does_not_exist_fails_before_restic_runs(tmp_path: Path, data: Path) -> None:
    gone = tmp_path / "gone"
    ran = tool(tmp_path, request(tmp_path / "nowhere", [data, gone], init=True))
    assert ran.returncode == 1
    assert ran.stderr == f"restic: nothing to back up at {gone}\n"
    assert not (tmp_path / "nowhere").exists()


# --- retention and check ----------------------------------------------------------------


def test_retention_forgets_only_this_job_s_snapshots_beyond_the_rules(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """keep_daily = 2 over three earlier days: today's new snapshot and yesterday's stay,
    the two older ones go — and another job's snapshots, or this job's name under another
    host, are not this job's to forget. A check never made is due (monthly): it runs."""
    mine = [old_snapshot(repo, data, days) for days in (3, 2, 1)]
    others = [old_snapshot(repo, data, 3, job="web"), old_snapshot(repo, data, 3, host="elsewhere")]
    ran = tool(tmp_path, request(repo, [data], keep={"daily": 2}, check="monthly"))
    assert ran.returncode == 0, ran.stderr
    result = result_of(ran.stderr)
    assert sorted(result["forgotten"]) == sorted(mine[:2])
    assert result["checked"] is True
    left = {s["short_id"] for s in snapshots(repo)}
    assert left == {mine[2], result["snapshot_id"], *others}


def test_a_check_not_due_does_not_run_and_one_that_fails_fails_the_run(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """A read-data subset restic refuses: with ``weekly`` and a check a day ago restic
    check never runs (the run succeeds); with ``always`` it runs, and the run fails naming
    the snapshot it made."""
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    bad = {"check_read_data": "not-a-subset"}
    skipped = tool(tmp_path, request(repo, [data], check="weekly", last_check=day_ago, **bad))
    assert skipped.returncode == 0, skipped.stderr
    assert result_of(skipped.stderr)["checked"] is False

    failed = tool(tmp_path, request(repo, [data], check="always", **bad))
    assert failed.returncode == 1
    newest = max(snapshots(repo), key=lambda s: str(s["time"]))
    assert last_line(failed).startswith(
        f"restic: snapshot {newest['short_id']} made, then check failed: "
    )


# --- locks ------------------------------------------------------------------------------


def killed_backup(repo: Path, *prefix: str) -> str:
    """A ``restic backup`` (run by ``prefix``, which execs it) killed with SIGKILL while it
    holds its lock — it waits for its stdin — and reaped (a zombie would still be a live
    process to restic): the lock it leaves behind. restic writes the lock under a
    temporary name (``<id>-tmp-…``), then renames it: the kill waits for the lock's own
    name (an id), else it may leave only the temporary file, which is no lock."""
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD}
    argv = [*prefix, "restic", "--no-cache", "backup", "--stdin", "--host", "other"]
    locks = repo / "locks"

    def held() -> list[str]:
        return [p.name for p in locks.iterdir() if re.fullmatch("[0-9a-f]{64}", p.name)]

    with subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL) as p:
        deadline = time.monotonic() + 30
        while not held() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
    (lock,) = held()
    return lock


def test_a_lock_left_on_this_host_by_a_killed_restic_is_removed_by_the_next_run(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """restic 0.14 deems a lock stale when it was made on this host (its hostname) by a
    process that no longer exists: the next run's ``restic unlock`` removes it, and its
    forget (an exclusive lock) goes through."""
    lock = killed_backup(repo)
    with tempfile.TemporaryDirectory() as cache:
        restic = Restic(ResticRequest.parse(request(repo, [data])), cache)
        (pid,) = own_pids(restic, {lock})  # made under this host name: one of ours
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the killed restic's
    ran = tool(tmp_path, request(repo, [data], keep={"last": 1}))
    assert ran.returncode == 0, ran.stderr
    assert "restic: removed 1 stale lock(s); 0 still held" in ran.stderr.splitlines()
    assert lock not in {p.name for p in (repo / "locks").iterdir()}


def test_a_recent_lock_from_another_host_is_kept_and_the_forget_fails_naming_it(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """A lock made on another hostname is stale to restic 0.14 only once it is 30 minutes
    old — its process cannot be asked there: the backup (a shared lock) is made, the
    forget (exclusive) fails, naming the lock's host."""
    unshare = ["unshare", "--uts", "sh", "-c", 'hostname elsewhere && exec "$@"', "sh"]
    if subprocess.run([*unshare, "true"], capture_output=True, check=False).returncode:
        pytest.skip("cannot make a UTS namespace here (needs root)")
    lock = killed_backup(repo, *unshare)
    ran = tool(tmp_path, request(repo, [data], keep={"last": 1}))
    assert ran.returncode == 1
    assert "restic: removed 0 stale lock(s); 1 still held" in ran.stderr.splitlines()
    (made,) = snapshots(repo)
    assert last_line(ran).startswith(f"restic: snapshot {made['short_id']} made, then forget ")
    assert "already locked" in last_line(ran)
    assert "on elsewhere" in last_line(ran)
    assert lock in {p.name for p in (repo / "locks").iterdir()}


def test_a_run_stopped_with_sigterm_lets_restic_remove_its_lock(tmp_path: Path, repo: Path) -> None:
    """The daemon stops a run's container with SIGTERM: the tool hands it to restic as
    SIGINT, on which restic 0.14 removes its lock (on SIGTERM it would leave it, and a
    lock from another container is stale only after 30 minutes); the run fails saying
    it was interrupted, at once (no restic started to learn why)."""
    path, started = counting_restic(tmp_path)
    big = tmp_path / "big"
    big.mkdir()
    with (big / "zeros").open("wb") as zeros:
        zeros.truncate(3 << 30)  # sparse: seconds for restic to read
    line = json.dumps(request(repo, [big])) + "\n"
    with subprocess.Popen(
        [sys.executable, "-m", "jobs.tools.restic"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path), "PATH": path},
    ) as ran:
        assert ran.stdin is not None
        ran.stdin.write(line)
        ran.stdin.close()
        deadline = time.monotonic() + 30
        while not any((repo / "locks").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # restic 0.14 waits 200 ms after making its lock before it owns it
        ran.send_signal(signal.SIGTERM)
        stderr = ran.stderr.read() if ran.stderr else ""
    assert ran.returncode == 1
    assert "restic: signal interrupt received, cleaning up" in stderr.splitlines()
    assert stderr.splitlines()[-1].startswith("restic: backup failed: ")
    assert started() == ["backup"]
    assert list((repo / "locks").iterdir()) == []
    assert snapshots(repo) == []


# --- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"daemon": 3}, "request field 'daemon': expected a string, got an integer"),
        ({"password": None}, "request field 'password': expected a string, got nothing"),
        ({"last_check": "yesterday", "check": "weekly"}, "request field 'last_check'"),
    ],
)
def test_a_bad_request_exits_2_naming_the_field(
    tmp_path: Path, data: Path, change: dict[str, Any], said: str
) -> None:
    value = {k: v for k, v in request(tmp_path / "r", [data], **change).items() if v is not None}
    ran = tool(tmp_path, value)
    assert ran.returncode == 2
    assert ran.stderr.startswith(f"restic: {said}")
    assert len(ran.stderr.splitlines()) == 1


def test_a_first_line_that_is_not_json_exits_2(tmp_path: Path) -> None:
    ran = tool(tmp_path, "restic please")
    assert (ran.returncode, ran.stderr) == (
        2,
        "restic: the first line of stdin is not the JSON request\n",
    )
