"""When a rotated file is quiet enough to compress or delete, on a fake clock: exactly
QUIET_S without growth (or that long untouched already), never past QUIET_MAX_S of growth,
a file found growing is waited on once; a compressed file is deleted without waiting;
a partial is stale after exactly STALE_PARTIAL_S; the partial is private while written."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobs.tools import rotate

from .helpers import ROTATE_NOW, finish_now

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = ROTATE_NOW
WALL = 2_000_000_000  # the fake clock's wall time at the start, in whole seconds
STAMP = "20261127T000000Z"


class FakeTime:
    """``time`` for the tool: exact decimal steps; ``on_tick(n)`` runs after the n-th sleep
    (the app writing)."""

    def __init__(self, on_tick: Callable[[int], None] | None = None) -> None:
        self.wall, self.mono = Fraction(WALL), Fraction(1000)
        self.sleeps: list[float] = []
        self.on_tick = on_tick

    def time(self) -> float:
        return float(self.wall)

    def monotonic(self) -> Fraction:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += Fraction(str(seconds))
        self.mono += Fraction(str(seconds))
        if self.on_tick is not None:
            self.on_tick(len(self.sleeps))


def touched(path: Path, seconds_ago: int) -> Path:
    ns = (WALL - seconds_ago) * 10**9
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def logs(logs: Path) -> Path:
    """The shared ``logs`` directory, with a live app.log."""
    (logs / "app.log").write_text("live\n")
    return logs


def said(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("rotate")]


@pytest.mark.parametrize(
    ("seconds_ago", "writes", "sleeps"),
    [
        (1, set(), 0),  # untouched for exactly QUIET_S: no wait at all
        (5, set(), 0),
        (0, set(), 10),  # just written: quiet after exactly QUIET_S (10 steps of 0.1 s)
        (0, {1, 2, 3, 4, 5}, 15),  # grew for 0.5 s: QUIET_S after the last growth
        (0, {10}, 20),  # grew just when it would have been quiet
        (0, set(range(1, 291)), 300),  # quiet at the last step before QUIET_MAX_S
    ],
)
def test_a_rotated_file_is_compressed_once_quiet_for_exactly_quiet_s(
    logs: Path,
    monkeypatch: pytest.MonkeyPatch,
    seconds_ago: int,
    writes: set[int],
    sleeps: int,
) -> None:
    rotated = logs / f"app.log.{STAMP}"
    rotated.write_text("old\n")
    touched(rotated, seconds_ago)

    def app(tick: int) -> None:
        if tick in writes:
            with rotated.open("a") as f:
                f.write(f"line {tick}\n")

    clock = FakeTime(app)
    monkeypatch.setattr(rotate, "time", clock)
    assert finish_now(logs)["compressed"] == [f"{rotated}.gz"]
    assert clock.sleeps == [0.1] * sleeps


def test_a_file_still_growing_after_quiet_max_s_is_left_whole_and_waited_on_once(
    logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Growing at every step: given up after exactly QUIET_MAX_S (300 steps), neither
    compressed nor deleted (keep_last = 0), and not waited on again before deciding not to
    delete it; each decision says why."""
    rotated = logs / f"app.log.{STAMP}"
    rotated.write_text("old\n")
    touched(rotated, 0)

    def app(tick: int) -> None:
        with rotated.open("a") as f:
            f.write(f"line {tick}\n")

    clock = FakeTime(app)
    monkeypatch.setattr(rotate, "time", clock)
    assert finish_now(logs, keep_last=0) == {"compressed": [], "deleted": []}
    assert clock.sleeps == [0.1] * 300
    assert rotated.read_text().startswith("old\nline 1\n")
    assert said(capsys) == [
        f"rotate: {rotated} still grows (has the app reopened its log?): not compressed",
        f"rotate: {rotated} is still being written: not deleted",
    ]


@pytest.mark.parametrize("ext", [".gz", ".zst"])
def test_a_compressed_rotated_file_is_deleted_without_waiting(
    logs: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """Compressed means ours and complete: keep_last = 0 deletes it at once, even just
    written."""
    packed = logs / f"app.log.{STAMP}{ext}"
    packed.write_bytes(b"packed")
    touched(packed, 0)
    clock = FakeTime()
    monkeypatch.setattr(rotate, "time", clock)
    assert finish_now(logs, keep_last=0, compression="none") == {
        "compressed": [],
        "deleted": [str(packed)],
    }
    assert clock.sleeps == []


@pytest.mark.parametrize(("seconds_ago", "removed"), [(60, True), (59, False)])
def test_a_partial_is_stale_after_exactly_stale_partial_s(
    logs: Path, monkeypatch: pytest.MonkeyPatch, seconds_ago: int, removed: bool
) -> None:
    """Only ``<live>.<stamp>[-N].zst|gz.partial`` untouched for STALE_PARTIAL_S goes: not an
    uncompressed name's partial, nor one of another live file."""
    ours = logs / f"app.log.{STAMP}-1.zst.partial"
    ours.write_bytes(b"half")
    touched(ours, seconds_ago)
    others = [logs / f"app.log.{STAMP}.partial", logs / f"app.log.x.{STAMP}.gz.partial"]
    for other in others:
        other.write_bytes(b"not ours")
        touched(other, 3600)
    monkeypatch.setattr(rotate, "time", FakeTime())
    finish_now(logs)
    assert ours.exists() is not removed
    assert all(other.read_bytes() == b"not ours" for other in others)


def test_the_partial_is_private_and_named_for_the_next_run_to_find(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the compressor writes, its output is ``<rotated>.gz.partial``, mode 0600 (a log
    may be private); then it gets the rotated file's mode."""
    rotated = logs / f"app.log.{STAMP}"
    rotated.write_text("old\n")
    rotated.chmod(0o644)
    os.utime(rotated, (0, 0))
    seen: list[tuple[list[str], int]] = []
    real_run = subprocess.run

    def compressor(*args: object, **kwargs: object) -> object:
        partial = logs / f"{rotated.name}.gz.partial"
        seen.append((sorted(p.name for p in logs.iterdir()), partial.stat().st_mode & 0o777))
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", compressor)
    assert finish_now(logs)["compressed"] == [f"{rotated}.gz"]
    assert seen == [(sorted(["app.log", rotated.name, f"{rotated.name}.gz.partial"]), 0o600)]
    assert Path(f"{rotated}.gz").stat().st_mode & 0o777 == 0o644


def test_a_partial_that_is_not_ours_is_never_replaced(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone else's fresh file at the partial's name: the rotated file is left
    uncompressed, that file untouched, and the tool says so."""
    rotated = logs / f"app.log.{STAMP}"
    rotated.write_text("old\n")
    os.utime(rotated, (0, 0))
    partial = logs / f"{rotated.name}.gz.partial"
    partial.write_bytes(b"someone else's")
    assert finish_now(logs)["compressed"] == []
    assert (rotated.read_text(), partial.read_bytes()) == ("old\n", b"someone else's")
    assert said(capsys) == [
        f"rotate: {partial} exists and is not ours to replace: {rotated} not compressed"
    ]
