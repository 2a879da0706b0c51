"""The ResticBackup step against the fake engine: the secrets reach the tool on its stdin
only, the last check comes from the job's tool state and a new one is stored, and a
missing secret, a bad result or a failed tool fail the run saying why."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.backup import BackupJob
from jobs.base import PlanContext
from jobs.plan import ResticBackup
from scheduler.engine import ExitStatus
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.settings import load_config
from scheduler.steps import StepExecutor
from tests.control import control

from .configs import load_job
from .fakes import FakeClock, FakeEngine
from .test_logship_kind import Store

if TYPE_CHECKING:
    from collections.abc import MutableMapping

JOB = (
    '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\n'
    'repository = "rest:http://user:urlpass@backup-host:8000/app"\n'
    "password = { file = %r }\n"
    'env = { AWS_SECRET_ACCESS_KEY = { env = "S3_SECRET" }, AWS_REGION = "eu-west-1" }\n'
    'check = "weekly"\n'
)
RESULT: dict[str, Any] = {
    "repository": "rest:http://user:***@backup-host:8000/app",
    "snapshot_id": "42dd6b80",
    "files_new": 3,
    "files_changed": 1,
    "files_unmodified": 10,
    "bytes_added": 2048,
    "bytes_processed": 4096,
    "files_processed": 14,
    "restic_duration_s": 1.5,
    "forgotten": ["0123abcd"],
    "checked": False,
    "created_repository": False,
}
LAST_CHECK = "2026-01-01T00:00:00+00:00"
PASSWORD = "pw-s3cret"  # noqa: S105 - a made-up one


def run_backup(
    tmp_path: Path,
    engine: FakeEngine,
    store: Store | None,
    password: str | None = PASSWORD,
    command: str = "backup",
) -> tuple[Outcome, list[MutableMapping[str, Any]]]:
    secret = tmp_path / "restic-password"
    if password is not None:
        secret.write_text(password + "\n")
    job = load_job(tmp_path, JOB % str(secret), "b", BackupJob)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, ResticBackup)
    step = replace(step, request=replace(step.request, command=command))
    executor = StepExecutor(engine, config.daemon, engine.clock, store)
    with structlog.testing.capture_logs() as logs:
        outcome = executor.run(Attempt("r1", "b", job, Cancellation()), step)
    return outcome, logs


@pytest.fixture(autouse=True)
def s3_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET", "s3-s3cret")


def test_the_request_on_stdin_holds_the_secrets_and_the_last_check(tmp_path: Path) -> None:
    """Secrets, the daemon's name and the last check go on stdin; the container's env,
    command and labels hold no secret; the run's details are the result's fields."""
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": RESULT}))]
    store = Store({"restic:check": {"at": LAST_CHECK}}, job="b")
    outcome, logs = run_backup(tmp_path, engine, store)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    assert outcome.details == RESULT
    lines = bytes(engine.stdin.data).split(b"\n")
    assert lines[1:] == [b""]  # one line, then EOF
    assert engine.stdin.closed
    request = json.loads(lines[0])
    assert request["password"] == PASSWORD
    assert request["env"] == {"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "s3-s3cret"}
    assert request["last_check"] == LAST_CHECK
    assert request["daemon"] == "crontainer"
    assert request["job"] == "b"
    assert request["check"] == "weekly"
    (spec,) = engine.created_specs
    assert spec.stdin
    shown = json.dumps(
        [dict(spec.env), spec.command, dict(spec.labels), engine.created_labels, spec.env_files]
    )
    shown += json.dumps([dict(e) for e in logs], default=str)
    for secret in (PASSWORD, "s3-s3cret", "urlpass"):
        assert secret not in shown
    assert store.writes == []  # no check this run: nothing stored


def test_a_check_stores_its_time(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": {**RESULT, "checked": True}}))]
    store = Store({}, job="b")
    outcome, _ = run_backup(tmp_path, engine, store)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    assert "last_check" not in json.loads(bytes(engine.stdin.data))  # never checked
    assert store.saved == {"restic:check": {"at": engine.clock.now().isoformat()}}
    assert outcome.details["checked"] is True


def test_without_a_state_database_the_run_still_backs_up(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": {**RESULT, "checked": True}}))]
    outcome, _ = run_backup(tmp_path, engine, None)
    assert outcome.status is Status.SUCCEEDED, outcome.error


def test_a_missing_password_fails_the_run_naming_the_key(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    outcome, _ = run_backup(tmp_path, engine, Store({}, job="b"), password=None)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None
    assert outcome.error.startswith("password: cannot read ")
    assert "create" not in engine.names()


def test_a_missing_env_secret_fails_the_run_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3_SECRET")
    engine = FakeEngine(FakeClock())
    outcome, _ = run_backup(tmp_path, engine, Store({}, job="b"))
    assert outcome.status is Status.FAILED
    assert outcome.error == ("env AWS_SECRET_ACCESS_KEY: environment variable S3_SECRET is not set")
    assert "create" not in engine.names()


def test_a_bad_result_fails_the_run_naming_the_field(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": {**RESULT, "files_new": "3"}}))]
    store = Store({}, job="b")
    outcome, _ = run_backup(tmp_path, engine, store)
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "the restic tool's result cannot be used: request field 'files_new': expected an "
        "integer, got a string"
    )
    assert store.writes == []


def test_a_failed_tool_gives_its_last_diagnostic_to_the_run(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(1))
    engine.output_chunks = [
        ("stderr", b"restic: opening the repository\n"),
        ("stderr", b"restic: wrong password for repository rest:http://user:***@backup-host\n"),
    ]
    outcome, _ = run_backup(tmp_path, engine, Store({}, job="b"))
    assert outcome.status is Status.FAILED
    assert outcome.error == "wrong password for repository rest:http://user:***@backup-host"


SFTP_JOB = (
    '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\n'
    'repository = "sftp:backup@backup-host:/srv/restic/app"\npassword = "pw"\n'
    "ssh = { key = { file = %r }, known_hosts = { file = %r } }\n"
)
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAmadeup\n-----END OPENSSH PRIVATE KEY-----"


def test_the_ssh_key_and_known_hosts_are_read_at_each_run_onto_stdin(tmp_path: Path) -> None:
    """Both files read when the run starts (known_hosts may have changed); on stdin only."""
    key, known = tmp_path / "key", tmp_path / "known_hosts"
    key.write_text(KEY + "\n")
    known.write_text("backup-host ssh-ed25519 AAAA-old\n")
    job = load_job(tmp_path, SFTP_JOB % (str(key), str(known)), "b", BackupJob)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, ResticBackup)
    known.write_text("backup-host ssh-ed25519 AAAA-new\n")
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": RESULT}))]
    executor = StepExecutor(engine, config.daemon, engine.clock, None)
    with structlog.testing.capture_logs() as logs:
        outcome = executor.run(Attempt("r1", "b", job, Cancellation()), step)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    request = json.loads(bytes(engine.stdin.data))
    assert (request["ssh_key"], request["known_hosts"]) == (KEY, "backup-host ssh-ed25519 AAAA-new")
    (spec,) = engine.created_specs
    shown = json.dumps([dict(spec.env), spec.command, dict(spec.labels), engine.created_labels])
    shown += json.dumps([dict(e) for e in logs], default=str)
    assert "madeup" not in shown


def test_a_missing_known_hosts_file_fails_the_run_naming_the_key(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(KEY)
    job = load_job(tmp_path, SFTP_JOB % (str(key), str(tmp_path / "nope")), "b", BackupJob)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, ResticBackup)
    engine = FakeEngine(FakeClock())
    outcome = StepExecutor(engine, config.daemon, engine.clock, None).run(
        Attempt("r1", "b", job, Cancellation()), step
    )
    assert outcome.status is Status.FAILED
    assert (
        outcome.error == f"ssh.known_hosts: cannot read {tmp_path}/nope: No such file or directory"
    )
    assert "create" not in engine.names()


def test_a_backup_runs_under_the_host_name_of_its_job_and_daemon_a_listing_under_its_own(
    tmp_path: Path,
) -> None:
    """restic sees a lock of its own host name whose process is gone as stale: every backup
    run of job b of daemon "crontainer" has one host name, any other job or daemon
    another; a listing (which may run beside a backup) keeps the engine's."""
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stderr", control({"result": RESULT}))]
    run_backup(tmp_path, engine, None)
    run_backup(tmp_path, engine, None)
    engine.output_chunks = [("stderr", control({"result": {"snapshots": []}}))]
    run_backup(tmp_path, engine, None, command="snapshots")
    digest = hashlib.sha256(b"crontainer\x00b").hexdigest()[:16]
    hosts = [spec.hostname for spec in engine.created_specs]
    assert hosts == [f"restic-{digest}", f"restic-{digest}", None]
    (step,) = load_job(tmp_path, JOB % "/x", "b", BackupJob).plan(PlanContext("b", "o")).steps
    assert isinstance(step, ResticBackup)
    others = {replace(step.request, daemon=d, job=j).lock_host() for d, j in
              [("crontainer", "b"), ("crontainer", "c"), ("other", "b"), ("crontainerb", ""),
               ("crontainer\x00b", "")]}  # fmt: skip
    assert len(others) == 5
