"""The backup tool when things go wrong: what an interrupted archive leaves behind, what
a refused restore names (and how many), what a move into place that stops says, and the
temporary names a killed run leaves for the next one to clean."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.tools.backup.archive import clean_partials, create, member_name
from jobs.tools.backup.listing import listing, verify
from jobs.tools.backup.pipeline import COMPRESSORS, Pipeline
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.restore import _transform, restore
from jobs.tools.staging import STAGING_PREFIX

from .helpers import build_tree, handmade_archive, snapshot, staging_left

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def fd_path(fd: object) -> Path | None:
    """The path an open descriptor refers to (None if ``fd`` is a path, not a descriptor)."""
    return Path(f"/proc/self/fd/{fd}").readlink() if isinstance(fd, int) else None


def test_an_interrupted_archive_kills_tar_and_the_compressor_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run interrupted while tar and the compressor still work (SIGTERM → an exception in
    the hashing loop): both are killed — not waited for — and the partial file is removed.
    (The compressor here goes on after its input ends, as a slow one would: tar, killed
    first, closes that input, and a compressor that merely ended there proves no kill.)"""
    pipelines: list[Pipeline] = []

    class Recorded(Pipeline):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pipelines.append(self)

    def interrupted(_path: Path, _pipeline: Pipeline) -> tuple[int, str]:
        raise KeyboardInterrupt

    monkeypatch.setattr("jobs.tools.backup.archive.Pipeline", Recorded)
    monkeypatch.setattr("jobs.tools.backup.archive.follow", interrupted)
    monkeypatch.setattr(
        "jobs.tools.backup.pipeline.TAR_CREATE", ["sh", "-c", "exec sleep 600", "tar"]
    )
    monkeypatch.setitem(COMPRESSORS, "zstd", ["sh", "-c", "zstd -q -c; exec sleep 600"])
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "backups"
    with pytest.raises(KeyboardInterrupt):
        create("db", target, [data], "zstd", now=NOW)
    [pipeline] = pipelines
    assert [proc.returncode for proc in pipeline.procs] == [-9, -9]  # SIGKILL, both
    assert list(target.iterdir()) == []


def test_a_run_killed_while_writing_the_checksum_leaves_a_partial_the_next_run_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checksum file is written as ``<archive>.sha256.partial`` then renamed: a run
    stopped before the rename leaves the archive without its checksum (incomplete) and that
    partial name, never a final-named half checksum; the next run removes the partial."""
    real_fsync = os.fsync

    def stopped_at_the_checksum(fd: int) -> None:
        if str(fd_path(fd)).endswith(".sha256.partial"):
            raise KeyboardInterrupt
        real_fsync(fd)

    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("data\n")
    target = tmp_path / "backups"
    monkeypatch.setattr(os, "fsync", stopped_at_the_checksum)
    with pytest.raises(KeyboardInterrupt):
        create("db", target, [data], "zstd", now=NOW)
    first = "db-20261128T120000Z.tar.zst"
    assert sorted(p.name for p in target.iterdir()) == [first, f"{first}.sha256.partial"]
    assert [a["good"] for a in listing("db", target)] == [False]
    monkeypatch.undo()
    later = datetime(2026, 11, 29, tzinfo=UTC)
    second = str(create("db", target, [data], "zstd", now=later)["archive"])
    assert sorted(p.name for p in target.iterdir()) == [first, second, f"{second}.sha256"]


def test_stale_partial_names_that_are_not_regular_files_are_left_alone(tmp_path: Path) -> None:
    """Only regular files are removed: a symlink named like a partial (and what it points
    to) and a directory named like one stay."""
    target = tmp_path / "backups"
    target.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not a partial\n")
    link = target / "db-20260101T000000Z.tar.zst.partial"
    link.symlink_to(outside)
    directory = target / "db-20260102T000000Z.tar.zst.partial"
    directory.mkdir()
    (target / "db-20260103T000000Z.tar.zst.partial").write_bytes(b"half")
    assert clean_partials(target, "db") == ["db-20260103T000000Z.tar.zst.partial"]
    assert sorted(p.name for p in target.iterdir()) == [link.name, directory.name]
    assert outside.read_text() == "not a partial\n"


# --- what a refused restore names ---------------------------------------------------


WHAT = {
    "dot-dot": ("holds members restore does not take", "{prefix}/data/../e{i}.txt"),
    "absolute": ("holds members restore does not take", "/{prefix}/data/a{i}.txt"),
    "homeless": ("holds paths under no volume mounted here", "{prefix}/other/o{i}.txt"),
}
"""Kinds of members a restore refuses: what the error says, and each member's name."""


