"""``include = ["conf.d/*.toml"]``: jobs in files beside the main one — loaded, checked
naming the file, watched like the main file, applied live (and a bad one keeps the running
config)."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING

import pytest

from scheduler.cli import main
from scheduler.errors import ConfigError
from scheduler.reload import ConfigWatcher
from scheduler.settings import load_config
from tests.unit.test_daemon import job, running

if TYPE_CHECKING:
    from pathlib import Path

ONLY_JOBS = (
    "an included file holds [jobs.<name>] tables only ([daemon] and [defaults] stay in config.toml)"
)
MAIN = 'include = {include}\n[daemon]\nstate_dir = "{state}"\n'


def write(tmp_path: Path, jobs: str = "", include: str = '["conf.d/*.toml"]') -> Path:
    path = tmp_path / "config.toml"
    path.write_text(MAIN.format(state=tmp_path / "state", include=include) + jobs)
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return caught.value.errors


def test_included_files_add_their_jobs_in_order_each_with_its_source(tmp_path: Path) -> None:
    """Files the globs match, relative to the main file, sorted; a file two globs match is
    read once; the main file's jobs have no source of their own."""
    path = write(tmp_path, job("main", "@daily"), include='["conf.d/*.toml", "conf.d/b.toml"]')
    (tmp_path / "conf.d" / "b.toml").write_text(job("bee", "@hourly"))
    (tmp_path / "conf.d" / "a.toml").write_text(job("ant", "@daily") + job("ape", "@daily"))
    (tmp_path / "conf.d" / "notes.txt").write_text("not a job file")
    config = load_config(path, {})
    assert list(config.jobs) == ["main", "ant", "ape", "bee"]
    assert config.sources == {
        "ant": "conf.d/a.toml",
        "ape": "conf.d/a.toml",
        "bee": "conf.d/b.toml",
    }


def test_a_glob_that_matches_nothing_is_no_error(tmp_path: Path) -> None:
    """An empty conf.d is the normal state of a fresh install."""
    config = load_config(write(tmp_path, job("main", "@daily")), {})
    assert list(config.jobs) == ["main"]


def test_an_error_in_an_included_file_names_the_file_the_job_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, job("main", "@daily"))
    (tmp_path / "conf.d" / "db.toml").write_text(job("dump", "every day", retries='"x"'))
    errors = errors_of(path)
    assert "conf.d/db.toml: jobs.dump.retries: expected a whole number (got 'x')" in errors
    assert any(line.startswith("conf.d/db.toml: jobs.dump.schedule: ") for line in errors), errors


def test_a_job_defined_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    path = write(tmp_path, job("dump", "@daily"))
    (tmp_path / "conf.d" / "a.toml").write_text(job("clean", "@daily"))
    (tmp_path / "conf.d" / "b.toml").write_text(job("dump", "@hourly") + job("clean", "@daily"))
    assert errors_of(path) == [
        "jobs.dump: defined in config.toml and again in conf.d/b.toml",
        "jobs.clean: defined in conf.d/a.toml and again in conf.d/b.toml",
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            '[daemon]\nname = "x"\n' + job("a", "@daily"),
            f"conf.d/x.toml: daemon: {ONLY_JOBS}",
        ),
        (
            '[defaults]\ntimeout = "1h"\n',
            f"conf.d/x.toml: defaults: {ONLY_JOBS}",
        ),
        ("[jobs\n", "conf.d/x.toml: not TOML: "),
        ('jobs = "a"\n', "conf.d/x.toml: jobs: expected tables, [jobs.<name>]"),
        ("[jobs]\na = 1\n", "conf.d/x.toml: jobs.a: expected a table, [jobs.a]"),
    ],
)
def test_what_an_included_file_may_not_hold_is_named(tmp_path: Path, text: str, said: str) -> None:
    path = write(tmp_path, job("main", "@daily"))
    (tmp_path / "conf.d" / "x.toml").write_text(text)
    errors = errors_of(path)
    assert any(line.startswith(said) for line in errors), errors


@pytest.mark.parametrize("value", ['"conf.d/*.toml"', "[1]", '[""]'])
def test_include_must_be_a_list_of_globs(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, job("main", "@daily"), include=value)
    assert errors_of(path) == [
        "include: expected a list of file globs, e.g. include = ['conf.d/*.toml']"
    ]


