"""String commands holding shell syntax no shell will read: a warning naming the key with
the ``["sh", "-c", …]`` form of the user's own text — printed by ``validate``, logged by the
daemon at start and at a reload — never an error, and never for ordinary arguments."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING, get_args

import pytest
from pydantic import BaseModel

from jobs.kinds import KINDS
from scheduler.cli import main
from scheduler.settings import load_config
from scheduler.settings.shell import _is_command, _read_fields, shell_syntax
from tests.unit.test_daemon import job, running

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("command", "found"),
    [
        ("mysqldump -u root app > /dump/db.sql", "'>' (a redirection)"),
        ("mysqldump app >/dump/db.sql", "'>' (a redirection)"),
        ("cat log >> /out", "'>>' (a redirection)"),
        ("psql app < /dump/db.sql", "'<' (a redirection)"),
        ("job 2>&1", "'2>' (a redirection)"),
        ("pg_dump app | gzip", "'|' (a pipe)"),
        ("make && make install", "'&&' (and then)"),
        ("test -f x || touch x", "'||' (or else)"),
        ("sync; sync", "';' (a list)"),
        ("sync ; sync", "';' (a list)"),
        ("sleep 5 &", "'&' (in the background)"),
        ("echo $(date)", "'$(…)' (a command substitution)"),
        ("echo `date`", "'`…`' (a command substitution)"),
        ("echo $HOME", "'$HOME' (a variable)"),
        ('echo "$HOME/x"', "'$HOME' (a variable)"),
        ("echo ${HOME}", "'${HOME}' (a variable)"),
    ],
)
def test_shell_syntax_outside_quotes_is_found(command: str, found: str) -> None:
    """Operators, redirections, substitutions and variables no shell will read are found."""
    assert shell_syntax(command) == found


@pytest.mark.parametrize(
    "command",
    [
        "find /data -name *.log -delete",  # a glob: find reads it itself
        "find /data -name '*.log' -exec rm {} ;",  # find's own ';' (no shell to escape it for)
        "find /data -exec rm {} \\;",
        "grep -E a|b /var/log/app.log",  # '|' inside a word: a regular expression
        'echo "a > b | c; d && e"',  # all quoted
        "echo '$HOME' '$(date)'",  # single quotes: no expansion intended
        "curl -fsS https://x/y?a=1&b=2",  # '&' inside a word
        "sh -c 'mysqldump app > /dump/db.sql'",  # a shell reads it already
        "/bin/bash -lc 'a | b'",
        "tar czf - /data",
        "backup --keep ~/x [ab]",
        "echo 'unbalanced",  # the command's own error says so
    ],
)
def test_ordinary_arguments_are_not_taken_for_shell_syntax(command: str) -> None:
    """No false alarm: globs, find's ';', quoted text, a word's own '|' or '&', sh -c."""
    assert shell_syntax(command) is None


EVERY_COMMAND = """
[jobs.r]
kind = "run"
image = "busybox"
schedule = "@daily"
command = "echo $HOME"
entrypoint = "env > /tmp/env"

[jobs.e]
kind = "exec"
container = "app"
schedule = "@daily"
command = "pg_dump app | gzip"

[jobs.b]
kind = "backup"
schedule = "@daily"
volumes_from = "db"
target = "backups"
pre_exec = [
  { container = "db", command = "true" },
  { container = "db", command = "mysqldump -u root app > /dump/db.sql" },
]
post_exec = [{ container = "db", command = "rm /dump/db.sql && sync" }]

