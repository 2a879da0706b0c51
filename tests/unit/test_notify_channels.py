"""notify.urls (Apprise) and the title/body templates: checked at load with errors naming
the index and scheme, rendered from the run's fields, sent off the run's path with the
webhook's cooldown and retries, and never a secret in a log line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import structlog

from jobs.base import NotifySpec
from jobs.templates import DEFAULT_BODY, DEFAULT_TITLE, render, template_problem
from scheduler import channels, logs
from scheduler.notify import OUTPUT_MAX, Notifier, RunReport
from tests.receiver import PostReceiver, serving

from .configs import file_errors
from .fakes import FakeClock
from .helpers import events

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "Zq7-s3cret-t0ken"  # noqa: S105 - a test's


class Box(PostReceiver):
    """Apprise's json:// messages, by path."""

    got: ClassVar[list[dict[str, Any]]] = []
    arrived: ClassVar[threading.Condition] = threading.Condition()

    def take(self, body: bytes) -> int:
        with Box.arrived:
            Box.got.append({"path": self.path, **json.loads(body)})
            Box.arrived.notify_all()
        return 200


@pytest.fixture
def box() -> Iterator[str]:
    """A json:// URL of a local receiver (with a token in its path)."""
    Box.got = []
    with serving(Box) as port:
        yield f"json://127.0.0.1:{port}/{TOKEN}"


def report(status: str, run_id: str = "r1", job: str = "db", **keys: Any) -> RunReport:
    return RunReport(job=job, run_id=run_id, status=status, **keys)


def told(notifier: Notifier, spec: NotifySpec, *reports: RunReport) -> list[dict[str, Any]]:
    """The log events of ``reports`` told with ``spec`` once the sender is done."""
    with structlog.testing.capture_logs() as captured:
        for one in reports:
            notifier.report(spec, one)
        notifier.close(30)
    return [dict(e) for e in events(captured, *(f"notify.{n}" for n in ("sent", "failed",
                                                                       "suppressed")))]  # fmt: skip


@pytest.fixture
def notifier() -> Iterator[Notifier]:
    made = Notifier("box1", "cron1", FakeClock())
    made.start()
    yield made
    made.close(5)


# --- templates -------------------------------------------------------------------------


def test_the_default_templates_render_a_failure() -> None:
    """Title ``[daemon] job: status``; the body's first line is the summary, then the run,
    then the output's tail."""
    spec = NotifySpec()
    values = {"daemon": "cron1", "job": "db", "status": "failed", "run_id": "r9",
              "scheduled_at": "2026-01-01T03:00:00+00:00", "host": "box1",
              "summary": "failed: exit code 3 after 1.5s", "output": "a\nb"}  # fmt: skip
    assert (spec.title, spec.body) == (DEFAULT_TITLE, DEFAULT_BODY)
    assert render(spec.title, values) == "[cron1] db: failed"
    assert render(spec.body, values) == (
        "failed: exit code 3 after 1.5s\nrun r9, scheduled at 2026-01-01T03:00:00+00:00, "
        "on box1\na\nb"
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{jbo} failed", "unknown field {jbo} ("),
        ("{job.__class__}", "unknown field {job.__class__}"),
        ("{exit_code:03d}", "field {exit_code}: no format spec or conversion"),
        ("{job!r}", "field {job}: no format spec or conversion"),
        ("{}", "an empty field '{}'"),
        ("{job", "a lone '{' or '}'"),
        ("job}", "a lone '{' or '}'"),
    ],
)
def test_a_bad_template_is_refused_naming_what(template: str, problem: str) -> None:
    found = template_problem(template)
    assert found is not None
    assert found.startswith(problem)


def test_an_unknown_field_suggests_the_near_one_and_braces_can_be_written() -> None:
    assert str(template_problem("{stauts}")).endswith("did you mean {status}?")
    assert template_problem("{{literal}} {job}") is None
    assert render("{{literal}} {job}", {"job": "db"}) == "{literal} db"


