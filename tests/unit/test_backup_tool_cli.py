"""The backup tool's command line (``python -m jobs.tools.backup``): its commands, their
required arguments, the result each reports, and the retention ``create`` applies after
a good archive — which archives go, by name, and which must never go."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.retention import Retention
from jobs.tools.backup.archive import create
from jobs.tools.backup.cli import main
from jobs.tools.backup.listing import prune
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.restore import restore
from tests.control import result_of

CLOCK = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
"""The tool's clock in these tests: a Monday, in ISO week 10, in March."""
MADE = "db-20260302T120000Z.tar.zst"
"""The archive a ``create`` makes at CLOCK."""


def frozen_clock(monkeypatch: pytest.MonkeyPatch, at: datetime = CLOCK) -> None:
    """The tool's clock (archive names, retention's "now", the future) stopped at ``at``."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return at  # type: ignore[return-value]

    monkeypatch.setattr("jobs.tools.backup.archive.datetime", Frozen)
    monkeypatch.setattr("jobs.tools.backup.listing.datetime", Frozen)


def small_tree(root: Path) -> Path:
    """A directory with a file and a subdirectory: enough to archive."""
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file.txt").write_text("some data\n")
    (data / "sub" / "more.txt").write_text("more data\n")
    return data


def old_archives(target: Path, stamps: list[str], *, complete: bool = True) -> list[str]:
    """Archives of job ``db`` at these stamps (with their checksum if ``complete``)."""
    target.mkdir(exist_ok=True)
    names = [f"db-{stamp}.tar.zst" for stamp in stamps]
    for name in names:
        (target / name).write_bytes(b"an older archive")
        if complete:
            (target / f"{name}.sha256").write_text(f"x  {name}\n")
    return names


def members(archive: Path) -> list[str]:
    listed = subprocess.run(
        ["tar", "--list", "--file", str(archive)], capture_output=True, text=True, check=True
    )
    return [m.rstrip("/") for m in listed.stdout.splitlines()]


def rel(path: Path) -> str:
    """``path`` as the archive names it."""
    return str(path).lstrip("/")


# --- the command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        ([], "command"),
        (["create", "--target", "/t", "/src"], "--job"),
        (["create", "--job", "db", "/src"], "--target"),
        (["verify", "db-20260101T000000Z.tar"], "--target"),
        (["restore", "db-20260101T000000Z.tar"], "--target"),
        (["list", "--target", "/t"], "--job"),
        (["list", "--job", "db"], "--target"),
    ],
    ids=["command", "create-job", "create-target", "verify", "restore", "list-job", "list-target"],
)
def test_a_missing_required_argument_is_a_usage_error_naming_it(
    argv: list[str], missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 before doing anything, with the tool's usage and the argument's name."""
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m jobs.tools.backup")
    assert f"the following arguments are required: {missing}" in err