@pytest.mark.parametrize("kind", list(WHAT))
@pytest.mark.parametrize(
    ("count", "more"),
    [(1, ""), (5, ""), (6, " and 1 more"), (7, " and 2 more")],
    ids=["one", "five-all-named", "six-one-more", "seven"],
)
def test_a_refused_restore_names_the_first_five_paths_then_how_many_more(
    tmp_path: Path, kind: str, count: int, more: str
) -> None:
    """Members restore does not take ('..' in a name, an absolute name), or under no
    mounted volume: the error names up to five, in the archive's order (absolute, as
    they would be written), then says how many more there are; nothing is written."""
    top = tmp_path / "src"
    data = top / "data"
    data.mkdir(parents=True)
    (data / "keep.txt").write_text("the destination's\n")
    prefix = str(top).lstrip("/")
    what, pattern = WHAT[kind]
    bad = [pattern.format(prefix=prefix, i=i) for i in range(count)]
    members = [(f"{prefix}/data/keep.txt", b"archived\n")] + [(m, b"x") for m in bad]
    name = handmade_archive(tmp_path / "backups", members)
    with pytest.raises(ToolError) as failed:
        restore(tmp_path / "backups", name, [data])
    named = ", ".join(m if kind != "homeless" else f"/{m}" for m in bad[:5])
    assert str(failed.value) == f"{name} {what} (nothing restored): {named}{more}"
    assert (data / "keep.txt").read_text() == "the destination's\n"
    assert sorted(p.name for p in data.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "directory",
    ["INBOX", "two\nlines", "tab\tand\\backslash", os.fsdecode(b"latin-1 caf\xe9 \x01")],
    ids=["ends-with-X", "newline", "tab-backslash", "octal-escaped-bytes"],
)
def test_a_merged_directory_gets_its_archived_mode_back_whatever_its_name(
    tmp_path: Path, directory: str
) -> None:
    """A directory of the archive that is still there is merged into, then given its
    archived owner, mode and times — whatever its name holds: a final X, characters tar
    lists as C escapes (newline, tab, backslash) or as octal ones (bytes not UTF-8,
    control characters)."""
    data = tmp_path / "src" / "data"
    (data / directory).mkdir(parents=True)
    (data / directory / "1").write_text("a mail\n")
    (data / directory).chmod(0o700)
    before = snapshot(data)
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])
    (data / directory).chmod(0o777)
    os.utime(data / directory, (0, 0))
    restore(target, name, [data])
    assert snapshot(data) == before


# --- a move into place that stops ---------------------------------------------------


def test_a_move_failing_in_the_first_of_nested_volumes_names_the_untouched_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Volumes are moved into place the deepest first: a rename failing there stops the
    restore; the error names that volume's staging directory (it holds the rest) and the
    other volumes', not moved yet (the next deepest first) — which is where they are."""
    data = build_tree(tmp_path / "src")
    middle, inner = data / "sub", data / "sub" / "deeper"
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])

    def fails(*_args: object, **_fds: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "rename", fails)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data, inner, middle])
    [inner_staging], [middle_staging], [outer_staging] = map(staging_left, (inner, middle, data))
    assert str(failed.value) == (
        "moving the restored tree into place failed: [Errno 5] Input/output error; "
        f"{inner} holds a mix of old and restored entries; the rest of the restored tree "
        f"is in {inner_staging}; not moved yet, those volumes untouched: "
        f"{middle_staging}, {outer_staging}"
    )
    assert inner_staging.name == middle_staging.name == outer_staging.name
    assert (middle_staging / "run.sh").is_file()
    assert (outer_staging / "file.txt").is_file()


def test_a_move_that_fails_after_every_entry_says_only_the_volume_itself_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry moved, then setting the volume directory's own times fails: the error
    says every entry was moved and that directories' owner, mode and times are not all set;
    no staging directory is left and the entries are the archive's."""
    data = build_tree(tmp_path / "src")
    before = snapshot(data)
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])
    (data / "file.txt").write_text("changed since\n")
    real_utime = os.utime

    def fails_on_the_volume(path: Any, *args: Any, **kwargs: Any) -> None:
        if fd_path(path) == data:
            raise OSError(1, "Operation not permitted")
        real_utime(path, *args, **kwargs)

    monkeypatch.setattr(os, "utime", fails_on_the_volume)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data])
    assert str(failed.value) == (
        "moving the restored tree into place failed: [Errno 1] Operation not permitted; "
        f"{data} holds a mix of old and restored entries: every entry was moved, not every "
        "directory's owner, mode and times set"
    )
    assert staging_left(data) == []
    after = snapshot(data)
    assert {rel: v for rel, v in after.items() if rel != "."} == {
        rel: v for rel, v in before.items() if rel != "."
    }


# --- what verify and restore refuse to read -----------------------------------------


