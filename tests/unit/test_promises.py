"""Documented promises that had no test of their own: secrets out of the CLI's output,
notify.dropped, the admin socket's mode, clock.jumped, trigger's exit codes."""

from __future__ import annotations

import json
import queue
import stat
from pathlib import Path

import pytest
import structlog

from jobs.base import NotifySpec
from scheduler import admin
from scheduler.admin import AdminServer
from scheduler.cli import main
from scheduler.notify import Notifier, RunReport
from scheduler.ticker import Ticker

from .fakes import FakeClock
from .test_ticker import START, Recorder, entries, job, minute

SECRETS = ("hunter2-literal", "Bearer t0ken-literal", "PW-in-url", "TK-in-query")
CONFIG = f"""
[jobs.app]
kind = "run"
image = "i"
schedule = "@hourly"
env = {{ PASSWORD = "{SECRETS[0]}", TOKEN = {{ env = "SOME_TOKEN" }} }}
notify = {{ webhook = "https://u:{SECRETS[2]}@hooks.example/x?token={SECRETS[3]}", headers = {{ Authorization = "{SECRETS[1]}" }} }}
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["validate", "--json"],
        ["jobs"],
        ["jobs", "--json"],
        ["history"],
        ["history", "--json"],
        ["schema"],
    ],
)
def test_no_secret_value_reaches_the_clis_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Literal secrets in env, headers and a webhook URL are in no line validate, jobs,
    history or schema print (stdout or stderr)."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + CONFIG)
    main(["jobs", "--config", str(path)])  # no state yet: 'note' on stderr, exit 0
    if argv[0] == "history":
        from scheduler.history import History  # noqa: PLC0415 - only this case needs a database

        History.open(tmp_path / "state").close()
    capsys.readouterr()
    code = main([*argv, "--config", str(path)] if argv[0] != "schema" else argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out
    for secret in SECRETS:
        assert secret not in out + err


def test_a_full_notification_queue_drops_with_notify_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the sender stuck, notifications beyond the queue's size are dropped, each with a
    notify.dropped naming job, run, kind and target (never the URL's secret parts)."""
    notifier = Notifier("box", "cron", FakeClock())  # not started: nothing takes from the queue
    monkeypatch.setattr(notifier, "_queue", queue.Queue(maxsize=2))
    spec = NotifySpec.model_validate({"webhook": "http://h:8080/hook?token=s3cret", "cooldown": 0})
    with structlog.testing.capture_logs() as logs:
        for n in range(4):
            notifier.report(spec, RunReport(job="j", run_id=f"r{n}", status="failed"))
    dropped = [e for e in logs if e["event"] == "notify.dropped"]
    assert [(e["run_id"], e["kind"], e["target"]) for e in dropped] == [
        ("r2", "failure", "http://h:8080/…"),
        ("r3", "failure", "http://h:8080/…"),
    ]
    assert "s3cret" not in json.dumps(logs)


def test_the_admin_socket_is_a_socket_only_its_owner_can_use(tmp_path: Path) -> None:
    """<state_dir>/admin.sock is created mode 0600, whatever the umask."""
    server = AdminServer(tmp_path, lambda job: (404, {"error": job}))
    server.start()
    try:
        info = (tmp_path / admin.SOCKET_NAME).stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
    finally:
        server.stop()


@pytest.mark.parametrize("seconds", [-7200, 86400])
def test_a_stepped_wall_clock_is_logged_as_clock_jumped(tmp_path: Path, seconds: int) -> None:
    """A wall clock that moves 2 h back or a day forward against the monotonic clock logs
    clock.jumped with the step; a step under 5 s does not."""
    clock = FakeClock(START)
    ticker = Ticker(clock, Recorder())
    ticker.set_jobs(entries(tmp_path, job("a", "* * * * *")))
    with structlog.testing.capture_logs() as logs:
        ticker.tick(clock.pass_until(minute(1)))
        clock.jump(4)  # below the 5 s threshold
        ticker.tick(clock.now())
        clock.jump(seconds)
        ticker.tick(clock.now())
    jumps = [e for e in logs if e["event"] == "clock.jumped"]
    assert [e["seconds"] for e in jumps] == [pytest.approx(seconds, abs=0.01)]


@pytest.mark.parametrize(
    ("answer", "code", "said"),
    [
        ((202, {"job": "j", "run_id": "r1"}), 0, "triggered j: run r1"),
        ((404, {"error": "unknown job 'j'"}), 2, "error: unknown job 'j'"),
        ((409, {"error": "skipped: the previous run is still running"}), 1, "error: skipped"),
        ((503, {"error": "missed: engine_unavailable"}), 1, "error: missed: engine_unavailable"),
        (OSError("connection refused"), 1, "error: no daemon answers on"),
    ],
)
def test_trigger_exit_codes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: tuple[int, dict[str, object]] | OSError,
    code: int,
    said: str,
) -> None:
    """crontainer trigger: 0 with the run id; 2 for an unknown job; 1 when skipped, not
    started, or no daemon answers — each with what the daemon said."""

    def request(state_dir: Path, job: str) -> tuple[int, dict[str, object]]:
        assert (state_dir, job) == (tmp_path, "j")
        if isinstance(answer, OSError):
            raise answer
        return answer

    monkeypatch.setattr(admin, "request_trigger", request)
    assert main(["trigger", "j", "--state-dir", str(tmp_path)]) == code
    out, err = capsys.readouterr()
    assert said in (out if code == 0 else err)
