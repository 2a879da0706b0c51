"""Notifications: what is told when, off the run's path, with retries, cooldown and no
secret in any log line."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import structlog

from jobs.base import NotifySpec
from scheduler.engine import ExitStatus
from scheduler.notify import Notifier, RunReport
from tests.receiver import PostReceiver, garbage_server, serving

from .fakes import FakeClock, FakeEngine
from .helpers import Hooks
from .test_runner import SCHEDULED, make_config, make_runner

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping


class Hook(PostReceiver):
    """A receiver: ``fail`` answers 503 that many times; ``gate`` holds every answer."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    fail: ClassVar[int] = 0
    gate: ClassVar[threading.Event] = threading.Event()
    arrived: ClassVar[threading.Condition] = threading.Condition()

    def take(self, body: bytes) -> int:
        self.gate.wait(10)
        if Hook.fail > 0:
            Hook.fail -= 1
            return 503
        with Hook.arrived:
            Hook.received.append((self.path, dict(self.headers), body))
            Hook.arrived.notify_all()
        return 200


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received, Hook.fail = [], 0
    Hook.gate = threading.Event()
    Hook.gate.set()
    with serving(Hook) as port:
        yield f"http://127.0.0.1:{port}"


def wait_received(count: int, timeout: float = 10) -> list[tuple[str, dict[str, str], bytes]]:
    with Hook.arrived:
        assert Hook.arrived.wait_for(lambda: len(Hook.received) >= count, timeout), Hook.received
        return list(Hook.received)


def spec(base: str, **keys: Any) -> NotifySpec:
    values: dict[str, Any] = {"webhook": f"{base}/hook?token=s3cret", "retry_delay": 0.01}
    values.update(keys)
    return NotifySpec.model_validate(values)


def report(status: str, run_id: str = "r1", **keys: Any) -> RunReport:
    return RunReport(job="db", run_id=run_id, status=status, **keys)


@pytest.fixture
def notifier() -> Iterator[Notifier]:
    made = Notifier("box", "cron1", FakeClock())
    made.start()
    yield made
    made.close(5)


def test_a_failure_posts_the_documented_payload(hook: str, notifier: Notifier) -> None:
    notifier.report(
        spec(hook),
        report("failed", attempt=2, exit_code=3, duration_s=1.5, output_tail=("a", "b")),
    )
    ((path, headers, body),) = wait_received(1)
    assert path == "/hook?token=s3cret"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload == {
        **payload,
        "event": "run.failed",
        "notification": "failure",
        "job": "db",
        "run_id": "r1",
        "status": "failed",
        "attempt": 2,
        "exit_code": 3,
        "duration_s": 1.5,
        "output_tail": ["a", "b"],
        "host": "box",
        "daemon": "cron1",
    }


def test_a_chained_runs_payload_names_its_parent(hook: str, notifier: Notifier) -> None:
    """A chained run's failure: trigger chain, and the parent's job, run id and status; a
    run not chained has them null."""
    hooks = spec(hook, cooldown=0)
    notifier.report(
        hooks,
        report(
            "failed",
            "r1",
            trigger="chain",
            parent_job="dump",
            parent_run_id="p1",
            parent_status="succeeded",
        ),
    )
    notifier.report(hooks, report("failed", "r2", trigger="schedule"))
    payloads = [json.loads(body) for _, _, body in wait_received(2)]
    assert [
        (p["run_id"], p["trigger"], p["parent_job"], p["parent_run_id"], p["parent_status"])
        for p in sorted(payloads, key=lambda p: p["run_id"])
    ] == [("r1", "chain", "dump", "p1", "succeeded"), ("r2", "schedule", None, None, None)]


def test_success_only_when_asked_recovery_after_a_failure(hook: str, notifier: Notifier) -> None:
    hooks = spec(hook, cooldown=0)
    notifier.report(hooks, report("succeeded", "r1"))  # success is not in the default 'on'
    notifier.report(hooks, report("missed", "r2"))
    notifier.report(hooks, report("succeeded", "r3"))
    notifier.report(hooks, report("skipped", "r4"))
    kinds = [json.loads(body)["notification"] for _, _, body in wait_received(2)]
    assert kinds == ["missed", "recovery"]


