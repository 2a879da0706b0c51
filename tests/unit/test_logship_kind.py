"""Job kind logship: validation names the field; the plan and the daemon's side of the
protocol (request, secrets, containers' lines after their checkpoint, stored checkpoints)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.base import PlanContext
from jobs.logship import LogshipJob
from jobs.plan import Mount, ShipLogs
from scheduler.engine import ExitStatus
from scheduler.errors import ConfigError
from scheduler.history import History
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.settings import load_config
from scheduler.steps import StepExecutor
from scheduler.steps.ship import recover_checkpoints
from tests.control import control

from .configs import load_job
from .fakes import FakeClock, FakeEngine

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, MutableMapping

MARK_A = {"path": "/l/a.log", "dev": 1, "ino": 7, "offset": 10, "fp": "", "fplen": 0}
MARK_A2 = {**MARK_A, "offset": 20}
MARK_B = {"ns": 5, "skip": 1}
BASE = '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\n'
FILES = 'volumes_from = "app"\npaths = ["/var/log/app/*.log"]\n'
FILE_SINK = '[jobs.s.sink]\ntype = "file"\nvolume = "shipped"\npath = "logs/out.ndjson"\n'


def load(tmp_path: Path, text: str) -> LogshipJob:
    return load_job(tmp_path, BASE + text, "s", LogshipJob)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (FILE_SINK, "jobs.s: a logship job needs a source: paths (in volumes) and/or containers"),
        ('paths = ["/x/*.log"]\n' + FILE_SINK, "jobs.s: paths need the volumes that hold them"),
        ('volumes_from = "app"\n' + FILE_SINK, "jobs.s: volumes_from/volumes need paths"),
        ('volumes_from = "app"\npaths = ["x/*.log"]\n' + FILE_SINK, "must be absolute"),
        (FILES, "jobs.s.sink: required key is missing"),
        (
            FILES + '[jobs.s.sink]\ntype = "kafka"\n',
            "jobs.s.sink.type: unknown sink type 'kafka' (one of: file, http, syslog, stdout)",
        ),
        (
            FILES + '[jobs.s.sink]\ntype = "file"\nvolume = "v"\npath = "../out"\n',
            "jobs.s.sink.path: path '../out' must be relative to the volume",
        ),
        (
            FILES + '[jobs.s.sink]\ntype = "http"\nurl = "ftp://x/"\n',
            "jobs.s.sink.url: expected an http:// or https:// URL with a host (no spaces)",
        ),
        (
            FILES + '[jobs.s.sink]\ntype = "syslog"\naddress = "udp://h"\n',
            "jobs.s.sink.address: address 'udp://h': expected udp://host:port",
        ),
        (
            FILES + '[jobs.s.sink]\ntype = "syslog"\naddress = "tcp://h:514"\nfacility = "x"\n',
            "jobs.s.sink.facility: unknown facility 'x'",
        ),
        (
            FILES
            + '[jobs.s.sink]\ntype = "http"\nurl = "http://h/"\nheaders = { A = { env = 1 } }\n',
            "jobs.s.sink.headers.A",
        ),
        (
            FILES + '[jobs.s.sink]\ntype = "stdout"\nbatch_lines = 0\n',
            "jobs.s.sink.batch_lines: must be at least 1",
        ),
        (FILES + 'log_options = { a = "b" }\n' + FILE_SINK, "jobs.s: log_options need log_driver"),
        (FILES + 'concurrency = "allow"\n' + FILE_SINK, "jobs.s: concurrency 'allow' would let"),
        (
            FILES + "max_line = 1000\n" + FILE_SINK,
            "jobs.s.max_line: must be at least 1024",
        ),
        (FILES + 'max_line = "65MiB"\n' + FILE_SINK, "jobs.s.max_line: must be at most 64MiB"),
    ],
)
def test_bad_logship_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert any(message in e for e in caught.value.errors), caught.value.errors


def test_plan_mounts_sources_read_only_and_the_file_sink_writable(tmp_path: Path) -> None:
    job = load(tmp_path, FILES + 'volumes = ["more:/more"]\nmax_bytes = "1MiB"\n' + FILE_SINK)
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, ShipLogs)
    spec = step.spec
    assert spec.image == "ops:1"
    assert spec.command == ("python3", "-m", "jobs.tools.logship")
    assert spec.stdin is True
    assert spec.healthcheck is False  # the image's check is the daemon's, not the tool's
    assert (spec.volumes_from, spec.volumes_from_read_only) == (("app",), True)
    assert set(spec.mounts) == {Mount("more", "/more", read_only=True), Mount("shipped", "/sink")}
    assert json.loads(step.request.to_json()) == {
        "job": "s",
        "paths": ["/var/log/app/*.log"],
        "sink": {"type": "file", "path": "/sink/logs/out.ndjson"},
        "max_bytes": 1024 * 1024,
        "max_line": 1024 * 1024,
        "batch_lines": 1000,
        "batch_bytes": 1024 * 1024,
        "confine": True,
    }
    assert step.quiet_stdout is False


def test_max_line_goes_to_the_tool_in_its_request(tmp_path: Path) -> None:
    """A configured max_line (a size, like every size key) reaches the tool as bytes."""
    job = load(tmp_path, FILES + 'max_line = "4KiB"\n' + FILE_SINK)
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, ShipLogs)
    assert json.loads(step.request.to_json())["max_line"] == 4096


def test_secret_headers_stay_out_of_the_plan(tmp_path: Path) -> None:
    job = load(
        tmp_path,
        FILES
        + '[jobs.s.sink]\ntype = "http"\nurl = "https://logs.example/in"\n'
        + 'headers = { X-Plain = "p", Authorization = { env = "TOKEN" }, '
        + 'X-Key = { file = "/run/secrets/key" } }\n',
    )
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, ShipLogs)
    assert json.loads(step.request.to_json())["sink"]["headers"] == {"X-Plain": "p"}
    assert [(s.name, s.env, s.file) for s in step.secrets] == [
        ("Authorization", "TOKEN", None),
        ("X-Key", None, "/run/secrets/key"),
    ]


def test_stdout_sink_keeps_the_records_out_of_the_daemons_log(tmp_path: Path) -> None:
    job = load(tmp_path, 'containers = ["web"]\n[jobs.s.sink]\ntype = "stdout"\n')
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, ShipLogs)
    assert step.quiet_stdout is True
    assert step.containers == ("web",)


class Store:
    """The checkpoint store, in memory."""

    def __init__(self, saved: dict[str, dict[str, object]], job: str = "s") -> None:
        self.saved = saved
        self.saved_job = job
        self.writes: list[tuple[dict[str, object], list[str]]] = []

    def tool_state(self, job: str) -> dict[str, dict[str, object]]:
        assert job == self.saved_job
        return dict(self.saved)

    def save_tool_state(
        self, job: str, marks: Mapping[str, object], forget: Iterable[str], at: datetime
    ) -> None:
        self.writes.append((dict(marks), list(forget)))
        for source in forget:
            self.saved.pop(source, None)
        self.saved.update({k: v for k, v in marks.items() if isinstance(v, dict)})


def ship(
    tmp_path: Path, engine: FakeEngine, store: Store, sink: str
) -> tuple[Outcome, list[MutableMapping[str, Any]]]:
    job = load(tmp_path, 'containers = ["web"]\n' + sink)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    attempt = Attempt("r1", "s", job, Cancellation())
    executor = StepExecutor(engine, config.daemon, engine.clock, store)
    with structlog.testing.capture_logs() as logs:
        outcome = executor.run(attempt, step)
    return outcome, logs


def test_the_daemon_feeds_request_and_new_container_lines_and_stores_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "Bearer s3cret")
    engine = FakeEngine(FakeClock())
    now = 1_800_000_000 * 10**9  # later than every entry below
    engine.log_entries[("web", "stdout")] = [
        (now - 300, "t1", b"old, shipped before"),
        (now - 200, "t2", b"same ns, shipped before"),
        (now - 200, "t2", b"same ns, new"),
        (now - 100, "t3", b"new"),
    ]
    engine.log_entries[("web", "stderr")] = [(now - 50, "t4", b"an error\r")]
    engine.output_chunks = [
        ("stderr", b"logship: a warning\n" + control({"checkpoint": {"file:1:7": MARK_A}})),
        ("stderr", control({"checkpoint": {"container:b:stdout": MARK_B}, "forget": ["file:1:7"]})),
        ("stderr", control({"result": {"lines": 3, "bytes": 30}})),
    ]
    store = Store(
        {
            "container:web:stdout": {"ns": now - 200, "skip": 1},
            "file:1:2": {"offset": 5},
        }
    )
    monkeypatch.setattr("time.time_ns", lambda: now)
    outcome, logs = ship(
        tmp_path,
        engine,
        store,
        '[jobs.s.sink]\ntype = "http"\nurl = "http://h/"\nheaders = { A = { env = "TOKEN" } }\n',
    )
    assert outcome.status is Status.SUCCEEDED
    assert outcome.details == {"lines": 3, "bytes": 30}
    assert store.writes == [
        ({"file:1:7": MARK_A}, []),
        ({"container:b:stdout": MARK_B}, ["file:1:7"]),
    ]
    lines = bytes(engine.stdin.data).splitlines()
    request = json.loads(lines[0])
    assert request["checkpoints"] == {"file:1:2": {"offset": 5}}
    assert request["host"] == "fakehost"
    assert request["sink"]["headers"] == {"A": "Bearer s3cret"}
    records = [json.loads(line) for line in lines[1:]]
    assert records[-1] == {"end": True}
    assert [(r["source"], r["line"], r["cp"]) for r in records[:-1]] == [
        ("container:web:stdout", "same ns, new", {"ns": now - 200, "skip": 2}),
        ("container:web:stdout", "new", {"ns": now - 100, "skip": 1}),
        ("container:web:stderr", "an error", {"ns": now - 50, "skip": 1}),
    ]
    assert engine.stdin.closed
    output = [e["line"] for e in logs if e["event"] == "run.output"]
    assert output == ["logship: a warning"]  # control lines are not output
    assert not any("s3cret" in json.dumps(e, default=str) for e in logs)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (None, "sink header A: environment variable TOKEN is not set"),
        ("s3cret\r\nX-Evil: 1", "sink header A holds a control character"),
    ],
)
def test_a_missing_or_unsendable_secret_fails_the_run_before_any_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str | None, error: str
) -> None:
    """A secret header that is not set, or that holds CR/LF (it would split the request),
    fails the run before any container; the value is in no event."""
    if token is None:
        monkeypatch.delenv("TOKEN", raising=False)
    else:
        monkeypatch.setenv("TOKEN", token)
    engine = FakeEngine(FakeClock())
    outcome, logs = ship(
        tmp_path,
        engine,
        Store({}),
        '[jobs.s.sink]\ntype = "http"\nurl = "http://h/"\nheaders = { A = { env = "TOKEN" } }\n',
    )
    assert outcome.status is Status.FAILED
    assert outcome.error == error
    assert "create" not in engine.names()
    assert "s3cret" not in json.dumps([dict(e) for e in logs], default=str)


def test_a_failed_tool_gives_its_error_to_the_run(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock(), exit_status=ExitStatus(1))
    engine.output_chunks = [("stderr", b"logship: http sink http://h/: gave up after 4 attempts\n")]
    outcome, _ = ship(
        tmp_path, engine, Store({}), '[jobs.s.sink]\ntype = "http"\nurl = "http://h/"\n'
    )
    assert outcome.status is Status.FAILED
    assert outcome.error == "http sink http://h/: gave up after 4 attempts"


def test_stdout_sink_records_are_not_logged(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    engine.output_chunks = [("stdout", b'{"line": "a record"}\n'), ("stderr", b"note\n")]
    _, logs = ship(tmp_path, engine, Store({}), '[jobs.s.sink]\ntype = "stdout"\n')
    assert [e["line"] for e in logs if e["event"] == "run.output"] == ["note"]


def test_checkpoints_are_kept_in_the_state_database(tmp_path: Path) -> None:
    history = History.open(tmp_path)
    at = datetime(2026, 11, 28, tzinfo=UTC)
    history.save_tool_state("s", {"a": {"offset": 1}, "b": {"offset": 2}}, [], at)
    history.save_tool_state("s", {"b": {"offset": 3}}, ["a"], at)
    history.save_tool_state("other", {"a": {"offset": 9}}, [], at)
    history.close()
    reopened = History.open(tmp_path)
    assert reopened.tool_state("s") == {"b": {"offset": 3}}
    assert reopened.tool_state("other") == {"a": {"offset": 9}}
    reopened.close()


def test_checkpoints_reported_after_the_daemon_died_are_taken_from_the_containers_log() -> None:
    engine = FakeEngine(FakeClock())
    engine.log_entries[("c1", "stderr")] = [
        (1, "t", b"logship: a warning"),
        (2, "t", control({"checkpoint": {"file:1:7": MARK_A}})[:-1]),
        (3, "t", b"@crontainer {not json"),
        (4, "t", control({"checkpoint": {"file:1:7": MARK_A2}, "forget": ["file:1:8"]})[:-1]),
        (5, "t", control({"result": {"lines": 9}})[:-1]),
    ]
    store = Store({"file:1:8": MARK_A})
    at = datetime(2026, 11, 28, tzinfo=UTC)
    with structlog.testing.capture_logs() as logs:
        assert recover_checkpoints(engine, store, "s", "c1", at) == 2
    assert store.saved == {"file:1:7": MARK_A2}
    assert [e["event"] for e in logs] == ["run.checkpoints_recovered"]
