"""logship's request (``jobs.protocol.ShipRequest``): one set of defaults for the job's model
and the tool, the same request on both sides of the wire, and a bad one named by its field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.logship import LogshipJob
from jobs.plan import ShipLogs
from jobs.protocol.fields import RequestError
from jobs.protocol.ship import (
    MAX_BYTES,
    FileSinkSpec,
    HttpSinkSpec,
    ShipRequest,
    SinkSpec,
    StdoutSinkSpec,
    SyslogSinkSpec,
)

from .configs import load_job

ROOT = Path(__file__).resolve().parents[2]
BASE = '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\ncontainers = ["web"]\n'


def planned(tmp_path: Path, sink: str) -> ShipRequest:
    job = load_job(tmp_path, BASE + "[jobs.s.sink]\n" + sink, "s", LogshipJob)
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, ShipLogs)
    return step.request


@pytest.mark.parametrize(
    ("sink", "spec"),
    [
        ('type = "stdout"\n', StdoutSinkSpec()),
        ('type = "file"\nvolume = "v"\npath = "out.ndjson"\n', FileSinkSpec("/sink/out.ndjson")),
        ('type = "http"\nurl = "http://h/"\n', HttpSinkSpec("http://h/")),
        ('type = "syslog"\naddress = "udp://h:514"\n', SyslogSinkSpec("udp://h:514")),
    ],
)
def test_a_job_left_to_its_defaults_plans_the_requests_defaults(
    tmp_path: Path, sink: str, spec: SinkSpec
) -> None:
    """Every default of the job's model (max_bytes, max_line, the batch, each sink's keys)
    is the request's own: one set, whichever side fills it in."""
    assert planned(tmp_path, sink) == ShipRequest("s", spec, confine=True)


def test_a_request_the_tool_gets_without_limits_takes_the_same_defaults() -> None:
    request = ShipRequest.parse({"job": "j", "sink": {"type": "stdout"}})
    assert request == ShipRequest("j", StdoutSinkSpec())
    assert request.max_bytes == MAX_BYTES == 256 * 1024 * 1024


def test_the_daemons_request_is_read_back_as_it_was_built(tmp_path: Path) -> None:
    """The plan's request, completed as the daemon does (checkpoints, host, a secret
    header), goes through its JSON line unchanged."""
    plan = planned(
        tmp_path,
        'type = "http"\nurl = "https://h/in"\nheaders = { A = "a", B = { env = "T" } }\n'
        'ok_status = [200]\ntimeout = "2s"\n',
    )
    sink = plan.sink
    assert isinstance(sink, HttpSinkSpec)
    sent = ShipRequest(
        plan.job,
        HttpSinkSpec(sink.url, {**sink.headers, "B": "s3cret"}, 2.0, (200,)),
        plan.paths,
        confine=True,
        host="box",
        checkpoints={"file:1:2": {"path": "/l/a.log", "offset": 5}},
    )
    assert ShipRequest.parse(json.loads(sent.to_json())) == sent


def test_the_plans_request_leaves_host_and_checkpoints_to_the_daemon(tmp_path: Path) -> None:
    line = json.loads(planned(tmp_path, 'type = "stdout"\n').to_json())
    assert "host" not in line
    assert "checkpoints" not in line


def request(**keys: object) -> dict[str, object]:
    return {"job": "j", "sink": {"type": "stdout"}, **keys}


def http(**keys: object) -> dict[str, object]:
    return request(sink={"type": "http", "url": "http://h/", **keys})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the request: expected an object, got an array"),
        ({"sink": {"type": "stdout"}}, "request field 'job': expected a string, got nothing"),
        ({"job": "j"}, "request field 'sink': expected an object, got nothing"),
        (request(max_bytes="1GiB"), "request field 'max_bytes': expected an integer, got a string"),
        (request(max_line=True), "request field 'max_line': expected an integer, got a boolean"),
        (
            request(batch_lines=1.5),
            "request field 'batch_lines': expected an integer, got a number",
        ),
        (request(paths=["/a", 1]), "request field 'paths': expected an array of strings"),
        (request(confine="yes"), "request field 'confine': expected true or false, got a string"),
        (request(host=None), "request field 'host': expected a string, got null"),
        (request(checkpoints={"file:1:2": 5}), "request field 'checkpoints': expected an object"),
        (request(sink={"type": "kafka"}), "unknown sink type 'kafka'"),
        (
            request(sink={"type": "file"}),
            "request field 'sink.path': expected a string, got nothing",
        ),
        (http(timeout="10s"), "request field 'sink.timeout': expected a number, got a string"),
        (http(ok_status=[200, "201"]), "request field 'sink.ok_status': expected an array of"),
        (http(headers={"A": {"env": "T"}}), "request field 'sink.headers': expected an object of"),
        (
            request(sink={"type": "syslog", "address": "udp://h:514", "facility": "x"}),
            "request field 'sink.facility': unknown facility 'x'",
        ),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        ShipRequest.parse(data)
    assert str(refused.value).startswith(message)


def test_a_refused_header_is_named_never_shown() -> None:
    """A header's value may be a secret: the error names the field and the JSON type only."""
    with pytest.raises(RequestError) as refused:
        ShipRequest.parse(http(headers={"Authorization": "Bearer s3cret", "X": 1}))
    assert "sink.headers" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_python_m_runs_the_tool_and_a_bad_request_fails_it_naming_the_field() -> None:
    """``python -m jobs.tools.logship`` (as the ops container runs it): a request whose
    field is of the wrong type ends the tool with exit 1 and one diagnostic naming it —
    nothing else on stderr."""
    tool = subprocess.run(
        [sys.executable, "-m", "jobs.tools.logship"],
        input=json.dumps(request(max_bytes="x")).encode() + b"\n",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert tool.returncode == 1
    assert tool.stderr.decode() == (
        "logship: request field 'max_bytes': expected an integer, got a string\n"
    )