def test_the_run_never_waits_for_a_slow_receiver(hook: str, notifier: Notifier) -> None:
    Hook.gate.clear()  # every answer is held until the test releases it
    for number in range(3):
        notifier.report(spec(hook, cooldown=0), report("failed", f"r{number}"))
    assert Hook.received == []  # reported, returned, nothing delivered yet
    Hook.gate.set()
    assert len(wait_received(3)) == 3


def test_a_receiver_down_then_up_gets_it_after_retries(hook: str, notifier: Notifier) -> None:
    Hook.fail = 2
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(hook, retries=3), report("failed"))
        wait_received(1)
        notifier.close(5)
    sent = [e for e in logs if e["event"] == "notify.sent"]
    assert sent[0]["attempts"] == 3
    assert sent[0]["target"] == hook + "/…"  # no path or query: they may hold tokens


def test_giving_up_is_logged_without_the_secret(notifier: Notifier) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://user:pw@127.0.0.1:{port}/hooks/s3cret-path?token=s3cret"
    with structlog.testing.capture_logs() as logs:
        notifier.report(NotifySpec(webhook=url, retries=1, retry_delay=0.01), report("failed"))
        notifier.close(5)
    (failed,) = [e for e in logs if e["event"] == "notify.failed"]
    assert failed["attempts"] == 2
    assert "s3cret" not in json.dumps(logs)
    assert "pw" not in json.dumps(logs)


def test_cooldown_holds_per_job_and_kind(hook: str) -> None:
    clock = FakeClock()
    notifier = Notifier("box", "cron1", clock)
    notifier.start()
    hooks = spec(hook, cooldown=600)
    with structlog.testing.capture_logs() as logs:
        notifier.report(hooks, report("failed", "r1"))
        notifier.report(hooks, report("failed", "r2"))  # within the cooldown: suppressed
        clock.advance(601)
        notifier.report(hooks, report("failed", "r3"))
        notifier.close(5)
    run_ids = [json.loads(body)["run_id"] for _, _, body in Hook.received]
    assert run_ids == ["r1", "r3"]
    assert [e["run_id"] for e in logs if e["event"] == "notify.suppressed"] == ["r2"]


def test_pings_tell_start_success_and_failure(hook: str, notifier: Notifier) -> None:
    pings = NotifySpec(ping=f"{hook}/ping/uuid-1234")
    notifier.report(pings, report("started"))
    notifier.report(pings, report("succeeded"))
    notifier.report(pings, report("timed_out", reason="timeout"))
    notifier.report(pings, report("cancelled"))
    received = wait_received(3)
    assert [path for path, _, _ in received] == [
        "/ping/uuid-1234/start",
        "/ping/uuid-1234",
        "/ping/uuid-1234/fail",
    ]
    assert received[2][2] == b"timeout"


def test_secret_headers_are_read_when_sent(
    hook: str, notifier: Notifier, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "Bearer t0ken")
    key = tmp_path / "key"
    key.write_text("k3y\n")
    hooks = spec(
        hook, headers={"Authorization": {"env": "HOOK_TOKEN"}, "X-Key": {"file": str(key)}}
    )
    notifier.report(hooks, report("failed"))
    ((_, headers, _),) = wait_received(1)
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["X-Key"] == "k3y"


def test_the_runner_reports_the_start_and_only_the_last_attempt(tmp_path: Path) -> None:
    config = make_config(tmp_path, job='retries = 1\nretry_delay = "0s"\n')
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(3), ExitStatus(0)])
    heard: list[RunReport] = []
    runner = make_runner(config, engine)
    runner.add_listener(Hooks(report=lambda _spec, report: heard.append(report)))
    runner.submit(config.jobs["j"], SCHEDULED)
    assert runner.join(10)
    assert [(r.status, r.attempt) for r in heard] == [("started", None), ("succeeded", 2)]
    assert heard[1].duration_s is not None


def outcome(logs: list[MutableMapping[str, Any]], run_id: str) -> MutableMapping[str, Any]:
    """The one notify.sent or notify.failed event of ``run_id``."""
    (event,) = [
        e for e in logs if e["event"] in ("notify.sent", "notify.failed") and e["run_id"] == run_id
    ]
    return event


