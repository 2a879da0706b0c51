"""Job kind rotate: validation names the field; the plan; the daemon signals the app only
after a rotation, between rotation and compression, and says which part failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.base import PlanContext
from jobs.plan import RotateLogs, SignalContainers
from jobs.rotate import RotateJob
from scheduler.errors import ConfigError, EngineError
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.settings import load_config
from scheduler.steps import StepExecutor
from tests.control import control

from .configs import load_job
from .fakes import FakeClock, FakeEngine
from .test_logship_kind import Store

if TYPE_CHECKING:
    from collections.abc import MutableMapping

BASE = '[jobs.r]\nkind = "rotate"\nschedule = "@hourly"\n'
T0, T1, T2 = "2026-11-26T00:00:00+00:00", "2026-11-27T00:00:00+00:00", "2026-11-28T00:00:00+00:00"
GOOD = 'volumes_from = "app"\npaths = ["/var/log/app/*.log"]\nmax_size = "10MiB"\n'


def load(tmp_path: Path, text: str) -> RotateJob:
    return load_job(tmp_path, BASE + text, "r", RotateJob)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('paths = ["/l/*.log"]\nmax_size = "1MiB"\n', "jobs.r: a rotate job needs the volumes"),
        ('volumes_from = "app"\npaths = ["/l/*.log"]\n', "jobs.r: a rotate job needs max_size"),
        ('volumes_from = "app"\nmax_size = "1MiB"\n', "jobs.r.paths: required key is missing"),
        ('volumes_from = "app"\npaths = ["l/*.log"]\nmax_size = "1MiB"\n', "must be absolute"),
        (GOOD + 'mode = "move"\n', "jobs.r.mode: expected 'rename' or 'copytruncate'"),
        (GOOD + 'compression = "xz"\n', "jobs.r.compression: expected 'zstd'"),
        (GOOD + 'signal = { containers = ["app"], signal = "NOPE" }\n', "unknown signal 'NOPE'"),
        (GOOD + 'signal = { containers = ["app"] }\nrestart = ["app"]\n', "exclude each other"),
        (GOOD + "keep_last = -1\n", "jobs.r.keep_last: must be at least"),
        (GOOD + 'max_age = "soon"\n', "jobs.r.max_age"),
        (GOOD + 'concurrency = "allow"\n', "jobs.r: concurrency 'allow' would let two runs"),
    ],
)
def test_bad_rotate_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert any(message in e for e in caught.value.errors), caught.value.errors


def test_plan_rotates_then_tells_then_finishes(tmp_path: Path) -> None:
    job = load(
        tmp_path,
        GOOD
        + 'max_age = "1d"\nmin_size = "1KiB"\nmode = "copytruncate"\ncompression = "gzip"\n'
        + 'delay_compression = true\nkeep_last = 5\nkeep_age = "30d"\n'
        + 'signal = { containers = ["app", "label=role=web"], signal = "USR1" }\n',
    )
    (step,) = job.plan(PlanContext("r", "ops:1")).steps
    assert isinstance(step, RotateLogs)
    tool = ("python3", "-m", "jobs.tools.rotate")
    assert step.rotate.command == (
        *tool, "rotate", "--state-stdin", "--mode", "copytruncate", "--min-size", "1024",
        "--max-size", str(10 * 1024 * 1024), "--max-age", "86400.0", "--confine", "--",
        "/var/log/app/*.log",
    )  # fmt: skip
    assert step.finish.command == (
        *tool, "finish", "--compression", "gzip", "--delay-compression", "--keep-last", "5",
        "--keep-age", str(30 * 86400.0), "--confine", "--", "/var/log/app/*.log",
    )  # fmt: skip
    assert step.rotate.volumes_from == ("app",)  # writable: rotation renames
    assert step.rotate.healthcheck is False
    assert step.tell == SignalContainers(("app", "label=role=web"), "SIGUSR1")


def run_rotation(
    tmp_path: Path, engine: FakeEngine, store: Store, extra: str = ""
) -> tuple[Outcome, list[MutableMapping[str, Any]]]:
    job = load(tmp_path, GOOD + 'signal = { containers = ["app"] }\n' + extra)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("r", "ops:1")).steps
    executor = StepExecutor(engine, config.daemon, engine.clock, store)
    with structlog.testing.capture_logs() as logs:
        outcome = executor.run(Attempt("r1", "r", job, Cancellation()), step)
    return outcome, logs


def report(rotated: list[dict[str, str]], state: dict[str, Any]) -> list[tuple[str, bytes]]:
    result = {"rotated": rotated, "state": state, "compressed": [], "deleted": []}
    return [("stderr", control({"result": result}))]


def test_something_rotated_the_app_is_signalled_between_rotation_and_finish(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(FakeClock())
    log = "/var/log/app/app.log"
    engine.output_chunks = report([{"path": log, "to": log + ".x"}], {log: {"since": T2}})
    store = Store({log: {"since": T1}, "/var/log/app/gone.log": {"since": T0}}, job="r")
    outcome, logs = run_rotation(tmp_path, engine, store)
    assert outcome.status is Status.SUCCEEDED
    assert outcome.details["rotated"] == [log + ".x"]
    calls = [name for name in engine.names() if name in ("create", "select", "kill")]
    # each ops container's volumes_from is resolved before it is created
    assert calls == ["select", "create", "select", "kill", "select", "create"]
    assert engine.created_specs[0].stdin  # the rotation gets the state on its stdin
    assert json.loads(bytes(engine.stdin.data)) == {
        log: {"since": T1},
        "/var/log/app/gone.log": {"since": T0},
    }
    assert store.saved == {log: {"since": T2}}  # the new state; the gone file forgotten
    assert [e["event"] for e in logs if e["event"] != "run.output"] == [
        "run.file_rotated",
        "run.signal_sent",
    ]


def test_nothing_rotated_no_signal(tmp_path: Path) -> None:
    engine = FakeEngine(FakeClock())
    engine.output_chunks = report([], {})
    outcome, _ = run_rotation(tmp_path, engine, Store({}, job="r"))
    assert outcome.status is Status.SUCCEEDED
    assert "kill" not in engine.names()
    assert engine.names().count("create") == 2  # rotation, then compress and prune


def test_a_missing_app_fails_the_run_after_the_rotation_and_still_compresses(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(FakeClock(), fail={"kill": EngineError("no such container: 'app'")})
    log = "/var/log/app/app.log"
    engine.output_chunks = report([{"path": log, "to": log + ".x"}], {log: {"since": T1}})
    outcome, _ = run_rotation(tmp_path, engine, Store({}, job="r"))
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "rotated 1 file(s), but telling the app failed: no such container: 'app'"
    )
    assert engine.names().count("create") == 2  # compression ran anyway
