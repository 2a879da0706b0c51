"""The backup tool while it makes an archive: what tar's failure says (its last 4 KiB,
without its totals), the members counted however long the index, the pipe from tar to the
compressor, the hash of an archive larger than one writeback step, and a stderr that holds
only the tool's own lines."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.protocol.lines import parse
from jobs.tools.backup.archive import create
from jobs.tools.backup.pipeline import (
    COMPRESSORS,
    PIPE_BYTES,
    TAR_CREATE,
    WRITEBACK,
    Pipeline,
    _lines,
    _scratch,
    follow,
    pipe,
)
from jobs.tools.backup.processes import CHUNK, ToolError
from tests.control import result_of

from .helpers import build_tree

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
"""The project's root: ``python -m jobs.tools.backup`` run from here is this tree's tool."""
TOOL = [sys.executable, "-m", "jobs.tools.backup"]


def failing_tar(monkeypatch: pytest.MonkeyPatch, said: Path) -> None:
    """tar replaced by a program that prints the bytes of ``said`` on stderr and exits 2."""
    monkeypatch.setattr(
        "jobs.tools.backup.pipeline.TAR_CREATE", ["sh", "-c", f"cat '{said}' >&2; exit 2", "tar"]
    )


def test_a_tar_failure_says_what_tar_said_without_its_totals_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tar's ``--totals`` line ("Total bytes written: …") comes before its last words when
    it fails: the error carries tar's messages, that line taken out."""
    data = tmp_path / "data"
    data.mkdir()
    gone = tmp_path / "gone"  # a path tar is asked for that does not exist (GNU tar exits 2)
    monkeypatch.setattr(
        "jobs.tools.backup.pipeline.TAR_CREATE", [*TAR_CREATE, str(gone).lstrip("/")]
    )
    target = tmp_path / "backups"
    with pytest.raises(ToolError) as failed:
        create("db", target, [data], "zstd", now=NOW)
    head, said = str(failed.value).split(": ", 1)
    assert head == "tar failed (exit 2)"
    assert said.splitlines() == [
        f"tar: {str(gone).lstrip('/')}: Cannot stat: No such file or directory",
        "tar: Exiting with failure status due to previous errors",
    ]
    assert list(target.iterdir()) == []


def test_a_tar_failure_carries_its_last_4_kib_a_cut_character_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of a long message, the error keeps exactly the last 4096 bytes; the cut falling
    inside a UTF-8 character (tar prints non-ASCII names as they are in a UTF-8 locale)
    makes that one U+FFFD — the run still fails with tar's words, not a decoding error."""
    said = tmp_path / "said"
    said.write_bytes("é".encode() * 3000 + b"x")  # 6001 bytes: byte 1905 is a 2nd half of é
    failing_tar(monkeypatch, said)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ToolError) as failed:
        create("db", tmp_path / "backups", [data], "none", now=NOW)
    assert str(failed.value) == "tar failed (exit 2): \ufffd" + "é" * 2047 + "x"


def test_the_member_count_reads_an_index_longer_than_one_read(tmp_path: Path) -> None:
    """tar's index (one line per member) of a large tree is several MiB: ``files`` counts
    the lines of all of it, not of the last MiB read."""
    fd = _scratch(tmp_path)
    try:
        line = b"srv/data/" + b"n" * 90 + b"\n"  # 100 bytes, a member's line
        os.write(fd, line * 30_000)  # 3 MB: three reads of 1 MiB
        assert _lines(fd) == 30_000
    finally:
        os.close(fd)


def test_the_pipe_from_tar_to_the_compressor_holds_1_mib() -> None:
    """The pipe between tar and the compressor is grown from Linux's 64 KiB to 1 MiB
    (PIPE_BYTES: fewer switches between the two)."""
    read_fd, write_fd = pipe()
    try:
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) == PIPE_BYTES == 1 << 20
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_an_archive_is_made_where_the_pipe_may_not_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the right to grow a pipe (EPERM: over /proc/sys/fs/pipe-max-size, or the
    user's pipe pages used up) the default pipe stays and the archive is made as usual."""
    real_fcntl = fcntl.fcntl
    refused: list[int] = []

    def no_bigger_pipes(fd: Any, cmd: int, arg: Any = 0) -> Any:
        if cmd == fcntl.F_SETPIPE_SZ:
            refused.append(fd)
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_bigger_pipes)
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    result = create("db", target, [data], "zstd", now=NOW)
    assert len(refused) == 1
    archive = target / str(result["archive"])
    assert result["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    listed = subprocess.run(["tar", "--list", "--zstd", "--file", str(archive)], check=True)
    assert listed.returncode == 0


def test_an_archive_larger_than_the_writeback_step_is_hashed_whole(tmp_path: Path) -> None:
    """Past every WRITEBACK (8 MiB) hashed the loop hands those bytes to the disk and goes
    on: an archive of 10 MiB gets the sha256 and size of all its bytes."""
    data = tmp_path / "data"
    data.mkdir()
    with (data / "disk.img").open("wb") as image:
        image.truncate(WRITEBACK + 2 * CHUNK)  # zeros, read and archived
    target = tmp_path / "backups"
    result = create("db", target, [data], "none", now=NOW)
    archive = target / str(result["archive"])
    assert result["bytes"] == archive.stat().st_size > WRITEBACK + 2 * CHUNK
    assert result["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    sidecar = target / f"{archive.name}.sha256"
    assert sidecar.read_text() == f"{result['sha256']}  {archive.name}\n"


def test_the_create_command_prints_only_its_own_lines_on_stderr(tmp_path: Path) -> None:
    """The tool's stderr is the daemon's control channel: a run of ``create`` prints its
    result there and nothing else — no Python warning, which would go around ``say``."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    ran = subprocess.run(
        [*TOOL, "create", "--job", "db", "--target", str(target), str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )
    assert (ran.returncode, ran.stdout) == (0, "")
    lines = ran.stderr.splitlines()
    assert [line for line in lines if parse(line.encode()) is None] == []
    assert (target / result_of(ran.stderr)["archive"]).is_file()


def test_a_failed_run_whose_partial_is_already_gone_fails_with_its_own_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``.partial`` file removed while the archive was made (someone cleaning the
    target) and the compressor failing: the run's error is the compressor's, not a
    complaint about the missing partial, and nothing is left."""
    real_follow = follow

    def removed_meanwhile(path: Path, pipeline: Pipeline) -> tuple[int, str]:
        followed = real_follow(path, pipeline)
        path.unlink()
        return followed

    monkeypatch.setattr("jobs.tools.backup.archive.follow", removed_meanwhile)
    monkeypatch.setitem(COMPRESSORS, "zstd", ["false"])
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "backups"
    with pytest.raises(ToolError) as failed:
        create("db", target, [data], "zstd", now=NOW)
    assert str(failed.value) == "zstd failed (exit 1)"
    assert list(target.iterdir()) == []
