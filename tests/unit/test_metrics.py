"""Metrics counted as runs end, gauges read at scrape time, and the read-only HTTP listener."""

from __future__ import annotations

import json
import platform
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.engine import ExitStatus
from scheduler.metrics import Live, Metrics
from scheduler.runs import Status
from scheduler.settings import load_config
from scheduler.status import Health, StatusServer
from tests import receiver

from .fakes import FakeClock, FakeEngine
from .helpers import Hooks
from .test_runner import SCHEDULED, make_config, make_runner

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from scheduler.settings import JobEntry

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def jobs_of(tmp_path: Path) -> Mapping[str, JobEntry]:
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.a]\nkind = "run"\nimage = "x"\nschedule = "* * * * *"\n'
        '[jobs.off]\nkind = "run"\nimage = "x"\nschedule = "@daily"\nenabled = false\n'
    )
    return load_config(path, {}).jobs


def make_metrics(tmp_path: Path, engine_error: str | None = None) -> Metrics:
    jobs = jobs_of(tmp_path)
    return Metrics(
        Live(
            jobs=lambda: jobs,
            running=lambda: {"a": 2},
            now=lambda: NOW,
            engine_error=lambda: engine_error,
        )
    )


def test_ended_attempts_count_by_job_and_status_and_set_the_times(tmp_path: Path) -> None:
    metrics = make_metrics(tmp_path)
    metrics.seed("a", None, datetime(2026, 11, 1, tzinfo=UTC))
    metrics.ended("a", Status.SUCCEEDED, NOW, 2.5)
    metrics.ended("a", Status.FAILED, NOW, 70.0)
    metrics.ended("a", Status.SKIPPED, NOW, None)
    metrics.ended("a", Status.SKIPPED, NOW, None)
    found = samples(metrics)
    runs = "crontainer_runs_total"
    assert found[(runs, (("job", "a"), ("status", "succeeded")))] == 1
    assert found[(runs, (("job", "a"), ("status", "failed")))] == 1
    assert found[(runs, (("job", "a"), ("status", "skipped")))] == 2
    assert found[("crontainer_run_duration_seconds_count", (("job", "a"),))] == 2
    assert found[("crontainer_run_duration_seconds_bucket", (("job", "a"), ("le", "5.0")))] == 1
    assert found[("crontainer_last_run_timestamp_seconds", (("job", "a"),))] == NOW.timestamp()
    assert found[("crontainer_last_success_timestamp_seconds", (("job", "a"),))] == NOW.timestamp()
    assert found[("crontainer_runs_running", (("job", "a"),))] == 2
    assert found[("crontainer_runs_running", (("job", "off"),))] == 0


def test_last_success_survives_a_restart_through_the_seed(tmp_path: Path) -> None:
    metrics = make_metrics(tmp_path)
    earlier = datetime(2026, 11, 1, tzinfo=UTC)
    metrics.seed("a", earlier, earlier)
    metrics.ended("a", Status.FAILED, NOW, 1.0)  # a failure does not move the last success
    found = samples(metrics)
    assert found[("crontainer_last_success_timestamp_seconds", (("job", "a"),))] == (
        earlier.timestamp()
    )
    assert found[("crontainer_last_run_timestamp_seconds", (("job", "a"),))] == NOW.timestamp()


def test_next_run_engine_up_and_reloads(tmp_path: Path) -> None:
    metrics = make_metrics(tmp_path, engine_error="connection refused")
    metrics.reloaded(applied=True)
    metrics.reloaded(applied=False)
    metrics.reloaded(applied=False)
    found = samples(metrics)
    next_minute = datetime(2026, 11, 28, 12, 1, tzinfo=UTC).timestamp()
    assert found[("crontainer_next_run_timestamp_seconds", (("job", "a"),))] == next_minute
    assert ("crontainer_next_run_timestamp_seconds", (("job", "off"),)) not in found
    assert found[("crontainer_engine_up", ())] == 0
    assert found[("crontainer_config_reloads_total", (("result", "applied"),))] == 1
    assert found[("crontainer_config_reloads_total", (("result", "invalid"),))] == 2


