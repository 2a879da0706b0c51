"""The logship tool's plan and its line rules, pinned exactly: which file a checkpoint
continues in (by identity), what is forgotten or reset, the batch and byte bounds, what a
line becomes (CR, invalid UTF-8, cut) and the run's result, field by field."""

from __future__ import annotations

import glob as glob_module
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.tools import logship
from jobs.tools.logship import shipper as shipper_module
from jobs.tools.paths import open_file

from .helpers import Daemon, append, file_sink, lines_of, numbers

T = "2026-11-28T12:00:00.000000Z"


def shipped(tmp_path: Path, pattern: str, daemon: Daemon | None = None) -> Daemon:
    """A first run over ``pattern``: the daemon then holds a checkpoint per file."""
    daemon = daemon or Daemon()
    sink, _ = file_sink(tmp_path)
    daemon.ship(sink, [pattern])
    return daemon


def key_of(path: Path) -> str:
    info = path.stat()
    return f"file:{info.st_dev}:{info.st_ino}"


def plan(
    pattern: str, daemon: Daemon, roots: list[Path] | None = None
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    states, changes = logship.plan_files([pattern], daemon.checkpoints, roots)
    return [(s.path, s.offset) for s in states], changes


# --- which file a checkpoint goes on in ------------------------------------------------


def test_container_checkpoints_sorted_first_leave_the_files_plan_alone(
    tmp_path: Path, logs: Path
) -> None:
    append(logs / "app.log", 1, 3)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    daemon.checkpoints["container:app:stdout"] = {"ns": 5, "skip": 0}
    append(logs / "app.log", 4, 4)
    states, changes = plan(str(logs / "*.log"), daemon)
    assert states == [(str(logs / "app.log"), len("".join(f"line {i}\n" for i in (1, 2, 3))))]
    assert changes == {}


def test_every_checkpoint_is_decided_after_one_that_resumes(tmp_path: Path, logs: Path) -> None:
    """Two files shipped; the one whose checkpoint sorts last is deleted: it is forgotten,
    the other resumes at its offset."""
    append(logs / "a.log", 1, 2)
    append(logs / "b.log", 1, 3)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    first, last = sorted([logs / "a.log", logs / "b.log"], key=key_of)
    last_key = key_of(last)
    last.unlink()
    states, changes = plan(str(logs / "*.log"), daemon)
    assert states == [(str(first), first.stat().st_size)]
    assert changes == {last_key: None}


def test_a_renamed_file_is_continued_by_its_inode_not_by_a_newer_copy(
    tmp_path: Path, logs: Path
) -> None:
    """app.log renamed to app.log.1, and a newer copy of the same bytes beside it: the
    checkpoint goes on in its own inode, and nothing is forgotten."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    append(log, 6, 7)
    log.rename(logs / "app.log.1")
    shutil.copyfile(logs / "app.log.1", logs / "app.log.2")
    os.utime(logs / "app.log.2", (2_000_000_000, 2_000_000_000))
    states, changes = plan(str(logs / "*.log"), daemon)
    offset = len("".join(f"line {i}\n" for i in range(1, 6)))
    assert states == [(str(logs / "app.log.1"), offset)]
    assert changes == {}


def test_a_rotated_file_outside_the_volumes_is_not_followed(tmp_path: Path, logs: Path) -> None:
    """The checkpoint's directory is not inside ``roots``: its renamed file is not read and
    the checkpoint is forgotten."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    key = key_of(log)
    log.rename(logs / "app.log.1")
    volume = tmp_path / "volume"
    volume.mkdir()
    states, changes = plan(str(logs / "*.log"), daemon, roots=[volume])
    assert states == []
    assert changes == {key: None}


def test_two_renamed_files_are_both_read(tmp_path: Path, logs: Path) -> None:
    append(logs / "a.log", 1, 2)
    append(logs / "b.log", 1, 3)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    append(logs / "a.log", 3, 3)
    append(logs / "b.log", 4, 4)
    (logs / "a.log").rename(logs / "a.log.1")
    (logs / "b.log").rename(logs / "b.log.1")
    states, changes = plan(str(logs / "*.log"), daemon)
    assert sorted(states) == [
        (str(logs / "a.log.1"), len("line 1\nline 2\n")),
        (str(logs / "b.log.1"), len("line 1\nline 2\nline 3\n")),
    ]
    assert changes == {}


def test_a_copy_with_a_checkpoint_of_its_own_is_not_taken_for_a_truncated_file(
    tmp_path: Path, logs: Path
) -> None:
    """a.log and b.log begin alike; b.log is renamed, a.log truncated and rewritten: b's
    checkpoint goes on in its renamed file, a's is reset to 0 (never continued in b's file),
    and a.log is read from its start."""
    append(logs / "a.log", 1, 4)
    append(logs / "b.log", 1, 4)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    a_key, b_key = key_of(logs / "a.log"), key_of(logs / "b.log")
    a_info = (logs / "a.log").stat()
    (logs / "b.log").rename(logs / "b.old")
    (logs / "a.log").write_text("new\n")
    states, changes = plan(str(logs / "*.log"), daemon)
    offset = len("".join(f"line {i}\n" for i in range(1, 5)))
    assert states == [(str(logs / "b.old"), offset), (str(logs / "a.log"), 0)]
    assert changes == {
        a_key: {
            "path": str(logs / "a.log"),
            "dev": a_info.st_dev,
            "ino": a_info.st_ino,
            "offset": 0,
            "fp": "",
            "fplen": 0,
        }
    }
    assert b_key not in changes


def test_a_renamed_file_whose_first_bytes_changed_is_not_continued(
    tmp_path: Path, logs: Path
) -> None:
    """Same inode, renamed, but rewritten from its start: other content; the checkpoint is
    forgotten rather than read on at its old offset."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    key = key_of(log)
    log.rename(logs / "app.log.1")
    with (logs / "app.log.1").open("r+b") as f:
        f.write(b"LINE")
    states, changes = plan(str(logs / "*.log"), daemon)
    assert states == []
    assert changes == {key: None}


@pytest.mark.parametrize("copy_name", ["app.log.1", "app.log-1", "app.1", "old", "zz.copy"])
@pytest.mark.parametrize("copy_first", [True, False])
def test_the_copy_of_a_copytruncate_is_found_whatever_the_directory_order(
    tmp_path: Path, logs: Path, copy_name: str, *, copy_first: bool
) -> None:
    """The truncated live file and another live file in the directory, before or after the
    copy in the directory's order: the copy is still found and read from the checkpoint."""
    log, other, copy = logs / "app.log", logs / "other.log", logs / copy_name
    if copy_first:
        copy.touch()
    append(log, 1, 5)
    append(other, 100, 101)
    if not copy_first:
        copy.touch()
    daemon = shipped(tmp_path, str(logs / "*.log"))
    append(log, 6, 7)
    shutil.copyfile(log, copy)
    with log.open("r+") as f:
        f.truncate(0)
    append(log, 8, 8)
    states, _changes = plan(str(logs / "*.log"), daemon)
    offset = len("".join(f"line {i}\n" for i in range(1, 6)))
    assert (str(copy), offset) in states
    assert (str(log), 0) in states


def test_a_symlink_beside_a_deleted_file_is_never_taken_for_its_copy(
    tmp_path: Path, logs: Path
) -> None:
    """app.log deleted; a symlink named like a rotated log points at a file with the same
    bytes elsewhere: it is not read (a symlink is never a rotated file) and the checkpoint
    is forgotten."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    key = key_of(log)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(log, elsewhere / "secret")
    log.unlink()
    (logs / "app.log.1").symlink_to(elsewhere / "secret")
    states, changes = plan(str(logs / "*.log"), daemon)
    assert states == []
    assert changes == {key: None}


def test_a_glob_skips_directories_and_outside_links_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory and a file through a directory symlink out of the volume, both sorted
    before the real file: they are passed over (the second with a diagnostic of the tool)
    and the file is planned."""
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    (volume / "a" / "sub").mkdir(parents=True)
    (volume / "c").mkdir()
    elsewhere.mkdir()
    append(elsewhere / "x.log", 1, 1)
    (volume / "b-link").symlink_to(elsewhere)
    append(volume / "c" / "c.log", 1, 1)
    states, changes = logship.plan_files([str(volume / "*" / "*")], {}, [volume])
    assert [s.path for s in states] == [str(volume / "c" / "c.log")]
    assert changes == {}
    note = f"{volume / 'b-link' / 'x.log'} leads out of the mounted volumes (a symlink)"
    assert capsys.readouterr().err.splitlines() == [f"logship: {note}: not shipped"]


def test_a_request_that_confines_reads_only_inside_the_mounted_volumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``confine``: the tool reads only inside the container's mounts; without it,
    anywhere (a tool run outside a container)."""
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    (volume / "own").mkdir(parents=True)
    elsewhere.mkdir()
    append(volume / "own" / "a.log", 1, 1)
    append(elsewhere / "b.log", 2, 2)
    (volume / "link").symlink_to(elsewhere)
    monkeypatch.setattr(shipper_module, "mount_points", lambda: [volume])
    sink, out = file_sink(tmp_path)
    request = {"job": "j", "host": "h", "sink": sink, "paths": [str(volume / "*" / "*.log")]}
    logship.run({**request, "confine": True}, [], lambda _m: None)
    assert numbers(lines_of(out)) == [1]
    logship.run(request, [], lambda _m: None)
    assert sorted(numbers(lines_of(out))) == [1, 1, 2]


def test_a_live_file_truncated_to_nothing_keeps_a_checkpoint_at_zero(
    tmp_path: Path, logs: Path
) -> None:
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(log))
    key = key_of(log)
    with log.open("r+") as f:
        f.truncate(0)
    shipped(tmp_path, str(log), daemon)
    assert daemon.checkpoints[key]["offset"] == 0
    assert daemon.checkpoints[key]["path"] == str(log)


def test_a_checkpoint_that_did_not_move_is_reported_as_it_was_given(
    tmp_path: Path, logs: Path
) -> None:
    """After the last run only a line without its newline was added: the checkpoint
    reported is the one the daemon holds, fingerprint included."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(log))
    key = key_of(log)
    held = dict(daemon.checkpoints[key])
    with log.open("a") as f:
        f.write("partial")
    shipped(tmp_path, str(log), daemon)
    assert daemon.reports[-1]["checkpoint"] == {key: held}


# --- bounds and the result --------------------------------------------------------------


def test_a_batch_ends_at_exactly_batch_bytes(tmp_path: Path, logs: Path) -> None:
    """Lines of 7 bytes with batch_bytes 14: every batch holds two lines (the bound is
    reached, not passed); the result counts every byte once."""
    log = logs / "app.log"
    append(log, 1, 5)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    result = daemon.ship(sink, [str(log)], batch_bytes=14)
    assert result == {
        "lines": 5,
        "bytes": 35,
        "batches": 3,
        "files": 1,
        "backlog": False,
        "cut_lines": 0,
        "cut_bytes": 0,
    }
    assert [r["checkpoint"][key_of(log)]["offset"] for r in daemon.reports] == [14, 28, 35]
    assert numbers(lines_of(out)) == [1, 2, 3, 4, 5]


def test_batches_by_lines_within_one_read_count_each_byte_once(tmp_path: Path, logs: Path) -> None:
    log = logs / "app.log"
    append(log, 1, 5)
    sink, _ = file_sink(tmp_path)
    result = Daemon().ship(sink, [str(log)], batch_lines=2, batch_bytes=15)
    assert (result["lines"], result["bytes"], result["batches"]) == (5, 35, 3)


def test_default_batches_are_1000_lines_and_1_mib(tmp_path: Path, logs: Path) -> None:
    """A request without batch_lines or batch_bytes: a batch ends at 1000 lines, or at
    1 MiB of lines (their newlines included)."""
    (logs / "many.log").write_text("x\n" * 1001)
    (logs / "wide.log").write_bytes(b"w" * ((1 << 20) - 1) + b"\nlast\n")
    sink, _ = file_sink(tmp_path)
    daemon = Daemon()
    daemon.ship(sink, [str(logs / "many.log")])
    assert [r["checkpoint"][key_of(logs / "many.log")]["offset"] for r in daemon.reports] == [
        2000,
        2002,
    ]
    daemon.reports.clear()
    daemon.ship(sink, [str(logs / "wide.log")])
    assert [r["checkpoint"][key_of(logs / "wide.log")]["offset"] for r in daemon.reports] == [
        1 << 20,
        (1 << 20) + 5,
    ]


def test_once_max_bytes_is_reached_nothing_more_of_the_read_is_shipped_or_cut(
    tmp_path: Path, logs: Path
) -> None:
    """max_bytes reached by a batch in the middle of a read whose end is an over-long
    unterminated line: the run stops there; that line is neither cut nor counted, and the
    checkpoint is at the end of the last batch."""
    log = logs / "app.log"
    log.write_bytes(b"line 1\nline 2\nline 3\n" + b"x" * 2000)
    sink, out = file_sink(tmp_path)
    daemon = Daemon()
    result = daemon.ship(sink, [str(log)], max_bytes=14, batch_lines=2, max_line=1024)
    assert numbers(lines_of(out)) == [1, 2]
    assert (result["lines"], result["cut_lines"], result["cut_bytes"]) == (2, 0, 0)
    assert result["backlog"] is True
    assert daemon.checkpoints[key_of(log)]["offset"] == 14


def test_a_full_run_over_several_files_still_reports_its_result(tmp_path: Path, logs: Path) -> None:
    append(logs / "a.log", 1, 10)
    append(logs / "b.log", 11, 20)
    sink, out = file_sink(tmp_path)
    result = Daemon().ship(sink, [str(logs / "*.log")], max_bytes=14, batch_lines=2)
    assert result == {
        "lines": 2,
        "bytes": 14,
        "batches": 1,
        "files": 2,
        "backlog": True,
        "cut_lines": 0,
        "cut_bytes": 0,
    }
    assert len(lines_of(out)) == 2


def test_a_cut_line_counts_max_line_plus_one_shipped_bytes(tmp_path: Path, logs: Path) -> None:
    """An unterminated line cut at once counts as a line of max_line bytes and its newline,
    like a terminated line cut to max_line."""
    log = logs / "app.log"
    log.write_bytes(b"line 1\n" + b"x" * 3000)
    sink, _ = file_sink(tmp_path)
    result = Daemon().ship(sink, [str(log)], max_line=1024)
    assert (result["lines"], result["bytes"], result["cut_bytes"]) == (2, 7 + 1025, 3000 - 1024)


def test_container_records_count_their_bytes_and_keep_their_source(tmp_path: Path) -> None:
    """A request without paths, five records of 7 bytes with their newline, batches of
    two: the result counts lines, bytes and batches of them all; each record keeps its
    source and stream."""
    sink, out = file_sink(tmp_path)
    records = [
        {
            "source": f"container:app:{stream}",
            "time": "2026-11-28T12:00:00Z",
            "stream": stream,
            "line": f"line {i}",
            "cp": {"ns": i},
        }
        for i, stream in enumerate(["stdout", "stderr", "stdout", "stderr", "stdout"], 1)
    ]
    reports: list[dict[str, Any]] = []
    request = {"job": "j", "host": "h", "sink": sink, "batch_lines": 2}
    result = logship.run(request, records, reports.append)
    assert result == {
        "lines": 5,
        "bytes": 35,
        "batches": 3,
        "files": 0,
        "backlog": False,
        "cut_lines": 0,
        "cut_bytes": 0,
    }
    assert [(r["source"], r["stream"]) for r in lines_of(out)] == [
        (f"container:app:{r['stream']}", r["stream"]) for r in records
    ]


# --- what a line becomes -----------------------------------------------------------------


def test_a_line_loses_one_trailing_cr_and_invalid_utf8_becomes_a_replacement(
    tmp_path: Path, logs: Path
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"crlf\r\n\r\na\r\r\ncr\rinside\nbad \xff byte\n")
    sink, out = file_sink(tmp_path)
    Daemon().ship(sink, [str(log)])
    assert [r["line"] for r in lines_of(out)] == [
        "crlf",
        "",
        "a\r",
        "cr\rinside",
        "bad \ufffd byte",
    ]


def test_a_cut_line_with_invalid_utf8_is_shipped_with_a_replacement(
    tmp_path: Path, logs: Path
) -> None:
    log = logs / "app.log"
    log.write_bytes(b"\xff" + b"x" * 2000)
    sink, out = file_sink(tmp_path)
    Daemon().ship(sink, [str(log)], max_line=1024)
    assert [r["line"] for r in lines_of(out)] == ["\ufffd" + "x" * 1023]


# --- the shipper: the last word on a checkpoint wins --------------------------------------


class Kept:
    """A sink that keeps every batch it acknowledges."""

    def __init__(self) -> None:
        self.batches: list[list[logship.Record]] = []

    def send(self, records: list[logship.Record]) -> None:
        self.batches.append(list(records))

    def close(self) -> None:
        return None


def shipper_reports() -> tuple[logship.Shipper, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []
    return logship.Shipper(Kept(), 10, 1000, 10_000, report=reports.append), reports


@pytest.mark.parametrize(
    ("steps", "report"),
    [
        ([("change", {"n": 1}), ("change", None)], {"checkpoint": {}, "forget": ["s"]}),
        ([("change", None), ("change", {"n": 2})], {"checkpoint": {"s": {"n": 2}}, "forget": []}),
        ([("change", None), ("add", {"n": 3})], {"checkpoint": {"s": {"n": 3}}, "forget": []}),
        ([("add", {"n": 3}), ("change", None)], {"checkpoint": {}, "forget": ["s"]}),
    ],
)
def test_a_sources_last_change_or_record_decides_its_report(
    steps: list[tuple[str, dict[str, object] | None]], report: dict[str, Any]
) -> None:
    """Forgetting a source and setting its checkpoint (by a change or by a record) in one
    batch: the report holds only the last word — never both, never neither."""
    shipper, reports = shipper_reports()
    for step, mark in steps:
        if step == "change":
            shipper.change("s", mark)
        else:
            assert mark is not None
            shipper.add((T, "s", "x", "stdout"), 2, "s", mark)
    shipper.flush()
    assert reports == [report]


def test_a_file_read_after_its_checkpoint_was_forgotten_is_checkpointed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    append(log, 1, 2)
    info = log.stat()
    state = logship.FileState(str(log), info.st_dev, info.st_ino)
    shipper, reports = shipper_reports()
    shipper.change(state.key, None)
    logship.ship_file(state, shipper)
    shipper.flush()
    assert [(sorted(r["checkpoint"]), r["forget"]) for r in reports] == [([state.key], [])]
    assert reports[0]["checkpoint"][state.key]["offset"] == info.st_size


# --- files that vanish while the plan is made ------------------------------------------------


class Vanished:
    """A directory entry whose file is gone by the time it is looked at."""

    path = "/nowhere/gone.log"

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        raise FileNotFoundError(self.path)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        raise FileNotFoundError(self.path)


def test_files_that_vanish_during_the_plan_are_passed_over(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A glob's match, or a directory's entry, gone before it is looked at (a rotation
    while the plan is made): the others are still planned, the rotated file found."""
    log = logs / "app.log"
    append(log, 1, 5)
    daemon = shipped(tmp_path, str(logs / "*.log"))
    append(log, 6, 6)
    log.rename(logs / "app.log.1")
    append(logs / "new.log", 1, 1)
    real_scandir, matches = os.scandir, sorted(str(p) for p in logs.glob("*.log"))

    def scandir(path: str) -> list[Any]:
        return [Vanished(), *real_scandir(path)]

    def glob(_pattern: str) -> list[str]:
        return [str(logs / "a-gone.log"), *matches]

    with monkeypatch.context() as patched:
        patched.setattr(os, "scandir", scandir)
        patched.setattr(glob_module, "glob", glob)
        states, changes = plan(str(logs / "*.log"), daemon)
    offset = len("".join(f"line {i}\n" for i in range(1, 6)))
    assert states == [(str(logs / "app.log.1"), offset), (str(logs / "new.log"), 0)]
    assert changes == {}


def test_a_file_swapped_for_a_symlink_after_it_was_chosen_is_not_opened(tmp_path: Path) -> None:
    """The tools open files with O_NOFOLLOW: a log replaced by a link to a file outside the
    volumes between choosing it and opening it cannot be read through the link."""
    secret = tmp_path / "secret"
    secret.write_text("not yours\n")
    log = tmp_path / "app.log"
    log.write_text("line\n")
    with open_file(log) as f:
        assert f.read() == b"line\n"
    log.unlink()
    log.symlink_to(secret)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_file(log)
