"""notify.urls from a real daemon to real local receivers: mail through an SMTP server
(aiosmtpd, with a login), a JSON webhook (Apprise's json://) and an ntfy-style HTTP
endpoint (ntfy://, with a token) each get exactly the messages of a failing and a
succeeding job, title and body rendered from the templates; a channel that is down is
given up with an error that holds none of its URL's secrets, and no secret is in any line
the daemon logs."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.receiver import PostReceiver, serving

from .conftest import Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]

SMTP_PASSWORD = "pa55-Smtp-7f3e"  # noqa: S105 - a test's
NTFY_TOKEN = "tk_ntfy0secret9c4d"  # noqa: S105 - a test's
DEAD_PASSWORD = "d3ad-Json-b71a"  # noqa: S105 - a test's
DEAD_PATH = "hook-t0ken-5e2f"
SECRETS = (SMTP_PASSWORD, NTFY_TOKEN, DEAD_PASSWORD, DEAD_PATH)


class JsonHook(PostReceiver):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def take(self, body: bytes) -> int:
        JsonHook.bodies.append({"path": self.path, **json.loads(body)})
        return 200


class Ntfy(PostReceiver):
    """ntfy's publish-as-JSON: a POST to the server's root, the topic in the body."""

    posts: ClassVar[list[dict[str, Any]]] = []

    def take(self, body: bytes) -> int:
        Ntfy.posts.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), **json.loads(body)}
        )
        return 200


class Mailbox:
    """What an SMTP server was given: each message, and each login."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str | None, list[str]]] = []
        self.logins: list[tuple[str, bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def login(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((mechanism, data.login, data.password))
        return AuthResult(success=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_server(box: Mailbox) -> Iterator[int]:
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.login, auth_require_tls=False
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n").strip()


def test_each_receiver_gets_exactly_the_messages_of_a_failure_and_a_success(
    start_daemon: Start,
) -> None:
    JsonHook.bodies, Ntfy.posts = [], []
    box = Mailbox()
    dead = free_port()  # nobody listens there
    with smtp_server(box) as smtp, serving(JsonHook) as hook, serving(Ntfy) as ntfy:
        notify = {
            "on": ["failure", "success"],
            "urls": [
                (
                    f"mailto://cron:{SMTP_PASSWORD}@localhost:{smtp}"
                    "?from=cron@example.com&to=ops@example.com"
                ),
                f"json://127.0.0.1:{hook}/crontainer",
                f"ntfy://127.0.0.1:{ntfy}/backups?token={NTFY_TOKEN}",
                f"json://hook:{DEAD_PASSWORD}@127.0.0.1:{dead}/{DEAD_PATH}",
            ],
            "title": "{job}: {status}",
            "body": "{kind} ({summary}) run {run_id}\n{output}",
            "retries": 1,
            "retry_delay": "1s",
        }
        script = "echo dumping; echo disk full >&2; exit 3"
        daemon = start_daemon(
            run_job("bad", ["sh", "-c", script], schedule="@every 1h", run_on_start=True,
                    notify=notify)
            + run_job("good", ["echo", "all fine"], schedule="@every 1h", run_on_start=True,
                      notify=notify),
            daemon='log_level = "debug"\n',  # where a library's own lines would quote URLs
        )  # fmt: skip
        sent = daemon.log.wait_for(event("notify.sent"), timeout=60, count=6)
        failed = daemon.log.wait_for(event("notify.failed"), timeout=60, count=2)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(60) == 0

    runs = {e["job"]: e["run_id"] for e in daemon.log.matching(event("run.started"))}
    assert sorted((e["job"], e["kind"], e["channel"]) for e in sent) == [
        ("bad", "failure", "json"), ("bad", "failure", "mailto"), ("bad", "failure", "ntfy"),
        ("good", "success", "json"), ("good", "success", "mailto"), ("good", "success", "ntfy"),
    ]  # fmt: skip
    assert {e["target"] for e in sent} == {
        "mailto://localhost",
        "json://127.0.0.1",
        "ntfy://127.0.0.1",
    }
    bad_body = "failure (failed: exit code 3 after"
    # the mail: one message per outcome, logged in with the URL's password
    assert len(box.messages) == 2
    assert {m["Subject"] for m in box.messages} == {"bad: failed", "good: succeeded"}
    assert box.envelopes == [("cron@example.com", ["ops@example.com"])] * 2
    assert {(mechanism, login, password) for mechanism, login, password in box.logins} == {
        ("PLAIN", b"cron", SMTP_PASSWORD.encode())
    }
    mails = {m["Subject"]: text_of(m) for m in box.messages}
    assert mails["bad: failed"].startswith(bad_body)
    assert f") run {runs['bad']}\n" in mails["bad: failed"]
    assert sorted(mails["bad: failed"].splitlines()[1:]) == ["disk full", "dumping"]  # output
    assert mails["good: succeeded"].startswith("success (succeeded after ")
    assert mails["good: succeeded"].endswith(f"run {runs['good']}\nall fine")
    # the JSON webhook: Apprise's message object
    assert sorted((b["path"], b["title"], b["type"]) for b in JsonHook.bodies) == [
        ("/crontainer", "bad: failed", "failure"), ("/crontainer", "good: succeeded", "success"),
    ]  # fmt: skip
    hooks = {b["title"]: b["message"] for b in JsonHook.bodies}
    assert hooks["bad: failed"] == mails["bad: failed"]
    # ntfy: the topic in the JSON body, the token as a bearer
    assert sorted((p["path"], p["topic"], p["title"]) for p in Ntfy.posts) == [
        ("/", "backups", "bad: failed"), ("/", "backups", "good: succeeded"),
    ]  # fmt: skip
    assert {p["auth"] for p in Ntfy.posts} == {f"Bearer {NTFY_TOKEN}"}
    assert {p["title"]: p["message"] for p in Ntfy.posts}["good: succeeded"] == (
        mails["good: succeeded"]
    )
    # the channel that is down: given up after its retry, for each outcome
    assert sorted((e["job"], e["channel"], e["attempts"]) for e in failed) == [
        ("bad", "json", 2), ("good", "json", 2)
    ]  # fmt: skip
    assert {e["target"] for e in failed} == {"json://127.0.0.1"}
    assert all(e["error"].startswith("not delivered: ") for e in failed)
    leaked = [line for line in daemon.log.raw if any(s in line for s in SECRETS)]
    assert leaked == []
