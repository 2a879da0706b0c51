"""``jobs.tools.paths.holder``: the mounted volume that holds a path is the deepest mount
point that is the path or one of its parents — for the restic backup's sources, the restic
restore's receiving volumes and the tar restore's members alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.tools.paths import holder

POINTS = [Path("/data"), Path("/data/sub"), Path("/logs")]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/x", "/data"),
        ("/data/sub/x/y", "/data/sub"),
        ("/data/subway/x", "/data"),  # a sibling prefix of /data/sub is not under it
        ("/data", "/data"),
        ("/data/sub", "/data/sub"),
        ("/logs/app.log", "/logs"),
    ],
)
def test_the_deepest_mount_holding_the_path_holds_it(path: str, expected: str) -> None:
    assert holder(Path(path), POINTS) == Path(expected)


@pytest.mark.parametrize("path", ["/data2", "/data2/x", "/", "/srv/x", "/dat"])
def test_a_path_under_no_mount_point_has_no_holder(path: str) -> None:
    assert holder(Path(path), POINTS) is None


def test_the_order_of_the_mount_points_does_not_matter() -> None:
    assert holder(Path("/data/sub/x"), list(reversed(POINTS))) == Path("/data/sub")
    assert holder(Path("/data/sub/x"), set(POINTS)) == Path("/data/sub")


def test_a_volume_mounted_at_the_root_holds_what_no_deeper_one_does() -> None:
    points = [Path("/"), Path("/data")]
    assert holder(Path("/srv/x"), points) == Path("/")
    assert holder(Path("/"), points) == Path("/")
    assert holder(Path("/data/x"), points) == Path("/data")
    assert holder(Path("/data2"), points) == Path("/")


def test_a_mount_point_given_as_a_parent_finds_the_volume_it_is_mounted_in() -> None:
    assert holder(Path("/data/sub").parent, POINTS) == Path("/data")
    assert holder(Path("/logs").parent, POINTS) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data/x", "data"),
        ("data/sub/x", "data/sub"),
        ("data", "data"),
        ("data2/x", None),
        ("data//x", "data"),  # tar's pattern matches it under data too
        ("./data/x", None),  # as written: tar's pattern does not match it under data
        ("data/./sub/x", "data"),  # the same: under data, not data/sub
        ("", None),
    ],
)
def test_names_are_matched_as_written(name: str, expected: str | None) -> None:
    assert holder(name, {"data", "data/sub"}) == expected
