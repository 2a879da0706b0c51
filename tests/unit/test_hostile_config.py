"""Hostile or mistaken configs: each is refused at validation with an error naming job and
field (never echoing a secret), or fails one run clearly — none stops the daemon."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from jobs.run import RunJob
from scheduler import settings
from scheduler.cli import main
from scheduler.settings import MAX_CONFIG_BYTES, MAX_JOBS, load_config
from scheduler.ticker import Ticker

from .configs import file_errors
from .fakes import FakeClock
from .test_env_secrets import run_with

if TYPE_CHECKING:
    from scheduler.settings import JobEntry

RUN = '[jobs.j]\nkind = "run"\nimage = "busybox"\nschedule = "@hourly"\n'
EXEC = '[jobs.e]\nkind = "exec"\ncontainer = "app"\nschedule = "@hourly"\n'
BACKUP = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "app"\ntarget = "bk"\n'
SHIP = (
    '[jobs.s]\nkind = "logship"\nschedule = "@hourly"\ncontainers = ["web"]\n'
    '[jobs.s.sink]\ntype = "stdout"\n'
)
DEEP = "x = " + "[" * 100_000 + "]" * 100_000 + "\n"


def test_a_100000_deep_array_is_a_config_error(tmp_path: Path) -> None:
    """Nesting that exhausts the parser's recursion is one clear error, not a crash."""
    assert file_errors(tmp_path, RUN + DEEP) == [
        f"{tmp_path / 'c.toml'}: values are nested too deeply"
    ]


