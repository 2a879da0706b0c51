"""Loading one job of a kind from TOML text, as the kind tests do, or the errors of a bad one."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import pytest

from jobs.backup import BackupJob
from jobs.base import BaseJob
from scheduler.errors import ConfigError
from scheduler.settings import load_config

if TYPE_CHECKING:
    from pathlib import Path

Job = TypeVar("Job", bound=BaseJob)


def _config_file(tmp_path: Path, text: str) -> Path:
    """A config of ``text``, the daemon's state under ``tmp_path``."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + text)
    return path


def load_job(tmp_path: Path, text: str, name: str, kind: type[Job]) -> Job:
    """Load a config of ``text`` (the daemon's state under ``tmp_path``) and return job
    ``name``, checked to be a ``kind``."""
    job = load_config(_config_file(tmp_path, text), {}).jobs[name].job
    assert isinstance(job, kind)
    return job


def file_errors(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The errors loading a config file of exactly ``text`` (and ``environ``) fails with."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.errors


def load_errors(tmp_path: Path, text: str) -> list[str]:
    """The errors loading a config of ``text`` fails with."""
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, text), {})
    return caught.value.errors


BACKUP_BASE = '[jobs.b]\nkind = "backup"\nschedule = "@daily"\nvolumes_from = "db"\n'
"""A backup job ``b`` with a source and no target or repository yet."""


def load_backup(tmp_path: Path, extra: str, base: str = BACKUP_BASE) -> BackupJob:
    """Backup job ``b`` of ``base`` plus ``extra``."""
    return load_job(tmp_path, base + extra, "b", BackupJob)


def backup_errors(tmp_path: Path, extra: str, base: str = BACKUP_BASE) -> list[str]:
    """The errors of backup job ``b`` of ``base`` plus ``extra``."""
    return load_errors(tmp_path, base + extra)
