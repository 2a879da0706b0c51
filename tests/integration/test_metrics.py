"""/metrics, /healthz and /readyz of a real daemon: the numbers match the history while jobs
succeed, fail and get skipped; health follows the engine going away and coming back."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import receiver

from .conftest import Daemon, PrivateEngine, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
KEEP = {"history_limit": 100000}


def get(url: str) -> tuple[int, str]:
    return receiver.get(url, timeout=10)


def healthz_becomes(base: str, wanted: int, timeout: float = 30) -> str:
    """Poll /healthz until it answers ``wanted``; return the body."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(base + "/healthz")
        if status == wanted:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {status}: {body}"
        time.sleep(0.2)


def base_url(daemon: Daemon) -> str:
    listening = daemon.log.wait_for(event("http.listening"), timeout=30)[0]
    return f"http://127.0.0.1:{listening['port']}"


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(base + "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def runs(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], job: str, status: str
) -> float:
    return found.get(("crontainer_runs_total", (("job", job), ("status", status))), 0.0)


def test_metrics_match_the_history(start_daemon: Start) -> None:
    daemon = start_daemon(
        run_job("ok", ["true"], schedule="@every 1s", **KEEP)
        + run_job("bad", ["sh", "-c", "exit 3"], schedule="@every 1s", **KEEP)
        + run_job("slow", ["sleep", "3"], schedule="@every 1s", **KEEP)
    )
    base = base_url(daemon)
    daemon.log.wait_for(event("run.succeeded", job="ok"), timeout=60, count=3)
    daemon.log.wait_for(event("run.failed", job="bad"), timeout=60, count=3)
    daemon.log.wait_for(event("run.skipped", job="slow"), timeout=60, count=2)
    before = scrape(base)
    history = Counter((r["job"], r["status"]) for r in daemon.history())
    scraped_at = time.time()  # the next run is after the scrape (not after the asserts)
    after = scrape(base)
    for job, status in (("ok", "succeeded"), ("bad", "failed"), ("slow", "skipped")):
        assert runs(before, job, status) <= history[job, status] <= runs(after, job, status)
        assert history[job, status] > 0
    assert runs(after, "ok", "failed") == 0
    assert after[("crontainer_engine_up", ())] == 1
    now = time.time()
    assert now - 60 < after[("crontainer_last_success_timestamp_seconds", (("job", "ok"),))] <= now
    assert ("crontainer_last_success_timestamp_seconds", (("job", "bad"),)) not in after
    assert scraped_at < after[("crontainer_next_run_timestamp_seconds", (("job", "ok"),))] < now + 5
    assert after[("crontainer_run_duration_seconds_count", (("job", "ok"),))] >= 3
    assert get(base + "/healthz") == (200, '{"status": "ok"}\n')
    assert get(base + "/readyz")[0] == 200

    daemon.config.write_text(daemon.config.read_text() + "\n[jobs.broken\n")
    daemon.signal(signal.SIGHUP)
    daemon.log.wait_for(event("config.invalid"), timeout=30)
    reloads = scrape(base)
    assert reloads[("crontainer_config_reloads_total", (("result", "invalid"),))] >= 1
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_healthz_follows_the_engine(start_daemon: Start, private_engine: PrivateEngine) -> None:
    daemon = start_daemon(
        run_job("tick", ["true"], schedule="@every 2s"),
        daemon='ops_image = "busybox:latest"\nshutdown_grace = "5s"',
        env={"DOCKER_HOST": private_engine.host},
    )
    base = base_url(daemon)
    daemon.log.wait_for(event("daemon.started"), timeout=60)
    assert get(base + "/healthz")[0] == 200
    private_engine.stop()
    daemon.log.wait_for(event("engine.unavailable"), timeout=30)
    reply = json.loads(healthz_becomes(base, 503))
    assert reply["status"] == "unhealthy"
    assert reply["reason"].startswith("the engine does not answer: ")
    assert scrape(base)[("crontainer_engine_up", ())] == 0
    private_engine.start()
    daemon.log.wait_for(event("engine.available"), timeout=60)
    healthz_becomes(base, 200)  # once what the outage left is settled
    assert scrape(base)[("crontainer_engine_up", ())] == 1
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