def test_an_unknown_compression_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only zstd, gzip and none: anything else exits 2 naming the choices; nothing written."""
    data = small_tree(tmp_path)
    argv = ["create", "--job", "db", "--target", str(tmp_path / "t"), "--compression", "xz"]
    with pytest.raises(SystemExit) as ended:
        main([*argv, str(data)])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "argument --compression: invalid choice: 'xz'" in err
    assert all(choice in err for choice in ("gzip", "none", "zstd"))
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("mounts", [[], None], ids=["--mounts-with-no-volume", "no---mounts"])
def test_nothing_to_back_up_is_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mounts: list[Path] | None,
) -> None:
    """No source path, and no volume mounted (or --mounts not given): exit 1 with the reason
    on one diagnostic line; nothing written."""
    monkeypatch.setattr(
        "jobs.tools.backup.cli.volume_mounts", lambda _target: [tmp_path / "a-volume"]
    )
    argv = ["create", "--job", "db", "--target", str(tmp_path / "t")]
    if mounts is not None:
        monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: mounts)
        argv.append("--mounts")
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        "backup: nothing to back up: no source path and no volume mounted"
    ]
    assert not (tmp_path / "t").exists()


def test_mounts_adds_every_volume_but_the_target_mounted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mounts with a source path: the source and the mounted volumes are archived (the
    result's ``sources``, in that order); the target seen again among the mounts is neither
    a source nor in the archive, and a note names it."""
    data = small_tree(tmp_path / "app")
    extra = small_tree(tmp_path / "extra")
    target = tmp_path / "backups"
    old_archives(target, ["20260101T000000Z"])
    alias = data / "backups-again"
    alias.symlink_to(target)  # stands in for a second mount of the target's volume
    monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: [data, alias])
    argv = ["create", "--job", "db", "--target", str(target), "--mounts", str(extra)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    result = result_of(err)
    assert result["sources"] == [str(extra), str(data)]
    assert (
        f"backup: {alias} is the target volume mounted again: left out of the archive"
        in err.splitlines()
    )
    archived = members(target / result["archive"])
    assert rel(alias) not in archived
    assert {rel(data / "file.txt"), rel(extra / "sub" / "more.txt")} <= set(archived)


def test_the_create_result_carries_sources_and_throughput_in_mib_per_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sources`` as given, ``throughput_mib_s`` = data_bytes / archive_s in MiB, to one
    decimal."""
    data = small_tree(tmp_path)
    assert main(["create", "--job", "db", "--target", str(tmp_path / "t"), str(data)]) == 0
    result = result_of(capsys.readouterr().err)
    assert result["sources"] == [str(data)]
    seconds = max(result["archive_s"], 0.001)
    assert result["throughput_mib_s"] == round(result["data_bytes"] / seconds / (1 << 20), 1)


def test_without_tar_totals_the_throughput_is_measured_on_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tar whose --totals line cannot be read (another language): data_bytes is null and
    the throughput falls back to the archive's bytes."""
    monkeypatch.setattr(
        "jobs.tools.backup.pipeline.TOTALS", re.compile(r"^Gesamtzahl geschriebener Bytes: (\d+)")
    )
    data = small_tree(tmp_path)
    assert main(["create", "--job", "db", "--target", str(tmp_path / "t"), str(data)]) == 0
    result = result_of(capsys.readouterr().err)
    assert result["data_bytes"] is None
    seconds = max(result["archive_s"], 0.001)
    assert result["throughput_mib_s"] == round(result["bytes"] / seconds / (1 << 20), 1)


def test_the_verify_command_reports_the_archive_and_its_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_tree(tmp_path)
    target = tmp_path / "t"
    name = str(create("db", target, [data], "gzip")["archive"])
    assert main(["verify", "--target", str(target), name]) == 0
    digest = hashlib.sha256((target / name).read_bytes()).hexdigest()
    assert result_of(capsys.readouterr().err) == {"archive": name, "sha256": digest}


def test_the_restore_command_defaults_to_the_root_and_takes_only_repeatedly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --root the archive's paths go back where they were (root ``/``); each
    --only adds a path, taken as written but for its leading and trailing slashes (a mail
    directory INBOX here), and only those paths are restored."""
    data = small_tree(tmp_path)
    (data / "INBOX").mkdir()
    (data / "INBOX" / "1").write_text("a mail\n")
    (data / "third.txt").write_text("third\n")
    target = tmp_path / "t"
    name = str(create("db", target, [data], "zstd")["archive"])
    changed = [
        data / "file.txt",
        data / "INBOX" / "1",
        data / "sub" / "more.txt",
        data / "third.txt",
    ]
    for path in changed:
        path.write_text("changed since\n")
    monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: [data])
    only = ["--only", str(data / "file.txt"), "--only", f"{data / 'INBOX'}/"]
    assert main(["restore", "--target", str(target), *only, name]) == 0
    result = result_of(capsys.readouterr().err)
    assert (result["restored_to"], result["volumes"], result["entries"]) == ("/", [str(data)], 3)
    assert [p.read_text() for p in changed] == [
        "some data\n",
        "a mail\n",
        "changed since\n",
        "changed since\n",
    ]


@pytest.mark.parametrize("command", ["create", "restore"])
def test_a_runs_seconds_are_its_end_less_its_start_to_the_millisecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """create's ``archive_s`` and restore's ``duration_s``: the monotonic clock at the end
    less at the start, rounded to the millisecond."""
    data = small_tree(tmp_path)
    target = tmp_path / "t"
    name = str(create("db", target, [data], "zstd")["archive"])
    ticks = iter([1000.0, 1002.34567])
    monkeypatch.setattr(
        "jobs.tools.backup.archive.time",
        SimpleNamespace(monotonic=ticks.__next__, sleep=time.sleep),
    )
    monkeypatch.setattr(
        "jobs.tools.backup.restore.time",
        SimpleNamespace(monotonic=ticks.__next__, sleep=time.sleep),
    )
    if command == "create":
        seconds = create("db", target, [data], "zstd", now=CLOCK)["archive_s"]
    else:
        seconds = restore(target, name, [data])["duration_s"]
    assert seconds == 2.346


# --- list ---------------------------------------------------------------------------


def test_the_list_command_shows_the_jobs_archives_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of the job's archives (and only the job's): name, time, bytes, good (has its
    checksum), future (stamped later than now); newest first, whatever order the directory
    lists them in."""
    target = tmp_path / "t"
    stamps = ["20260112T100000Z", "20990101T000000Z", "20260105T100000Z", "20260302T115900Z"]
    names = old_archives(target, stamps[:3])
    (target / names[0]).write_bytes(b"a bigger older archive")
    incomplete = old_archives(target, stamps[3:], complete=False)[0]
    (target / "db-logs-20260301T000000Z.tar.zst").write_bytes(b"another job's")
    (target / "db-20260301T000000Z.tar.zst.partial").write_bytes(b"a killed run's")
    assert main(["list", "--job", "db", "--target", str(target)]) == 0

    def entry(name: str, when: str, size: int, good: bool, future: bool) -> dict[str, object]:
        return {"archive": name, "time": when, "bytes": size, "good": good, "future": future}

    assert result_of(capsys.readouterr().err) == {
        "archives": [
            entry(names[1], "2099-01-01T00:00:00+00:00", 16, good=True, future=True),
            entry(incomplete, "2026-03-02T11:59:00+00:00", 16, good=False, future=False),
            entry(names[0], "2026-01-12T10:00:00+00:00", 22, good=True, future=False),
            entry(names[2], "2026-01-05T10:00:00+00:00", 16, good=True, future=False),
        ]
    }


def test_the_list_of_a_target_that_does_not_exist_yet_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job that never ran has no target directory yet: no archives, not an error."""
    assert main(["list", "--job", "db", "--target", str(tmp_path / "never")]) == 0
    assert result_of(capsys.readouterr().err) == {"archives": []}


# --- retention after create ---------------------------------------------------------

OLD = {
    "A": "20260105T100000Z",  # Monday 5 January (ISO week 2), 05:00 in New York
    "B": "20260105T200000Z",  # the same day, 15:00 in New York
    "C": "20260106T020000Z",  # Tuesday 6 January, still Monday 21:00 in New York
    "D": "20260112T100000Z",  # week 3, January
    "E": "20260202T100000Z",  # week 6, February
}


@pytest.mark.parametrize(
    ("keep", "deleted"),
    [
        (["--keep-last", "2"], "ABCD"),
        (["--keep-daily", "5"], "A"),
        (["--keep-daily", "5", "--timezone", "America/New_York"], "AB"),
        (["--keep-weekly", "4"], "AB"),
        (["--keep-monthly", "3"], "ABC"),
    ],
    ids=["last", "daily", "daily-in-new-york", "weekly", "monthly"],
)
def test_each_keep_option_reaches_its_own_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keep: list[str],
    deleted: str,
) -> None:
    """With the new archive (2 March, week 10) and five older ones: --keep-last N keeps the
    N newest, --keep-daily/weekly/monthly N the newest of each of the N most recent
    days/weeks/months, in --timezone; the result's ``deleted`` names exactly the others,
    oldest first, and they are gone with their checksums."""
    frozen_clock(monkeypatch)
    data = small_tree(tmp_path)
    target = tmp_path / "t"
    old_archives(target, list(OLD.values()))
    argv = ["create", "--job", "db", "--target", str(target), *keep, str(data)]
    assert main(argv) == 0
    result = result_of(capsys.readouterr().err)
    assert result["archive"] == MADE
    gone = [f"db-{OLD[k]}.tar.zst" for k in deleted]
    assert result["deleted"] == gone
    kept = [f"db-{stamp}.tar.zst" for k, stamp in OLD.items() if k not in deleted] + [MADE]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*kept, *(f"{n}.sha256" for n in kept)]
    )


def test_the_archive_just_made_is_kept_even_when_a_newer_one_fills_keep_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive stamped 30 s after the new one (a clock a little ahead: not "the future")
    is the newest and takes --keep-last 1; the new archive still stays, only the old goes."""
    frozen_clock(monkeypatch)
    data = small_tree(tmp_path)
    target = tmp_path / "t"
    older, ahead = old_archives(target, ["20260101T000000Z", "20260302T120030Z"])
    argv = ["create", "--job", "db", "--target", str(target), "--keep-last", "1", str(data)]
    assert main(argv) == 0
    result = result_of(capsys.readouterr().err)
    assert result["deleted"] == [older]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [ahead, f"{ahead}.sha256", MADE, f"{MADE}.sha256"]
    )


