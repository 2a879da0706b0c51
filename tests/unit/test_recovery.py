"""Settling what an earlier instance left: record, adopt, remove, or mark interrupted."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_ROLE,
    LABEL_RUN,
    ContainerInfo,
    ExitStatus,
)
from scheduler.history import History
from scheduler.recovery import settle
from scheduler.runner import Runner
from scheduler.settings import load_config

from .fakes import FakeClock, FakeEngine

T0 = datetime(2026, 1, 5, 11, 59, tzinfo=UTC)


def container(cid: str, run_id: str, state: str, attempt: int = 1) -> ContainerInfo:
    labels = {LABEL_DAEMON: "d", LABEL_JOB: "j", LABEL_RUN: run_id, LABEL_ATTEMPT: str(attempt)}
    return ContainerInfo(id=cid, name=cid, state=state, labels=labels)


def settle_left(
    tmp_path: Path, engine: FakeEngine, begun: list[str]
) -> tuple[History, list[MutableMapping[str, Any]]]:
    """Settle what ``engine`` holds, with the attempts ``begun`` recorded running by an
    earlier daemon of job j; return the history and the events, once adopted runs ended."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
    )
    config = load_config(path, {})
    history = History.open(tmp_path)
    for run_id in begun:
        history.begin(run_id, 1, "j", trigger="schedule", scheduled_at=T0, started_at=T0)
    runner = Runner(engine, config.daemon, engine.clock, "ops", history)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        settle(engine, history, runner, jobs=config.jobs, daemon="d", clock=engine.clock)
        assert runner.join(10)
    return history, logs


def test_settle_records_adopts_removes_and_marks_interrupted(tmp_path: Path) -> None:
    """exited → true outcome + removed; running → adopted; unknown running → stopped and
    removed; a running row without a container → failed/interrupted; the lock is left alone."""
    engine = FakeEngine(
        FakeClock(),
        exit_status=ExitStatus(4),
        containers=[
            container("c-exited", "exited", "exited"),
            container("c-alive", "alive", "running"),
            container("c-stray", "unknown-run", "running"),
            ContainerInfo(
                id="c-lock",
                name="d.lock",
                state="running",
                labels={LABEL_DAEMON: "d", LABEL_ROLE: "lock"},
            ),
        ],
    )
    history, logs = settle_left(tmp_path, engine, ["exited", "alive", "gone"])
    rows = {r.run_id: r for r in history.runs()}
    assert (rows["exited"].status, rows["exited"].exit_code, rows["exited"].reason) == (
        "failed",
        4,
        "settled_after_restart",
    )
    assert (rows["alive"].status, rows["alive"].exit_code) == (
        "failed",
        4,
    )  # adopted, waited for, recorded
    assert (rows["gone"].status, rows["gone"].reason) == ("failed", "interrupted")
    removed = [str(arg) for name, arg in engine.calls if name == "remove"]
    assert sorted(removed) == ["c-alive", "c-exited", "c-stray"]
    assert ("stop", 10.0) in engine.calls  # the stray one
    assert [e["run_id"] for e in logs if e["event"] == "run.adopted"] == ["alive"]
    assert [e["container_id"] for e in logs if e["event"] == "run.orphan_removed"] == ["c-stray"]


def test_settle_starts_again_what_a_dead_run_stopped(tmp_path: Path) -> None:
    """A container recorded as stopped by a run and still stopped is started; its record goes."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n')
    config = load_config(path, {})
    history = History.open(tmp_path)
    history.mark_stopped("r9", "app-db", T0)
    history.mark_stopped("r9", "already-up", T0)
    engine = FakeEngine(FakeClock(), not_running={"app-db"})
    runner = Runner(engine, config.daemon, engine.clock, "ops", history)
    settle(engine, history, runner, jobs=config.jobs, daemon="d", clock=engine.clock)
    assert [a for n, a in engine.calls if n == "start"] == ["app-db"]
    assert history.still_stopped() == []


def test_a_paused_container_is_alive_not_settled(tmp_path: Path) -> None:
    """A paused container goes on when unpaused: a known one is adopted (not waited for 30 s,
    removed and recorded 'never_started'); an unknown paused one is stopped like a running
    stray."""
    engine = FakeEngine(
        FakeClock(),
        containers=[
            container("c-held", "held", "paused"),
            container("c-stray", "unknown-run", "paused"),
        ],
    )
    history, logs = settle_left(tmp_path, engine, ["held"])
    assert [e["run_id"] for e in logs if e["event"] == "run.adopted"] == ["held"]
    rows = {r.run_id: r for r in history.runs()}
    assert (rows["held"].status, rows["held"].reason) == ("succeeded", None)
    assert ("stop", 10.0) in engine.calls  # the stray one
    assert [e["reason"] for e in logs if e["event"] == "run.orphan_removed"] == ["orphan_stopped"]


def test_an_exited_shipping_container_left_by_a_dead_daemon_gives_its_checkpoints(
    tmp_path: Path,
) -> None:
    """Settling a logship container that ended while no daemon read it: the checkpoints it
    reported (in its own log) are stored under its job before it is removed — the job's
    step handlers say what a container holds; a run job's container gives nothing."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n'
        '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\ncontainers = ["web"]\n'
        '[jobs.s.sink]\ntype = "file"\nvolume = "shipped"\npath = "out.ndjson"\n'
        '[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
    )
    config = load_config(path, {})
    history = History.open(tmp_path)
    history.begin("r1", 1, "s", trigger="schedule", scheduled_at=T0, started_at=T0)
    history.begin("r2", 1, "j", trigger="schedule", scheduled_at=T0, started_at=T0)
    engine = FakeEngine(FakeClock())
    ship = ContainerInfo(
        id="c-ship",
        name="c-ship",
        state="exited",
        labels={LABEL_DAEMON: "d", LABEL_JOB: "s", LABEL_RUN: "r1", LABEL_ATTEMPT: "1"},
    )
    engine.containers = [ship, container("c-run", "r2", "exited")]
    mark = b'@crontainer {"checkpoint": {"container:web:stdout": {"ns": 5, "skip": 1}}}'
    engine.log_entries[("c-ship", "stderr")] = [(1, "t", mark)]
    engine.log_entries[("c-run", "stderr")] = [
        (1, "t", b'@crontainer {"checkpoint": {"container:x:stdout": {"ns": 1, "skip": 1}}}')
    ]
    runner = Runner(engine, config.daemon, engine.clock, "ops", history)
    settle(engine, history, runner, jobs=config.jobs, daemon="d", clock=engine.clock)
    assert history.tool_state("s") == {"container:web:stdout": {"ns": 5, "skip": 1}}
    assert history.tool_state("j") == {}
    assert ("logs", ("c-run", "stderr", 0)) not in engine.calls
    logs_then_removed = [
        c for c in engine.calls if c[0] in ("logs", "remove") and "c-ship" in str(c)
    ]
    assert logs_then_removed == [("logs", ("c-ship", "stderr", 0)), ("remove", "c-ship")]
    history.close()
