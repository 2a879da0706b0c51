"""The restic tool's parts that need no repository: when a check is due, what a run backs up
without paths, restic's environment, and how secrets and restic's errors are shown."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.protocol.fields import RequestError
from jobs.protocol.restic import ResticRequest
from jobs.tools.restic.runner import Finished, Redactor, Restic, ResticError, describe, environment
from jobs.tools.restic.steps import check_due, pass_pid, sources

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
RETRY = "Save(<data/4f9a9e0b30>) returned error"
LOOKUP = "dial tcp: lookup rest on 127.0.0.11:53: no such host"


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    ("check", "last_check", "due"),
    [
        ("never", None, False),
        ("always", ago(minutes=1), True),
        ("weekly", None, True),
        ("weekly", ago(days=6, hours=23), False),
        ("weekly", ago(days=7), True),
        ("monthly", ago(days=29), False),
        ("monthly", ago(days=30), True),
        ("weekly", "2026-11-20T03:00:00", True),  # no zone: UTC
        ("weekly", "2026-11-30T03:00:00", False),
    ],
)
def test_a_check_is_due_by_its_rule_and_the_last_one(
    check: str, last_check: str | None, due: bool
) -> None:
    request = ResticRequest("db", "d", "/repo", check=check, last_check=last_check)
    assert check_due(request, NOW) is due


def test_a_last_check_that_is_no_time_is_a_bad_request() -> None:
    request = ResticRequest("db", "d", "/repo", check="monthly", last_check="last week")
    with pytest.raises(RequestError, match="request field 'last_check'"):
        check_due(request, NOW)


def mountinfo(tmp_path: Path, points: list[Path]) -> Path:
    """A mountinfo naming ``points`` as volumes, beside the engine's own files."""
    lines = [
        "615 533 0:67 / / rw,relatime master:1 - overlay overlay rw",
        "616 615 0:70 / /proc rw,nosuid - proc proc rw",
        "624 615 252:0 /c/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw",
    ]
    lines += [f"{700 + i} 615 252:0 /v{i} {p} rw - ext4 /dev/vda rw" for i, p in enumerate(points)]
    info = tmp_path / "mountinfo"
    info.write_text("\n".join(lines) + "\n")
    return info


def test_without_paths_every_volume_but_the_one_holding_a_local_repository(
    tmp_path: Path,
) -> None:
    """The volume holding the repository is left out, and so is that volume mounted again
    elsewhere (the same directory)."""
    app, backups = tmp_path / "app", tmp_path / "backups"
    (backups / "restic").mkdir(parents=True)
    app.mkdir()
    again = tmp_path / "again"
    again.symlink_to(backups)  # the same directory under another name, as a second mount
    info = mountinfo(tmp_path, [app, backups, again])
    request = ResticRequest("db", "d", str(backups / "restic"))
    assert sources(request, info) == [str(app)]


def test_without_paths_a_remote_repository_backs_up_every_volume(tmp_path: Path) -> None:
    points = [tmp_path / "a", tmp_path / "b"]
    request = ResticRequest("db", "d", "s3:https://s3.example.com/bucket")
    assert sources(request, mountinfo(tmp_path, points)) == [str(p) for p in points]


def test_without_paths_and_without_volumes_there_is_nothing_to_back_up(tmp_path: Path) -> None:
    request = ResticRequest("db", "d", "rest:http://backup:8000/")
    with pytest.raises(ResticError, match="nothing to back up: no path given and no volume"):
        sources(request, mountinfo(tmp_path, []))


SECRETS = ResticRequest(
    "db",
    "d",
    "rest:https://user:url-pass@host:8000/app",
    password="repo-pass",  # noqa: S106 - made up
    env={"AWS_SECRET_ACCESS_KEY": "key-pass-longer", "SHORT": "key"},
)


def test_the_redactor_hides_the_repository_password_and_every_env_value() -> None:
    """The longest secret first: "key-pass-longer" goes whole, not as "***-pass-longer"."""
    redact = Redactor(SECRETS)
    said = "rest:https://user:url-pass@host:8000/app repo-pass key-pass-longer url-pass key"
    assert redact(said) == "rest:https://user:***@host:8000/app *** *** *** ***"
    assert redact.repository == "rest:https://user:***@host:8000/app"


def test_restic_s_environment_holds_the_secrets_and_none_of_the_caller_s_restic_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESTIC_PASSWORD_FILE", "/elsewhere")
    env = environment(SECRETS, "/tmp/cache")
    assert "RESTIC_PASSWORD_FILE" not in env
    assert env["RESTIC_REPOSITORY"] == SECRETS.repository
    assert env["RESTIC_PASSWORD"] == "repo-pass"  # noqa: S105
    assert env["RESTIC_CACHE_DIR"] == "/tmp/cache"
    assert env["AWS_SECRET_ACCESS_KEY"] == "key-pass-longer"  # noqa: S105
    assert env["PATH"] == os.environ["PATH"]


def test_an_error_message_of_restic_says_what_could_not_be_read_and_why() -> None:
    message = {
        "message_type": "error",
        "error": {"Op": "open", "Path": "x", "Err": 13},
        "during": "archival",
        "item": "/data/x",
    }
    assert describe(message) == "cannot read /data/x (archival): open: Permission denied"
    assert describe({"error": {}, "item": "/y"}) == "cannot read /y (?): {}"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["unable to create lock: locked by PID 7", "use unlock"], "unable to create lock: locked by PID 7"),
        (["warning", "Fatal: wrong password or no key found"], "wrong password or no key found"),
        ([], "restic exited with 1"),
        # restic 0.14 writes its Fatal line right after a message that ends without a newline
        ([f"{RETRY}, retrying after 552ms: {LOOKUP}", f"error while unlocking: {LOOKUP}Fatal: unable to save snapshot: {LOOKUP}"],
         f"unable to save snapshot: {LOOKUP}"),
        # a notice that restic retries is not the reason while another line says something
        ([f"{RETRY}, retrying after 552ms: {LOOKUP}", "unable to open config file: gone"], "unable to open config file: gone"),
        ([f"{RETRY}, retrying after 552ms: {LOOKUP}"], f"{RETRY}, retrying after 552ms: {LOOKUP}"),
    ],
)  # fmt: skip
def test_the_reason_of_a_failure_is_restic_s_fatal_line_else_its_first(
    lines: list[str], reason: str
) -> None:
    assert Finished(1, lines=lines).reason() == reason


def test_a_restic_that_cannot_start_is_the_run_s_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jobs.tools.restic.runner.RESTIC", "restic-not-installed")
    with pytest.raises(ResticError, match="cannot start restic-not-installed: No such file"):
        Restic(SECRETS, "/tmp/cache").run(["version"])


def test_pass_pid_has_the_kernel_hand_out_only_higher_pids() -> None:
    """The tool moves the pids past that of the restic that held its job's lock, so that
    no process has it when restic unlock sends it SIGHUP."""
    with subprocess.Popen(["true"]) as first:
        pass
    beyond = first.pid + 40
    pass_pid(beyond)
    with subprocess.Popen(["true"]) as after:
        pass
    assert after.pid > beyond