# --- prune --------------------------------------------------------------------------


def test_prune_keeps_the_newest_good_archive_and_deletes_incomplete_ones(
    tmp_path: Path,
) -> None:
    """--keep-last 1 where the newest archive has no checksum (a run that failed after the
    archive): it stays by the rule, and so does the newest *good* one; older ones go,
    the incomplete one without a checksum to delete too."""
    target = tmp_path / "t"
    oldest = old_archives(target, ["20260101T000000Z"], complete=False)[0]
    old, newest_good = old_archives(target, ["20260102T000000Z", "20260103T000000Z"])
    newest = old_archives(target, ["20260104T000000Z"], complete=False)[0]
    deleted, future = prune("db", target, Retention(keep_last=1))
    assert (deleted, future) == ([oldest, old], [])
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [newest_good, f"{newest_good}.sha256", newest]
    )


def test_prune_with_a_policy_that_keeps_nothing_deletes_nothing(tmp_path: Path) -> None:
    """keep_last 0 and no complete archive (no newest good one to keep): the policy would
    delete everything, so nothing is deleted."""
    target = tmp_path / "t"
    names = old_archives(target, ["20260101T000000Z", "20260102T000000Z"], complete=False)
    assert prune("db", target, Retention(keep_last=0)) == ([], [])
    assert sorted(p.name for p in target.iterdir()) == names


