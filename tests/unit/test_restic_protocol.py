"""The restic tool's request and result (``jobs.protocol.restic``): one type each, read back
as written, a bad field named; a repository's password never shown."""

from __future__ import annotations

import json

import pytest

from jobs.protocol.fields import RequestError
from jobs.protocol.remote import Destination
from jobs.protocol.restic import (
    ResticRequest,
    ResticRestored,
    ResticResult,
    ResticSnapshot,
    SftpLocation,
    parse_snapshots,
    redacted,
    sftp_location,
)

FULL = ResticRequest(
    "db",
    "crontainer",
    "rest:http://backup:8000/app",
    paths=("/var/lib/mysql",),
    init=True,
    keep={"daily": 7, "weekly": 4},
    check="weekly",
    check_read_data="5%",
    last_check="2026-12-01T03:00:00+00:00",
    password="s3cret",  # noqa: S106 - a made-up one
    env={"AWS_ACCESS_KEY_ID": "key"},
)


SFTP = ResticRequest(
    "db",
    "crontainer",
    "sftp:backup@host:/srv/restic",
    password="s3cret",  # noqa: S106 - a made-up one
    ssh_key="-----BEGIN OPENSSH PRIVATE KEY-----\nmade-up\n-----END OPENSSH PRIVATE KEY-----",
    known_hosts="host ssh-ed25519 AAAA",
)


@pytest.mark.parametrize("request_", [FULL, SFTP, ResticRequest("a", "d", "/repo")])
def test_a_request_reads_back_as_it_was_written(request_: ResticRequest) -> None:
    assert ResticRequest.parse(json.loads(request_.to_json())) == request_


def test_the_tags_name_the_job_and_the_daemon() -> None:
    assert FULL.tags() == ("crontainer-job=db", "crontainer-daemon=crontainer")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"repository": 3}, "request field 'repository': expected a string, got an integer"),
        ({"check": "daily"}, "request field 'check': unknown check 'daily'"),
        ({"keep": {"daily": "7"}}, "request field 'keep.daily': expected an integer"),
        ({"keep": {"dayly": 7}}, "request field 'keep': unknown rule 'dayly'"),
        ({"env": {"A": 1}}, "request field 'env': expected an object of strings"),
        ({"ssh_key": 1}, "request field 'ssh_key': expected a string, got an integer"),
        ({"known_hosts": ["x"]}, "request field 'known_hosts': expected a string, got an array"),
    ],
)
def test_a_bad_request_names_its_field(change: dict[str, object], error: str) -> None:
    value = {**json.loads(FULL.to_json()), **change}
    with pytest.raises(RequestError, match=error):
        ResticRequest.parse(value)


RESULT = ResticResult(
    "rest:http://backup:8000/app", "42dd6b80", 2, 0, 5, 101763, 100006, 7, 0.21,
    forgotten=("1a2b3c4d",), checked=True,
)  # fmt: skip


def test_a_result_reads_back_as_it_was_written() -> None:
    assert ResticResult.parse(json.loads(json.dumps(RESULT.to_json()))) == RESULT
    assert RESULT.to_json()["bytes_added"] == 101763


def test_a_bad_result_names_its_field() -> None:
    value = {**RESULT.to_json(), "files_new": "2"}
    with pytest.raises(RequestError, match="request field 'files_new': expected an integer"):
        ResticResult.parse(value)


@pytest.mark.parametrize(
    ("repository", "shown"),
    [
        ("rest:https://user:secret@host:8000/app", "rest:https://user:***@host:8000/app"),
        ("rest:https://user@host/", "rest:https://user@host/"),
        ("s3:http://minio:9000/bucket/path", "s3:http://minio:9000/bucket/path"),
        ("sftp:backup@host:/srv/restic", "sftp:backup@host:/srv/restic"),
        ("/repo", "/repo"),
    ],
)
def test_a_password_in_the_repository_url_is_never_shown(repository: str, shown: str) -> None:
    assert redacted(repository) == shown


# --- listing and restore ------------------------------------------------------------------


def test_a_restore_request_goes_through_json_whole() -> None:
    made = ResticRequest("db", "d", "/r", command="restore", snapshot="abc", only=("/data",))
    assert ResticRequest.parse(json.loads(made.to_json())) == made


def test_an_unknown_command_is_named() -> None:
    with pytest.raises(RequestError, match="'command': unknown command 'forget'"):
        ResticRequest.parse({"job": "db", "daemon": "d", "repository": "/r", "command": "forget"})


def test_a_listing_and_a_restore_result_read_back_and_name_a_bad_field() -> None:
    snap = ResticSnapshot("f" * 64, "ffffffff", "2026-01-01T00:00:00Z", ("/data",), ("t",), "h")
    assert parse_snapshots({"snapshots": [snap.to_json()]}) == [snap]
    with pytest.raises(RequestError, match=r"'snapshots\[0\].time': expected a string"):
        parse_snapshots({"snapshots": [{"id": "x", "short_id": "x"}]})
    done = ResticRestored("/r", "ffffffff", ("/data",), 1.5)
    assert ResticRestored.parse(done.to_json()) == done
    with pytest.raises(RequestError, match="'volumes': expected an array of strings"):
        ResticRestored.parse({**done.to_json(), "volumes": "/data"})


@pytest.mark.parametrize(
    ("repository", "location"),
    [
        ("sftp:backup@host:/srv/restic", SftpLocation("backup", "host", None, "/srv/restic")),
        ("sftp:host:relative", SftpLocation(None, "host", None, "relative")),
        ("sftp://backup@host:2222//srv/r", SftpLocation("backup", "host", 2222, "/srv/r")),
        ("sftp://host/relative", SftpLocation(None, "host", None, "relative")),
        ("rest:http://host:8000/", None),
        ("/repo", None),
    ],
)
def test_an_sftp_repository_is_read_as_restic_reads_it(
    repository: str, location: SftpLocation | None
) -> None:
    assert sftp_location(repository) == location


def test_known_hosts_names_a_host_on_another_port_with_it() -> None:
    assert SftpLocation("u", "h", 2222, "/r").known_as() == "[h]:2222"
    assert SftpLocation("u", "h", 22, "/r").known_as() == "h"


@pytest.mark.parametrize(
    ("repository", "error"),
    [
        ("sftp:u@h:", "no directory"),
        ("sftp://u@h", "no directory"),
        ("sftp://u@h:x//r", "port 'x' is not a port number"),
        ("sftp:u@-h:/r", "host '-h' is not one ssh takes"),
        ("sftp:u@:/r", "host '' is not one ssh takes"),
        ("sftp:a'b@h:/r", 'user "a\'b" is not one ssh takes'),
        ("sftp:a b@h:/r", "user 'a b' is not one ssh takes"),
    ],
)
def test_an_sftp_repository_ssh_cannot_take_is_refused(repository: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        sftp_location(repository)


def test_the_secrets_of_requests_are_not_in_their_repr() -> None:
    """A request in a traceback or a debug line shows no secret (password, env values, SSH
    key; a remote's secrets and key)."""
    restic = ResticRequest(
        "db", "crontainer", "rest:http://h/x", password="pw-SECRET",  # noqa: S106 - made up
        env={"AWS_SECRET_ACCESS_KEY": "env-SECRET"}, ssh_key="key-SECRET",
    )  # fmt: skip
    remote = Destination("box", "sftp", "/srv", {"host": "h"}, {"pass": "pass-SECRET"}, "k-SECRET")
    assert "SECRET" not in repr(restic) + repr(remote)