def test_a_misspelt_include_is_told_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('includes = ["conf.d/*.toml"]\n' + job("main", "@daily"))
    assert errors_of(path) == ["includes: unknown key (did you mean `include`?)"]


def test_include_under_daemon_is_told_to_go_to_the_top(tmp_path: Path) -> None:
    """TOML puts a key below [daemon] into that table: the error says where it goes."""
    path = tmp_path / "config.toml"
    path.write_text('[daemon]\nname = "d"\ninclude = ["conf.d/*.toml"]\n' + job("main", "@daily"))
    assert errors_of(path) == [
        "daemon.include: include is a top-level key: write it above [daemon], before any table"
    ]


def test_the_watcher_sees_an_included_file_added_changed_and_removed(tmp_path: Path) -> None:
    path = write(tmp_path, job("main", "@daily"))
    watcher = ConfigWatcher(path)
    assert not watcher.changed()
    extra = tmp_path / "conf.d" / "a.toml"
    extra.write_text(job("a", "@daily"))
    assert watcher.changed()
    assert not watcher.changed()
    extra.write_text(job("a", "@hourly"))
    assert watcher.changed()
    (tmp_path / "conf.d" / "ignored.txt").write_text("x")  # no glob matches it
    assert not watcher.changed()
    extra.unlink()
    assert watcher.changed()


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        # include above the tables: that part alone is read, whatever follows it
        ('include = ["conf.d/*.toml"]\n[daemon]\nname = "d"\n[jobs.x\n', True),
        # a line opening with [ inside a multi-line string above include: the whole file
        ('note = """\n[not a table]\n"""\ninclude = ["conf.d/*.toml"]\n[daemon]\n', True),
        # ... or inside a multi-line array
        ('grid = [\n[1, 2],\n]\ninclude = ["conf.d/*.toml"]\n[daemon]\nname = "d"\n', True),
        # no TOML at all, above the first table or below: no include is read
        ('include = ["conf.d/*.toml"\n[daemon]\n', False),
    ],
)
def test_the_watcher_finds_include_above_the_first_table(
    tmp_path: Path, text: str, *, seen: bool
) -> None:
    """The watcher reads ``include`` from the part above the first table when that part is
    TOML by itself, else from the whole file: an included file's change is seen either way
    (a file that is no TOML has no include: its own changes are the ones watched)."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    (tmp_path / "conf.d").mkdir()
    watcher = ConfigWatcher(path)
    (tmp_path / "conf.d" / "a.toml").write_text(job("a", "@daily"))
    assert watcher.changed() is seen


def test_an_included_file_is_applied_live_and_a_bad_one_keeps_the_running_jobs(
    tmp_path: Path,
) -> None:
    """SIGHUP after a file is added: its job is added; a bad file: config.invalid naming the
    file, and the running jobs stay (nothing removed); fixed: applied."""
    top = 'include = ["conf.d/*.toml"]\n'
    with running(tmp_path, job("main", "@yearly"), top=top) as daemon:
        (tmp_path / "conf.d").mkdir()
        (tmp_path / "conf.d" / "a.toml").write_text(job("extra", "@yearly"))
        daemon.signal(signal.SIGHUP)
        (first,) = daemon.wait_for("config.reloaded")
        assert (first["added"], first["removed"]) == (["extra"], [])
        (tmp_path / "conf.d" / "b.toml").write_text(job("broken", "@never"))
        daemon.signal(signal.SIGHUP)
        (invalid,) = daemon.wait_for("config.invalid")
        assert any(
            line.startswith("conf.d/b.toml: jobs.broken.schedule") for line in invalid["errors"]
        ), invalid["errors"]
        (tmp_path / "conf.d" / "b.toml").write_text(job("broken", "@daily"))
        daemon.signal(signal.SIGHUP)
        second = daemon.wait_for("config.reloaded", count=2)[1]
        assert (second["added"], second["removed"]) == (["broken"], [])  # main, extra kept


def test_jobs_tells_each_jobs_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, job("main", "@daily"))
    (tmp_path / "conf.d" / "db.toml").write_text(job("dump", "@daily"))
    assert main(["jobs", "--json", "--config", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {name: row["source"] for name, row in shown.items()} == {
        "main": "config",
        "dump": "conf.d/db.toml",
    }