def test_runs_waiting_for_a_lock_are_shown_for_jobs_with_a_lock(tmp_path: Path) -> None:
    """crontainer_runs_waiting_for_lock: the runs waiting, by job, for each job that has a
    lock (0 when none waits); no series for a job without one."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.a]\nkind = "run"\nimage = "x"\nschedule = "@daily"\nlock = "db"\n'
        '[jobs.b]\nkind = "run"\nimage = "x"\nschedule = "@daily"\nlock = ["db", "files"]\n'
        '[jobs.c]\nkind = "run"\nimage = "x"\nschedule = "@daily"\n'
    )
    jobs = load_config(path, {}).jobs
    live = Live(
        jobs=lambda: jobs,
        running=lambda: {"a": 1, "b": 2},
        now=lambda: NOW,
        engine_error=lambda: None,
        waiting=lambda: {"b": 2},
    )
    found = samples(Metrics(live))
    gauge = "crontainer_runs_waiting_for_lock"
    assert found[(gauge, (("job", "a"),))] == 0
    assert found[(gauge, (("job", "b"),))] == 2
    assert (gauge, (("job", "c"),)) not in found


def test_registering_collects_nothing(tmp_path: Path) -> None:
    """Building the metrics reads no job (prometheus-client's auto-describe used to collect
    at registration: every job's next time computed at start); a scrape reads them once."""
    jobs = jobs_of(tmp_path)
    reads: list[int] = []

    def read_jobs() -> Mapping[str, JobEntry]:
        reads.append(1)
        return jobs

    metrics = Metrics(Live(jobs=read_jobs, running=dict, now=lambda: NOW, engine_error=str))
    assert reads == []
    metrics.render()
    assert reads == [1]


def test_the_next_run_is_the_loops_while_it_is_ahead(tmp_path: Path) -> None:
    """The gauge shows the time the scheduling loop holds for that very job (here not what
    the schedule alone would say, so it cannot be computed); a time already passed (a run
    due, not fired yet) or another definition of the job (a reload under way) is computed
    from the schedule: the next minute."""
    jobs = jobs_of(tmp_path)
    later = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    planned: dict[str, tuple[JobEntry, datetime | None]] = {"a": (jobs["a"], later)}
    metrics = Metrics(
        Live(
            jobs=lambda: jobs,
            running=dict,
            now=lambda: NOW,
            engine_error=lambda: None,
            planned=lambda: planned,
        )
    )
    next_run = ("crontainer_next_run_timestamp_seconds", (("job", "a"),))
    assert samples(metrics)[next_run] == later.timestamp()
    next_minute = datetime(2026, 11, 28, 12, 1, tzinfo=UTC).timestamp()
    planned["a"] = (jobs["a"], NOW)
    assert samples(metrics)[next_run] == next_minute
    (tmp_path / "again").mkdir()
    other = jobs_of(tmp_path / "again")["a"]  # an equal job, another entry
    planned["a"] = (other, later)
    assert samples(metrics)[next_run] == next_minute
    planned["a"] = (jobs["a"], None)  # the loop says it never fires
    assert next_run not in samples(metrics)


def test_the_runner_counts_what_the_history_records(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(0), ExitStatus(3)])
    ended: list[tuple[str, str, float | None]] = []
    runner = make_runner(config, engine)
    runner.add_listener(
        Hooks(lambda job, status, _at, duration: ended.append((job, status, duration)))
    )
    for _ in range(2):
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    assert [(job, status) for job, status, _ in ended] == [("j", "succeeded"), ("j", "failed")]
    assert all(duration is not None for _, _, duration in ended)


@dataclass
class Served:
    base: str
    health: Health
    loop: threading.Event
    engine_error: list[str | None]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    loop = threading.Event()
    loop.set()
    engine_error: list[str | None] = [None]
    health = Health(loop.is_set, lambda: engine_error[0])
    status = StatusServer("127.0.0.1", 0, make_metrics(tmp_path), health)
    status.start()
    yield Served(f"http://127.0.0.1:{status.port}", health, loop, engine_error)
    status.stop()


def get(url: str) -> tuple[int, str]:
    return receiver.get(url, timeout=5)


def test_metrics_health_and_readiness_over_http(server: Served) -> None:
    base, health = server.base, server.health
    status, body = get(base + "/metrics")
    assert status == 200
    assert "crontainer_runs_running" in body
    assert get(base + "/healthz") == (200, '{"status": "ok"}\n')
    status, body = get(base + "/readyz")
    assert (status, json.loads(body)["status"]) == (503, "starting")
    health.ready.set()
    assert get(base + "/readyz")[0] == 200
    server.engine_error[0] = "connection refused"
    status, body = get(base + "/healthz")
    assert status == 503
    assert json.loads(body) == {
        "status": "unhealthy",
        "reason": "the engine does not answer: connection refused",
    }
    server.engine_error[0] = None
    server.loop.clear()
    status, body = get(base + "/healthz")
    assert (status, json.loads(body)["reason"]) == (503, "the scheduler loop is not running")
    assert get(base + "/nope")[0] == 404


def test_the_listener_is_read_only(server: Served) -> None:
    url = server.base + "/jobs/a/trigger"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - local
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - a local URL
    assert caught.value.code == 405


def test_build_info_names_the_versions_and_no_created_series_is_exported(tmp_path: Path) -> None:
    """crontainer_build_info is 1 with the package's and Python's versions as labels; the
    counters and the histogram have no ``*_created`` series."""
    metrics = make_metrics(tmp_path)
    metrics.ended("a", Status.SUCCEEDED, NOW, 2.5)
    metrics.reloaded(applied=True)
    found = samples(metrics)
    labels = (("python", platform.python_version()), ("version", version("crontainer")))
    assert found[("crontainer_build_info", labels)] == 1
    assert [name for name, _ in found if name == "crontainer_build_info"] == [
        "crontainer_build_info"
    ]
    text = metrics.render().decode()
    assert "crontainer_runs_total{" in text
    assert "_created" not in text
