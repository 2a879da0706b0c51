"""Fixtures shared by the unit tests (helpers that are not fixtures live in helpers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .helpers import close_histories

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """An empty directory for log files."""
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory


@pytest.fixture(autouse=True)
def _close_histories() -> Iterator[None]:
    """Histories the runner helpers opened are closed after each test."""
    yield
    close_histories()
