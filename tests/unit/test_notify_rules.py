"""Notifications, rule by rule: which outcomes are told and how (webhook kinds, pings,
the payload), the cooldown, the retries' delays, the queue's bound and the texts of
notify.* events. The network is a recording stand-in for ``urlopen``: each request is
kept as sent; answers are scripted."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import threading
import urllib.error
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.base import NotifySpec
from scheduler.logs import get_logger
from scheduler.notify import ERROR_TEXT_MAX, PING_BODY_MAX, QUEUE_SIZE, Notifier, RunReport, shown

from .fakes import FakeClock
from .helpers import events

if TYPE_CHECKING:
    from urllib.request import Request

HOOK = "https://hooks.example.com/t/s3cret-path?token=s3cret"
PING = "https://hc.example.com/ping/uuid-1234"


@dataclass(frozen=True)
class Sent:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    timeout: float


class Wire:
    """Stands in for ``urllib.request.urlopen``: records each request; ``answers`` holds,
    per request in order, an exception to raise or None (a 200); when empty: 200."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.answers: list[BaseException | None] = []

    def urlopen(self, request: Request, timeout: float) -> Any:
        assert isinstance(request.data, bytes)
        self.sent.append(
            Sent(
                request.full_url,
                request.get_method(),
                dict(request.header_items()),
                request.data,
                timeout,
            )
        )
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return contextlib.nullcontext(io.BytesIO(b""))


class Stop:
    """The notifier's stop event: records each retry's wait; ``stop_at`` makes that wait
    (1-based) the one the daemon stops in."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.waits: list[float] = []
        self.stop_at = stop_at

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return len(self.waits) == self.stop_at

    def set(self) -> None:
        pass


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    made = Wire()
    monkeypatch.setattr("urllib.request.urlopen", made.urlopen)
    return made


def make(clock: FakeClock | None = None, **keys: Any) -> Notifier:
    notifier = Notifier("box", "cron1", clock or FakeClock(), **keys)
    notifier.start()
    return notifier


def spec(**keys: Any) -> NotifySpec:
    values: dict[str, Any] = {"webhook": HOOK, "cooldown": 0, "retry_delay": 0}
    values.update(keys)
    return NotifySpec.model_validate(values)


def report(status: str, run_id: str = "r1", job: str = "db", **keys: Any) -> RunReport:
    return RunReport(job=job, run_id=run_id, status=status, **keys)


def told(wire: Wire) -> list[tuple[str, str]]:
    """(run_id, notification) of each webhook POST, in order."""
    return [
        (json.loads(s.body)["run_id"], json.loads(s.body)["notification"])
        for s in wire.sent
        if s.url == HOOK
    ]


ALL_KINDS = ["failure", "success", "recovery", "missed"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["failed"], [("r1", "failure")]),
        (["timed_out"], [("r1", "failure")]),
        (["missed"], [("r1", "missed")]),
        (["succeeded"], [("r1", "success")]),
        (["skipped", "cancelled", "started"], []),
        (["failed", "succeeded"], [("r1", "failure"), ("r2", "success"), ("r2", "recovery")]),
        (["timed_out", "succeeded"], [("r1", "failure"), ("r2", "success"), ("r2", "recovery")]),
        (["missed", "succeeded"], [("r1", "missed"), ("r2", "success"), ("r2", "recovery")]),
        (["succeeded", "succeeded"], [("r1", "success"), ("r2", "success")]),
        # the recovery is the first success after the failure, not every later one
        (
            ["failed", "succeeded", "succeeded"],
            [("r1", "failure"), ("r2", "success"), ("r2", "recovery"), ("r3", "success")],
        ),
        # a start, a skip or a cancel between does not end "after a failure"
        (
            ["failed", "started", "skipped", "cancelled", "succeeded"],
            [("r1", "failure"), ("r5", "success"), ("r5", "recovery")],
        ),
    ],
)
def test_which_outcomes_the_webhook_is_told(
    wire: Wire, statuses: list[str], expected: list[tuple[str, str]]
) -> None:
    """README: failure = the last attempt failed or timed out; recovery = the first success
    after a failure or a missed run; skipped, cancelled and a start are never told."""
    notifier = make()
    for number, status in enumerate(statuses, start=1):
        notifier.report(spec(on=ALL_KINDS), report(status, f"r{number}"))
    notifier.close(30)
    assert told(wire) == expected


def test_recovery_follows_a_failure_seeded_from_the_history(wire: Wire) -> None:
    """After a restart the job's last final status comes from the history: a success
    after a failure recorded before the restart is a recovery."""
    notifier = make(last_status={"db": "failed", "other": "succeeded"})
    notifier.report(spec(on=["recovery"]), report("succeeded", "r1"))
    notifier.report(spec(on=["recovery"]), report("succeeded", "r2", job="other"))
    notifier.close(30)
    assert told(wire) == [("r1", "recovery")]


def test_only_the_kinds_in_on_are_told(wire: Wire) -> None:
    notifier = make()
    notifier.report(spec(on=["missed"]), report("failed", "r1"))
    notifier.report(spec(on=["missed"]), report("missed", "r2"))
    notifier.report(spec(on=["missed"]), report("succeeded", "r3"))
    notifier.close(30)
    assert told(wire) == [("r2", "missed")]


def test_the_webhook_request_and_its_payload(wire: Wire) -> None:
    """A POST of JSON with every documented key, the spec's timeout, our User-Agent."""
    clock = FakeClock()
    notifier = make(clock)
    notifier.report(
        spec(timeout=7),
        report(
            "failed",
            attempt=2,
            exit_code=3,
            duration_s=1.5,
            reason="exit_code",
            error="boom",
            output_tail=("a", "b"),
            scheduled_at="2026-01-05T12:00:00+00:00",
            trigger="schedule",
        ),
    )
    notifier.close(30)
    (sent,) = wire.sent
    assert (sent.url, sent.method, sent.timeout) == (HOOK, "POST", 7)
    assert sent.headers == {"Content-type": "application/json", "User-agent": "crontainer"}
    assert json.loads(sent.body) == {
        "event": "run.failed",
        "notification": "failure",
        "job": "db",
        "run_id": "r1",
        "status": "failed",
        "attempt": 2,
        "exit_code": 3,
        "duration_s": 1.5,
        "reason": "exit_code",
        "error": "boom",
        "output_tail": ["a", "b"],
        "scheduled_at": "2026-01-05T12:00:00+00:00",
        "trigger": "schedule",
        "parent_job": None,
        "parent_run_id": None,
        "parent_status": None,
        "host": "box",
        "daemon": "cron1",
        "sent_at": clock.now().isoformat(),
    }


