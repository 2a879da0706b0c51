"""The crontainer command at its edges: --config on either side of the command, a stdout
closed early, a fresh install, unknown jobs named as such (with the closest name), the
job's kind checked before the engine, the engine's address in its errors, and health
reading the heartbeat file the config names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from scheduler import admin, heartbeat
from scheduler.cli import main
from scheduler.docker_engine import DockerEngine
from scheduler.docker_errors import engine_address
from scheduler.errors import EngineUnavailableError
from scheduler.history import History
from scheduler.runs import Status

from .test_engine_errors import FailingApi

ROOT = Path(__file__).resolve().parents[2]
JOBS = (
    '[jobs.db-backup]\nkind = "backup"\nschedule = "@daily"\ntarget = "backups"\n'
    'volumes_from = ["app"]\n'
    '[jobs.report]\nkind = "run"\nimage = "i"\nschedule = "@hourly"\n'
    '[jobs.rotate-logs]\nkind = "rotate"\nschedule = "@hourly"\nvolumes_from = ["app"]\n'
    'paths = ["/var/log/app/*.log"]\nmax_size = "100m"\n'
)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """A config with a backup, a run and a rotate job, its state_dir under ``tmp_path``."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n{extra}{JOBS}')
    return path


@pytest.mark.parametrize("command", [["validate"], ["jobs"], ["history"], ["validate", "--json"]])
def test_config_is_taken_before_the_command_and_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """``crontainer --config X validate`` reads X as ``crontainer validate --config X`` does
    (a bad X gives the same exit 2 on either side); given on both sides, the later wins."""
    good = write_config(tmp_path)
    bad = tmp_path / "missing.toml"
    assert main(["--config", str(good), *command]) == 0
    assert main([*command, "--config", str(good)]) == 0
    assert main(["--config", str(bad), *command]) == 2
    assert "the config file does not exist" in capsys.readouterr().err
    assert main(["--config", str(bad), *command, "--config", str(good)]) == 0
    assert main(["--config", str(good), *command, "--config", str(bad)]) == 2


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["schema"], 141),
        (["validate"], 141),
        (["history", "--json"], 141),
        (["--version"], 141),
        (["jobs", "-h"], 0),
    ],
)
def test_a_closed_stdout_ends_the_command_quietly(
    tmp_path: Path, command: list[str], code: int
) -> None:
    """The reader of stdout is gone before a word is written (``| head`` that has had
    enough): no traceback, nothing on stderr; exit 141, as a tool killed by SIGPIPE, for a
    long output and a short one (written only when stdout is flushed at the end); argparse's
    own --version and --help drop what they cannot write and exit 0."""
    config = write_config(tmp_path)
    record_runs(tmp_path / "state", "report")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "CRONTAINER_CONFIG": str(config)},
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == code


