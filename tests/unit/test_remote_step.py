"""A backup with ``copy_to``: its plan (the copy after the app was started again, in an ops
container holding no secret), and the RemoteArchives step against the fake engine — the
remotes' secrets on the tool's stdin only, the run's details the archive's plus the copies,
a failed copy failing the run naming the remote while keeping the archive's details."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.backup import BackupJob
from jobs.base import EnvSecret, PlanContext
from jobs.plan import Mount, RemoteArchives, RunContainer, SecretRef, WithStopped
from jobs.protocol.remote import PROGRAM as REMOTE_TOOL
from jobs.protocol.remote import Destination
from scheduler.engine import ExitStatus
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.settings import load_config
from scheduler.settings.remotes import S3Remote, WebdavRemote
from scheduler.steps import StepExecutor
from scheduler.steps.remote import destination
from tests.control import control

from .fakes import FakeClock, FakeEngine, FakeOutput

if TYPE_CHECKING:
    from pathlib import Path

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-Xy7-made-up\n-----END OPENSSH PRIVATE KEY-----"
DAV_PASSWORD = "dav-Qq4-made-up"  # noqa: S105 - a made-up one
CONFIG = (
    '[daemon.remotes.box]\ntype = "sftp"\nhost = "sftp"\nuser = "u"\npath = "/srv/b"\n'
    'key = { file = "%s" }\nknown_hosts = "sftp ssh-ed25519 AAAAC3"\n'
    '[daemon.remotes.dav]\ntype = "webdav"\nurl = "http://dav:8080"\nuser = "w"\n'
    'password = { env = "DAV_PASSWORD" }\n'
    '[jobs.b]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
    'volumes_from = ["db"]\nstop = ["app"]\ncopy_to = ["box", "dav"]\nnetwork = "backup-net"\n'
    "keep_last = 3\n"
)
ARCHIVED: dict[str, Any] = {
    "archive": "b-20260101T030000Z.tar.zst",
    "bytes": 10,
    "files": 1,
    "data_bytes": 100,
    "sha256": "0" * 64,
    "archive_s": 0.1,
    "deleted": [],
    "sources": ["/data"],
    "throughput_mib_s": 1.0,
}
COPIED = {"remote": "box", "uploaded": ["b-20260101T030000Z.tar.zst"], "bytes": 10}


@pytest.fixture(autouse=True)
def dav_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAV_PASSWORD", DAV_PASSWORD)


class TwoTools(FakeEngine):
    """The archive's container says ``outputs[0]``, the remote tool's ``outputs[1]``."""

    outputs: list[list[tuple[str, bytes]]]

    def output(self, container_id: str) -> FakeOutput:
        self._call("output", container_id)
        return FakeOutput(list(self.outputs[self.created() - 1]))


STREAMED = CONFIG.replace(
    'target = "backups"\n', 'encrypt = { passphrase = { env = "AGE_PASS" } }\n'
)
"""The same job without a target: its archives streamed to box, then copied to dav."""


def _job(tmp_path: Path, text: str = CONFIG) -> tuple[BackupJob, Any]:
    key = tmp_path / "key"
    key.write_text(KEY + "\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + text % key)
    config = load_config(path, {})
    job = config.jobs["b"].job
    assert isinstance(job, BackupJob)
    return job, config


def test_the_copy_runs_after_the_app_was_started_again_in_a_container_without_secrets(
    tmp_path: Path,
) -> None:
    job, _ = _job(tmp_path)
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, RemoteArchives)
    assert isinstance(step.body, WithStopped)
    assert step.body.containers == ("app",)
    (archive,) = step.body.body
    assert isinstance(archive, RunContainer)
    assert archive.spec.network == "none"
    spec = step.spec
    assert spec.command == REMOTE_TOOL
    assert spec.mounts == (Mount("backups", "/backup", read_only=True),)
    assert spec.volumes_from == ()
    assert (spec.network, spec.stdin) == ("backup-net", True)
    assert (step.request.command, step.request.remotes) == ("copy", ("box", "dav"))
    assert step.request.keep == {"last": 3}
    assert step.request.destinations == ()  # the daemon adds them, secrets and all, at run time


def _run(
    tmp_path: Path, engine: TwoTools, text: str = CONFIG, made: dict[str, Any] = ARCHIVED
) -> tuple[Outcome, list[Any]]:
    job, config = _job(tmp_path, text)
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    engine.outputs = [[("stderr", control({"result": made}))], engine.output_chunks]
    executor = StepExecutor(engine, config.daemon, engine.clock)
    with structlog.testing.capture_logs() as logs:
        outcome = executor.run(Attempt("r1", "b", job, Cancellation()), step)
    return outcome, logs


def test_the_remotes_secrets_reach_the_tool_on_stdin_only(tmp_path: Path) -> None:
    engine = TwoTools(FakeClock())
    engine.output_chunks = [("stderr", control({"result": {"copies": [COPIED]}}))]
    outcome, logs = _run(tmp_path, engine)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    assert outcome.details == {**ARCHIVED, "copies": [{**COPIED, "deleted": []}]}
    request = json.loads(bytes(engine.stdin.data).split(b"\n")[0])
    box, dav = request["destinations"]
    assert (box["name"], box["type"], box["folder"], box["key"]) == ("box", "sftp", "/srv/b", KEY)
    assert box["options"] == {"host": "sftp", "port": "22", "user": "u"}
    assert box["known_hosts"] == "sftp ssh-ed25519 AAAAC3"
    assert dav["secrets"] == {"pass": DAV_PASSWORD}
    assert dav["options"] == {"url": "http://dav:8080", "vendor": "other", "user": "w"}
    archive_spec, copy_spec = engine.created_specs
    shown = json.dumps(
        [[dict(s.env), s.command, dict(s.labels), s.env_files] for s in (archive_spec, copy_spec)]
        + [engine.created_labels]
    )
    shown += json.dumps([dict(e) for e in logs], default=str)
    for secret in (DAV_PASSWORD, "key-Xy7-made-up"):
        assert secret not in shown


def test_without_a_target_the_archive_streams_to_the_first_remote_then_goes_to_the_others(
    tmp_path: Path,
) -> None:
    job, _ = _job(tmp_path, STREAMED)
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, RemoteArchives)
    assert (step.request.command, step.request.remotes) == ("copy", ("box", "dav"))
    assert step.request.from_first
    assert (step.spec.mounts, step.spec.volumes_from) == ((), ())
    assert isinstance(step.body, WithStopped)
    assert step.body.containers == ("app",)
    (stream,) = step.body.body
    assert isinstance(stream, RemoteArchives)
    assert stream.body is None
    assert isinstance(stream.passphrase, SecretRef)
    assert stream.passphrase.env == "AGE_PASS"
    assert (stream.spec.command, stream.spec.volumes_from) == (REMOTE_TOOL, ("db",))
    assert stream.spec.volumes_from_read_only
    assert (stream.spec.network, stream.spec.stdin) == ("backup-net", True)
    request = stream.request
    assert (request.command, request.remotes, request.keep) == ("stream", ("box",), {"last": 3})
    assert (request.mounts, request.sources, request.compression) == (True, (), "zstd")
    one, _ = _job(tmp_path, STREAMED.replace('["box", "dav"]', '["box"]'))
    (alone,) = one.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(alone, WithStopped)  # one remote: nothing to copy after the stream
    assert isinstance(alone.body[0], RemoteArchives)


def test_a_streamed_runs_details_have_the_archive_and_every_remotes_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGE_PASS", "age-Zz1-made-up")
    engine = TwoTools(FakeClock())
    to_dav = {"remote": "dav", "uploaded": COPIED["uploaded"], "bytes": 10}
    engine.output_chunks = [("stderr", control({"result": {"copies": [to_dav]}}))]
    streamed = {**ARCHIVED, "copies": [COPIED]}
    outcome, _ = _run(tmp_path, engine, STREAMED, streamed)
    assert outcome.status is Status.SUCCEEDED, outcome.error
    copies = outcome.details["copies"]
    assert isinstance(copies, list)
    assert [(c["remote"], c["uploaded"]) for c in copies] == [
        ("box", COPIED["uploaded"]),
        ("dav", COPIED["uploaded"]),
    ]
    assert outcome.details["archive"] == ARCHIVED["archive"]
    first, second = (json.loads(line) for line in bytes(engine.stdin.data).splitlines())
    assert (first["command"], first["passphrase"]) == ("stream", "age-Zz1-made-up")
    assert [d["name"] for d in first["destinations"]] == ["box"]
    assert (second["command"], second["from_first"]) == ("copy", True)
    assert [d["name"] for d in second["destinations"]] == ["box", "dav"]
    assert "passphrase" not in second or second["passphrase"] is None


def test_a_failed_copy_fails_the_run_naming_the_remote_and_keeps_the_archives_details(
    tmp_path: Path,
) -> None:
    engine = TwoTools(FakeClock())
    failed = {"remote": "dav", "error": "rclone lsjson: 401 Unauthorized"}
    said = b"remote: copy to remote 'dav' failed: rclone lsjson: 401 Unauthorized\n"
    engine.output_chunks = [
        ("stderr", control({"result": {"copies": [COPIED, failed]}})),
        ("stderr", said),
    ]
    engine.sequence = [ExitStatus(0), ExitStatus(1)]
    outcome, _ = _run(tmp_path, engine)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None
    assert "copy to remote 'dav' failed: rclone lsjson: 401 Unauthorized" in outcome.error
    assert outcome.details["archive"] == ARCHIVED["archive"]
    copies = outcome.details["copies"]
    assert isinstance(copies, list)
    assert [c["remote"] for c in copies] == ["box", "dav"]


def test_a_secret_that_cannot_be_read_fails_the_run_naming_the_remotes_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAV_PASSWORD")
    engine = TwoTools(FakeClock())
    outcome, _ = _run(tmp_path, engine)
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "daemon.remotes.dav.password: environment variable DAV_PASSWORD is not set"
    )
    assert outcome.details["archive"] == ARCHIVED["archive"]
    assert len(engine.created_specs) == 1  # the archive's container only


def test_each_remote_type_maps_onto_rclones_backend_options() -> None:
    s3 = S3Remote(
        type="s3", bucket="backups", path="host-1", endpoint="http://minio:9000",
        access_key_id="AKIA", secret_access_key=EnvSecret(env="DAV_PASSWORD"), provider="Minio",
    )  # fmt: skip
    assert destination("s3", s3) == Destination(
        "s3",
        "s3",
        "backups/host-1",
        {"provider": "Minio", "env_auth": "false", "endpoint": "http://minio:9000"},
        {"access_key_id": "AKIA", "secret_access_key": DAV_PASSWORD},
    )
    dav = WebdavRemote(type="webdav", url="https://cloud/dav", vendor="nextcloud")
    assert destination("d", dav) == Destination(
        "d", "webdav", "", {"url": "https://cloud/dav", "vendor": "nextcloud"}, {}
    )
