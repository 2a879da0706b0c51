"""Loading one job of a kind from TOML text, as the kind tests do."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from jobs.base import BaseJob
from scheduler.settings import load_config

if TYPE_CHECKING:
    from pathlib import Path

Job = TypeVar("Job", bound=BaseJob)


def load_job(tmp_path: Path, text: str, name: str, kind: type[Job]) -> Job:
    """Load a config of ``text`` (the daemon's state under ``tmp_path``) and return job
    ``name``, checked to be a ``kind``."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + text)
    job = load_config(path, {}).jobs[name].job
    assert isinstance(job, kind)
    return job