[jobs.fine]
kind = "run"
image = "busybox"
schedule = "@daily"
command = ["sh", "-c", "echo $HOME > /tmp/x"]
"""


def test_every_string_command_is_checked_and_the_config_still_loads(tmp_path: Path) -> None:
    """run's command and entrypoint, exec's command, each pre_exec and post_exec: one
    warning each, by key; a list command is never checked (no shell was expected)."""
    path = tmp_path / "c.toml"
    path.write_text(EVERY_COMMAND)
    config = load_config(path, {})
    assert sorted(config.jobs) == ["b", "e", "fine", "r"]
    keys = {name: [w.key for w in found] for name, found in config.warnings.items()}
    assert keys == {
        "r": ["command", "entrypoint"],
        "e": ["command"],
        "b": ["pre_exec[1].command", "post_exec[0].command"],
    }
    (pre,) = [w for w in config.warnings["b"] if w.key == "pre_exec[1].command"]
    assert pre.message == (
        "'>' (a redirection) is shell syntax, but a string command is split into arguments "
        "without a shell: it reaches mysqldump as an argument. To run it in a shell, write "
        'it as a list: command = ["sh", "-c", "<the command>"]'
    )
    assert pre.fix == 'command = ["sh", "-c", "mysqldump -u root app > /dump/db.sql"]'


def test_validate_prints_each_warning_naming_the_key_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The suggested form is the user's own text, as a TOML array the file can take."""
    path = tmp_path / "c.toml"
    path.write_text(EVERY_COMMAND)
    assert main(["validate", "--config", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line.split(": ", 2)[1] for line in err if line.startswith("warning: ")]
    assert warned == [
        "jobs.r.command",
        "jobs.r.entrypoint",
        "jobs.e.command",
        "jobs.b.pre_exec[1].command",
        "jobs.b.post_exec[0].command",
    ]
    entry = next(line for line in err if "jobs.r.entrypoint" in line)
    assert entry.endswith('— here: entrypoint = ["sh", "-c", "env > /tmp/env"]')
    assert main(["validate", "--json", "--config", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [w.split(":")[0] for w in report["b"]["warnings"]] == [
        "pre_exec[1].command",
        "post_exec[0].command",
    ]
    assert report["fine"]["warnings"] == []


def test_a_command_that_may_hold_a_password_is_not_shown(tmp_path: Path) -> None:
    """The rule of error messages holds for the warning: an address with a user is not
    repeated; the key and the form are still named."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.r]\nkind = "run"\nimage = "curl"\nschedule = "@daily"\n'
        'command = "curl https://me:hunter2@host/x > /out"\n'
    )
    (warning,) = load_config(path, {}).warnings["r"]
    assert "hunter2" not in warning.message
    assert warning.message.endswith('command = ["sh", "-c", "<the command>"]')
    assert warning.fix == ""


@pytest.mark.parametrize(
    "command",
    [
        "mysqldump -uroot -pS3cret app > /dump/db.sql",
        "mysqldump --password=S3cret app > /dump/db.sql",
        "curl -H 'Authorization: Bearer S3cret' host | sh",
        "TOKEN=S3cret ./push.sh && true",
    ],
)
def test_a_command_with_a_password_as_an_argument_is_not_shown(
    tmp_path: Path, command: str
) -> None:
    """The daemon logs the warning: a command that looks like it carries a secret as an
    argument (-pX, --password=, a token, an Authorization header) is not repeated in it."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[jobs.r]\nkind = "run"\nimage = "db"\nschedule = "@daily"\n'
        f"command = {json.dumps(command)}\n"
    )
    (warning,) = load_config(path, {}).warnings["r"]
    assert "S3cret" not in warning.message
    assert warning.message.endswith('command = ["sh", "-c", "<the command>"]')
    assert warning.fix == ""


def test_the_daemon_logs_each_warning_at_start_and_after_a_reload(tmp_path: Path) -> None:
    """config.warning with the job, the key and what is wrong — never the command's text
    (it may carry a password as an argument; validate, at a terminal, shows it)."""
    with running(tmp_path, job("a", "@yearly", command='"echo $HOME"')) as daemon:
        (first,) = daemon.wait_for("config.warning")
        assert (first["job"], first["key"]) == ("a", "command")
        assert first["warning"].endswith(
            'write it as a list: command = ["sh", "-c", "<the command>"]'
        )
        assert "echo $HOME" not in first["warning"]
        assert first["log_level"] == "warning"
        text = daemon.path.read_text()
        daemon.path.write_text(text + job("b", "@yearly", command='"a | b"'))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("config.reloaded")
        found = daemon.wait_for("config.warning", count=3)
    assert [(e["job"], e["key"]) for e in found] == [("a", "command")] * 2 + [("b", "command")]


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The model classes a field's type names (in unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type):
        return [annotation] if issubclass(annotation, BaseModel) else []
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def test_the_keys_read_for_warnings_are_every_command_and_every_table() -> None:
    """Per kind, the warnings read only some keys: every key that takes a command and every
    one that may hold a table (pre_exec, notify, …) is among them, in the tables too."""
    todo: list[type[BaseModel]] = list(KINDS.values())
    seen: set[type[BaseModel]] = set()
    commands: set[str] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        read = dict(_read_fields(model))
        for name, info in model.model_fields.items():
            if _is_command(info):
                assert read.get(name) is True, (model, name)
                commands.add(f"{model.__name__}.{name}")
            nested = _models_in(info.annotation)
            if nested:
                assert name in read, (model, name)
                todo.extend(nested)
    assert {"RunJob.command", "RunJob.entrypoint", "ExecJob.command"} <= commands
    assert len(commands) > 3  # the backup's exec steps' commands too