def test_prune_measures_the_future_on_one_clock_for_the_report_and_the_deletions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool's clock says 2001: archives of 2002 and 2003 are reported as future and are
    neither ranked nor deleted — an archive reported as future is never deleted."""
    frozen_clock(monkeypatch, datetime(2001, 1, 1, tzinfo=UTC))
    target = tmp_path / "t"
    past, *ahead = old_archives(
        target, ["20000101T000000Z", "20020101T000000Z", "20030101T000000Z"]
    )
    assert prune("db", target, Retention(keep_last=1)) == ([], ahead)
    assert len(list(target.iterdir())) == 6
    assert (target / past).is_file()


def test_every_missing_source_is_named_and_a_new_target_is_made_with_its_parents(
    tmp_path: Path,
) -> None:
    """Two missing sources: the error names both, nothing written; with the sources there,
    a target whose parents do not exist yet is made, parents included."""
    target = tmp_path / "new" / "volume" / "backups"
    missing = [tmp_path / "gone", tmp_path / "also-gone"]
    with pytest.raises(ToolError) as failed:
        create("db", target, missing, "zstd", now=CLOCK)
    assert str(failed.value) == f"nothing to back up at {missing[0]}, {missing[1]}"
    assert not (tmp_path / "new").exists()
    made = create("db", target, [small_tree(tmp_path)], "zstd", now=CLOCK)
    assert sorted(p.name for p in target.iterdir()) == [MADE, f"{MADE}.sha256"]
    assert made["archive"] == MADE