@pytest.mark.parametrize(
    ("sidecar", "said"),
    [
        (None, "{target}/{name}: no such archive"),
        ("", "{target}/{name}.sha256: no checksum for this archive (incomplete?)"),
        ("absent", "{target}/{name}.sha256: no checksum for this archive (incomplete?)"),
        ("0" * 64 + "  {name}\n", "{target}/{name}: checksum mismatch (expected {zeros}, got "),
    ],
    ids=["no-archive", "empty-checksum-file", "no-checksum-file", "mismatch"],
)
def test_verify_refuses_with_an_error_naming_the_file_at_fault(
    tmp_path: Path, sidecar: str | None, said: str
) -> None:
    """No archive, no (or an empty) checksum file, a checksum that does not match: each a
    ToolError naming the file at fault (and both digests for a mismatch)."""
    target = tmp_path / "backups"
    target.mkdir()
    name = "db-20261128T120000Z.tar.zst"
    if sidecar is not None:
        (target / name).write_bytes(b"an archive")
    if sidecar not in (None, "absent"):
        (target / f"{name}.sha256").write_text(str(sidecar).format(name=name))
    with pytest.raises(ToolError) as failed:
        verify(target, name)
    expected = said.format(target=target, name=name, zeros="0" * 64)
    assert str(failed.value).startswith(expected)
    if sidecar and sidecar != "absent":
        digest = hashlib.sha256(b"an archive").hexdigest()
        assert str(failed.value) == f"{expected}{digest})"


def test_restore_refuses_an_archive_whose_name_has_no_known_suffix(tmp_path: Path) -> None:
    """An archive named .tar.xz (checksum fine): nothing restored, the error names the
    suffixes the tool reads."""
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "backups"
    target.mkdir()
    name = "db-20261128T120000Z.tar.xz"
    (target / name).write_bytes(b"xz data")
    digest = hashlib.sha256(b"xz data").hexdigest()
    (target / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data])
    assert str(failed.value) == (
        f"could not read {name} (nothing restored): "
        f"{name}: not an archive name (.tar, .tar.zst or .tar.gz, then .age if encrypted)"
    )
    assert list(data.iterdir()) == []


CONTROLS = "".join(map(chr, range(1, 32)))
"""Every character a path may hold that no path is likely to: \\x01 to \\x1f."""


@pytest.mark.parametrize(
    ("held", "delimiter"),
    [("", "\x01"), ("\x01", "\x02"), (CONTROLS[1:], "\x01"), (CONTROLS[:-1], "\x1f")],
    ids=["none-held", "first-held", "all-but-the-first-held", "all-but-the-last-held"],
)
def test_the_transform_is_delimited_by_a_control_character_no_volume_path_holds(
    held: str, delimiter: str
) -> None:
    """tar's --transform expression is ``s<d>…<d>…<d>rhS`` with ``d`` the first of \\x01 to
    \\x1f that none of the volumes' paths holds."""
    mounts = [f"srv/a{held[: len(held) // 2]}", f"srv/b{held[len(held) // 2 :]}"]
    expression = _transform(mounts, ".crontainer-restore-0")
    assert expression[1] == delimiter
    assert expression.count(delimiter) == 3
    assert expression.endswith(f"{delimiter}rhS")


def test_volume_paths_holding_every_control_character_are_a_clear_error() -> None:
    """No delimiter left (a space is not one): refused, saying why."""
    with pytest.raises(ToolError) as failed:
        _transform([f"srv/{CONTROLS}"], ".crontainer-restore-0")
    assert str(failed.value) == "the volumes' paths leave no delimiter for tar's --transform"


# --- staging directories ------------------------------------------------------------


