"""``crontainer backups JOB --from REMOTE`` and ``restore … --from REMOTE`` against the fake
engine: the remote tool's container (on the job's network, the remote's secrets on its stdin
only, no target mounted), the listing read back, the restore between the job's stops; an
unknown remote or a job into a repository refused before any container."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from jobs.plan import Mount
from jobs.protocol.remote import PROGRAM as REMOTE_TOOL
from scheduler.backups import BackupCommandError, list_archives, restore
from scheduler.settings import Config, load_config
from tests.control import control

from .test_backup_commands import ARCHIVES, engine_saying, moves

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "dav-Rt5-made-up"  # noqa: S105 - a made-up one
CONFIG = (
    '[daemon.remotes.dav]\ntype = "webdav"\nurl = "http://dav:8080"\nuser = "w"\n'
    f'password = "{PASSWORD}"\npath = "copies"\n'
    '[jobs.db]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
    'volumes_from = "app"\nvolumes = ["logs:/logs"]\nstop = ["app"]\ncopy_to = ["dav"]\n'
    'network = "backup-net"\n'
    '[jobs.sealed]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
    'volumes = ["logs:/logs"]\ncopy_to = ["dav"]\n'
    'encrypt = { recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"] }\n'
    '[jobs.secret]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
    'volumes = ["logs:/logs"]\ncopy_to = ["dav"]\nencrypt = { passphrase = { env = "TEST_AGE" } }\n'
    '[jobs.streamed]\nkind = "backup"\nschedule = "@daily"\nvolumes = ["logs:/logs"]\n'
    'copy_to = ["dav"]\n'
    '[jobs.r]\nkind = "backup"\nschedule = "@daily"\nrepository = "/r/x"\npassword = "p"\n'
    'volumes = ["r:/r"]\n'
)


def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    return load_config(path, {})


def test_backups_from_a_remote_lists_through_the_remote_tool(tmp_path: Path) -> None:
    engine = engine_saying(control({"result": {"remote": "dav", "archives": ARCHIVES}}))
    found = list_archives(engine, config(tmp_path), "db", "ops:1", engine.clock, remote="dav")
    assert found == ARCHIVES
    [spec] = engine.created_specs
    assert (spec.command, spec.network, spec.mounts, spec.volumes_from) == (
        REMOTE_TOOL,
        "backup-net",
        (),
        (),
    )
    request = json.loads(bytes(engine.stdin.data))
    assert (request["command"], request["job"], request["remotes"]) == ("list", "db", ["dav"])
    assert request["destinations"][0]["secrets"] == {"pass": PASSWORD}
    assert PASSWORD not in json.dumps([dict(spec.env), spec.command, engine.created_labels])


def test_a_streamed_jobs_archives_are_listed_and_restored_from_its_first_remote(
    tmp_path: Path,
) -> None:
    engine = engine_saying(control({"result": {"remote": "dav", "archives": ARCHIVES}}))
    assert list_archives(engine, config(tmp_path), "streamed", "ops:1", engine.clock) == ARCHIVES
    request = json.loads(bytes(engine.stdin.data))
    assert (request["command"], request["remotes"]) == ("list", ["dav"])
    result = {"archive": ARCHIVES[0]["archive"], "remote": "dav", "volumes": ["/logs"]}
    engine = engine_saying(control({"result": result}))
    done = restore(
        engine, config(tmp_path), "streamed", ops_image="ops:1", archive="latest", to=[],
        clock=engine.clock,
    )  # fmt: skip
    assert done == {**result, "stopped_and_started": []}
    request = json.loads(bytes(engine.stdin.data))
    assert (request["command"], request["remotes"]) == ("restore", ["dav"])


def test_restore_from_a_remote_runs_between_the_jobs_stops_into_its_sources(
    tmp_path: Path,
) -> None:
    result = {"archive": ARCHIVES[0]["archive"], "remote": "dav", "volumes": ["/logs"]}
    engine = engine_saying(control({"result": result}))
    done = restore(
        engine, config(tmp_path), "db", ops_image="ops:1", archive="latest", to=[],
        clock=engine.clock, remote="dav",
    )  # fmt: skip
    assert done == {**result, "stopped_and_started": ["app"]}
    # app: the restore's volumes_from resolved before anything stops, selected to be
    # stopped, then resolved again as the container is made; started again
    assert moves(engine) == [("select", "app")] * 3 + [("start", "app")]
    [spec] = engine.created_specs
    assert spec.mounts == (Mount("logs", "/logs"),)
    assert spec.volumes_from == ("app",)
    request = json.loads(bytes(engine.stdin.data))
    assert (request["command"], request["archive"]) == ("restore", "latest")


@pytest.mark.parametrize(
    ("job", "remote", "error"),
    [
        ("db", "s3", "--from 's3': no such remote in [daemon.remotes] of {path} (remotes: dav)"),
        ("r", "dav", "job 'r' backs up into a restic repository, not archives"),
    ],
)
def test_an_unknown_remote_or_a_repository_job_is_refused_before_any_container(
    tmp_path: Path, job: str, remote: str, error: str
) -> None:
    engine = engine_saying()
    loaded = config(tmp_path)
    with pytest.raises(BackupCommandError) as refused:
        list_archives(engine, loaded, job, "ops:1", engine.clock, remote=remote)
    assert str(refused.value) == error.format(path=loaded.path)
    with pytest.raises(BackupCommandError):
        restore(
            engine, loaded, job, ops_image="ops:1", archive="latest", to=[],
            clock=engine.clock, remote=remote,
        )  # fmt: skip
    assert engine.created_specs == []


IDENTITY = (
    "# made up\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
)


def _restored_from_dav(
    tmp_path: Path, job: str, archive: str = "latest", identity: str | None = None
) -> tuple[dict[str, object], Any]:
    """``restore JOB --from dav``; the tool's request on stdin, and the engine."""
    engine = engine_saying(control({"result": {"archive": "x", "remote": "dav"}}))
    restore(
        engine, config(tmp_path), job, ops_image="ops:1", archive=archive, to=[],
        clock=engine.clock, remote="dav", identity=identity,
    )  # fmt: skip
    return json.loads(bytes(engine.stdin.data)), engine


