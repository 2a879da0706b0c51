"""Durations and sizes: the one format every config key uses."""

from __future__ import annotations

import pytest

from jobs.units import parse_duration, parse_size


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
        ("100", 100),
        (4096, 4096),
        ("0", 0),
    ],
)
def test_sizes_in_every_accepted_form(text: object, size: int) -> None:
    """SI and IEC units, case-insensitive, and bare byte counts."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10m", "512k", "ten MB", "-1", "1.5.2MB", False, None])
def test_bad_sizes_name_the_format(text: object) -> None:
    """Docker-style one-letter units are ambiguous and refused, like any other junk."""
    with pytest.raises(ValueError, match="expected a size such as '10MB'"):
        parse_size(text)
