"""The restic tool's listing and restore against the real restic 0.14 and local
repositories: only the job's own snapshots, newest first; a restore of the job's latest
(not the repository's) through a staging directory in each volume, following no link in
the volume; failures before anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.protocol.restic import ResticRequest, parse_snapshots
from jobs.tools.restic.restoring import job_snapshots, restore
from jobs.tools.restic.runner import Finished, ResticError
from jobs.tools.restic.steps import opened
from jobs.tools.staging import STAGING_PREFIX
from tests.control import result_of

from .test_restic_tool import DAEMON, old_snapshot, request, restic, tool

if TYPE_CHECKING:
    from jobs.protocol.restic import ResticRestored

pytest_plugins = ["tests.unit.test_restic_tool"]


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's text, a link's target, ``dir``."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + str(path.readlink())
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes().hex()[:64]
    return found


def mountinfo(tmp_path: Path, *points: Path) -> Path:
    """A mountinfo that shows ``points`` as the volumes mounted here."""
    made = tmp_path / "mountinfo"
    lines = [f"{i} 1 0:{i} / {p} rw,relatime - ext4 /dev/x rw" for i, p in enumerate(points, 30)]
    made.write_text("\n".join(lines) + "\n")
    return made


def restoring(repo: Path, data: Path, mounts: Path, **fields: Any) -> ResticRestored:
    made = ResticRequest.parse(request(repo, [data], command="restore", **fields))
    with opened(made) as found:
        return restore(found, made, mounts)


def test_the_listing_has_only_the_jobs_own_snapshots_newest_first(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    older = old_snapshot(repo, data, 3)
    newer = old_snapshot(repo, data, 1)
    old_snapshot(repo, data, 0, job="other")
    old_snapshot(repo, data, 0, host="elsewhere")
    ran = tool(tmp_path, request(repo, [], command="snapshots"))
    assert ran.returncode == 0, ran.stderr
    listed = parse_snapshots(result_of(ran.stderr))
    assert [s.short_id for s in listed] == [newer, older]
    assert listed[0].paths == (str(data),)
    assert listed[0].hostname == DAEMON
    assert set(listed[0].tags) == {"crontainer-job=db", f"crontainer-daemon={DAEMON}"}


def test_a_restore_of_latest_takes_the_jobs_newest_and_gives_the_same_tree_back(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """The job's newest snapshot, not another job's newer one; changed files are put back,
    deleted ones come back, entries the snapshot lacks stay."""
    data.chmod(0o750)
    before = tree(data)
    old_snapshot(repo, data, 2)
    mine = old_snapshot(repo, data, 1)
    data.chmod(0o700)
    (data / "a.txt").write_text("other job's\n")
    old_snapshot(repo, data, 0, job="other")
    (data / "sub" / "b.txt").unlink()
    (data / "new.txt").write_text("new\n")
    done = restoring(repo, data, mountinfo(tmp_path, data))
    assert done.snapshot_id == mine
    assert done.volumes == (str(data),)
    after = tree(data)
    assert after.pop("new.txt")
    assert after == before
    assert not [p for p in data.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert data.stat().st_mode & 0o777 == 0o750  # the volume's own root, as snapshotted


def test_a_restore_follows_no_link_in_the_volume(tmp_path: Path, repo: Path, data: Path) -> None:
    """A directory of the snapshot replaced by a link to elsewhere: the link goes, the
    directory comes back, and nothing is written where the link pointed."""
    old_snapshot(repo, data, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for entry in (data / "sub").iterdir():
        entry.unlink()
    (data / "sub").rmdir()
    (data / "sub").symlink_to(elsewhere)
    restoring(repo, data, mountinfo(tmp_path, data))
    assert not (data / "sub").is_symlink()
    assert (data / "sub" / "b.txt").read_text() == "b\n"
    assert list(elsewhere.iterdir()) == []


def test_a_volume_mounted_inside_another_gets_its_own_part(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    before = tree(data)
    old_snapshot(repo, data, 1)
    (data / "sub" / "b.txt").write_text("changed\n")
    (data / "a.txt").unlink()
    done = restoring(repo, data, mountinfo(tmp_path, data, data / "sub"))
    assert done.volumes == (str(data), str(data / "sub"))
    assert tree(data) == before


def test_a_link_in_the_snapshot_where_a_volume_is_mounted_below_fails_and_deletes_nothing(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """The snapshot has a link ``data/link`` to a directory elsewhere; a volume is now
    mounted at ``data/link/b``: the restore fails naming the link before anything is
    written, and nothing is deleted through the link."""
    victim = tmp_path / "victim"
    (victim / "b").mkdir(parents=True)
    (victim / "b" / "keep.txt").write_text("kept\n")
    (data / "link").symlink_to(victim)
    old_snapshot(repo, data, 1)
    (data / "a.txt").write_text("changed\n")
    with pytest.raises(ResticError, match=f"a link or a file at {data / 'link'}, where the volume"):
        restoring(repo, data, mountinfo(tmp_path, data, data / "link" / "b"))
    assert (victim / "b" / "keep.txt").read_text() == "kept\n"
    assert (data / "a.txt").read_text() == "changed\n"
    assert not [p for p in data.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_failed_restore_gives_each_staged_volume_its_times_back(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    """restic staged the volume, then the restore fails (a link where a volume is mounted
    below): the staging directory goes and the volume's top directory keeps its times."""
    (data / "link").symlink_to(tmp_path)
    old_snapshot(repo, data, 1)
    os.utime(data, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = data.stat()
    with pytest.raises(ResticError, match="nothing restored"):
        restoring(repo, data, mountinfo(tmp_path, data, data / "link" / "b"))
    after = data.stat()
    assert (after.st_atime_ns, after.st_mtime_ns) == (before.st_atime_ns, before.st_mtime_ns)
    assert not [p for p in data.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_move_into_place_failing_half_way_says_where_the_rest_is(
    tmp_path: Path, repo: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for an archive: the volume holds a mix, the rest stays in its staging
    directory (at the volume's path in it: restic restores paths whole)."""
    old_snapshot(repo, data, 1)
    real_rename = os.rename
    renames: list[str] = []

    def second_fails(src: str, dst: str, **fds: int) -> None:
        renames.append(src)
        if len(renames) == 2:  # the second entry moved
            raise OSError(5, "Input/output error")
        real_rename(src, dst, **fds)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(ResticError) as failed:
        restoring(repo, data, mountinfo(tmp_path, data))
    [staging] = [p for p in data.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert str(failed.value) == (
        "moving the restored tree into place failed: [Errno 5] Input/output error; "
        f"{data} holds a mix of old and restored entries; the rest of the restored tree "
        f"is in {staging}"
    )
    assert renames[1] in {p.name for p in staging.joinpath(*data.parts[1:]).iterdir()}


def test_only_restores_just_that_volume(tmp_path: Path, repo: Path, data: Path) -> None:
    old_snapshot(repo, data, 1)
    (data / "sub" / "b.txt").write_text("changed\n")
    (data / "a.txt").unlink()
    mounts = mountinfo(tmp_path, data, data / "sub")
    done = restoring(repo, data, mounts, only=[str(data / "sub")])
    assert done.volumes == (str(data / "sub"),)
    assert (data / "sub" / "b.txt").read_text() == "b\n"
    assert not (data / "a.txt").exists()


def test_a_path_under_no_volume_fails_before_anything_is_written(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    old_snapshot(repo, data, 1)
    (data / "a.txt").write_text("kept\n")
    with pytest.raises(ResticError, match=f"under no volume mounted here.*{data}"):
        restoring(repo, data, mountinfo(tmp_path, data / "sub"))
    assert (data / "a.txt").read_text() == "kept\n"
    assert not [p for p in (data / "sub").iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_a_snapshot_of_another_job_is_not_restored(tmp_path: Path, repo: Path, data: Path) -> None:
    theirs = old_snapshot(repo, data, 1, job="other")
    old_snapshot(repo, data, 2)
    ran = tool(tmp_path, request(repo, [], command="restore", snapshot=theirs))
    assert ran.returncode == 1
    assert f"job 'db' has no snapshot with the id {theirs!r}" in ran.stderr.splitlines()[-1]


def test_a_job_without_snapshots_has_none_to_restore(tmp_path: Path, repo: Path) -> None:
    ran = tool(tmp_path, request(repo, [], command="restore"))
    assert ran.returncode == 1
    assert ran.stderr.splitlines()[-1].endswith("job 'db' has no snapshot in the repository")
    assert json.loads(restic(repo, "snapshots", "--json")) == []


def test_a_volume_the_snapshot_does_not_hold_fails_and_nothing_is_left(
    tmp_path: Path, repo: Path, data: Path
) -> None:
    old_snapshot(repo, data, 1)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ResticError, match=f"holds nothing at {other}.*nothing restored"):
        restoring(repo, data, mountinfo(tmp_path, data, other), only=[str(other)])
    assert list(other.iterdir()) == []


class Listing:
    """Stands for restic: its ``snapshots --json`` answer is ``listed``."""

    def __init__(self, listed: list[dict[str, Any]]) -> None:
        self.listed = listed
        self.asked: list[list[str]] = []

    def run(self, args: list[str]) -> Finished:
        self.asked.append(args)
        return Finished(0, values=[self.listed])


def test_the_listing_orders_by_instant_whatever_the_offset_and_precision() -> None:
    """restic writes each snapshot's time with its host's offset and nanoseconds."""
    times = ["2026-12-02T04:30:00.123456789+02:00", "2026-12-02T03:00:00Z", "2026-12-02T02:45:00"]
    listed = [{"id": f"{i}" * 64, "short_id": f"{i}" * 8, "time": t} for i, t in enumerate(times)]
    made = ResticRequest("db", DAEMON, "/r", command="snapshots")
    restic_like = Listing(listed)
    found = job_snapshots(restic_like, made)  # type: ignore[arg-type]
    assert [s.short_id for s in found] == ["11111111", "22222222", "00000000"]
    assert restic_like.asked == [
        [
            "snapshots",
            "--json",
            "--host",
            DAEMON,
            "--tag",
            f"crontainer-job=db,crontainer-daemon={DAEMON}",
        ]
    ]
