"""Notifications of run outcomes: a JSON webhook, healthchecks.io-style ping URLs, and
Apprise's channels (``notify.urls``: mail, Slack, ntfy…, sent by ``scheduler.channels``)
with a title and a body rendered from the job's templates.

Off the run's path: the runner hands a report over (never waits); one worker
thread sends, with retries and a per-job cooldown. A slow or failing endpoint
delays only later notifications, never a run. URLs and headers can carry
secrets: logs show URLs without user, password, path or query, and an error's
text only where it cannot quote the request (see ``_error_text``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobs.base import header_problem
from jobs.templates import render
from scheduler import channels
from scheduler.logs import NOTIFY_THREAD, get_logger
from scheduler.runs import RunListener
from scheduler.secrets import SecretError, resolve

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.base import NotifySpec, SecretValue
    from scheduler.clock import Clock

QUEUE_SIZE = 1000
"""Notifications waiting to be sent; beyond it they are dropped (logged)."""
FAILED = frozenset({"failed", "timed_out", "missed"})
PING_BODY_MAX = 10_000
RETRY_DELAY_MAX_S = 60.0
OUTPUT_MAX = 4000
"""The ``{output}`` field of a message: the end of the run's output tail, this many
characters at most (a tail line may be up to ``max_output_line`` long)."""
ERROR_TEXT_MAX = 200
"""An error's text in ``notify.failed`` is cut to this many characters."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """A run that started, or how it ended (after its last attempt), for notifications."""

    job: str
    run_id: str
    status: str
    """``started``, or the final status: succeeded, failed, timed_out, cancelled, missed…"""
    attempt: int | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    reason: str | None = None
    error: str | None = None
    output_tail: tuple[str, ...] = ()
    scheduled_at: str | None = None
    trigger: str | None = None
    parent_job: str | None = None
    """A chained run's (trigger ``chain``): the job of the run whose end started it."""
    parent_run_id: str | None = None
    """…that run's id."""
    parent_status: str | None = None
    """…and how it ended."""


def shown(url: str) -> str:
    """``url`` as logs may show it: scheme and host only (paths hold ping tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


@dataclass(frozen=True, slots=True)
class _Delivery:
    job: str
    run_id: str
    kind: str
    url: str
    body: bytes
    content_type: str
    spec: NotifySpec
    headers: bool = False
    """Send the spec's (secret) headers: the webhook, not the pings."""

    @property
    def channel(self) -> str:
        return "webhook" if self.headers else "ping"

    @property
    def target(self) -> str:
        return shown(self.url)


@dataclass(frozen=True, slots=True)
class _Message:
    """A message for one of ``notify.urls`` (Apprise), rendered on the run's thread."""

    job: str
    run_id: str
    kind: str
    url: SecretValue
    index: int
    title: str
    body: str
    spec: NotifySpec

    @property
    def channel(self) -> str:
        """The URL's scheme; of a URL from a secret, ``secret`` until it is read."""
        return channels.scheme(self.url) if isinstance(self.url, str) else "secret"

    @property
    def target(self) -> str:
        if isinstance(self.url, str):
            return channels.shown(self.url)
        return f"notify.urls[{self.index}] (a secret)"


