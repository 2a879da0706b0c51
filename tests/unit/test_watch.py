"""The engine watch: an outage is logged once, due runs are recorded missed, recovery settles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog

from scheduler.engine_health import EngineHealth
from scheduler.errors import EngineUnavailableError
from scheduler.history import History
from scheduler.runner import Runner
from scheduler.settings import load_config
from scheduler.watch import EngineWatch

from .fakes import FakeClock, FakeEngine, FakeLock


def test_outage_then_recovery(tmp_path: Path) -> None:
    """Two failed pings: one engine.unavailable; a due run meanwhile is missed (engine_unavailable);
    the engine back: engine.available, the lost lock is taken again, runs start again."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n[jobs.j]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
    )
    config = load_config(path, {})
    engine = FakeEngine(FakeClock())
    history = History.open(tmp_path)
    health = EngineHealth()
    runner = Runner(engine, config.daemon, engine.clock, "ops", history, engine_health=health)
    lock = FakeLock()
    watch = EngineWatch(
        engine,
        history,
        runner,
        lock,
        daemon="d",
        ops_image="ops",
        clock=engine.clock,
        health=health,
    )
    entry = config.jobs["j"]
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    with structlog.testing.capture_logs() as logs:
        engine.fail["ping"] = EngineUnavailableError("ping: the Docker engine did not answer")
        lock.lost.set()
        assert watch.check(config.jobs) is None
        assert watch.check(config.jobs) is None
        assert watch.interval == 1.0  # backing off
        assert runner.submit(entry, now) is None
        del engine.fail["ping"]
        assert watch.check(config.jobs) is None
        assert runner.submit(entry, now) is not None
        assert runner.join(10)
    names = [e["event"] for e in logs]
    assert names.count("engine.unavailable") == 1
    assert names.count("engine.available") == 1
    assert "lock.retaken" in names
    assert watch.lock is not lock
    statuses = sorted(r.status for r in history.runs("j"))
    assert statuses == ["missed", "succeeded"]
    assert next(r for r in history.runs("j") if r.status == "missed").reason == "engine_unavailable"
