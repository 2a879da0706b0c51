"""The crontainer command: validate's output and exit codes, health, usage errors."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.cli import main
from scheduler.docker_engine import tls_problem
from scheduler.history import History
from scheduler.runs import Status

ROOT = Path(__file__).resolve().parents[2]


def test_validate_prints_three_next_runs_per_job(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0; each job with its next 3 run times."""
    assert main(["validate", "--config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "OK, 5 job(s)" in out
    assert "paused  (run, '@hourly', UTC, disabled)" in out
    assert (
        "report-done  (run, '@manual', UTC)\n  manual: runs only when chained or triggered" in out
    )
    assert "disk-report  (run, '* * * * *', Europe/Berlin)" in out


def test_validate_json_gives_iso_times_with_offsets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json: an object keyed by job, next_runs as ISO 8601 with the zone's UTC offset."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.nightly]\nkind = "run"\nimage = "i"\nschedule = "0 3 * * *"\n'
        'timezone = "America/New_York"\n'
    )
    assert main(["validate", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["nightly"]
    runs = [datetime.fromisoformat(t) for t in report["nightly"]["next_runs"]]
    assert len(runs) == 3
    for run in runs:
        assert (run.hour, run.minute) == (3, 0)
        offset = run.utcoffset()
        assert offset is not None
        assert offset.total_seconds() in (-5 * 3600, -4 * 3600)
    assert report["nightly"]["timezone"] == "America/New_York"


def test_validate_bad_file_exits_2_with_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, one line per error on stderr; --json also gives them as a list."""
    path = tmp_path / "c.toml"
    path.write_text('[jobs.a]\nkind = "run"\nschedule = "bad"\n[jobs.b]\nkind = "x"\n')
    assert main(["validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert (
        "error: jobs.a.schedule: expected 5 fields (minute hour day-of-month month day-of-week), got 1"
        in err
    )
    assert "error: jobs.a.image: required key is missing" in err
    assert (
        "error: jobs.b.kind: unknown kind 'x' (one of: run, exec, signal, backup, logship, rotate, service)"
        in err
    )
    assert main(["validate", "--config", str(path), "--json"]) == 2
    assert len(json.loads(capsys.readouterr().out)["errors"]) == 3


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is a config error, not a crash."""
    assert main(["validate", "--config", str(tmp_path / "none.toml")]) == 2
    assert "the config file does not exist" in capsys.readouterr().err


def test_config_comes_from_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --config, CRONTAINER_CONFIG names the file."""
    path = tmp_path / "env.toml"
    path.write_text('[jobs.e]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n')
    monkeypatch.setenv("CRONTAINER_CONFIG", str(path))
    assert main(["validate"]) == 0
    assert str(path) in capsys.readouterr().out


def test_run_with_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon refuses to start on a bad file and logs config.invalid with the errors."""
    path = tmp_path / "c.toml"
    path.write_text("[daemon]\nbogus = 1\n")
    assert main(["run", "--config", str(path)]) == 2
    event = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert event["event"] == "config.invalid"
    assert event["errors"] == ["daemon.bogus: unknown key"]


def test_usage_errors_exit_2() -> None:
    """An unknown command or option is a usage error."""
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


def test_health_follows_the_heartbeat_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fresh heartbeat: 0; stale or missing: 1, with the reason."""
    beat = tmp_path / "beat"
    assert main(["health", "--file", str(beat)]) == 1
    assert "no heartbeat" in capsys.readouterr().err
    beat.touch()
    assert main(["health", "--file", str(beat)]) == 0
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert main(["health", "--file", str(beat), "--max-age", "1m"]) == 1
    assert "heartbeat is 120s old (limit 60s)" in capsys.readouterr().err
    assert main(["health", "--file", str(beat), "--max-age", "soon"]) == 2


def write_history(tmp_path: Path) -> Path:
    """A config whose state_dir holds two runs of job a (one with two attempts) and a skip of b."""
    state = tmp_path / "state"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n'
        '[jobs.a]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n'
        '[jobs.b]\nkind = "run"\nimage = "i"\nschedule = "@daily"\nenabled = false\n'
    )
    history = History.open(state)
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    history.record_fire("a", t0)
    history.begin("r1", 1, "a", trigger="schedule", scheduled_at=t0, started_at=t0)
    history.finish(
        "r1", 1, status=Status.FAILED, finished_at=t0 + timedelta(seconds=2), exit_code=3
    )
    history.begin(
        "r1", 2, "a", trigger="schedule", scheduled_at=t0, started_at=t0 + timedelta(seconds=5)
    )
    history.finish(
        "r1",
        2,
        status=Status.SUCCEEDED,
        finished_at=t0 + timedelta(seconds=6),
        exit_code=0,
        output=["ok"],
    )
    history.record(
        "r2",
        "b",
        "schedule",
        t0 + timedelta(hours=1),
        status=Status.SKIPPED,
        at=t0 + timedelta(hours=1),
        reason="busy",
    )
    history.close()
    return config


def test_history_prints_runs_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text and --json; a job filter; --limit."""
    config = write_history(tmp_path)
    assert main(["history", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "STARTED",
        "JOB",
        "RUN",
        "ID",
        "TRY",
        "STATUS",
        "EXIT",
        "TOOK",
        "PARENT",
        "REASON",
    ]
    assert [line.split()[2:6] for line in lines[1:]] == [
        ["b", "r2", "1", "skipped"],
        ["a", "r1", "2", "succeeded"],
        ["a", "r1", "1", "failed"],
    ]
    assert main(["history", "a", "--json", "--limit", "1", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    assert rows[0]["run_id"] == "r1"
    assert rows[0]["attempt"] == 2
    assert rows[0]["duration_s"] == 1.0
    assert rows[0]["output_tail"] == "ok"
    assert main(["history", "--json", "--state-dir", str(tmp_path / "state")]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_jobs_shows_next_run_last_outcome_and_last_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each configured job with what the history knows; a disabled job has no next run."""
    config = write_history(tmp_path)
    assert main(["jobs", "--json", "--config", str(config)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["a"]["last_status"] == "succeeded"
    assert report["a"]["last_success_at"] == "2026-01-05T12:00:06+00:00"
    assert report["a"]["next_run"] is not None
    assert report["b"]["enabled"] is False
    assert report["b"]["next_run"] is None
    assert report["b"]["last_status"] == "skipped"
    assert main(["jobs", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "disabled" in out.splitlines()[2]


def test_history_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state database yet: an empty history (exit 0) and a note saying why, not a
    traceback; a database that cannot be read is an error (exit 1)."""
    assert main(["history", "--state-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1  # the table's header alone
    assert "note:" in err
    assert "no state database" in err
    (tmp_path / "crontainer.db").write_text("not a database")
    assert main(["history", "--state-dir", str(tmp_path)]) == 1
    assert "cannot use the state database" in capsys.readouterr().err


def test_validate_warns_about_schedules_that_fire_too_often_and_refuses_one_that_never_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schedule firing more often than once a minute is a warning (exit 0); one on a day
    that none of its months has (February 30th) is an error naming the job and the field."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.often]\nkind = "run"\nimage = "x"\nschedule = "@every 10s"\n'
        '[jobs.fine]\nkind = "run"\nimage = "x"\nschedule = "* * * * *"\n'
    )
    assert main(["validate", "--config", str(path)]) == 0  # warnings, not errors
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: jobs.often.schedule: fires more often than once a minute (every 10s)"]
    assert main(["validate", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["often"]["warnings"] == ["fires more often than once a minute (every 10s)"]
    assert report["fine"]["warnings"] == []
    never = tmp_path / "never.toml"
    never.write_text('[jobs.never]\nkind = "run"\nimage = "x"\nschedule = "0 0 30 2 *"\n')
    assert main(["validate", "--config", str(never)]) == 2
    said = (
        "error: jobs.never.schedule: day-of-month field: '30' names no day that the months of "
        "the month field ('2') have, so the schedule would never fire"
    )
    assert capsys.readouterr().err.splitlines() == [said]


@pytest.mark.parametrize(
    ("present", "verify", "message"),
    [
        ([], "1", "ca.pem is missing"),
        (["ca.pem", "cert.pem"], "1", "key.pem is missing"),
        (["cert.pem", "key.pem"], "", None),  # no verification: no CA needed
        (["ca.pem", "cert.pem", "key.pem"], "1", None),
    ],
)
def test_tls_configured_but_missing_certificates_fail_closed(
    tmp_path: Path, present: list[str], verify: str, message: str | None
) -> None:
    for name in present:
        (tmp_path / name).write_text("x")
    environ = {"DOCKER_CERT_PATH": str(tmp_path), "DOCKER_TLS_VERIFY": verify}
    problem = tls_problem(environ)
    if message is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.endswith(f"{tmp_path}/{message}: not connecting without it")
        assert f"DOCKER_CERT_PATH={tmp_path}" in problem


def test_an_unreadable_certificate_is_named(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").mkdir()  # even root cannot read a directory as a file
    problem = tls_problem({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    assert problem is not None
    assert f"{tmp_path}/ca.pem cannot be read (Is a directory)" in problem


def test_run_refuses_to_start_without_its_tls_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}/s"\nlog_format = "json"\n')
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "certs"))
    assert main(["run", "--config", str(config)]) == 2
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "daemon.failed"
    assert line["reason"] == "tls"
    assert "ca.pem is missing" in line["error"]