def test_a_template_error_is_a_config_error_in_the_files_words(tmp_path: Path) -> None:
    errors = file_errors(
        tmp_path,
        '[jobs.a]\nkind = "run"\nschedule = "@daily"\nimage = "busybox"\n'
        'notify = { body = "{job} {exitcode}", title = "{job" }\n',
    )
    assert errors == [
        (
            "jobs.a.notify.title: a lone '{' or '}' (write '{{' and '}}' for braces in the text) "
            "(got '{job')"
        ),
        (
            "jobs.a.notify.body: unknown field {exitcode} (fields: job, status, kind, summary, "
            "run_id, attempt, exit_code, duration, duration_s, reason, error, output, "
            "scheduled_at, trigger, host, daemon, parent_job, parent_run_id, parent_status); "
            "did you mean {exit_code}? "
            "(got '{job} {exitcode}')"
        ),
    ]


# --- URLs at load ----------------------------------------------------------------------


def test_urls_apprise_cannot_use_are_named_by_index_and_scheme_never_shown(
    tmp_path: Path,
) -> None:
    """An unknown scheme (with the near one), a URL Apprise refuses (with what it said,
    its parts taken out) and a value that is no URL: each names its index; the secret
    parts of none are shown. A URL from a secret is not checked at load."""
    urls = ", ".join([
        f'"slak://T01/B02/{TOKEN}"',
        f'"mailto://bob:{TOKEN}@127.0.0.1:25?from=a@b.c"',
        '"ntfy://ntfy.example.com/cron"',
        '{ env = "UNSET_URL" }',
        f'"{TOKEN}@example.com"',
    ])  # fmt: skip
    errors = file_errors(
        tmp_path,
        '[jobs.a]\nkind = "run"\nschedule = "@daily"\nimage = "busybox"\n'
        f"notify = {{ urls = [{urls}] }}\n",
    )
    assert errors[0] == (
        "jobs.a.notify.urls[4]: expected a URL such as 'ntfy://host/topic' (see Apprise's list)"
    )
    assert errors[1] == (
        "jobs.a.notify.urls[0]: slak:// is not a scheme Apprise knows; did you mean slack://?"
    )
    assert errors[2].startswith("jobs.a.notify.urls[1]: Apprise cannot use this mailto:// URL: ")
    assert len(errors) == 3
    assert not any(TOKEN in line or "bob" in line for line in errors)


def test_a_config_without_urls_never_imports_apprise(tmp_path: Path) -> None:
    """Apprise costs start-up time: only a job with notify.urls loads it."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n[jobs.a]\nkind = "run"\n'
        'schedule = "@daily"\nimage = "busybox"\nnotify = { webhook = "https://h.example/x" }\n'
    )
    code = (
        "import sys, pathlib; from scheduler.settings import load_config; "
        f"load_config(pathlib.Path({str(path)!r}), {{}}); "
        "print('apprise' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --- sending ---------------------------------------------------------------------------


def test_a_failure_tells_each_url_the_rendered_title_and_body(box: str, notifier: Notifier) -> None:
    """The message carries the templates rendered from the run; notify.sent names the
    channel (the scheme) and a target without the URL's path."""
    spec = NotifySpec(urls=[box], title="{job} {status} ({kind})",
                      body="{summary}|{attempt}|{trigger}|{output}|{error}")  # fmt: skip
    logged = told(notifier, spec, report("failed", exit_code=3, duration_s=1.25, attempt=2,
                                         trigger="schedule", output_tail=("x", "y")))  # fmt: skip
    assert [(m["path"], m["title"], m["message"], m["type"]) for m in Box.got] == [
        (f"/{TOKEN}", "db failed (failure)", "failed: exit code 3 after 1.2s|2|schedule|x\ny|",
         "failure")
    ]  # fmt: skip
    assert logged == [
        {"event": "notify.sent", "log_level": "info", "job": "db", "run_id": "r1",
         "kind": "failure", "channel": "json", "target": "json://127.0.0.1", "attempts": 1}
    ]  # fmt: skip