@pytest.mark.parametrize(
    ("ping", "status", "keys", "url", "body"),
    [
        (PING, "started", {}, f"{PING}/start", b""),
        (PING, "succeeded", {}, PING, b""),
        (PING, "failed", {"error": "boom", "reason": "exit_code"}, f"{PING}/fail", b"boom"),
        (PING, "timed_out", {"reason": "timeout"}, f"{PING}/fail", b"timeout"),
        (PING, "missed", {"reason": "starting_deadline"}, f"{PING}/fail", b"starting_deadline"),
        (PING, "failed", {"exit_code": 3}, f"{PING}/fail", b"exit code 3"),
        # the URL as given, but for a trailing slash
        (PING + "/", "started", {}, f"{PING}/start", b""),
        ("https://hc.example.com", "succeeded", {}, "https://hc.example.com", b""),
        (
            "https://hc.example.com/p/KEY-X",
            "started",
            {},
            "https://hc.example.com/p/KEY-X/start",
            b"",
        ),
    ],
)
def test_pings_url_and_body(
    wire: Wire, ping: str, status: str, keys: dict[str, Any], url: str, body: bytes
) -> None:
    """README: <ping>/start at a start, <ping> on success, <ping>/fail with the error
    (else the reason, else the exit code) as body on a failure or a missed run —
    whatever 'on' says; text/plain."""
    notifier = make()
    with structlog.testing.capture_logs() as logs:
        notifier.report(NotifySpec(ping=ping, on=["success"]), report(status, **keys))
        notifier.close(30)
    (sent,) = wire.sent
    assert (sent.url, sent.method, sent.body) == (url, "POST", body)
    assert sent.headers == {"Content-type": "text/plain", "User-agent": "crontainer"}
    (event,) = events(logs, "notify.sent")
    assert event == {
        "event": "notify.sent",
        "log_level": "info",
        "job": "db",
        "run_id": "r1",
        "kind": f"ping_{status}",
        "channel": "ping",
        "target": "https://hc.example.com/…",
        "attempts": 1,
    }