def test_a_staging_directory_is_private_and_named_with_16_hex_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging directory a stopped move leaves (here the archive holds only a file of
    the volume, not the volume's own directory) is ``.crontainer-restore-`` and 16 hex
    digits, mode 0700: nobody else reads the restored tree before it is in place."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("data\n")
    target = tmp_path / "backups"
    name = str(create("db", target, [data / "file.txt"], "zstd", now=NOW)["archive"])

    def fails(*_args: object, **_fds: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "rename", fails)
    with pytest.raises(ToolError):
        restore(target, name, [data])
    [staging] = staging_left(data)
    assert re.fullmatch(r"\.crontainer-restore-[0-9a-f]{16}", staging.name)
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700


@pytest.mark.parametrize("at", ["staging", "volume"])
def test_a_volume_a_restore_cannot_write_into_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    """The staging directory cannot be made (a full disk), or the volume's directory cannot
    be opened (gone): the error names the path and the reason; nothing is written."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])
    if at == "volume":
        shutil.rmtree(data)
        with pytest.raises(ToolError) as failed:
            restore(target, name, [data])
        assert str(failed.value) == f"cannot restore into {data}: No such file or directory"
        assert not data.exists()
        return
    real_mkdir = os.mkdir

    def full(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if path.startswith(STAGING_PREFIX):
            raise OSError(28, "No space left on device")
        real_mkdir(path, mode, dir_fd=dir_fd)

    seen = snapshot(data)
    monkeypatch.setattr(os, "mkdir", full)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data])
    assert re.fullmatch(
        rf"could not extract {re.escape(name)} \(nothing restored\): cannot make "
        rf"{re.escape(str(data))}/\.crontainer-restore-[0-9a-f]{{16}}: No space left on device",
        str(failed.value),
    )
    assert snapshot(data) == seen


def test_a_staging_directory_that_cannot_be_removed_after_a_failed_extraction_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The extraction fails (a name the file system refuses) and removing the staging
    directory fails too: the error is still the extraction's, and a diagnostic line names
    the staging directory left behind and why."""
    data = tmp_path / "src" / "data"
    data.mkdir(parents=True)
    prefix = str(data).lstrip("/")
    target = tmp_path / "backups"
    name = handmade_archive(target, [(f"{prefix}/a", b"a\n"), (f"{prefix}/{'x' * 300}", b"")])

    def refused(*_args: object, **_kwargs: object) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(shutil, "rmtree", refused)
    with pytest.raises(ToolError, match="File name too long"):
        restore(target, name, [data])
    [staging] = staging_left(data)
    said = f"could not remove the staging directory {staging}: [Errno 16] Device or resource busy"
    assert capsys.readouterr().err.splitlines() == [f"backup: {said}"]


def test_the_archive_is_made_as_its_partial_name_mode_0644_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While tar writes it the archive is ``<archive>.partial`` (the pattern a later run
    cleans), mode 0644 whatever the umask lets through; the rename keeps the mode."""
    real_fsync = os.fsync
    seen: list[tuple[Path | None, int]] = []

    def recorded(fd: int) -> None:
        seen.append((fd_path(fd), stat.S_IMODE(os.fstat(fd).st_mode)))
        real_fsync(fd)

    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("data\n")
    target = tmp_path / "backups"
    monkeypatch.setattr(os, "fsync", recorded)
    old = os.umask(0)
    try:
        made = create("db", target, [data], "gzip", now=NOW)
    finally:
        os.umask(old)
    name = "db-20261128T120000Z.tar.gz"
    assert made["archive"] == name
    assert seen[0] == (target / f"{name}.partial", 0o644)
    assert stat.S_IMODE((target / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in target.iterdir()) == [name, f"{name}.sha256"]


def test_member_names_are_paths_from_the_root_and_the_root_itself_is_dot() -> None:
    """tar runs from ``/``: a source (or an excluded path) is named without its leading
    slash — only that slash: a first component starting with another character keeps
    it — and the root is ``.``."""
    assert member_name(Path("/srv/data")) == "srv/data"
    assert member_name(Path("/XX/data")) == "XX/data"
    assert member_name(Path("/.hidden")) == ".hidden"
    assert member_name(Path("/")) == "."


def test_excluding_a_tree_whose_name_starts_like_the_slash_keeps_its_siblings(
    tmp_path: Path,
) -> None:
    """An excluded path is matched by its exact member name: excluding ``…/Xcache``
    leaves ``…/X`` and ``…/cache`` in the archive."""
    data = tmp_path / "data"
    for sub in ("Xcache", "X", "cache"):
        (data / sub).mkdir(parents=True)
        (data / sub / "f").write_text(sub)
    target = tmp_path / "backups"
    create("db", target, [data], "none", now=NOW, exclude=[data / "Xcache"])
    with tarfile.open(target / "db-20261128T120000Z.tar") as archive:
        names = archive.getnames()
    root = member_name(data)
    assert sorted(n.removeprefix(root).strip("/") for n in names if n.endswith("/f")) == [
        "X/f",
        "cache/f",
    ]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_pipeline_program_that_cannot_start_is_an_error_naming_it_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """tar (or the compressor) missing from the ops image: the run fails with the tool's
    error naming the program — not a traceback — and no partial file stays behind."""
    data = tmp_path / "data"
    data.mkdir()
    target = tmp_path / "backups"
    monkeypatch.setattr("jobs.tools.backup.pipeline.NICE", [])
    if compression == "none":
        monkeypatch.setattr("jobs.tools.backup.pipeline.TAR_CREATE", [str(tmp_path / "no-tar")])
        missing = "no-tar"
    else:
        monkeypatch.setitem(COMPRESSORS, "zstd", [str(tmp_path / "no-zstd")])
        missing = "no-zstd"
    with pytest.raises(ToolError) as failed:
        create("db", target, [data], compression, now=NOW)
    assert str(failed.value) == f"cannot start {tmp_path / missing}: No such file or directory"
    assert list(target.iterdir()) == []