def test_on_routes_the_urls_and_the_cooldown_holds_them_with_the_webhook(
    box: str, notifier: Notifier
) -> None:
    """A success is not told unless ``on`` has it; a second failure within the cooldown is
    held back once for the webhook and the URLs together; a recovery is its own kind."""
    spec = NotifySpec(urls=[box], on=["failure", "recovery"], cooldown=3600, retries=0)
    logged = told(notifier, spec, report("failed", "r1"), report("failed", "r2"),
                  report("succeeded", "r3"), report("succeeded", "r4"))  # fmt: skip
    assert [m["title"] for m in Box.got] == ["[cron1] db: failed", "[cron1] db: succeeded"]
    assert sorted((e["event"], e["run_id"], e["kind"]) for e in logged) == [
        ("notify.sent", "r1", "failure"),
        ("notify.sent", "r3", "recovery"),
        ("notify.suppressed", "r2", "failure"),
    ]


def test_a_url_from_a_secret_is_read_and_checked_when_sent(
    box: str, notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the environment: sent, its channel learnt once read. One Apprise cannot use is
    given up saying so, and one whose variable is unset names the variable; neither
    shows the URL."""
    monkeypatch.setenv("GOOD_URL", box)
    monkeypatch.setenv("BAD_URL", f"slack://{TOKEN}")
    monkeypatch.setenv("NO_URL", f"{TOKEN}@example.com")
    spec = NotifySpec.model_validate(
        {"urls": [{"env": "GOOD_URL"}, {"env": "BAD_URL"}, {"env": "UNSET_URL_X"},
                  {"env": "NO_URL"}], "retries": 0}
    )  # fmt: skip
    logged = told(notifier, spec, report("failed"))
    assert len(Box.got) == 1
    outcomes = [(e["event"], e["channel"], e["target"], e.get("error")) for e in logged]
    assert outcomes[0] == ("notify.sent", "json", "json://127.0.0.1", None)
    assert outcomes[1][:3] == ("notify.failed", "slack", "slack://…")
    assert str(outcomes[1][3]).startswith(
        "notify.urls[1] (from a secret, checked when sent): Apprise cannot use this slack:// URL"
    )
    assert outcomes[2] == (
        "notify.failed", "secret", "notify.urls[2] (a secret)",
        "notify.urls[2]: environment variable UNSET_URL_X is not set",
    )  # fmt: skip
    assert outcomes[3] == (
        "notify.failed", "?", "?",
        ("notify.urls[3] (from a secret, checked when sent): not a URL such as "
        "'ntfy://host/topic'"),
    )  # fmt: skip
    assert TOKEN not in repr(logged)


def test_a_channel_that_is_down_is_retried_then_given_up_without_its_secrets(
    notifier: Notifier,
) -> None:
    with serving(Box) as port:
        pass  # closed: nobody listens there now
    url = f"json://user:{TOKEN}@127.0.0.1:{port}/{TOKEN}x?token={TOKEN}y"
    logged = told(notifier, NotifySpec(urls=[url], retries=1, retry_delay=0.01),
                  report("failed"))  # fmt: skip
    (failed,) = logged
    assert (failed["event"], failed["attempts"], failed["target"]) == (
        "notify.failed", 2, "json://127.0.0.1"
    )  # fmt: skip
    assert failed["error"].startswith("not delivered")
    assert TOKEN not in repr(failed)


# --- what logs may show ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (f"slack://T01ABC/B02DEF/{TOKEN}", "slack://…"),
        (f"discord://1234567/{TOKEN}", "discord://…"),
        (f"ntfy://{TOKEN}", "ntfy://…"),  # a topic of ntfy.sh
        (f"ntfy://user:{TOKEN}@ntfy.example.com/cron", "ntfy://ntfy.example.com"),
        (f"mailtos://me:{TOKEN}@[::1]:465", "mailtos://::1"),
        ("gotify://localhost/AbCdEf", "gotify://localhost"),
        (f"{TOKEN}@example.com", "?"),
        (f"{TOKEN}:/x", "?"),
    ],
)
def test_a_target_shows_the_scheme_and_only_a_real_host(url: str, target: str) -> None:
    assert channels.shown(url) == target


def test_redaction_takes_every_secret_part_out_as_written_and_decoded() -> None:
    url = f"json://bob:{TOKEN}%21@hooks.example.com/p/{TOKEN}2?k={TOKEN}3&short=ab"
    said = f"user bob pw {TOKEN}! at /p/{TOKEN}2 k={TOKEN}3 host hooks.example.com ab"
    assert channels.redacted(said, url) == "user … pw … at /p/… … host hooks.example.com ab"


def test_apprise_records_and_the_senders_library_records_are_never_written() -> None:
    """Apprise's own lines (they quote URLs) are dropped whatever their level, and so is
    any library's record from the sender thread (urllib3's request lines quote paths);
    another thread's library record is written."""
    target = io.StringIO()
    logs.configure(fmt="json", level="debug", stream=target)
    channels.url_problem("json://127.0.0.1/x")  # loads apprise: silenced from then on
    logging.getLogger("apprise").error("Could not load json://%s", TOKEN)
    logging.getLogger("apprise").debug("payload %s", TOKEN)

    def sender() -> None:
        logging.getLogger("urllib3.connectionpool").debug("POST /%s HTTP/1.1", TOKEN)

    thread = threading.Thread(target=sender, name="notify")
    thread.start()
    thread.join()
    logging.getLogger("urllib3.connectionpool").debug("GET /v1.47/containers/json")
    lines = [json.loads(line) for line in target.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("urllib3.connectionpool", "GET /v1.47/containers/json")
    ]


