"""The backup tool on real files: exact round trips, plain GNU tar, integrity on failure."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs.protocol.lines import parse
from jobs.retention import SUFFIXES
from jobs.tools.backup.archive import clean_partials, create, target_aliases, volume_mounts
from jobs.tools.backup.cli import main
from jobs.tools.backup.listing import listing
from jobs.tools.backup.pipeline import COMPRESSORS, _lines, _scratch
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.reading import DECOMPRESSORS
from jobs.tools.backup.restore import restore
from jobs.tools.staging import STAGING_PREFIX
from tests.control import result_of

from .helpers import build_tree, handmade_archive, snapshot, staging_left

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def volume(root: Path, source: Path) -> Path:
    """The directory under ``root`` where ``source``'s archived path lands: an empty volume
    mounted there."""
    into = root / str(source).lstrip("/")
    into.mkdir(parents=True)
    return into


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_create_then_restore_gives_back_the_exact_tree(tmp_path: Path, compression: str) -> None:
    """Content, modes, owners, symlinks, hard links, empty dirs and non-ASCII names survive."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    result = create("db", target, [data], compression, now=NOW)
    name = result["archive"]
    assert name == "db-20261128T120000Z" + SUFFIXES[compression]
    assert sorted(p.name for p in target.iterdir()) == [name, f"{name}.sha256"]
    assert result["bytes"] == (target / str(name)).stat().st_size
    assert result["files"] == len(snapshot(data))
    unpack = DECOMPRESSORS[SUFFIXES[compression]] or ["cat"]
    stream = subprocess.run([*unpack, str(target / str(name))], capture_output=True, check=True)
    assert result["data_bytes"] == len(stream.stdout) > 600_000  # the tar stream, uncompressed
    sidecar = (target / f"{name}.sha256").read_text()
    assert sidecar == f"{result['sha256']}  {name}\n"
    assert (
        subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=target, check=False).returncode
        == 0
    )
    restored = tmp_path / "restored"
    into = volume(restored, data)
    restored_result = restore(target, str(name), [into], root=restored)
    assert snapshot(into) == snapshot(data)
    assert restored_result["entries"] == len(snapshot(data))
    assert restored_result["volumes"] == [str(into)]
    assert staging_left(into) == []


def test_plain_gnu_tar_lists_and_extracts_the_archive(tmp_path: Path) -> None:
    """tar -tf and tar -xf work on the .tar.zst without any option."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])
    listing = subprocess.run(
        ["tar", "-tf", str(target / name)], capture_output=True, text=True, check=True
    )
    assert f"{str(data).lstrip('/')}/café ☃ naïve.txt" in listing.stdout.splitlines()
    out = tmp_path / "plain"
    out.mkdir()
    subprocess.run(
        ["tar", "--numeric-owner", "-xpf", str(target / name), "-C", str(out)], check=True
    )
    assert snapshot(out / str(data).lstrip("/")) == snapshot(data)
    # tar stops at the end marker; the record padding must fit in the pipe, or zstd dies
    # of SIGPIPE and a restore script with pipefail fails.
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", 'zstd -q -dc "$1" | tar -tf - > /dev/null', "-", name],
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (piped.returncode, piped.stderr) == (0, "")


def test_the_checksum_covers_an_archive_written_in_bursts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash follows the file behind the writer: a compressor that pauses mid-archive
    (the hashing loop catches up and waits) still gets every byte hashed, once."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    bursts = ["sh", "-c", "gzip -c | { head -c 3000; sleep 0.3; head -c 2000; sleep 0.2; cat; }"]
    monkeypatch.setitem(COMPRESSORS, "gzip", bursts)
    result = create("db", target, [data], "gzip", now=NOW)
    archive = target / str(result["archive"])
    assert result["bytes"] == archive.stat().st_size > 5000
    assert result["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    restored = tmp_path / "restored"
    into = volume(restored, data)
    restore(target, archive.name, [into], root=restored)
    assert snapshot(into) == snapshot(data)


def test_a_tar_failure_with_a_flood_of_messages_ends_with_its_last_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tar's messages go to a file, not a pipe nobody reads while the archive is made:
    200 KB of them cannot block tar (and the run) forever; the error ends with the last."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    flood = (
        "yes 'tar: warning about a file' | head -c 200000 >&2; echo 'tar: the cause' >&2; exit 2"
    )
    monkeypatch.setattr("jobs.tools.backup.pipeline.TAR_CREATE", ["sh", "-c", flood, "tar"])
    with pytest.raises(ToolError) as failed:
        create("db", target, [data], "zstd", now=NOW)
    assert str(failed.value).startswith("tar failed (exit 2): ")
    assert str(failed.value).endswith("tar: the cause")
    assert len(str(failed.value)) < 5000
    assert list(target.iterdir()) == []


def test_scratch_files_fall_back_to_memory_where_the_target_refuses_unnamed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_TMPFILE is not on every file system (NFS, CIFS): the index then lives in memory."""
    real_open = os.open

    def refuse_tmpfile(path: object, flags: int, *args: object) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(95, "Operation not supported")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse_tmpfile)
    fd = _scratch(tmp_path)
    try:
        assert str(Path(f"/proc/self/fd/{fd}").readlink()).startswith("/memfd:")
        os.write(fd, b"one\ntwo\n")
        assert _lines(fd) == 2
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []
    data = build_tree(tmp_path / "src")
    result = create("db", tmp_path / "backups", [data], "zstd", now=NOW)
    assert result["files"] == len(snapshot(data))


