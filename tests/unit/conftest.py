"""Fixtures shared by the unit tests (helpers that are not fixtures live in helpers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """An empty directory for log files."""
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory
