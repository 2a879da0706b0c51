"""The rotate tool's rules at their limits: max_size and min_size are inclusive, a 1-byte
file rotates, rotated names are UTC whatever the machine's zone and never reuse a name a
compressed file holds, only regular live files are rotated (rotated names, directories and
symlinks matched by a glob are skipped, not the end of the list), and finish compresses
only what is not compressed, prunes by age exclusively, and prunes the compressed names."""

from __future__ import annotations

import os
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobs.protocol.rotate import RotateRequest
from jobs.tools import rotate

from .helpers import ROTATE_NOW, ROTATE_STAMP, finish_now, local_zone, quiet

if TYPE_CHECKING:
    from collections.abc import Iterator

NOW, STAMP = ROTATE_NOW, ROTATE_STAMP


def rotate_now(logs: Path, **rules: object) -> list[dict[str, str]]:
    options: dict[str, object] = {"max_size": None, "max_age": None, "min_size": 0}
    options.update(rules)
    pattern = str(options.pop("pattern", "*.log"))
    request = RotateRequest((str(logs / pattern),), mode="rename", **options)  # type: ignore[arg-type]
    result = rotate.rotate(request, {}, now=NOW)
    rotated = result["rotated"]
    assert isinstance(rotated, list)
    return rotated


@pytest.mark.parametrize(
    ("size", "rules", "rotated"),
    [
        (100, {"max_size": 100}, True),
        (99, {"max_size": 100}, False),
        (1, {"max_size": 1}, True),
        (10, {"max_age": 0, "min_size": 10}, True),
        (9, {"max_age": 0, "min_size": 10}, False),
        (1, {"max_age": 0, "min_size": 0}, True),
        (0, {"max_age": 0, "min_size": 0}, False),
    ],
)
def test_size_limits_are_inclusive(
    logs: Path, size: int, rules: dict[str, object], rotated: bool
) -> None:
    (logs / "app.log").write_bytes(b"x" * size)
    assert bool(rotate_now(logs, **rules)) is rotated


@pytest.fixture
def tokyo() -> Iterator[None]:
    with local_zone("Asia/Tokyo"):
        yield


@pytest.mark.usefixtures("tokyo")
def test_a_rotated_name_carries_utc_whatever_the_machines_zone(logs: Path) -> None:
    (logs / "app.log").write_text("x")
    tokyo_now = NOW.astimezone(UTC).astimezone()  # the same instant, local (+09:00)
    assert tokyo_now.utcoffset() == timedelta(hours=9)
    result = rotate.rotate(
        RotateRequest((str(logs / "*.log"),), max_size=1, mode="rename"), {}, now=tokyo_now
    )
    assert result["rotated"] == [
        {"path": str(logs / "app.log"), "to": str(logs / f"app.log.{STAMP}")}
    ]


@pytest.mark.parametrize("ext", ["", ".zst", ".gz"])
def test_a_name_a_compressed_rotation_holds_is_not_reused(logs: Path, ext: str) -> None:
    """The first rotation of this second is already compressed: the next one is '-1', so
    compressing it can never meet the first one's file."""
    (logs / f"app.log.{STAMP}{ext}").write_text("first")
    (logs / "app.log").write_text("second")
    assert rotate_now(logs, max_size=1) == [
        {"path": str(logs / "app.log"), "to": str(logs / f"app.log.{STAMP}-1")}
    ]


def test_the_third_rotation_in_a_second_is_numbered_2(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each name is tried once: '', '-1', '-2'."""
    for name in (f"app.log.{STAMP}", f"app.log.{STAMP}-1.gz"):
        (logs / name).write_text("earlier")
    (logs / "app.log").write_text("third")
    tried: list[str] = []
    real_lexists = os.path.lexists

    def lexists(path: object) -> bool:
        tried.append(Path(str(path)).name)
        assert len(tried) < 20, tried  # a name is never tried twice
        return real_lexists(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os.path, "lexists", lexists)
    assert [r["to"] for r in rotate_now(logs, max_size=1)] == [str(logs / f"app.log.{STAMP}-2")]
    assert len(tried) == len(set(tried))


def test_only_regular_live_files_are_rotated_and_a_skipped_match_ends_nothing(
    logs: Path,
) -> None:
    """'*' matches a directory, a symlink to a file, a rotated file and the live ones, in
    that order: only the live regular files rotate."""
    (logs / "a-dir.log").mkdir()
    (logs / "b-real.log").write_text("real")
    (logs / "b-link.log").symlink_to(logs / "b-real.log")
    quiet(logs / f"app.log.{STAMP}")
    (logs / "app.log").write_text("live")
    (logs / "z.log").write_text("live")
    rotated = rotate_now(logs, pattern="*", max_size=1)
    assert [r["path"] for r in rotated] == [
        str(logs / n) for n in ("app.log", "b-real.log", "z.log")
    ]
    assert (logs / "b-link.log").is_symlink()


def test_an_already_compressed_file_is_not_compressed_again(logs: Path) -> None:
    """A '.zst' left by an earlier zstd configuration is not gzipped now."""
    (logs / "app.log").write_text("live\n")
    packed = quiet(logs / "app.log.20261127T000000Z.zst")
    assert finish_now(logs, compression="gzip")["compressed"] == []
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", packed.name]


def test_compressed_now_then_pruned_by_its_compressed_name(logs: Path) -> None:
    """keep_last = 1 in the run that compresses both: the older one's .gz is deleted (and
    reported by that name), the newer one's .gz stays."""
    (logs / "app.log").write_text("live\n")
    older = quiet(logs / "app.log.20261126T000000Z")
    newer = quiet(logs / "app.log.20261127T000000Z")
    result = finish_now(logs, keep_last=1)
    assert result == {"compressed": [f"{newer}.gz", f"{older}.gz"], "deleted": [f"{older}.gz"]}
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", f"{newer.name}.gz"]


@pytest.mark.parametrize(
    ("age", "deleted"), [(timedelta(days=3), False), (timedelta(days=3, seconds=1), True)]
)
def test_keep_age_deletes_only_what_is_older_than_it(
    logs: Path, age: timedelta, deleted: bool
) -> None:
    (logs / "app.log").write_text("live\n")
    name = f"app.log.{(NOW - age).strftime(rotate.STAMP_FORMAT)}.gz"
    packed = quiet(logs / name)
    result = finish_now(logs, keep_age=3 * 86400)
    assert result["deleted"] == ([str(packed)] if deleted else [])
    assert packed.exists() is not deleted


def test_a_rotated_file_swapped_for_a_symlink_is_left_uncompressed_and_its_target_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rotated log replaced by a link (to a file elsewhere) before its compression: the
    link is not followed — nothing compressed, no partial left, the target unchanged, a
    note naming the file."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not a log\n")
    os.utime(elsewhere, (1, 1))  # long untouched: no wait for quiet
    rotated = tmp_path / "app.log.20261202T000000Z"
    rotated.symlink_to(elsewhere)
    assert rotate._compress(rotated, "gzip") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.20261202T000000Z", "elsewhere"]
    assert elsewhere.read_text() == "not a log\n"
    assert capsys.readouterr().err == (
        f"rotate: {rotated}: Too many levels of symbolic links: not compressed\n"
    )


def test_copytruncate_of_a_log_swapped_for_a_symlink_copies_and_truncates_nothing(
    tmp_path: Path,
) -> None:
    """copytruncate opens the live log without following a symlink: a link put in its place
    (to a file elsewhere) is an error, its target is neither copied nor truncated."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not a log\n")
    live = tmp_path / "app.log"
    live.symlink_to(elsewhere)
    copy = tmp_path / "app.log.20261202T000000Z"
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        rotate._copytruncate(live, copy)
    assert elsewhere.read_text() == "not a log\n"
    assert not copy.exists()
