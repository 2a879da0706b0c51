"""Rotated files of one second are ordered as they were made: the newest is the last
made, not the last by the letters of its name (a real bug: '.gz' sorted after '-1', '-9'
after '-10')."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .helpers import ROTATE_STAMP as STAMP
from .helpers import finish_now, quiet

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_rotations_of_the_same_second_are_ordered_as_made(tmp_path: Path) -> None:
    """Eleven rotations in one second ('', '-1' … '-10', the older ones compressed): the
    newest is '-10' (not '.gz', not '-9' by the letters of their names), so it is the one
    delay_compression leaves and keep_last = 2 keeps it with '-9'."""
    logs = tmp_path
    (logs / "app.log").write_text("live\n")
    older = [quiet(logs / f"app.log.{STAMP}{f'-{n}' if n else ''}.gz") for n in range(10)]
    newest = quiet(logs / f"app.log.{STAMP}-10")
    result = finish_now(logs, keep_last=2, delay_compression=True)
    assert result == {"compressed": [], "deleted": [str(p) for p in reversed(older[:9])]}
    assert sorted(p.name for p in logs.iterdir()) == sorted(["app.log", older[9].name, newest.name])


def test_a_later_second_is_newer_whatever_the_numbers(tmp_path: Path) -> None:
    """The time decides first: '<day 1>-5' is older than '<day 2>' (keep_last = 1)."""
    (tmp_path / "app.log").write_text("live\n")
    older = quiet(tmp_path / "app.log.20261127T000000Z-5.gz")
    newer = quiet(tmp_path / "app.log.20261128T000000Z.gz")
    assert finish_now(tmp_path, keep_last=1) == {"compressed": [], "deleted": [str(older)]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log", newer.name]


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("twins", [("", ".gz"), (".gz", ".zst"), ("", ".gz", ".zst")])
def test_twins_of_one_stamp_and_number_are_ordered_whatever_the_listing_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twins: tuple[str, ...], backwards: bool
) -> None:
    """A plain rotated file and its compressed twin of the same stamp (a crash between
    compressing and unlinking), or '.gz' beside '.zst': keep_last = 1 keeps the last by name
    whichever order the directory lists them in."""
    (tmp_path / "app.log").write_text("live\n")
    made = [quiet(tmp_path / f"app.log.{STAMP}{ext}") for ext in twins]
    listing = [tmp_path / "app.log", *made]
    if backwards:
        listing.reverse()
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        return iter(listing) if self == tmp_path else real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = finish_now(tmp_path, compression="none", keep_last=1)
    assert result == {"compressed": [], "deleted": [str(p) for p in reversed(made[:-1])]}
    assert sorted(p.name for p in real_iterdir(tmp_path)) == ["app.log", made[-1].name]
