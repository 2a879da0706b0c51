"""The rotate tool's command line, in process: each option the daemon passes does what it
says, the defaults are the documented ones (rename, min size 0, zstd), a wrong value is a
usage error, and every failure is one ``rotate: …`` line with its exit code."""

from __future__ import annotations

import io
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.tools import rotate
from tests.control import result_of

from .helpers import quiet

STAMPED = "app.log.20261120T000000Z"


class Ran:
    def __init__(self, code: int, err: str) -> None:
        self.code, self.err = code, err

    @property
    def result(self) -> dict[str, Any]:
        return result_of(self.err)

    @property
    def said(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("rotate: ")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    code = rotate.main(list(argv))
    return Ran(code, capsys.readouterr().err)


def rotated_files(
    logs: Path, ext: str = "", stamps: tuple[str, ...] = ("20261120T000000Z",)
) -> list[Path]:
    return [quiet(logs / f"app.log.{stamp}{ext}", stamp) for stamp in stamps]  # no wait


def test_rotate_by_default_renames_and_holds_back_no_size(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--max-age 0`` and nothing else: a 1-byte file is due (min size 0), renamed (the app's
    inode moves to the rotated name), and its state is a UTC time."""
    log = logs / "app.log"
    log.write_text("x")
    inode = log.stat().st_ino
    before = datetime.now(UTC).replace(microsecond=0)
    ran = run(capsys, "rotate", "--max-age", "0", str(logs / "*.log"))
    assert ran.code == 0
    (moved,) = ran.result["rotated"]
    to = Path(moved["to"])
    assert (moved["path"], to.stat().st_ino, to.read_text(), log.read_text()) == (
        str(log),
        inode,
        "x",
        "",
    )
    since = datetime.fromisoformat(ran.result["state"][str(log)]["since"])
    assert since.utcoffset() == timedelta(0)
    assert to.name == f"app.log.{since.strftime('%Y%m%dT%H%M%SZ')}"
    assert before <= since <= datetime.now(UTC)


@pytest.mark.parametrize(("min_size", "rotated"), [("5", True), ("6", False)])
def test_min_size_holds_back_a_smaller_file(
    logs: Path, capsys: pytest.CaptureFixture[str], min_size: str, rotated: bool
) -> None:
    (logs / "app.log").write_text("12345")
    ran = run(capsys, "rotate", "--max-age", "0", "--min-size", min_size, str(logs / "*.log"))
    assert ran.code == 0
    assert bool(ran.result["rotated"]) is rotated


@pytest.mark.parametrize(("mode", "same_inode"), [("rename", False), ("copytruncate", True)])
def test_the_mode_option(
    logs: Path, capsys: pytest.CaptureFixture[str], mode: str, same_inode: bool
) -> None:
    log = logs / "app.log"
    log.write_text("line\n")
    inode = log.stat().st_ino
    ran = run(capsys, "rotate", "--max-size", "1", "--mode", mode, str(logs / "*.log"))
    (moved,) = ran.result["rotated"]
    assert (log.stat().st_ino == inode, Path(moved["to"]).read_text()) == (same_inode, "line\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["rotate", "--mode", "move", "/l/*.log"],
        ["finish", "--compression", "xz", "/l/*.log"],
        ["rotate", "--max-size", "1k", "/l/*.log"],
        ["finish", "--keep-last", "1.5", "/l/*.log"],
        ["rotate"],
    ],
)
def test_a_wrong_command_line_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        rotate.main(argv)
    assert exited.value.code == 2  # argparse's usage error
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m jobs.tools.rotate")
    assert "error: " in err


@pytest.mark.parametrize("via", ["stdin", "argument"])
def test_the_state_from_the_daemon_dates_the_age(
    logs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """A file last rotated two hours ago is due with --max-age 3600, one rotated now is not;
    the state comes on stdin's first line (--state-stdin) or as --state."""
    old, new = logs / "old.log", logs / "new.log"
    old.write_text("x")
    new.write_text("y")
    now = datetime.now(UTC)
    state = (
        '{"%s": {"since": "%s"}, "%s": {"since": "%s"}}'  # noqa: UP031
        % (old, (now - timedelta(hours=2)).isoformat(), new, now.isoformat())
    )
    if via == "stdin":
        monkeypatch.setattr(sys, "stdin", io.StringIO(state + "\nnot the state\n"))
        argv = ["rotate", "--state-stdin", "--max-age", "3600", str(logs / "*.log")]
    else:
        argv = ["rotate", "--state", state, "--max-age", "3600", str(logs / "*.log")]
    ran = run(capsys, *argv)
    assert ran.code == 0
    assert [r["path"] for r in ran.result["rotated"]] == [str(old)]
    assert ran.result["state"][str(new)] == {"since": now.isoformat()}


def test_a_state_that_is_not_json_exits_2_saying_so(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (logs / "app.log").write_text("x")
    ran = run(capsys, "rotate", "--state", "{bad", "--max-size", "1", str(logs / "*.log"))
    assert ran.code == 2
    assert len(ran.said) == 1
    assert ran.said[0].startswith("rotate: the state is not valid JSON: ")
    assert sorted(p.name for p in logs.iterdir()) == ["app.log"]


def test_finish_by_default_compresses_with_zstd_and_keeps_everything(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (logs / "app.log").write_text("live\n")
    made = rotated_files(logs, stamps=("20261120T000000Z", "20261121T000000Z"))
    ran = run(capsys, "finish", str(logs / "*.log"))
    assert ran.code == 0
    assert ran.result == {"compressed": [f"{p}.zst" for p in reversed(made)], "deleted": []}


@pytest.mark.parametrize(("compression", "ext"), [("zstd", ".zst"), ("gzip", ".gz"), ("none", "")])
def test_the_compression_option(
    logs: Path, capsys: pytest.CaptureFixture[str], compression: str, ext: str
) -> None:
    (logs / "app.log").write_text("live\n")
    (made,) = rotated_files(logs)
    ran = run(capsys, "finish", "--compression", compression, str(logs / "*.log"))
    assert ran.result["compressed"] == ([f"{made}{ext}"] if ext else [])
    assert Path(f"{made}{ext}").exists()


def test_finish_options_delay_keep_last_keep_age_and_several_globs(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two globs; --delay-compression leaves each live file's newest uncompressed,
    --keep-last 2 deletes app.log's third newest, --keep-age 3600 deletes web.txt's only
    rotated file (two hours old) though it is its newest."""
    (logs / "app.log").write_text("live\n")
    (logs / "web.txt").write_text("live\n")
    now = datetime.now(UTC)
    stamps = tuple((now - timedelta(minutes=m)).strftime(rotate.STAMP_FORMAT) for m in (5, 6, 7))
    newest, middle, older = rotated_files(logs, stamps=stamps)
    web = logs / f"web.txt.{(now - timedelta(hours=2)).strftime(rotate.STAMP_FORMAT)}"
    web.write_text("w")
    os.utime(web, (0, 0))
    argv = ["finish", "--compression", "gzip", "--delay-compression", "--keep-last", "2"]
    ran = run(capsys, *argv, "--keep-age", "3600", str(logs / "*.log"), str(logs / "*.txt"))
    assert ran.code == 0
    assert ran.result == {
        "compressed": [f"{middle}.gz", f"{older}.gz"],
        "deleted": [f"{older}.gz", str(web)],
    }
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        ["app.log", "web.txt", f"{middle.name}.gz", newest.name]
    )


@pytest.mark.parametrize("command", ["rotate", "finish"])
def test_confine_leaves_alone_what_is_outside_the_mounted_volumes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """With --confine (the daemon always passes it) a match reached through a directory
    symlink out of the volumes is left alone, with a diagnostic; without it, it is not."""
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    (volume / "app").mkdir(parents=True)
    elsewhere.mkdir()
    (volume / "aaa").symlink_to(elsewhere)  # matched before the real one
    monkeypatch.setattr(rotate, "mount_points", lambda: [volume])
    for directory in (volume / "app", elsewhere):
        (directory / "app.log").write_text("x" * 10)
        rotated_files(directory)
    pattern = str(volume / "*" / "app.log")
    options = ["--max-size", "1"] if command == "rotate" else ["--keep-last", "0"]
    ran = run(capsys, command, "--confine", *options, pattern)
    field = "rotated" if command == "rotate" else "deleted"
    touched = ran.result[field]
    assert len(touched) == 1
    assert str(volume / "app") in str(touched[0])
    assert sorted(p.name for p in elsewhere.iterdir()) == ["app.log", STAMPED]
    assert ran.said == [
        f"rotate: {volume / 'aaa' / 'app.log'} leads out of the mounted volumes (a symlink): left alone"
    ]
    unconfined = run(capsys, command, *options, pattern).result[field]
    names = [p["path"] if command == "rotate" else p for p in unconfined]
    assert [str(p).startswith(str(volume / "aaa")) for p in names] == [True]


def test_a_failing_compressor_exits_1_with_its_message(
    logs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compressor's own stderr (undecodable bytes replaced) makes the error; nothing is
    lost: the rotated file stays, its partial is gone."""
    failing = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.buffer.write(b'boom \\xff\\n'); sys.exit(3)",
    ]
    monkeypatch.setitem(rotate.COMPRESSORS, "gzip", (failing, ".gz"))
    (logs / "app.log").write_text("live\n")
    (made,) = rotated_files(logs)
    ran = run(capsys, "finish", "--compression", "gzip", str(logs / "*.log"))
    assert ran.code == 1
    assert ran.said == [f"rotate: gzip failed on {made}: boom \ufffd"]
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", made.name]
