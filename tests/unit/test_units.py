"""Durations and sizes: the one format every config key uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from jobs.logship import LogshipJob
from jobs.rotate import RotateJob
from jobs.run import RunJob
from jobs.units import parse_duration, parse_size
from scheduler.settings import load_config

if TYPE_CHECKING:
    from pathlib import Path

MIB = 1024**2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (30, 30.0),
        (2.5, 2.5),
        (" 10m ", 600.0),
    ],
)
def test_durations_in_every_accepted_form(text: object, seconds: float) -> None:
    """Units, compound forms and bare numbers all read as seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "abc", "10x", "1h 30m", "m5", "-5", -1, True, "5 minutes", [5]]
)
def test_bad_durations_name_the_format(text: object) -> None:
    """Anything else is refused with a message that shows the expected format."""
    with pytest.raises(ValueError, match="expected a duration such as '90s'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MB", 10_000_000),
        ("512KiB", 524_288),
        ("1GiB", 1_073_741_824),
        ("2 kb", 2000),
        ("1.5MiB", 1_572_864),
        ("100m", 104_857_600),
        ("100M", 104_857_600),
        ("100mb", 100_000_000),
        ("512k", 524_288),
        ("2g", 2_147_483_648),
        ("1t", 1_099_511_627_776),
        ("1TB", 1_000_000_000_000),
        ("64b", 64),
        ("100", 100),
        (4096, 4096),
        ("0", 0),
    ],
)
def test_sizes_in_every_accepted_form(text: object, size: int) -> None:
    """SI (1000-based) and IEC units, Docker's one-letter units (1024-based, as ``docker
    run --memory 100m``), case-insensitive, and bare byte counts."""
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["10x", "10mbit", "512kibs", "ten MB", "-1", "1.5.2MB", "m", False, None]
)
def test_bad_sizes_name_the_format(text: object) -> None:
    """Anything else is refused, the error naming every unit and its base."""
    with pytest.raises(ValueError, match="expected a size such as '10MB'") as caught:
        parse_size(text)
    if isinstance(text, str) and text[:1].isdigit():
        assert "k, m, g, t and KiB, MiB, GiB, TiB: 1024-based; KB, MB, GB, TB: 1000-based" in str(
            caught.value
        )


def test_every_size_key_of_the_config_takes_dockers_spelling(tmp_path: Path) -> None:
    """Each key that takes a size — [daemon]'s output limits, a container's memory, a
    rotation's sizes, a shipment's limits and its sink's batch — reads '100m' as 100 MiB,
    as ``docker run --memory 100m`` does."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[daemon]\nmax_output_line = "1k"\nmax_output_per_run = "2m"\n'
        '[jobs.run]\nkind = "run"\nimage = "i"\nschedule = "@daily"\nmemory = "100m"\n'
        '[jobs.rot]\nkind = "rotate"\nschedule = "@daily"\nvolumes = ["logs:/var/log"]\n'
        'paths = ["/var/log/*.log"]\nmax_size = "1g"\nmin_size = "4k"\nmax_age = "1d"\n'
        '[jobs.ship]\nkind = "logship"\nschedule = "@daily"\nvolumes = ["logs:/var/log"]\n'
        'paths = ["/var/log/*.log"]\nmax_bytes = "1t"\nmax_line = "64k"\n'
        '[jobs.ship.sink]\ntype = "file"\nvolume = "out"\npath = "a.ndjson"\n'
        'batch_bytes = "8m"\n'
    )
    config = load_config(path, {})
    jobs = {name: entry.job for name, entry in config.jobs.items()}
    run, rot, ship = jobs["run"], jobs["rot"], jobs["ship"]
    assert isinstance(run, RunJob)
    assert isinstance(rot, RotateJob)
    assert isinstance(ship, LogshipJob)
    assert (config.daemon.max_output_line, config.daemon.max_output_per_run) == (1024, 2 * MIB)
    assert run.memory == 100 * MIB
    assert (rot.max_size, rot.min_size) == (1024 * MIB, 4096)
    assert (ship.max_bytes, ship.max_line, ship.sink.batch_bytes) == (MIB * MIB, 65536, 8 * MIB)