def test_run_and_validate_exit_2_on_a_file_that_used_to_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At start the daemon logs config.invalid and exits 2 (it never gets as far as a crash)."""
    path = tmp_path / "c.toml"
    path.write_text(RUN + DEEP)
    assert main(["validate", "--config", str(path)]) == 2
    assert main(["run", "--config", str(path)]) == 2
    out = capsys.readouterr().out
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in logged] == ["config.invalid"]
    assert "daemon.crashed" not in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RUN + 'jitter = "100000000w"\n', "jobs.j.jitter: expected a duration of at most 520w"),
        (RUN + 'jitter = "2d"\n', "jobs.j.jitter: must be at most 1d (got '2d')"),
        (
            RUN.replace("@hourly", "@every 99999999999w"),
            "jobs.j.schedule: @every: expected a duration of at most 520w",
        ),
        (
            RUN.replace("@hourly", "@every 400d"),
            "jobs.j.schedule: @every: the interval must be at most 366d",
        ),
        (EXEC + 'command = "true"\ntimeout = "20000w"\n', "jobs.e.timeout: expected a duration"),
        (EXEC + 'command = "true"\ntimeout = "31d"\n', "jobs.e.timeout: must be at most 30d"),
        (RUN + f"history_limit = {2**70}\n", "jobs.j.history_limit: must be at most"),
        (
            "[daemon]\nengine_timeout = 1e300\n" + RUN,
            "daemon.engine_timeout: expected a duration of at most 520w",
        ),
        ("[daemon]\nengine_timeout = 7200\n" + RUN, "daemon.engine_timeout: must be at most 1h"),
        (
            RUN + 'notify = { webhook = "http://h/", timeout = "1d" }\n',
            "jobs.j.notify.timeout: must be at most 5m",
        ),
        (RUN + "memory = 1e30\n", "jobs.j.memory: expected a size of at most 1024TiB"),
        (RUN + 'memory = "20TiB"\n', "jobs.j.memory: must be at most 16TiB"),
        (RUN + "cpus = 1e12\n", "jobs.j.cpus: must be at most 1024"),
        (RUN + "pids_limit = 99999999\n", "jobs.j.pids_limit: must be at most"),
        (RUN + "retry_exit_codes = [256]\n", "jobs.j.retry_exit_codes[0]: must be at most"),
        (RUN + 'starting_deadline = "400d"\n', "jobs.j.starting_deadline: must be at most 366d"),
        (RUN + 'stop_grace = "2h"\n', "jobs.j.stop_grace: must be at most 1h"),
        (SHIP.replace('["web"]\n', '["web"]\nmax_bytes = "2TiB"\n'), "jobs.s.max_bytes: must be"),
        (SHIP.replace('["web"]\n', '["web"]\nmax_line = "1GiB"\n'), "jobs.s.max_line: must be"),
        (
            "[daemon]\nmax_concurrent_runs = 5000\n" + RUN,
            "daemon.max_concurrent_runs: must be at most 1000",
        ),
        ('[daemon]\nmax_output_line = "2MiB"\n' + RUN, "daemon.max_output_line: must be at"),
    ],
)
def test_every_duration_size_and_count_has_an_upper_bound(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A value past its documented bound is refused at validation, naming job and field."""
    errors = file_errors(tmp_path, text)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RUN.replace('"@hourly"', '"   "'), "jobs.j.schedule: the schedule is empty"),
        (EXEC + 'command = ""\n', "jobs.e.command: the command is empty"),
        (EXEC + "command = []\n", "jobs.e.command: the command is empty"),
        (
            EXEC + 'command = "sh -c \'echo hi"\n',
            "jobs.e.command: cannot be split into arguments (no closing quotation)",
        ),
        (RUN + 'command = "echo \'x"\n', "jobs.j.command: cannot be split into arguments"),
        (
            BACKUP + 'pre_exec = [{ container = "db", command = "" }]\n',
            "jobs.b.pre_exec[0].command: the command is empty",
        ),
        (
            BACKUP + 'post_exec = [{ container = "db", command = "a \'b" }]\n',
            "jobs.b.post_exec[0].command: cannot be split",
        ),
        (
            SHIP.replace('["web"]\n', '["web"]\nmax_bytes = 0\n'),
            "jobs.s.max_bytes: must be at least 1",
        ),
        (RUN + "retries = true\n", "jobs.j.retries: expected a whole number"),
        (RUN + 'retries = "3"\n', "jobs.j.retries: expected a whole number"),
        (RUN + 'enabled = "off"\n', "jobs.j.enabled: expected true or false"),
        (RUN + "catch_up = 1\n", "jobs.j.catch_up: expected true or false"),
        (RUN + "cpus = true\n", "jobs.j.cpus: expected a number"),
        ('[daemon]\nheartbeat_file = ""\n' + RUN, "daemon.heartbeat_file: expected the absolute"),
        ('[daemon]\nheartbeat_file = "/tmp/"\n' + RUN, "daemon.heartbeat_file: expected"),
        ('[daemon]\nstate_dir = ""\n' + RUN, "daemon.state_dir: expected a directory"),
    ],
)
def test_mistakes_that_used_to_pass_are_refused_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A whitespace schedule no longer makes the job vanish; empty or unsplittable commands,
    max_bytes = 0, coerced types and an empty heartbeat path are errors."""
    errors = file_errors(tmp_path, text)
    assert any(e.startswith(expected) for e in errors), errors


def test_no_job_is_dropped_without_an_error(tmp_path: Path) -> None:
    """Every job in the file is loaded or named in an error: none vanishes."""
    path = tmp_path / "c.toml"
    path.write_text(RUN + RUN.replace("jobs.j", "jobs.k"))
    assert sorted(load_config(path, {}).jobs) == ["j", "k"]


def test_errors_never_echo_secret_values(tmp_path: Path) -> None:
    """URLs (userinfo, query), env values and header values stay out of every error."""
    text = (
        RUN
        + "env = { DB_PASSWORD = 918273645 }\n"
        + 'notify = { webhook = "htps://u:PW1@h/?token=TK1", ping = "ftp://u:PW2@h/TK2", '
        + 'headers = { X-Key = "PW3\\r\\nX-Evil: 1" } }\n'
        + SHIP.replace('type = "stdout"', 'type = "http"\nurl = "gopher://u:PW4@h/?t=TK4"')
    )
    errors = file_errors(tmp_path, text)
    joined = "\n".join(errors)
    for secret in ("918273645", "PW1", "TK1", "PW2", "TK2", "PW3", "X-Evil", "PW4", "TK4"):
        assert secret not in joined, errors
    assert "jobs.j.notify.headers: header 'X-Key' holds a control character" in joined
    assert any(e.startswith("jobs.j.env.DB_PASSWORD") for e in errors)
    assert any(e.startswith("jobs.j.notify.webhook") for e in errors)
    assert any(e.startswith("jobs.s.sink.url") for e in errors)


def test_a_header_name_must_be_a_token(tmp_path: Path) -> None:
    """A header name with a space or a colon would corrupt the request: refused."""
    errors = file_errors(
        tmp_path, RUN + 'notify = { webhook = "http://h/", headers = { "A: b" = "v" } }\n'
    )
    assert errors == [
        "jobs.j.notify.headers: header 'A: b': not a header name (letters, digits, '-', …)"
    ]


def test_a_config_file_or_job_count_over_the_bounds_is_refused_before_parsing(
    tmp_path: Path,
) -> None:
    """A file over MAX_CONFIG_BYTES is not parsed at all; more than MAX_JOBS jobs is one
    error, not minutes of validation."""
    path = tmp_path / "c.toml"
    path.write_text(RUN + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert "at most 8388608 are read" in file_errors(tmp_path, path.read_text())[0]
    many = "".join(
        f'[jobs.j{n}]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n'
        for n in range(MAX_JOBS + 1)
    )
    assert file_errors(tmp_path, many) == [
        f"jobs: {MAX_JOBS + 1} jobs; at most {MAX_JOBS} are allowed"
    ]


def test_exactly_the_job_limit_loads_and_one_more_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job limit is inclusive: a file of exactly MAX_JOBS jobs loads (shown with a
    limit of 3, read when the file is loaded: 10,000 real jobs take seconds to validate)."""
    monkeypatch.setattr(settings, "MAX_JOBS", 3)

    def jobs(count: int) -> str:
        return "".join(
            f'[jobs.j{n}]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n' for n in range(count)
        )

    path = tmp_path / "c.toml"
    path.write_text(jobs(3))
    assert sorted(load_config(path, {}).jobs) == ["j0", "j1", "j2"]
    assert file_errors(tmp_path, jobs(4)) == ["jobs: 4 jobs; at most 3 are allowed"]


