"""The backup tool's requests and results (``jobs.protocol.backup``): a request's command line
reads back as the same request on the tool's side, the plan's and the backups commands' among
them, and a listing the daemon cannot read is refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.backup import BackupJob
from jobs.base import PlanContext
from jobs.copies import TARGET_MOUNT
from jobs.plan import RunContainer
from jobs.protocol.backup import (
    PROGRAM,
    BackupRequest,
    CreateRequest,
    ListRequest,
    RestoreRequest,
    VerifyRequest,
    parse_list_result,
    parse_request,
)
from jobs.protocol.fields import RequestError

from .configs import load_job

BASE = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\nvolumes_from = "db"\n'


@pytest.mark.parametrize(
    "request_",
    [
        CreateRequest("db", "/backup", mounts=True),
        CreateRequest(
            "db",
            "/backup",
            sources=("/data", "/var/log/my app"),
            compression="gzip",
            timezone="Europe/Berlin",
            keep_last=3,
            keep_weekly=4,
        ),
        CreateRequest("db", "/backup", ("/data",), mounts=True, keep_daily=7, keep_monthly=12),
        VerifyRequest("/backup", "db-20261202T030000Z.tar.zst"),
        ListRequest("db", "/backup"),
        RestoreRequest("/backup", "db-20261202T030000Z.tar.zst"),
        RestoreRequest("/backup", "db-20261202T030000Z.tar", "/mnt", ("/data/a", "/data/INBOX/")),
        CreateRequest("db", "/backup", mounts=True, recipients=("age1x", "ssh-ed25519 AAAA c")),
        RestoreRequest("/backup", "db-20261202T030000Z.tar.zst.age", identity=True),
    ],
    ids=[
        "create-mounts",
        "create-paths",
        "create-both",
        "verify",
        "list",
        "restore",
        "only",
        "create-encrypted",
        "restore-identity",
    ],
)
def test_a_requests_command_line_reads_back_as_the_same_request(request_: BackupRequest) -> None:
    argv = request_.argv()
    assert argv[: len(PROGRAM)] == PROGRAM
    assert parse_request(argv[len(PROGRAM) :]) == request_


def test_the_plans_command_is_the_jobs_request(tmp_path: Path) -> None:
    """The job's paths, compression, zone and keep rules reach the tool as they were set."""
    job = load_job(
        tmp_path,
        BASE + 'paths = ["/data/a", "/data/b"]\ncompression = "none"\nkeep_weekly = 5\n',
        "b",
        BackupJob,
    )
    (step,) = job.plan(PlanContext("b", "ops:1")).steps
    assert isinstance(step, RunContainer)
    assert step.spec.command is not None
    assert parse_request(step.spec.command[len(PROGRAM) :]) == CreateRequest(
        "b", TARGET_MOUNT, ("/data/a", "/data/b"), compression="none", keep_weekly=5
    )


def test_a_listing_reads_back_with_future_optional() -> None:
    entries = [
        {"archive": "db-2.tar", "time": "t2", "bytes": 2, "good": True, "future": True},
        {"archive": "db-1.tar", "time": "t1", "bytes": 1, "good": False},
    ]
    assert parse_list_result({"archives": entries, "stopped_and_started": []}) == {
        "archives": entries
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the request: expected an object, got an array"),
        ({}, "request field 'archives': expected an array, got nothing"),
        ({"archives": {}}, "request field 'archives': expected an array, got an object"),
        ({"archives": ["db-1.tar"]}, "request field 'archives[0]': expected an object, got a"),
        (
            {"archives": [{"archive": "db-1.tar", "time": "t1", "bytes": 1, "good": "yes"}]},
            "request field 'archives[0].good': expected true or false, got a string",
        ),
        (
            {"archives": [{"archive": "a", "time": "t", "bytes": 1.5, "good": True}]},
            "request field 'archives[0].bytes': expected an integer, got a number",
        ),
    ],
)
def test_a_listing_that_cannot_be_read_is_refused_naming_the_field(
    data: object, message: str
) -> None:
    with pytest.raises(RequestError) as refused:
        parse_list_result(data)
    assert str(refused.value).startswith(message)