def test_no_ping_for_a_skipped_or_cancelled_run(wire: Wire) -> None:
    notifier = make()
    notifier.report(NotifySpec(ping=PING), report("skipped", "r1"))
    notifier.report(NotifySpec(ping=PING), report("cancelled", "r2"))
    notifier.close(30)
    assert wire.sent == []


@pytest.mark.parametrize(
    ("size", "kept"), [(PING_BODY_MAX, PING_BODY_MAX), (PING_BODY_MAX + 1, PING_BODY_MAX)]
)
def test_a_failure_pings_body_is_cut_at_its_limit(wire: Wire, size: int, kept: int) -> None:
    notifier = make()
    error = "".join(str(i % 10) for i in range(size))
    notifier.report(NotifySpec(ping=PING), report("failed", error=error))
    notifier.close(30)
    (sent,) = wire.sent
    assert sent.body == error.encode()[:kept]


def test_the_webhook_headers_are_sent_the_pings_get_none(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers (secrets) go with the webhook only, read when sent."""
    monkeypatch.setenv("HOOK_TOKEN", "Bearer t0ken")
    notifier = make()
    hooks = spec(ping=PING, headers={"Authorization": {"env": "HOOK_TOKEN"}, "X-A": "b"})
    notifier.report(hooks, report("failed"))
    notifier.close(30)
    by_url = {s.url: s.headers for s in wire.sent}
    assert by_url[HOOK]["Authorization"] == "Bearer t0ken"
    assert by_url[HOOK]["X-a"] == "b"
    assert set(by_url[f"{PING}/fail"]) == {"Content-type", "User-agent"}


def test_a_missing_secret_header_fails_naming_the_header(wire: Wire) -> None:
    notifier = make()
    hooks = spec(retries=0, headers={"Authorization": {"env": "CRONTAINER_TEST_UNSET"}})
    with structlog.testing.capture_logs() as logs:
        notifier.report(hooks, report("failed"))
        notifier.close(30)
    assert wire.sent == []
    (failed,) = events(logs, "notify.failed")
    assert failed["error"] == (
        "notify header Authorization: environment variable CRONTAINER_TEST_UNSET is not set"
    )


def test_sent_and_failed_events_carry_their_fields(wire: Wire) -> None:
    wire.answers = [None, urllib.error.HTTPError(HOOK, 503, "Unavailable", None, None)]  # type: ignore[arg-type]
    notifier = make()
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=0), report("failed", "r1"))
        notifier.report(spec(retries=0), report("missed", "r2", job="web"))
        notifier.close(30)
    assert events(logs, "notify.sent") == [
        {
            "event": "notify.sent",
            "log_level": "info",
            "job": "db",
            "run_id": "r1",
            "kind": "failure",
            "channel": "webhook",
            "target": "https://hooks.example.com/…",
            "attempts": 1,
        }
    ]
    assert events(logs, "notify.failed") == [
        {
            "event": "notify.failed",
            "log_level": "warning",
            "job": "web",
            "run_id": "r2",
            "kind": "missed",
            "channel": "webhook",
            "target": "https://hooks.example.com/…",
            "attempts": 1,
            "error": "status 503",
        }
    ]


def test_cooldown_per_job_and_kind_and_its_exact_end(wire: Wire) -> None:
    """The same job and outcome waits ``cooldown`` seconds (notify.suppressed with its
    fields); another outcome or another job does not; at exactly ``cooldown`` later it
    is sent again."""
    clock = FakeClock()
    notifier = make(clock)
    hooks = spec(cooldown=600)
    with structlog.testing.capture_logs() as logs:
        notifier.report(hooks, report("failed", "r1"))
        notifier.report(hooks, report("missed", "r2"))  # another kind
        notifier.report(hooks, report("failed", "r3", job="web"))  # another job
        clock.advance(599.5)
        notifier.report(hooks, report("failed", "r4"))  # suppressed
        clock.advance(0.5)
        notifier.report(hooks, report("failed", "r5"))  # 600 s after r1: sent
        notifier.report(hooks, report("failed", "r6"))  # and a new cooldown starts
        notifier.close(30)
    assert told(wire) == [("r1", "failure"), ("r2", "missed"), ("r3", "failure"), ("r5", "failure")]
    assert events(logs, "notify.suppressed") == [
        {
            "event": "notify.suppressed",
            "log_level": "info",
            "job": "db",
            "run_id": run_id,
            "kind": "failure",
            "cooldown_s": 600.0,
        }
        for run_id in ("r4", "r6")
    ]


def test_retry_delays_double_up_to_a_minute(wire: Wire) -> None:
    """README: retry_delay before the 2nd attempt; doubles, at most a minute."""
    wire.answers = [urllib.error.HTTPError(HOOK, 503, "x", None, None)] * 9  # type: ignore[arg-type]
    stop = Stop()
    notifier = make(_stopping=stop)
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=8, retry_delay=2), report("failed"))
        notifier.close(30)
    assert stop.waits == [2, 4, 8, 16, 32, 60, 60, 60]
    assert len(wire.sent) == 9
    (failed,) = events(logs, "notify.failed")
    assert (failed["attempts"], failed["error"]) == (9, "status 503")


def test_a_retry_after_failures_is_sent_and_logged_with_its_attempt(wire: Wire) -> None:
    wire.answers = [OSError("down"), OSError("down")]
    notifier = make(_stopping=Stop())
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=2), report("failed"))
        notifier.close(30)
    assert len(wire.sent) == 3
    assert [e["attempts"] for e in events(logs, "notify.sent")] == [3]
    assert events(logs, "notify.failed") == []


CUT = "x" * (ERROR_TEXT_MAX + 50)


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (urllib.error.HTTPError(HOOK, 503, "s3cret", None, None), "status 503"),  # type: ignore[arg-type]
        (
            urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
            "[Errno 111] Connection refused",
        ),
        (urllib.error.URLError("unknown url type: s"), "unknown url type: s"),
        # wrapped, but not the system's: its type only
        (urllib.error.URLError(ValueError("s3cret")), "ValueError while sending"),
        (TimeoutError("timed out"), "timed out"),
        (OSError(CUT), CUT[:ERROR_TEXT_MAX]),
        (http.client.BadStatusLine("s3cret"), "not an HTTP answer (BadStatusLine)"),
        (http.client.IncompleteRead(b"s3cret"), "a broken HTTP exchange (IncompleteRead)"),
        (http.client.LineTooLong("s3cret"), "a broken HTTP exchange (LineTooLong)"),
        (ValueError("s3cret"), "ValueError while sending"),
    ],
)
def test_what_notify_failed_says_of_an_error(wire: Wire, raised: BaseException, error: str) -> None:
    """The system's text (cut to ERROR_TEXT_MAX), ours, else only the error's type."""
    wire.answers = [raised]
    notifier = make()
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=0), report("failed"))
        notifier.close(30)
    (failed,) = events(logs, "notify.failed")
    assert failed["error"] == error


def test_an_error_text_of_exactly_the_limit_is_kept_whole(wire: Wire) -> None:
    wire.answers = [OSError("y" * ERROR_TEXT_MAX)]
    notifier = make()
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=0), report("failed"))
        notifier.close(30)
    (failed,) = events(logs, "notify.failed")
    assert failed["error"] == "y" * ERROR_TEXT_MAX


def test_the_queue_holds_1000_and_drops_the_next_with_notify_dropped(wire: Wire) -> None:
    """At most QUEUE_SIZE notifications wait; the one beyond is dropped (logged with its
    fields), the waiting ones are all sent."""
    notifier = Notifier("box", "cron1", FakeClock())  # not started: nothing is taken off
    with structlog.testing.capture_logs() as logs:
        for number in range(QUEUE_SIZE + 1):
            notifier.report(spec(), report("failed", f"r{number}"))
    assert events(logs, "notify.dropped") == [
        {
            "event": "notify.dropped",
            "log_level": "warning",
            "job": "db",
            "run_id": f"r{QUEUE_SIZE}",
            "kind": "failure",
            "channel": "webhook",
            "target": "https://hooks.example.com/…",
            "queued": QUEUE_SIZE,
        }
    ]
    notifier.start()
    notifier.close(30)
    assert [run_id for run_id, _ in told(wire)] == [f"r{n}" for n in range(QUEUE_SIZE)]


def test_close_does_not_wait_past_its_timeout_for_a_hung_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """close(timeout) gives queued notifications that long, no more: a receiver that
    never answers does not hold the daemon's shutdown."""
    sending, release, finished = threading.Event(), threading.Event(), threading.Event()

    def hung(request: Request, timeout: float) -> Any:
        sending.set()
        release.wait(30)
        finished.set()
        return contextlib.nullcontext(io.BytesIO(b""))

    monkeypatch.setattr("urllib.request.urlopen", hung)
    notifier = make()
    try:
        notifier.report(spec(), report("failed"))
        assert sending.wait(10)
        notifier.close(0.01)
        assert not finished.is_set()  # close returned while the request was still out
    finally:
        release.set()  # a failed assert must not leave the sender hung into later tests


def test_a_crash_is_logged_with_its_fields_and_a_failing_log_does_not_stop_the_sender(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notify.crashed names job, run_id, kind and the exception's type; if even that log
    fails, the sender goes on with the next notification."""
    real = get_logger

    class Broken:
        def __getattr__(self, name: str) -> Any:
            return getattr(real(), name)

        def error(self, *args: Any, **kw: Any) -> None:
            raise RuntimeError("logging is broken")

    for logger in (real, Broken):
        wire.sent.clear()
        monkeypatch.setattr("scheduler.notify.get_logger", logger)
        notifier = make()
        deliver = notifier._deliver

        def broken_once(delivery: Any, deliver: Any = deliver) -> None:
            if delivery.run_id == "r1":
                raise KeyError("s3cret")
            deliver(delivery)

        monkeypatch.setattr(notifier, "_deliver", broken_once)
        with structlog.testing.capture_logs() as logs:
            notifier.report(spec(), report("failed", "r1"))
            notifier.report(spec(), report("failed", "r2"))
            notifier.close(30)
        assert told(wire) == [("r2", "failure")]
        if logger is real:
            assert events(logs, "notify.crashed") == [
                {
                    "event": "notify.crashed",
                    "log_level": "error",
                    "job": "db",
                    "run_id": "r1",
                    "kind": "failure",
                    "channel": "webhook",
                    "error": "KeyError",
                }
            ]


@pytest.mark.parametrize(
    ("url", "seen"),
    [
        ("https://user:pw@hooks.example.com/t0ken?x=1#f", "https://hooks.example.com/…"),
        ("http://127.0.0.1:8080/ping/uuid", "http://127.0.0.1:8080/…"),
        ("http://[::1]:9/p", "http://::1:9/…"),
        ("https://hooks.example.com", "https://hooks.example.com/…"),
        ("http:///no-host", "http://?/…"),
    ],
)
def test_a_target_is_shown_as_scheme_host_and_port_only(url: str, seen: str) -> None:
    assert shown(url) == seen


@pytest.mark.parametrize("stop_at", [1, 2])
def test_a_stop_during_the_retries_gives_up_saying_how_many_attempts_were_made(
    wire: Wire, stop_at: int
) -> None:
    """The daemon stops while a notification waits for its next retry: it is given up at
    once, notify.failed with the last error and the attempts actually made."""
    wire.answers = [OSError("down")] * 5
    notifier = make(_stopping=Stop(stop_at=stop_at))
    with structlog.testing.capture_logs() as logs:
        notifier.report(spec(retries=4, retry_delay=1), report("failed"))
        notifier.close(30)
    assert len(wire.sent) == stop_at
    (failed,) = events(logs, "notify.failed")
    assert (failed["attempts"], failed["error"]) == (stop_at, "down")


def test_the_sender_never_holds_the_process_exit(wire: Wire) -> None:
    """close(timeout) gives up on a hung receiver; the process must then be able to exit:
    the one thread the notifier starts is a daemon thread."""
    before = set(threading.enumerate())
    notifier = make()
    started = set(threading.enumerate()) - before
    notifier.close(30)
    assert started
    assert all(thread.daemon for thread in started)
