"""Bounds of the config file itself: inclusive, like every other bound."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scheduler.errors import ConfigError
from scheduler.settings import MAX_CONFIG_BYTES, load_config

if TYPE_CHECKING:
    from pathlib import Path

JOB = '[jobs.hello]\nkind = "run"\nschedule = "*/5 * * * *"\nimage = "busybox:latest"\n'


def padded_to(path: Path, size: int) -> Path:
    """A valid config of exactly ``size`` bytes (the job, then a comment)."""
    head = JOB + "# "
    path.write_text(head + "x" * (size - len(head) - 1) + "\n")
    assert path.stat().st_size == size
    return path


def test_a_config_file_of_exactly_max_config_bytes_is_read(tmp_path: Path) -> None:
    """MAX_CONFIG_BYTES is the largest file read; one byte more is refused unread."""
    config = load_config(padded_to(tmp_path / "at.toml", MAX_CONFIG_BYTES), {})
    assert list(config.jobs) == ["hello"]
    with pytest.raises(ConfigError) as caught:
        load_config(padded_to(tmp_path / "over.toml", MAX_CONFIG_BYTES + 1), {})
    assert caught.value.errors == [
        (
            f"{tmp_path / 'over.toml'}: the config file is {MAX_CONFIG_BYTES + 1} bytes; "
            f"at most {MAX_CONFIG_BYTES} are read"
        )
    ]