@dataclass
class Notifier(RunListener):
    """Decides what to tell, queues it, and sends it in its own thread."""

    host: str
    daemon: str
    clock: Clock
    last_status: dict[str, str] = field(default_factory=dict)
    """The last final status of each job (seeded from the history): what recovery means."""
    _queue: queue.Queue[_Delivery | _Message | None] = field(
        default_factory=lambda: queue.Queue(maxsize=QUEUE_SIZE)
    )
    _sent_at: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=NOTIFY_THREAD, daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Send what is queued within ``timeout``, then stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopping.set()

    # --- deciding (on the run's thread: never blocks) ------------------------------

    def report(self, spec: NotifySpec | None, report: RunReport) -> None:
        """Hear of a run; queue what ``spec`` asks for."""
        with self._lock:
            previous = self.last_status.get(report.job)
            if report.status in FAILED or report.status == "succeeded":
                self.last_status[report.job] = report.status
        if spec is None:
            return
        if spec.ping is not None:
            self._ping(spec, report)
        if spec.webhook is None and not spec.urls:
            return
        for kind in _kinds(report.status, previous):
            if kind in spec.on and self._cooled(spec, report, kind):
                self._tell(spec, report, kind)

    def _tell(self, spec: NotifySpec, report: RunReport, kind: str) -> None:
        """Queue the webhook's request and each URL's message for ``kind``."""
        if spec.webhook is not None:
            body = json.dumps(self._payload(report, kind)).encode()
            self._put(
                _Delivery(report.job, report.run_id, kind, spec.webhook, body,
                          "application/json", spec, headers=True)
            )  # fmt: skip
        if not spec.urls:
            return
        values = self._values(report, kind)
        title, text = render(spec.title, values), render(spec.body, values)
        for index, url in enumerate(spec.urls):
            self._put(_Message(report.job, report.run_id, kind, url, index, title, text, spec))

    def _ping(self, spec: NotifySpec, report: RunReport) -> None:
        base = str(spec.ping).rstrip("/")
        if report.status == "started":
            url, body = f"{base}/start", b""
        elif report.status == "succeeded":
            url, body = base, b""
        elif report.status in FAILED:
            text = report.error or report.reason or f"exit code {report.exit_code}"
            url, body = f"{base}/fail", text.encode()[:PING_BODY_MAX]
        else:
            return  # skipped, cancelled: neither a success nor a failure
        self._put(_Delivery(report.job, report.run_id, f"ping_{report.status}", url, body,
                            "text/plain", spec))  # fmt: skip

    def _cooled(self, spec: NotifySpec, report: RunReport, kind: str) -> bool:
        """True if this job's ``kind`` may be sent now (its cooldown has passed)."""
        now = self.clock.monotonic()
        with self._lock:
            last = self._sent_at.get((report.job, kind))
            if last is not None and now - last < spec.cooldown:
                suppressed = True
            else:
                self._sent_at[report.job, kind] = now
                suppressed = False
        if suppressed:
            get_logger().info(
                "notify.suppressed",
                job=report.job,
                run_id=report.run_id,
                kind=kind,
                cooldown_s=spec.cooldown,
            )
        return not suppressed

    def _payload(self, report: RunReport, kind: str) -> dict[str, object]:
        return {
            "event": f"run.{report.status}",
            "notification": kind,
            "job": report.job,
            "run_id": report.run_id,
            "status": report.status,
            "attempt": report.attempt,
            "exit_code": report.exit_code,
            "duration_s": report.duration_s,
            "reason": report.reason,
            "error": report.error,
            "output_tail": list(report.output_tail),
            "scheduled_at": report.scheduled_at,
            "trigger": report.trigger,
            "parent_job": report.parent_job,
            "parent_run_id": report.parent_run_id,
            "parent_status": report.parent_status,
            "host": self.host,
            "daemon": self.daemon,
            "sent_at": self.clock.now().isoformat(),
        }

    def _values(self, report: RunReport, kind: str) -> dict[str, str]:
        """The templates' fields (jobs.templates.FIELDS) for ``report``, as text."""
        duration = "" if report.duration_s is None else f"{report.duration_s:.1f}s"
        given = {
            "job": report.job, "status": report.status, "kind": kind, "run_id": report.run_id,
            "attempt": report.attempt, "exit_code": report.exit_code, "duration": duration,
            "duration_s": report.duration_s, "reason": report.reason, "error": report.error,
            "output": "\n".join(report.output_tail)[-OUTPUT_MAX:],
            "scheduled_at": report.scheduled_at,
            "trigger": report.trigger, "host": self.host, "daemon": self.daemon,
            "parent_job": report.parent_job, "parent_run_id": report.parent_run_id,
            "parent_status": report.parent_status,
        }  # fmt: skip
        values = {name: "" if value is None else str(value) for name, value in given.items()}
        values["summary"] = _summary(report, duration)
        return values

    def _put(self, delivery: _Delivery | _Message) -> None:
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            get_logger().warning(
                "notify.dropped", job=delivery.job, run_id=delivery.run_id, kind=delivery.kind,
                channel=delivery.channel, target=delivery.target, queued=QUEUE_SIZE,
            )  # fmt: skip

    # --- sending (the worker thread) -----------------------------------------------

    def _work(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                self._deliver(delivery)
            except Exception as e:  # a bug in one delivery must not end the only sender
                with contextlib.suppress(Exception):  # not even if logging it fails
                    get_logger().error(
                        "notify.crashed", job=delivery.job, run_id=delivery.run_id,
                        kind=delivery.kind, channel=delivery.channel, error=type(e).__name__,
                    )  # fmt: skip

    def _deliver(self, delivery: _Delivery | _Message) -> None:
        spec, log = delivery.spec, get_logger()
        fields = {"job": delivery.job, "run_id": delivery.run_id, "kind": delivery.kind,
                  "channel": delivery.channel, "target": delivery.target}  # fmt: skip
        error, made = "", 0
        for attempt in range(spec.retries + 1):
            if attempt:
                delay = min(spec.retry_delay * 2 ** (attempt - 1), RETRY_DELAY_MAX_S)
                if self._stopping.wait(delay):
                    break  # stopping: given up with the attempts made
            made = attempt + 1
            try:
                if isinstance(delivery, _Delivery):
                    self._send(delivery)
                else:
                    _tell_channel(delivery, fields)
            except Exception as e:  # whatever sending raised, this delivery failed
                error = _error_text(e)
                continue
            log.info("notify.sent", attempts=made, **fields)
            return
        log.warning("notify.failed", attempts=made, error=error, **fields)

    def _send(self, delivery: _Delivery) -> None:
        headers = {"Content-Type": delivery.content_type, "User-Agent": "crontainer"}
        if delivery.headers:
            headers.update(_resolved(delivery.spec.headers))
        for name, value in headers.items():
            _check_header(name, value)
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked by the config
            delivery.url, data=delivery.body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=delivery.spec.timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as e:
            raise OSError(f"status {e.code}") from None


def _tell_channel(message: _Message, fields: dict[str, str]) -> None:
    """Send ``message``: its URL read (from a secret: now, and checked now, since it could
    not be at load), then Apprise; ``fields`` (of the log lines) learn its channel."""
    what = f"notify.urls[{message.index}]"
    url = resolve(message.url, what)
    fields["channel"], fields["target"] = channels.scheme(url), channels.shown(url)
    if not isinstance(message.url, str):
        problem = channels.url_problem(url)
        if problem is not None:
            raise channels.ChannelError(f"{what} (from a secret, checked when sent): {problem}")
    channels.send(url, message.kind, message.title, message.body)


def _summary(report: RunReport, duration: str) -> str:
    """One line of how the run ended: ``failed: exit code 3 after 1.2s``."""
    text = report.status.replace("_", " ")
    details = []
    if report.exit_code not in (None, 0):
        details.append(f"exit code {report.exit_code}")
    if report.reason and (report.status, report.reason) != ("timed_out", "timeout"):
        details.append(report.reason)
    if report.error:
        details.append(report.error)
    if details:
        text += ": " + ", ".join(details)
    return f"{text} after {duration}" if duration else text


def _kinds(status: str, previous: str | None) -> list[str]:
    """What a final ``status`` is, for ``on``, given the job's previous final status."""
    if status in ("failed", "timed_out"):
        return ["failure"]
    if status == "missed":
        return ["missed"]
    if status == "succeeded":
        return ["success", "recovery"] if previous in FAILED else ["success"]
    return []


def _resolved(headers: Mapping[str, object]) -> dict[str, str]:
    return {name: resolve(value, f"notify header {name}") for name, value in headers.items()}


class _Unsendable(Exception):  # noqa: N818 - a reason, not an "Error" of the program
    """A request that cannot be sent as configured; the text never holds a secret."""


def _check_header(name: str, value: str) -> None:
    """Refuse a header value http.client would reject (its error quotes the value) or,
    with a line break followed by a space, send as a folded line: say so by name only."""
    problem = header_problem(value)
    if problem is not None:
        raise _Unsendable(f"header {name!r} {problem}")


def _error_text(error: BaseException) -> str:
    """What ``notify.failed`` says of ``error``: short, and never a secret. Only texts
    that cannot quote the request are shown: ours, a secret's (it names the secret),
    and the system's (socket, TLS); of anything else only its type, since http.client's
    messages quote header values, URL paths or the receiver's answer (which may echo
    the request)."""
    if isinstance(error, urllib.error.URLError):  # urlopen's wrapping of an OSError
        reason = error.reason
        error = reason if isinstance(reason, BaseException) else OSError(str(reason))
    if isinstance(error, (OSError, SecretError, _Unsendable, channels.ChannelError)):
        text = str(error)
    elif isinstance(error, http.client.BadStatusLine):
        text = "not an HTTP answer (BadStatusLine)"
    elif isinstance(error, http.client.HTTPException):
        text = f"a broken HTTP exchange ({type(error).__name__})"
    else:
        text = f"{type(error).__name__} while sending"
    return text[:ERROR_TEXT_MAX]