def test_the_output_field_is_the_end_of_the_tail_bounded(box: str, notifier: Notifier) -> None:
    """Tail lines may be long: ``{output}`` is their last OUTPUT_MAX characters."""
    tail = ("a" * 3000, "b" * 3000, "c" * 3000)
    told(notifier, NotifySpec(urls=[box], body="{output}"), report("failed", output_tail=tail))
    (message,) = Box.got
    assert message["message"] == ("b" * 3000 + "\n" + "c" * 3000)[-OUTPUT_MAX:]


def test_a_chained_runs_template_names_its_parent(box: str, notifier: Notifier) -> None:
    """{trigger} {parent_job} {parent_run_id} {parent_status}: a chained run's parent."""
    body = "{trigger} after {parent_job} {parent_run_id} {parent_status}"
    parent = {"parent_job": "dump", "parent_run_id": "p1", "parent_status": "failed"}
    told(notifier, NotifySpec(urls=[box], body=body), report("failed", trigger="chain", **parent))
    (message,) = Box.got
    assert message["message"] == "chain after dump p1 failed"


@pytest.mark.parametrize(
    ("status", "keys", "summary"),
    [
        ("failed", {"exit_code": 3, "duration_s": 1.25}, "failed: exit code 3 after 1.2s"),
        ("timed_out", {"reason": "timeout", "duration_s": 60.0}, "timed out after 60.0s"),
        ("failed", {"reason": "oom_killed", "exit_code": 137}, "failed: exit code 137, oom_killed"),
        ("missed", {"reason": "expired"}, "missed: expired"),
        ("failed", {"error": "image not found"}, "failed: image not found"),
        ("succeeded", {"exit_code": 0, "duration_s": 0.5}, "succeeded after 0.5s"),
    ],
)
def test_the_summary_says_how_the_run_ended_in_one_line(
    box: str, notifier: Notifier, status: str, keys: dict[str, Any], summary: str
) -> None:
    spec = NotifySpec(urls=[box], on=["failure", "missed", "success"], body="{summary}")
    told(notifier, spec, report(status, **keys))
    assert [m["message"] for m in Box.got] == [summary]