def test_history_of_a_fresh_install_is_empty_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state database yet: an empty table (or ``[]``), a note on stderr, exit 0 — as
    ``jobs`` does; a job of the config has simply not run yet."""
    config = write_config(tmp_path)
    assert main(["history", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [
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
    assert "no state database" in err
    assert main(["history", "report", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["jobs", "--config", str(config)]) == 0


def record_runs(state: Path, *jobs: str) -> None:
    """One succeeded run of each of ``jobs`` in the state database under ``state``."""
    history = History.open(state)
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    for number, job in enumerate(jobs):
        history.record_fire(job, t0)
        history.begin(f"r{number}", 1, job, trigger="schedule", scheduled_at=t0, started_at=t0)
        history.finish(
            f"r{number}", 1, status=Status.SUCCEEDED, finished_at=t0 + timedelta(seconds=1)
        )
    history.close()


def test_history_of_a_job_neither_configured_nor_recorded_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown name: exit 2 naming it, with the closest configured or recorded name; a
    job removed from the config still shows its runs; a configured job without runs is an
    empty table."""
    config = write_config(tmp_path)
    record_runs(tmp_path / "state", "report", "old-report")
    assert main(["history", "db-bakup", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        "error: unknown job 'db-bakup' (not in the config nor in the history); "
        "did you mean 'db-backup'?"
    )
    assert main(["history", "old-reprt", "--config", str(config)]) == 2
    assert "did you mean 'old-report'?" in capsys.readouterr().err
    assert main(["history", "zzz", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip().endswith("(not in the config nor in the history)")
    assert main(["history", "old-report", "--json", "--config", str(config)]) == 0
    assert [r["job"] for r in json.loads(capsys.readouterr().out)] == ["old-report"]
    assert main(["history", "db-backup", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    # --state-dir alone reads no config: the history's names are all it knows.
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["history", "reprt", *state]) == 2
    assert "(not in the history); did you mean 'report'?" in capsys.readouterr().err


def test_trigger_names_an_unknown_job_before_asking_any_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job not in the config: exit 2, 'unknown job' with the closest name, and no daemon
    asked; a known job with no daemon running: 'no daemon answers', exit 1."""
    asked: list[str] = []

    def request(state_dir: Path, job: str) -> tuple[int, dict[str, object]]:
        asked.append(job)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(admin, "request_trigger", request)
    config = write_config(tmp_path)
    assert main(["trigger", "reprot", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"error: unknown job 'reprot' (not in {config}); did you mean 'report'?" in err
    assert "daemon" not in err
    assert asked == []
    assert main(["trigger", "report", "--config", str(config)]) == 1
    assert "no daemon answers on" in capsys.readouterr().err
    assert asked == ["report"]


def test_trigger_with_a_state_dir_alone_takes_the_daemons_word_for_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a config the daemon decides: its 404 and job list give 'unknown job' with
    the closest of the daemon's names, exit 2."""

    def request(state_dir: Path, job: str) -> tuple[int, dict[str, object]]:
        return 404, {"error": f"unknown job {job!r}", "jobs": ["db-backup", "report"]}

    monkeypatch.setattr(admin, "request_trigger", request)
    assert main(["trigger", "db-backpu", "--state-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown job 'db-backpu' (not in the daemon's jobs); did you mean 'db-backup'?"
    )


@pytest.mark.parametrize("command", ["backups", "restore"])
@pytest.mark.parametrize(
    ("job", "said"),
    [
        ("rotate-logs", "error: job 'rotate-logs' is of kind 'rotate', not 'backup'"),
        (
            "db-backpu",
            "error: unknown job 'db-backpu' (not in {config}); did you mean 'db-backup'?",
        ),
    ],
)
def test_backups_and_restore_check_the_job_before_the_engine(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    job: str,
    said: str,
) -> None:
    """A job that is not a backup job, or no job at all: exit 2 with the reason, and no
    connection to the engine is even tried."""

    def connect(timeout: float) -> DockerEngine:
        raise AssertionError("the engine was contacted")  # pragma: no cover - the failure

    monkeypatch.setattr(DockerEngine, "connect", connect)
    config = write_config(tmp_path)
    assert main([command, job, "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == said.format(config=config)


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        (None, "unix:///var/run/docker.sock"),
        ("", "unix:///var/run/docker.sock"),
        ("unix:///run/user/1000/docker.sock", "unix:///run/user/1000/docker.sock"),
        ("tcp://10.0.0.5:2376", "tcp://10.0.0.5:2376"),
        ("tcp://admin:s3cret@10.0.0.5:2376", "tcp://***@10.0.0.5:2376"),
        ("ssh://deploy@host", "ssh://***@host"),
        ("admin:s3cret@10.0.0.5:2375", "***@10.0.0.5:2375"),
        ("tcp://u:p@ss@h:2376", "tcp://***@h:2376"),  # a password with an @
        ("tcp://u:p/w@h:2376", "tcp://***@h:2376"),  # a password with a /
    ],
)
def test_the_engine_address_is_docker_host_or_the_socket_without_credentials(
    host: str | None, shown: str
) -> None:
    """DOCKER_HOST as docker-py reads it (unset or empty: the default socket), its user
    part masked."""
    assert engine_address({} if host is None else {"DOCKER_HOST": host}) == shown


def test_an_engine_that_does_not_answer_is_named_by_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error says which address was tried; a password in DOCKER_HOST is in no part of
    it, not even where the transport's own message quotes the address."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    engine = DockerEngine(FailingApi(requests.ConnectionError("refused")))
    with pytest.raises(EngineUnavailableError) as silent:
        engine.kill("app", "SIGHUP")
    assert "the Docker engine at unix:///var/run/docker.sock did not answer: refused" in str(
        silent.value
    )
    monkeypatch.setenv("DOCKER_HOST", "tcp://admin:s3cret@127.0.0.1:1")
    with pytest.raises(EngineUnavailableError) as refused:
        DockerEngine.connect(1)
    message = str(refused.value)
    assert "the Docker engine at tcp://***@127.0.0.1:1 did not answer" in message
    assert "s3cret" not in message
    assert "admin" not in message


def test_the_daemon_that_finds_no_engine_names_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``engine.unavailable`` and ``daemon.failed`` (reason engine_unavailable) say which
    DOCKER_HOST was tried."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "s"}"\nlog_format = "json"\nengine_wait = 0\n'
        f'heartbeat_file = "{tmp_path / "beat"}"\nhttp = ""\n'
    )
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    assert main(["run", "--config", str(config)]) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    said = {e["event"]: e for e in events if e["event"] in ("engine.unavailable", "daemon.failed")}
    assert said["daemon.failed"]["reason"] == "engine_unavailable"
    for event in said.values():
        assert "the Docker engine at tcp://127.0.0.1:1 did not answer" in event["error"]


def test_health_reads_the_heartbeat_file_the_config_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --file: ``[daemon] heartbeat_file`` of the config, or of CRONTAINER_DAEMON__
    HEARTBEAT_FILE, as ``run`` reads them; --file still wins."""
    beat = tmp_path / "beat"
    config = write_config(tmp_path, f'heartbeat_file = "{beat}"\n')
    assert main(["health", "--config", str(config)]) == 1
    assert f"unhealthy: no heartbeat at {beat}:" in capsys.readouterr().err
    beat.touch()
    assert main(["--config", str(config), "health"]) == 0
    assert main(["health", "--config", str(config), "--file", str(tmp_path / "other")]) == 1
    capsys.readouterr()
    env_beat = tmp_path / "env-beat"
    monkeypatch.setenv("CRONTAINER_DAEMON__HEARTBEAT_FILE", str(env_beat))
    assert main(["health", "--config", str(config)]) == 1
    assert f"no heartbeat at {env_beat}:" in capsys.readouterr().err
    env_beat.touch()
    old = time.time() - 120
    os.utime(beat, (old, old))  # the file's own path is stale: the environment's is read
    assert main(["health", "--config", str(config)]) == 0


def test_health_with_a_config_it_cannot_read_uses_the_default_file_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config error does not make a running daemon unhealthy: the default heartbeat
    file is read, and stderr says why. Only heartbeat_file is read: an unknown key
    elsewhere (which a reload would refuse) does not matter to the check."""
    default = tmp_path / "default-beat"
    monkeypatch.setattr(heartbeat, "DEFAULT", default)
    default.touch()
    other_error = tmp_path / "other.toml"
    other_error.write_text("[daemon]\nbogus = 1\n")
    assert main(["health", "--config", str(other_error)]) == 0
    assert capsys.readouterr().err == ""
    broken = tmp_path / "c.toml"
    broken.write_text("[daemon\n")
    assert main(["health", "--config", str(broken)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"note: {broken}: not TOML: ")
    assert err.strip().endswith(f"; reading the default heartbeat file {default}")
    assert out.startswith("healthy: heartbeat")
    relative = tmp_path / "relative.toml"
    relative.write_text('[daemon]\nheartbeat_file = "beat"\n')
    assert main(["health", "--config", str(relative)]) == 0
    assert capsys.readouterr().err.strip() == (
        f"note: {relative}: daemon.heartbeat_file: not the absolute path of a file; "
        f"reading the default heartbeat file {default}"
    )
    default.unlink()
    assert main(["health", "--config", str(tmp_path / "none.toml")]) == 1
    assert f"unhealthy: no heartbeat at {default}" in capsys.readouterr().err