def test_a_failed_archive_leaves_no_file_and_stale_partials_are_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressor that fails: ToolError, no final name, no .partial; the next run cleans
    what a killed run left and succeeds."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    target.mkdir()
    (target / "db-20261127T000000Z.tar.zst.partial").write_bytes(b"half")  # a killed run's
    (target / "other-20261127T000000Z.tar.zst.partial").write_bytes(b"not ours")
    monkeypatch.setitem(COMPRESSORS, "zstd", ["false"])
    with pytest.raises(ToolError, match="zstd failed"):
        create("db", target, [data], "zstd", now=NOW)
    assert sorted(p.name for p in target.iterdir()) == ["other-20261127T000000Z.tar.zst.partial"]
    monkeypatch.undo()
    name = create("db", target, [data], "zstd", now=NOW)["archive"]
    assert sorted(p.name for p in target.iterdir()) == [
        name,
        f"{name}.sha256",
        "other-20261127T000000Z.tar.zst.partial",
    ]


def test_missing_source_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 naming the path; nothing written."""
    code = main(["create", "--job", "db", "--target", str(tmp_path / "t"), str(tmp_path / "nope")])
    assert code == 1
    assert f"nothing to back up at {tmp_path / 'nope'}" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_verify_and_restore_refuse_a_corrupted_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One flipped byte: verify exits 1 with 'checksum mismatch'; restore extracts nothing."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", now=NOW)["archive"])
    assert main(["verify", "--target", str(target), name]) == 0
    capsys.readouterr()
    raw = bytearray((target / name).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (target / name).write_bytes(bytes(raw))
    assert main(["verify", "--target", str(target), name]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    assert main(["restore", "--target", str(target), "--root", str(out), name]) == 1
    assert list(out.iterdir()) == []


MOUNTINFO = """\
615 533 0:67 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x
616 615 0:70 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
617 615 0:71 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
620 616 0:75 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
621 615 252:0 /var/lib/docker/volumes/app-data/_data /var/lib/mysql rw,relatime - ext4 /dev/vda rw
622 615 252:0 /var/lib/docker/volumes/logs/_data /var/log/my\\040app rw,relatime - ext4 /dev/vda rw
623 615 252:0 /var/lib/docker/volumes/backups/_data /backup rw,relatime - ext4 /dev/vda rw
624 615 252:0 /var/lib/docker/containers/abc/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
625 615 252:0 /var/lib/docker/containers/abc/hostname /etc/hostname rw - ext4 /dev/vda rw
626 615 252:0 /var/lib/docker/containers/abc/hosts /etc/hosts rw - ext4 /dev/vda rw
627 617 0:66 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
"""


def test_volume_mounts_are_the_data_volumes_only(tmp_path: Path) -> None:
    """volumes_from / -v mounts count; the target, /etc/hosts & co and system trees do not;
    escaped spaces are decoded."""
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    found = volume_mounts(Path("/backup"), info)
    assert found == [Path("/var/lib/mysql"), Path("/var/log/my app")]


def test_create_command_applies_retention_after_a_good_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--keep-last 2 over three earlier archives: the two oldest go, with their checksums."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    target.mkdir()
    for day in (1, 2, 3):
        name = f"db-2026010{day}T000000Z.tar.zst"
        (target / name).write_bytes(b"old")
        (target / f"{name}.sha256").write_text(f"x  {name}\n")
    (target / "other-20260101T000000Z.tar.zst").write_bytes(b"not ours")
    code = main(["create", "--job", "db", "--target", str(target), "--keep-last", "2", str(data)])
    assert code == 0
    result = result_of(capsys.readouterr().err)
    assert result["deleted"] == ["db-20260101T000000Z.tar.zst", "db-20260102T000000Z.tar.zst"]
    # MiB of data (the tar stream before compression) per second of archiving
    expected = result["data_bytes"] / result["archive_s"] / (1 << 20)
    assert result["throughput_mib_s"] == pytest.approx(expected, abs=0.06)
    left = sorted(p.name for p in target.iterdir())
    assert left == sorted(
        [
            "db-20260103T000000Z.tar.zst",
            "db-20260103T000000Z.tar.zst.sha256",
            result["archive"],
            f"{result['archive']}.sha256",
            "other-20260101T000000Z.tar.zst",
        ]
    )


def test_a_future_archive_never_makes_the_new_archive_the_one_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keep_last = 1 with an archive stamped in 2099 in the target: the archive just made
    stays (with its checksum), the future one stays and is reported as the
    backup.future_archive warning; the listing flags it."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    target.mkdir()
    future = "db-20990101T000000Z.tar.zst"
    (target / future).write_bytes(b"from a wrong clock")
    (target / f"{future}.sha256").write_text(f"x  {future}\n")
    code = main(["create", "--job", "db", "--target", str(target), "--keep-last", "1", str(data)])
    assert code == 0
    err = capsys.readouterr().err
    result = result_of(err)
    assert result["deleted"] == []
    assert (target / result["archive"]).is_file()
    assert (target / f"{result['archive']}.sha256").is_file()
    assert (target / future).is_file()
    warnings = [
        m["warning"]
        for line in err.splitlines()
        if (m := parse(line.encode())) is not None and "warning" in m
    ]
    assert warnings == [{"event": "backup.future_archive", "archives": [future]}]
    flags = {a["archive"]: a["future"] for a in listing("db", target)}
    assert flags == {future: True, result["archive"]: False}


def test_partials_of_another_job_sharing_the_target_are_never_touched(tmp_path: Path) -> None:
    """Job 'db' removes its own stale partials only: 'db-logs-….partial' of a running job
    'db-logs' on the same target stays, as do names of no job's pattern."""
    target = tmp_path / "backups"
    target.mkdir()
    mine = ["db-20260101T000000Z.tar.zst.partial", "db-20260101T000000Z.tar.zst.sha256.partial"]
    theirs = ["db-logs-20260101T000000Z.tar.zst.partial", "db-notes.partial", "db-x.tar.partial"]
    for name in mine + theirs:
        (target / name).write_bytes(b"partial")
    assert sorted(clean_partials(target, "db")) == sorted(mine)
    assert sorted(p.name for p in target.iterdir()) == sorted(theirs)


def test_a_source_that_holds_the_target_is_refused(tmp_path: Path) -> None:
    """Backing up the target (or a tree that holds it) would archive the archives: refused
    before anything is written."""
    target = tmp_path / "data" / "backups"
    target.mkdir(parents=True)
    with pytest.raises(ToolError, match="holds the target"):
        create("db", target, [tmp_path / "data"], "zstd", now=NOW)
    with pytest.raises(ToolError, match="holds the target"):
        create("db", target, [target], "zstd", now=NOW)
    assert list(target.iterdir()) == []


def test_the_target_mounted_again_inside_a_source_is_left_out(tmp_path: Path) -> None:
    """The target volume seen a second time (an app mounts it too): recognised by its device
    and inode, and excluded from the archive, so a run never holds the archives before it."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    target.mkdir()
    (target / "db-20260101T000000Z.tar.zst").write_bytes(b"an older archive")
    alias = data / "backups-again"
    alias.symlink_to(target)  # stands in for a second mount of the same directory
    assert target_aliases(target, [data / "sub", alias]) == [alias]
    result = create("db", target, [data], "zstd", now=NOW, exclude=[alias])
    listing = subprocess.run(
        ["tar", "--list", "--file", str(target / str(result["archive"]))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    relative = str(alias).lstrip("/")
    assert not [m for m in listing if m == relative or m.startswith(relative + "/")]
    assert f"{str(data).lstrip('/')}/file.txt" in listing


def archive_of(tmp_path: Path, data: Path, compression: str = "zstd") -> tuple[Path, str]:
    """A backup of ``data`` by the tool: its target and the archive's name."""
    target = tmp_path / "backups"
    return target, str(create("db", target, [data], compression, now=NOW)["archive"])


def full_listing(top: Path) -> dict[str, tuple[object, ...]]:
    """``top`` and every path under it, byte for byte: snapshot plus nanosecond mtimes (a
    restore that fails before the moves leaves not even a time changed)."""
    found = snapshot(top)
    for rel in found:
        found[rel] += ((top / rel).lstat().st_mtime_ns,)
    return found


@pytest.mark.parametrize("archived", ["the-directory", "files-under-it", "only-below-it"])
def test_a_symlink_in_the_volume_where_the_archive_has_a_directory_is_not_followed(
    tmp_path: Path, archived: str
) -> None:
    """The app left data/sub -> an outside directory: the restore makes data/sub a real
    directory with the archived files, and the outside directory stays as it was — whether
    the archive holds the directory itself, only files under it (a job's ``paths``), or
    the restore takes only a path below it (``--only``, as ``--to`` does)."""
    data = build_tree(tmp_path / "src")
    before = snapshot(data)
    sources = [data / "sub" / "run.sh", data / "sub" / "deeper"]
    target = tmp_path / "backups"
    made = create("db", target, sources if archived == "files-under-it" else [data], "zstd")
    name = str(made["archive"])
    outside = tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "run.sh").write_text("the outside's own file\n")
    (outside / "deeper" / "other").write_text("kept\n")
    seen = full_listing(outside)
    shutil.rmtree(data / "sub")
    (data / "sub").symlink_to(outside)
    only = [str(data / "sub" / "deeper")] if archived == "only-below-it" else None
    restore(target, name, [data], only=only)
    assert not (data / "sub").is_symlink()
    assert (data / "sub").is_dir()
    after = snapshot(data)
    if archived == "the-directory":
        assert after == before
    else:  # the members restored are exactly as archived
        restored = {rel: after[rel] for rel in before if rel.startswith("sub/deeper")}
        if archived == "files-under-it":
            restored["sub/run.sh"] = after["sub/run.sh"]
        assert restored == {rel: before[rel] for rel in restored}
        assert {rel for rel in after if rel.startswith("sub/")} == set(restored)
    assert full_listing(outside) == seen
    assert staging_left(data) == []


def test_anything_in_the_way_of_an_archived_entry_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    """A symlink where the archive has a file (even one pointing to a directory), a
    directory where it has a file or a link, a file where it has a directory: each is
    replaced by the archived entry; what the links pointed to is untouched."""
    data = build_tree(tmp_path / "src")
    before = snapshot(data)
    target, name = archive_of(tmp_path, data)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim.txt").write_text("not yours\n")
    seen = full_listing(outside)
    (data / "file.txt").unlink()
    (data / "file.txt").symlink_to(outside / "victim.txt")
    (data / "café ☃ naïve.txt").unlink()
    (data / "café ☃ naïve.txt").symlink_to(outside / "dir")
    (data / "link").unlink()
    (data / "link").mkdir()
    (data / "link" / "inside").write_text("a directory where a link was\n")
    shutil.rmtree(data / "empty")
    (data / "empty").write_text("a file where a directory was\n")
    restore(target, name, [data])
    assert snapshot(data) == before
    assert full_listing(outside) == seen


def test_files_the_archive_does_not_hold_are_kept(tmp_path: Path) -> None:
    """A restore merges: archived entries come back over what changed, entries the
    archive does not hold stay as they are (in merged directories too)."""
    data = build_tree(tmp_path / "src")
    before = snapshot(data)
    target, name = archive_of(tmp_path, data)
    (data / "file.txt").write_text("changed since\n")
    (data / "sub").chmod(0o777)
    (data / "new.txt").write_text("made after the backup\n")
    (data / "sub" / "deeper" / "new").mkdir()
    (data / "sub" / "deeper" / "new" / "x").write_text("x\n")
    extra = {rel: v for rel, v in snapshot(data).items() if "new" in rel}
    restore(target, name, [data])
    assert snapshot(data) == before | extra
    assert staging_left(data) == []


def test_a_truncated_archive_leaves_the_destination_unchanged(tmp_path: Path) -> None:
    """A checksum that matches a cut archive (tar fails part way): nothing restored, the
    destination byte for byte as it was, no staging directory; the error is tar's."""
    data = build_tree(tmp_path / "src")
    (data / "bulk").mkdir()
    for i in range(300):
        (data / "bulk" / f"{i:03}").write_bytes(os.urandom(2048))  # incompressible
    target, name = archive_of(tmp_path, data)
    archive = target / name
    cut = archive.read_bytes()[: archive.stat().st_size * 2 // 3]
    archive.write_bytes(cut)
    (target / f"{name}.sha256").write_text(f"{hashlib.sha256(cut).hexdigest()}  {name}\n")
    shutil.rmtree(data / "sub")
    (data / "file.txt").write_text("changed since\n")
    (data / "bulk" / "000").write_text("changed since\n")
    seen = full_listing(data)
    with pytest.raises(ToolError, match=r"nothing restored.*tar failed") as failed:
        restore(target, name, [data])
    assert "Unexpected EOF" in str(failed.value)
    assert full_listing(data) == seen
    assert staging_left(data) == []


def test_an_extraction_failing_part_way_leaves_the_destination_unchanged(
    tmp_path: Path,
) -> None:
    """The archive lists fine but one member cannot be written (a name longer than the
    file system takes) between good ones: the staging directory goes, the destination is
    untouched, and the error is tar's."""
    data = tmp_path / "src" / "data"
    data.mkdir(parents=True)
    (data / "keep.txt").write_text("the destination's\n")
    prefix = str(data).lstrip("/")
    target = tmp_path / "backups"
    members = [(f"{prefix}/keep.txt", b"archived\n"), (f"{prefix}/{'x' * 300}", b"")]
    name = handmade_archive(target, [*members, (f"{prefix}/z", b"z\n")])
    seen = full_listing(data)
    with pytest.raises(ToolError, match="File name too long") as failed:
        restore(target, name, [data])
    assert str(failed.value).startswith(f"could not extract {name} (nothing restored): tar")
    assert full_listing(data) == seen
    assert staging_left(data) == []


def test_paths_under_no_mounted_volume_fail_before_anything_is_touched(tmp_path: Path) -> None:
    """An archive of two directories restored where only one is a volume: refused,
    naming the other's paths (they would land in the ops container's own files)."""
    data = build_tree(tmp_path / "src")
    other = tmp_path / "src" / "other"
    other.mkdir()
    (other / "o.txt").write_text("o\n")
    target = tmp_path / "backups"
    name = str(create("db", target, [data, other], "zstd", now=NOW)["archive"])
    (data / "file.txt").write_text("changed since\n")
    seen = full_listing(data)
    with pytest.raises(ToolError, match="under no volume mounted here") as failed:
        restore(target, name, [data])
    assert f"{other}, {other}/o.txt" in str(failed.value)
    assert full_listing(data) == seen
    assert staging_left(data) == []


@pytest.mark.parametrize(
    ("member", "inner", "said"),
    [
        ("data/../escape.txt", "sub", "{prefix}/data/../escape.txt"),
        ("data/sub", "sub", "/{prefix}/data/sub (not a directory, but a volume is mounted there)"),
        (
            "data/sub",
            "sub/deeper",
            "/{prefix}/data/sub (not a directory, but a volume is mounted under it)",
        ),
    ],
    ids=["dot-dot", "file-at-a-mount", "file-on-the-way-to-a-mount"],
)
def test_members_a_restore_cannot_take_fail_it_before_anything_is_touched(
    tmp_path: Path, member: str, inner: str, said: str
) -> None:
    """A name with '..', a file where a volume is mounted, or a file on the way to one
    (placed, it would replace the directory holding the mount, and what is mounted in it):
    refused, named, nothing written, the inner volume intact."""
    top = tmp_path / "src"
    data = top / "data"
    (data / inner).mkdir(parents=True)
    (data / inner / "precious.txt").write_text("the inner volume's\n")
    (data / "keep.txt").write_text("the destination's\n")
    prefix = str(top).lstrip("/")
    target = tmp_path / "backups"
    members = [(f"{prefix}/data/keep.txt", b"archived\n"), (f"{prefix}/{member}", b"x\n")]
    name = handmade_archive(target, members)
    seen = full_listing(data)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data, data / inner])
    assert str(failed.value) == (
        f"{name} holds members restore does not take (nothing restored): "
        + said.format(prefix=prefix)
    )
    assert full_listing(data) == seen
    assert (data / inner / "precious.txt").read_text() == "the inner volume's\n"
    assert staging_left(data, data / inner) == []


def test_nested_volumes_each_stage_their_own_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A volume mounted inside another (paths with regex and shell characters): each
    member is staged in the deepest volume that holds it, so every move is a rename on
    one file system; the tree comes back exactly."""
    top = tmp_path / "src" / "a.b [*]^$\\& c"
    data = build_tree(top)
    inner = data / "sub" / "deeper"
    before = snapshot(data)
    target, name = archive_of(tmp_path, data)
    restored = tmp_path / "restored"
    into = volume(restored, data)
    (into / "sub" / "deeper").mkdir(parents=True)
    staged_in: list[str] = []
    real_mkdir = os.mkdir

    def spy(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if path.startswith(STAGING_PREFIX) and dir_fd is not None:
            staged_in.append(str(Path(f"/proc/self/fd/{dir_fd}").readlink()))
        real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", spy)
    result = restore(target, name, [into, into / "sub" / "deeper"], root=restored)
    assert sorted(staged_in) == [str(into), str(into / "sub" / "deeper")]
    assert result["volumes"] == sorted(staged_in)
    assert snapshot(into) == before
    assert snapshot(into / "sub" / "deeper") == snapshot(inner)
    assert staging_left(into, into / "sub" / "deeper") == []


def test_only_restores_that_path_into_the_volume_mounted_there(tmp_path: Path) -> None:
    """--only /…/sub with a volume at that path (crontainer restore --to PATH=VOLUME): the
    volume gets exactly the archived sub-tree; nothing else is written."""
    data = build_tree(tmp_path / "src")
    target, name = archive_of(tmp_path, data)
    restored = tmp_path / "restored"
    into = volume(restored, data / "sub")
    result = restore(target, name, [into], only=[str(data / "sub")], root=restored)
    assert snapshot(into) == snapshot(data / "sub")
    assert result["entries"] == len(snapshot(data / "sub"))
    assert sorted(p.name for p in into.parent.iterdir()) == ["sub"]


def test_a_move_into_place_failing_half_way_leaves_the_rest_staged_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename that fails after others worked: the tool stops, says the volume holds a mix
    of old and restored entries and names the staging directory holding the rest."""
    data = build_tree(tmp_path / "src")
    target, name = archive_of(tmp_path, data)
    real_rename = os.rename
    renames: list[str] = []

    def third_fails(src: str, dst: str, **fds: int) -> None:
        renames.append(src)
        if len(renames) == 3:
            raise OSError(5, "Input/output error")
        real_rename(src, dst, **fds)

    monkeypatch.setattr(os, "rename", third_fails)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [data])
    [staging] = staging_left(data)
    assert str(failed.value) == (
        "moving the restored tree into place failed: [Errno 5] Input/output error; "
        f"{data} holds a mix of old and restored entries; the rest of the restored tree "
        f"is in {staging}"
    )
    assert renames[2] in {p.name for p in staging.iterdir()}


def test_the_restore_command_reports_its_result_on_the_control_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() restores into the volumes mounted here and emits archive, restored_to,
    volumes, entries and duration_s."""
    data = build_tree(tmp_path / "src")
    before = snapshot(data)
    target, name = archive_of(tmp_path, data)
    restored = tmp_path / "restored"
    into = volume(restored, data)
    monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: [into])
    assert main(["restore", "--target", str(target), "--root", str(restored), name]) == 0
    result = result_of(capsys.readouterr().err)
    assert snapshot(into) == before
    assert result["archive"] == name
    assert result["restored_to"] == str(restored)
    assert result["volumes"] == [str(into)]
    assert result["entries"] == len(before)
    assert isinstance(result["duration_s"], float)


def test_a_volume_mounted_one_level_below_the_root_takes_its_members(tmp_path: Path) -> None:
    """A volume at a top-level path (``/data``): the archive's ``data/…`` members belong to
    it and are restored into it."""
    root = tmp_path / "root"
    into = root / "data"
    into.mkdir(parents=True)
    target = tmp_path / "backups"
    name = handmade_archive(target, [("data/a.txt", b"a\n"), ("data/b.txt", b"b\n")])
    result = restore(target, name, [into], root=root)
    assert (result["volumes"], result["entries"]) == ([str(into)], 2)
    assert sorted(p.name for p in into.iterdir()) == ["a.txt", "b.txt"]
    assert (into / "a.txt").read_bytes() == b"a\n"
