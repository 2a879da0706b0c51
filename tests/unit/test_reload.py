"""Config changes: noticed by content, described as added / removed / changed."""

from __future__ import annotations

import os
from pathlib import Path

from scheduler.reload import ConfigWatcher, diff_jobs
from scheduler.settings import load_config


def jobs(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return dict(load_config(path, {}).jobs)


def job(name: str, schedule: str = "@hourly", extra: str = "") -> str:
    return f'[jobs.{name}]\nkind = "run"\nimage = "i"\nschedule = "{schedule}"\n{extra}\n'


def test_watcher_sees_content_changes_only(tmp_path: Path) -> None:
    """A touch is no change; new content, a replaced file, and a vanished file are."""
    path = tmp_path / "c.toml"
    path.write_text("a = 1\n")
    watcher = ConfigWatcher(path)
    assert not watcher.changed()
    os.utime(path)
    assert not watcher.changed()
    replacement = tmp_path / "new.toml"
    replacement.write_text("a = 2\n")
    replacement.replace(path)  # how editors and config management write files
    assert watcher.changed()
    assert not watcher.changed()
    path.unlink()
    assert watcher.changed()
    assert not watcher.changed()


def test_diff_names_added_removed_and_changed_jobs(tmp_path: Path) -> None:
    """Only a real difference in a job's definition counts as changed."""
    old = jobs(tmp_path, job("keep") + job("edit") + job("drop"))
    new = jobs(tmp_path, job("keep") + job("edit", "@daily") + job("fresh"))
    changes = diff_jobs(old, new)  # type: ignore[arg-type]
    assert (changes.added, changes.removed, changes.changed) == (["fresh"], ["drop"], ["edit"])