def test_an_answer_that_is_not_http_fails_and_the_next_is_sent(
    hook: str, notifier: Notifier
) -> None:
    """A receiver answering a non-HTTP line is notify.failed after the retries (no
    secret in the error); the worker goes on and the next notification is delivered."""
    with garbage_server() as garbage, structlog.testing.capture_logs() as logs:
        notifier.report(spec(garbage, retries=1, cooldown=0), report("failed", "r1"))
        notifier.report(spec(hook, cooldown=0), report("failed", "r2"))
        ((_, _, body),) = wait_received(1)
        notifier.close(5)
    assert json.loads(body)["run_id"] == "r2"
    failed = outcome(logs, "r1")
    assert failed["event"] == "notify.failed"
    assert failed["attempts"] == 2
    assert failed["target"] == garbage + "/…"
    assert failed["error"] == "not an HTTP answer (BadStatusLine)"
    assert outcome(logs, "r2")["event"] == "notify.sent"
    assert "s3cret" not in json.dumps(logs)


def test_an_error_outside_os_errors_fails_and_the_next_is_sent(
    hook: str, notifier: Notifier
) -> None:
    """A timeout the socket cannot hold raises OverflowError while sending: that is
    notify.failed, and the next notification is delivered."""
    # past what the config takes (or will): set on a validated spec, as a bug could
    too_long = spec(hook, retries=0, cooldown=0).model_copy(update={"timeout": 8.64e18})
    with structlog.testing.capture_logs() as logs:
        notifier.report(too_long, report("failed", "r1"))
        notifier.report(spec(hook, cooldown=0), report("failed", "r2"))
        ((_, _, body),) = wait_received(1)
        notifier.close(5)
    assert json.loads(body)["run_id"] == "r2"
    failed = outcome(logs, "r1")
    assert (failed["event"], failed["error"]) == ("notify.failed", "OverflowError while sending")
    assert outcome(logs, "r2")["event"] == "notify.sent"


@pytest.mark.parametrize(
    "value",
    ["t0ken\r\nX-Evil: s3cret", "t0ken\r\n s3cret", "t0ken\x00s3cret", "t0ken\ns3cret"],
)
def test_a_header_value_with_a_control_character_is_named_never_shown(
    hook: str, notifier: Notifier, value: str
) -> None:
    """A header value with CR, LF or another control character is not sent (not even
    as a folded line): notify.failed names the header, never its value; the next
    notification is delivered."""
    # set on a validated spec: the config may refuse such a literal, but a secret read
    # when sent ({ env }, { file }) can hold one
    bad = spec(hook, retries=1, cooldown=0).model_copy(update={"headers": {"X-Token": value}})
    with structlog.testing.capture_logs() as logs:
        notifier.report(bad, report("failed", "r1"))
        notifier.report(spec(hook, cooldown=0), report("failed", "r2"))
        received = wait_received(1)
        notifier.close(5)
    assert [json.loads(body)["run_id"] for _, _, body in received] == ["r2"]
    failed = outcome(logs, "r1")
    assert failed["event"] == "notify.failed"
    assert failed["attempts"] == 2
    assert failed["error"] == "header 'X-Token' holds a control character"
    assert outcome(logs, "r2")["event"] == "notify.sent"
    assert "s3cret" not in json.dumps(logs)


def test_a_bug_in_one_delivery_does_not_stop_the_sender(
    hook: str, notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception escaping a delivery (a bug) is notify.crashed with its type only;
    the worker thread goes on with the next delivery."""
    deliver = notifier._deliver

    def broken_once(delivery: Any) -> None:
        if delivery.run_id == "r1":
            raise RuntimeError("s3cret")
        deliver(delivery)

    monkeypatch.setattr(notifier, "_deliver", broken_once)
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(hook, cooldown=0), report("failed", "r1"))
        notifier.report(spec(hook, cooldown=0), report("failed", "r2"))
        ((_, _, body),) = wait_received(1)
        notifier.close(5)
    assert json.loads(body)["run_id"] == "r2"
    (crashed,) = [e for e in logs if e["event"] == "notify.crashed"]
    assert crashed == {**crashed, "run_id": "r1", "kind": "failure", "error": "RuntimeError"}
    assert outcome(logs, "r2")["event"] == "notify.sent"
    assert "s3cret" not in json.dumps(logs)