def test_defaults_get_each_keys_own_checks_but_not_a_whole_jobs(tmp_path: Path) -> None:
    """[defaults] is checked key by key as every kind that has the key checks it (a memory
    under the engine's minimum, an unknown zone, a relative backup target); a check of a
    whole job (a backup needs a source) is for the jobs, which get the defaults."""
    assert file_errors(
        tmp_path,
        '[defaults]\nmemory = "1MiB"\ntimezone = "Mars/Olympus"\ntarget = "./b"\n' + RUN,
    ) == [
        (
            "defaults.timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as "
            "'Europe/Berlin')"
        ),
        "defaults.memory: memory must be at least 6MiB (the engine's minimum) (got '1MiB')",
        "defaults.target: target './b': a host path must be absolute (a path on the Docker host)",
    ]
    path = tmp_path / "c.toml"
    path.write_text('[defaults]\nmemory = "64MiB"\ntarget = "backups"\n' + RUN)
    job = load_config(path, {}).jobs["j"].job
    assert isinstance(job, RunJob)
    assert job.memory == 64 * 1024 * 1024


def test_environment_text_is_read_by_the_keys_type(tmp_path: Path) -> None:
    """The environment has only text: a flag takes true/false/on/off/1/0, a count digits; a
    duration or a name stays text; what fits no type is an error naming the key."""
    path = tmp_path / "c.toml"
    path.write_text(RUN)
    config = load_config(
        path,
        {
            "CRONTAINER_DEFAULTS__CATCH_UP": "on",
            "CRONTAINER_DEFAULTS__RETRIES": "2",
            "CRONTAINER_DEFAULTS__CPUS": "0.5",
            "CRONTAINER_DEFAULTS__JITTER": "30s",
            "CRONTAINER_DAEMON__NAME": "123",
        },
    )
    job = config.jobs["j"].job
    assert (job.catch_up, job.retries, job.jitter) == (True, 2, 30.0)
    assert config.daemon.name == "123"
    errors = file_errors(tmp_path, RUN, {"CRONTAINER_DEFAULTS__ENABLED": "maybe"})
    assert errors == ["CRONTAINER_DEFAULTS__ENABLED: expected true or false (got 'maybe')"]


def test_a_binary_secret_file_fails_the_run_clearly(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (or hold NUL) in a secret file: the run fails naming the file,
    the daemon goes on; no byte of it is logged."""
    secret = tmp_path / "token"
    secret.write_bytes(b"\xff\xfe\x00s3cr\x00t")
    engine, logs = run_with(tmp_path, f'env = {{ TOKEN = {{ file = "{secret}" }} }}\n')
    failed = [e for e in logs if e["event"] == "run.failed"]
    assert [e["error"] for e in failed] == [f"env TOKEN: {secret} is not UTF-8 text"]
    assert "create" not in engine.names()
    assert not [e for e in logs if e["event"] == "run.crashed"]
    nul = tmp_path / "nul"
    nul.write_bytes(b"ab\x00cd")
    engine, logs = run_with(tmp_path, f'env_files = ["{nul}"]\n')
    assert [e["error"] for e in logs if e["event"] == "run.failed"] == [
        f"env_files: {nul} holds a NUL byte"
    ]


def test_a_schedule_that_cannot_say_its_next_time_does_not_stop_the_loop(
    tmp_path: Path,
) -> None:
    """A bug in one job's schedule leaves that job unscheduled (job.schedule_failed); the
    loop and the other jobs go on."""
    path = tmp_path / "c.toml"
    path.write_text(RUN + RUN.replace("jobs.j", "jobs.k").replace("@hourly", "* * * * *"))
    entries = dict(load_config(path, {}).jobs)

    class Broken:
        expression = "broken"

        def next_after(self, moment: datetime) -> datetime:
            raise OverflowError("date value out of range")

    broken = entries["j"]
    entries["j"] = type(broken)(broken.name, broken.job, Broken())  # type: ignore[arg-type]
    fired: list[str] = []

    def fire(entry: JobEntry, at: datetime) -> None:
        fired.append(entry.name)

    clock = FakeClock(datetime(2026, 12, 2, 12, 0, 30, tzinfo=UTC))
    ticker = Ticker(clock, fire, random.Random(1))
    with structlog.testing.capture_logs() as logs:
        ticker.set_jobs(entries)
        ticker.tick(datetime(2026, 12, 2, 12, 1, 0, tzinfo=UTC))
    assert fired == ["k"]
    assert [e["job"] for e in logs if e["event"] == "job.schedule_failed"] == ["j"]
