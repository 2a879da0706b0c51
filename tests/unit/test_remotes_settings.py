"""``[daemon.remotes.<name>]`` and a backup's ``copy_to``: each bad key is one error naming
``daemon.remotes.<name>.<key>`` (never showing a secret), an unknown name in ``copy_to`` names
the job, the key, the name and the remotes defined; the environment sets remotes as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from jobs.backup import BackupJob
from jobs.base import EnvSecret, FileSecret
from scheduler.errors import ConfigError
from scheduler.settings import Config, load_config
from scheduler.settings.remotes import S3Remote, SftpRemote, WebdavRemote

if TYPE_CHECKING:
    from pathlib import Path

JOB = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\nvolumes_from = "db"\n'
SFTP = (
    '[daemon.remotes.box]\ntype = "sftp"\nhost = "backup.example"\nuser = "crontainer"\n'
    'path = "/srv/backups/"\nkey = { file = "/run/secrets/box_key" }\n'
    'known_hosts = "backup.example ssh-ed25519 AAAAC3Nza"\n'
)
DAV = (
    '[daemon.remotes.dav]\ntype = "webdav"\nurl = "https://cloud.example/remote.php/dav/x"\n'
    'user = "me"\npassword = { env = "DAV_PASSWORD" }\nvendor = "nextcloud"\n'
)
S3 = (
    '[daemon.remotes.s3]\ntype = "s3"\nbucket = "backups"\npath = "host-1"\n'
    'endpoint = "http://minio:9000"\naccess_key_id = "AKIA"\n'
    'secret_access_key = { file = "/run/secrets/s3" }\nprovider = "Minio"\n'
)


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path, env or {})


def _errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, env)
    return caught.value.errors


def test_remotes_of_each_type_load_with_their_keys_and_secrets_as_references(
    tmp_path: Path,
) -> None:
    config = _load(tmp_path, SFTP + DAV + S3 + JOB + 'copy_to = ["box", "dav", "s3"]\n')
    remotes = config.daemon.remotes
    box, dav, s3 = remotes["box"], remotes["dav"], remotes["s3"]
    assert isinstance(box, SftpRemote)
    assert (box.host, box.port, box.user, box.location()) == (
        "backup.example",
        22,
        "crontainer",
        "/srv/backups",
    )
    assert box.key == FileSecret(file="/run/secrets/box_key")
    assert isinstance(dav, WebdavRemote)
    assert (dav.vendor, dav.password) == ("nextcloud", EnvSecret(env="DAV_PASSWORD"))
    assert isinstance(s3, S3Remote)
    assert (s3.location(), s3.provider, s3.access_key_id) == ("backups/host-1", "Minio", "AKIA")
    job = config.jobs["b"].job
    assert isinstance(job, BackupJob)
    assert job.copy_to == ["box", "dav", "s3"]


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (SFTP.replace('host = "backup.example"\n', ""), "daemon.remotes.box.host: required key"),
        (SFTP + "port = 70000\n", "daemon.remotes.box.port: must be at most 65535"),
        (
            SFTP.replace("backup.example ssh-ed25519 AAAAC3Nza", "nothing"),
            "daemon.remotes.box.known_hosts: known_hosts: no 'host keytype key' line",
        ),
        (SFTP.replace('"/srv/backups/"', '"../x"'), "daemon.remotes.box.path: expected a folder"),
        (SFTP + "region = 'x'\n", "daemon.remotes.box.region: unknown key"),
        (
            DAV.replace("https://cloud", "ftp://cloud"),
            "daemon.remotes.dav.url: expected text matching the pattern",
        ),
        (
            DAV.replace('"nextcloud"', '"box"'),
            "daemon.remotes.dav.vendor: expected 'other', 'nextcloud'",
        ),
        (S3.replace('bucket = "backups"\n', ""), "daemon.remotes.s3.bucket: required key"),
        (
            S3.replace('access_key_id = "AKIA"\n', ""),
            "daemon.remotes.s3.access_key_id: required key",
        ),
        (S3.replace('"s3"\n', '"ftp"\n', 1), "daemon.remotes.s3.type: expected one of s3, sftp"),
        (
            SFTP.replace('type = "sftp"\n', ""),
            "daemon.remotes.box.type: required key is missing (one of: s3, sftp, webdav)",
        ),
        ("[daemon.remotes.'a b']\ntype = 's3'\n", "daemon.remotes.a b: a remote's name must"),
    ],
)
def test_a_bad_remote_is_one_error_naming_its_key(tmp_path: Path, table: str, error: str) -> None:
    errors = _errors(tmp_path, table)
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


def test_an_error_about_a_secret_key_never_shows_the_value(tmp_path: Path) -> None:
    errors = _errors(tmp_path, S3.replace('"AKIA"', "12345678"))
    assert errors, errors
    assert all(e.startswith("daemon.remotes.s3.access_key_id") for e in errors), errors
    assert not any("12345678" in e for e in errors), errors


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            SFTP + DAV + JOB + 'copy_to = ["box", "offsite"]\n',
            "jobs.b.copy_to: no remote 'offsite' is defined (remotes: box, dav)",
        ),
        (
            JOB + 'copy_to = ["offsite"]\n',
            (
                "jobs.b.copy_to: no remote 'offsite' is defined (remotes: none: add a "
                "[daemon.remotes.<name>] table)"
            ),
        ),
        (SFTP + JOB + 'copy_to = ["box", "box"]\n', "jobs.b.copy_to: copy_to names a remote"),
        (
            SFTP
            + JOB.replace('target = "backups"', 'repository = "/r"\npassword = "p"')
            + 'volumes = ["r:/r"]\ncopy_to = ["box"]\n',
            "jobs.b: copy_to copies archives: a backup into a repository has snapshots",
        ),
    ],
)
def test_copy_to_names_defined_remotes(tmp_path: Path, text: str, error: str) -> None:
    errors = _errors(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


def test_a_remote_with_an_error_is_not_said_again_as_unknown_by_copy_to(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path, SFTP.replace('user = "crontainer"\n', "") + JOB + 'copy_to = ["box"]'
    )
    assert errors == ["daemon.remotes.box.user: required key is missing"]


def test_a_copying_job_may_name_the_network_its_copies_go_through(tmp_path: Path) -> None:
    config = _load(tmp_path, SFTP + JOB + 'copy_to = ["box"]\nnetwork = "backup-net"\n')
    job = config.jobs["b"].job
    assert isinstance(job, BackupJob)
    assert job.network == "backup-net"
    errors = _errors(tmp_path, JOB + 'network = "backup-net"\n')
    assert errors == ["jobs.b: network is a key of a backup into a repository (repository)"]


def test_the_environment_sets_the_remotes_as_json(tmp_path: Path) -> None:
    table = {"box": {"type": "webdav", "url": "http://dav:8080/", "password": {"env": "P"}}}
    env = {"CRONTAINER_DAEMON__REMOTES": json.dumps(table)}
    config = _load(tmp_path, JOB + 'copy_to = ["box"]\n', env)
    box = config.daemon.remotes["box"]
    assert isinstance(box, WebdavRemote)
    assert (box.url, box.password) == ("http://dav:8080/", EnvSecret(env="P"))
    bad = {"CRONTAINER_DAEMON__REMOTES": json.dumps({"box": {"type": "webdav"}})}
    assert _errors(tmp_path, JOB, bad) == [
        "CRONTAINER_DAEMON__REMOTES (at box.url): required key is missing"
    ]


def test_a_default_copy_to_never_makes_a_job_without_a_target_stream(tmp_path: Path) -> None:
    bare = JOB.replace('target = "backups"\n', "")
    text = SFTP + '[defaults]\ncopy_to = ["box"]\n' + JOB + bare.replace("jobs.b", "jobs.c")
    errors = _errors(tmp_path, text)
    assert errors == [
        (
            "jobs.c: a backup needs a target (archives in a volume or host directory), "
            "copy_to (archives streamed to remotes) or a repository (restic snapshots)"
        )
    ]
    streamed = _load(tmp_path, SFTP + bare + 'copy_to = ["box"]\n').jobs["b"].job
    assert isinstance(streamed, BackupJob)
    assert (streamed.target, streamed.copy_to) == (None, ["box"])
    kept = _load(tmp_path, SFTP + '[defaults]\ntarget = "t"\n' + bare + 'copy_to = ["box"]\n')
    job = kept.jobs["b"].job
    assert isinstance(job, BackupJob)
    assert (job.target, job.copy_to) == ("t", ["box"])  # archives kept there, then copied