def test_the_identity_reaches_the_remote_tool_inside_its_request_only(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    key.write_text(IDENTITY + "\n")
    request, engine = _restored_from_dav(tmp_path, "sealed", identity=str(key))
    assert request["identity"] == IDENTITY
    assert "passphrase" not in request
    [spec] = engine.created_specs
    shown = json.dumps([dict(spec.env), spec.command, engine.created_labels])
    assert "AGE-SECRET-KEY" not in shown
    assert str(key) not in shown


def test_a_passphrase_jobs_passphrase_reaches_the_remote_tool_inside_its_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AGE", "made-up passphrase")
    request, engine = _restored_from_dav(tmp_path, "secret")
    assert (request["passphrase"], "identity" in request) == ("made-up passphrase", False)
    [spec] = engine.created_specs
    assert "made-up passphrase" not in json.dumps([dict(spec.env), spec.command])


def test_a_plain_jobs_restore_from_a_remote_carries_no_key(tmp_path: Path) -> None:
    request, _ = _restored_from_dav(tmp_path, "db")
    assert "identity" not in request
    assert "passphrase" not in request


@pytest.mark.parametrize(
    ("archive", "identity", "error"),
    [
        (
            "sealed-20261128T120000Z.tar.zst.age",
            None,
            (
                "sealed-20261128T120000Z.tar.zst.age is encrypted: give the age identity file "
                "that decrypts it with --identity FILE"
            ),
        ),
        ("latest", "missing.txt", "--identity missing.txt: cannot read it: No such file"),
    ],
)
def test_a_missing_or_unreadable_identity_is_refused_before_any_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: str, identity: str | None, error: str
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = engine_saying()
    with pytest.raises(BackupCommandError) as refused:
        restore(
            engine, config(tmp_path), "sealed", ops_image="ops:1", archive=archive, to=[],
            clock=engine.clock, remote="dav", identity=identity,
        )  # fmt: skip
    assert str(refused.value).startswith(error)
    assert engine.created_specs == []
