"""How a restore reads an archive through tar (and the decompressor): an end padded past a
pipe, a decompressor failing after tar read everything, both failing, tar in the C locale
whatever the tool's, an interrupted listing, and member names kept to their last byte."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.tools.backup.archive import create
from jobs.tools.backup.processes import ToolError, start
from jobs.tools.backup.reading import DECOMPRESSORS, TAR_READ
from jobs.tools.backup.restore import restore

from .helpers import handmade_archive, snapshot, staging_left

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def with_checksum(archive: Path) -> str:
    """Write ``archive``'s .sha256 for the bytes it holds now (its checksum verifies: what
    follows is about what tar and the decompressor make of it); return its name."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (archive.parent / f"{archive.name}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive.name


def small_archive(tmp_path: Path) -> tuple[Path, Path]:
    """A zstd archive of a directory with one file; return it and the directory."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("archived\n")
    target = tmp_path / "backups"
    made = create("db", target, [data], "zstd", now=NOW)
    return target / str(made["archive"]), data


def test_an_archive_padded_past_a_pipe_restores(tmp_path: Path) -> None:
    """An archive written in 2 MiB records (``tar -b 4096``): tar stops at the end marker,
    the decompressor still writing the padding dies of SIGPIPE — no failure, the restore
    goes through."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("archived\n")
    target = tmp_path / "backups"
    target.mkdir()
    plain = target / "db-20261128T120000Z.tar"
    subprocess.run(
        ["tar", "-c", "-b", "4096", "-f", str(plain), "-C", "/", str(data).lstrip("/")],
        check=True,
    )
    assert plain.stat().st_size == 4096 * 512  # the padding is most of it: ~2 MiB of zeros
    packed = target / f"{plain.name}.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    name = with_checksum(packed)
    restored = tmp_path / "restored"
    into = restored / str(data).lstrip("/")
    into.mkdir(parents=True)
    result = restore(target, name, [into], root=restored)
    assert (result["entries"], snapshot(into)) == (2, snapshot(data))


def test_a_decompressor_failing_after_tar_read_everything_fails_the_restore(
    tmp_path: Path,
) -> None:
    """A zstd archive missing its last 4 bytes (the frame's checksum): zstd hands tar every
    byte, tar lists them, then zstd fails — the restore is refused with zstd's own words
    and writes nothing."""
    archive, data = small_archive(tmp_path)
    archive.write_bytes(archive.read_bytes()[:-4])
    name = with_checksum(archive)
    seen = snapshot(data)
    with pytest.raises(ToolError) as failed:
        restore(archive.parent, name, [data])
    head, said = str(failed.value).split(": zstd failed (exit 1): ")
    assert head == f"could not read {name} (nothing restored)"
    assert said.endswith("premature end")
    assert (snapshot(data), staging_left(data)) == (seen, [])


def test_tar_and_the_decompressor_failing_are_both_named(tmp_path: Path) -> None:
    """Bytes that are no zstd stream under a .tar.zst name: tar's failure, then zstd's,
    each with its words, one after the other."""
    target = tmp_path / "backups"
    target.mkdir()
    archive = target / "db-20261128T120000Z.tar.zst"
    archive.write_bytes(b"not a zstd stream at all\n" * 100)
    name = with_checksum(archive)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data])
    head, tar_said, zstd_said = str(failed.value).split(" failed ")
    assert head == f"could not read {name} (nothing restored): tar"
    assert tar_said.startswith("(exit 2): tar: This does not look like a tar archive\n")
    assert tar_said.endswith("; zstd")
    assert zstd_said.startswith("(exit 1): zstd: ")
    assert zstd_said.endswith("unsupported format")


def test_tar_reads_names_as_bytes_whatever_the_tools_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool in a UTF-8 locale (an image's LANG=C.UTF-8): tar still runs in the C
    locale, where a name that is not UTF-8 (Latin-1 ``caf\\xe9``) matches the staging
    rule like any other — so an extraction that fails after it has still written nothing
    into the volume."""
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    data = tmp_path / "src" / "data"
    data.mkdir(parents=True)
    latin1 = os.fsdecode(b"caf\xe9")
    (data / latin1).write_text("the destination's\n")
    prefix = str(data).lstrip("/")
    members = [(f"{prefix}/{latin1}", b"archived\n"), (f"{prefix}/{'x' * 300}", b"")]
    name = handmade_archive(tmp_path / "backups", members)
    seen = snapshot(data)
    with pytest.raises(ToolError, match="File name too long"):
        restore(tmp_path / "backups", name, [data])
    assert (snapshot(data), staging_left(data)) == (seen, [])


def test_an_interrupted_listing_ends_tar_and_kills_the_decompressor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted (Ctrl-C) while tar lists the archive: the decompressor, which would go
    on (here: it sleeps after its output), is killed, not waited for; tar has ended too;
    the interruption goes on up."""
    name = handmade_archive(tmp_path / "backups", [("srv/data/file.txt", b"archived\n")])
    packed = tmp_path / "backups" / f"{name}.gz"
    packed.write_bytes(gzip.compress((tmp_path / "backups" / name).read_bytes()))
    name = with_checksum(packed)
    lingering = ["sh", "-c", "gzip -d -c; exec sleep 600"]
    monkeypatch.setitem(DECOMPRESSORS, ".tar.gz", lingering)
    started: list[subprocess.Popen[bytes]] = []
    real_start = start

    def recorded(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_start(argv, **kwargs))
        return started[-1]

    def interrupted(_line: bytes) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("jobs.tools.backup.reading.start", recorded)
    monkeypatch.setattr("jobs.tools.backup.restore.unescape_name", interrupted)
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        restore(tmp_path / "backups", name, [data], root=tmp_path)
    unpack, tar = started
    assert [unpack.args, tar.args] == [lingering, [*TAR_READ, "--list", "--"]]
    assert unpack.returncode == -signal.SIGKILL
    assert tar.returncode is not None


def test_a_refusal_names_each_path_to_its_last_character(tmp_path: Path) -> None:
    """Paths under no volume are named as archived: a trailing space, or a last letter
    that happens to be an X, is part of the name."""
    name = handmade_archive(
        tmp_path / "backups", [("elsewhere/notes ", b"1\n"), ("elsewhere/INDEX", b"2\n")]
    )
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ToolError) as failed:
        restore(tmp_path / "backups", name, [data], root=tmp_path)
    assert str(failed.value) == (
        f"{name} holds paths under no volume mounted here (nothing restored): "
        "/elsewhere/notes , /elsewhere/INDEX"
    )
