"""Notifications from a real daemon: a webhook receiver that is down, then up — runs go on
at their schedule, the notification arrives after retries, the cooldown holds."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from typing import ClassVar

import pytest

from tests.receiver import PostReceiver, serving

from .conftest import Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


class Hook(PostReceiver):
    bodies: ClassVar[list[dict[str, object]]] = []

    def take(self, body: bytes) -> int:
        Hook.bodies.append(json.loads(body))
        return 204


def test_a_webhook_down_then_up_gets_one_notification_and_runs_go_on(
    start_daemon: Start,
) -> None:
    Hook.bodies = []
    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notify = {
        "webhook": f"http://127.0.0.1:{port}/hook?token=s3cret",
        "retries": 6,
        "retry_delay": "1s",
        "cooldown": "1h",
    }
    daemon = start_daemon(
        run_job("bad", ["sh", "-c", "exit 3"], schedule="@every 1s", notify=notify)
    )
    daemon.log.wait_for(event("run.failed", job="bad"), timeout=60, count=3)
    assert Hook.bodies == []
    with serving(Hook, port):
        sent = daemon.log.wait_for(event("notify.sent", job="bad"), timeout=60)[0]
        assert sent["attempts"] > 1  # it came after retries
        failed_before = len(daemon.log.matching(event("run.failed", job="bad")))
        daemon.log.wait_for(event("run.failed", job="bad"), timeout=30, count=failed_before + 3)
        # Stop while the receiver still listens: the daemon sends what is queued before it
        # exits, so every notification it would send has arrived when it has exited.
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(60) == 0
    assert len(Hook.bodies) == 1  # the cooldown holds the later failures back
    (body,) = Hook.bodies
    assert body["notification"] == "failure"
    assert body["job"] == "bad"
    assert body["exit_code"] == 3
    assert daemon.log.matching(event("notify.suppressed", job="bad"))
    assert not any("s3cret" in line for line in daemon.log.raw)
