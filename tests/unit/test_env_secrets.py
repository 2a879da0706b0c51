"""env_files and secret env values: read by the daemon at each run, passed to the container,
never in a log line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from .fakes import FakeClock, FakeEngine
from .test_runner import SCHEDULED, make_config, make_runner


def run_with(tmp_path: Path, extra: str) -> tuple[FakeEngine, list[dict[str, object]]]:
    config = make_config(tmp_path, job=extra)
    engine = FakeEngine(FakeClock())
    runner = make_runner(config, engine)
    with structlog.testing.capture_logs() as logs:
        runner.submit(config.jobs["j"], SCHEDULED)
        assert runner.join(10)
    return engine, [dict(e) for e in logs]


def test_env_files_and_secret_values_reach_the_container_but_no_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "pa55-from-env")
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\n\nFROM_FILE=file-s3cret\nPLAIN=from-file\nSPACED = a b \n")
    secret = tmp_path / "token"
    secret.write_text("t0ken-from-file\n")
    engine, logs = run_with(
        tmp_path,
        f'env_files = ["{env_file}"]\n'
        f'env = {{ PLAIN = "from-env", PASSWORD = {{ env = "DB_PASSWORD" }}, '
        f'TOKEN = {{ file = "{secret}" }} }}\n',
    )
    (spec,) = engine.created_specs
    assert dict(spec.env) == {
        "FROM_FILE": "file-s3cret",
        "PLAIN": "from-env",  # env wins over env_files
        "SPACED": " a b",
        "PASSWORD": "pa55-from-env",
        "TOKEN": "t0ken-from-file",
    }
    text = json.dumps(logs, default=str)
    assert "succeeded" in text
    for value in ("file-s3cret", "pa55-from-env", "t0ken-from-file"):
        assert value not in text


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('env = { PASSWORD = { env = "NOT_SET_ANYWHERE" } }\n',
         "env PASSWORD: environment variable NOT_SET_ANYWHERE is not set"),
        ('env_files = ["/nonexistent/app.env"]\n',
         "env_files: cannot read /nonexistent/app.env: No such file or directory"),
    ],
)  # fmt: skip
def test_a_secret_that_cannot_be_read_fails_the_run_before_any_container(
    tmp_path: Path, extra: str, error: str
) -> None:
    engine, logs = run_with(tmp_path, extra)
    assert "create" not in engine.names()
    (failed,) = [e for e in logs if e["event"] == "run.failed"]
    assert failed["error"] == error


def test_a_bad_env_file_line_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GOOD=1\njust-a-word\n")
    _, logs = run_with(tmp_path, f'env_files = ["{env_file}"]\n')
    (failed,) = [e for e in logs if e["event"] == "run.failed"]
    assert failed["error"] == f"env_files: {env_file} line 2: expected KEY=VALUE"
