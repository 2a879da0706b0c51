"""rotate's protocol (``jobs.protocol.rotate``): the command line the plan writes is the
request the tool reads back, the state crosses stdin unchanged, and the results the tool
emits are the ones the daemon reads — a bad one named by its field, failing the run."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.plan import RotateLogs
from jobs.protocol.fields import RequestError
from jobs.protocol.rotate import (
    FinishRequest,
    FinishResult,
    RotateRequest,
    RotateResult,
    parse_command,
    read_state,
    state_line,
)
from jobs.tools import rotate
from scheduler.runs import Status
from tests.control import control

from .fakes import FakeClock, FakeEngine
from .test_logship_kind import Store
from .test_rotate_kind import GOOD, T1, load, run_rotation

LOG = "/var/log/app/app.log"


@pytest.mark.parametrize(
    "request_",
    [
        RotateRequest(("/l/*.log",)),
        RotateRequest(("/l/*.log", "/m/*.txt"), "copytruncate", 10, 3600.0, 5, confine=True),
        RotateRequest(("/l/*.log",), max_age=0.5, state=None),
        FinishRequest(("/l/*.log",)),
        FinishRequest(("/l/*.log",), "gzip", delay_compression=True, keep_last=0, keep_age=60.0),
        FinishRequest(("/l/*.log",), "none", confine=True),
    ],
)
def test_the_command_line_reads_back_as_the_same_request(
    request_: RotateRequest | FinishRequest,
) -> None:
    assert parse_command(request_.argv()) == request_


def test_the_plan_builds_the_requests_the_tool_reads(tmp_path: Path) -> None:
    job = load(tmp_path, GOOD + 'max_age = "1h"\nkeep_last = 2\n')
    (step,) = job.plan(PlanContext("r", "ops:1")).steps
    assert isinstance(step, RotateLogs)
    assert step.rotate.command is not None
    assert step.finish.command is not None
    paths = ("/var/log/app/*.log",)
    assert parse_command(step.rotate.command[3:]) == RotateRequest(
        paths, max_size=10 * 1024 * 1024, max_age=3600.0, confine=True, state=None
    )
    assert parse_command(step.finish.command[3:]) == FinishRequest(paths, keep_last=2, confine=True)


def test_the_state_crosses_stdin_unchanged() -> None:
    state = {LOG: {"since": T1}}
    assert read_state(state_line(state).decode()) == state


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[]", "rotate: the state cannot be used: the state is not a table"),
        ('{"/a.log": {}}', "rotate: the state cannot be used: a rotation state is not"),
        ('{"a.log": {"since": "x"}}', "rotate: the state cannot be used: a rotation state is not"),
    ],
)
def test_a_state_of_the_wrong_shape_exits_2_saying_so(
    text: str, said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text + "\n"))
    assert rotate.main(["rotate", "--state-stdin", "--max-size", "1", "/nowhere/*.log"]) == 2
    assert capsys.readouterr().err.startswith(said)


def test_the_results_read_back_as_emitted() -> None:
    rotated = RotateResult(((LOG, LOG + ".x"),), {LOG: {"since": T1}})
    assert RotateResult.parse(rotated.to_json()) == rotated
    finished = FinishResult((LOG + ".x.zst",), (LOG + ".y.zst",))
    assert FinishResult.parse(finished.to_json()) == finished
    assert FinishResult.parse({}) == FinishResult()


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"compressed": {}}, "request field 'compressed': expected an array of strings"),
        ({"deleted": [1]}, "request field 'deleted': expected an array of strings"),
    ],
)
def test_a_bad_finish_result_names_its_field(result: dict[str, object], error: str) -> None:
    with pytest.raises(RequestError, match=error):
        FinishResult.parse(result)


def test_a_bad_finish_result_fails_the_run_after_the_rotation(tmp_path: Path) -> None:
    """The files were rotated and the state is stored; the run fails saying which part."""
    engine = FakeEngine(FakeClock())
    result = {"rotated": [], "state": {LOG: {"since": T1}}, "compressed": "x", "deleted": []}
    engine.output_chunks = [("stderr", control({"result": result}))]
    store = Store({}, job="r")
    outcome, _ = run_rotation(tmp_path, engine, store)
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "rotated 0 file(s), but compressing or pruning failed: its result cannot be used: "
        "request field 'compressed': expected an array of strings, got a string"
    )
    assert store.saved == {LOG: {"since": T1}}
