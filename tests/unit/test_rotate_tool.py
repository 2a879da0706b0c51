"""The rotation tool on real files: when it rotates, how, compression that reads back,
and pruning that touches only its own names."""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest

from jobs.protocol.rotate import FinishRequest, RotateRequest
from jobs.tools import rotate
from tests.control import result_of

from . import helpers

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def rotate_now(
    logs: Path,
    state: dict[str, dict[str, str]] | None = None,
    now: datetime = NOW,
    **rules: object,
) -> dict[str, object]:
    options: dict[str, object] = {
        "max_size": None,
        "max_age": None,
        "min_size": 0,
        "mode": "rename",
    }
    options.update(rules)
    request = RotateRequest((str(logs / "*.log"),), **options)  # type: ignore[arg-type]
    return rotate.rotate(request, state or {}, now=now)


def test_a_file_over_max_size_is_renamed_and_recreated_with_its_mode_and_owner(
    logs: Path,
) -> None:
    log = logs / "app.log"
    log.write_text("x" * 100)
    log.chmod(0o640)
    os.chown(log, 1234, 5678)
    (logs / "small.log").write_text("y" * 10)
    result = rotate_now(logs, max_size=50)
    rotated = logs / "app.log.20261128T120000Z"
    assert result["rotated"] == [{"path": str(log), "to": str(rotated)}]
    assert rotated.read_text() == "x" * 100
    assert log.read_text() == ""
    info = log.stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 1234, 5678)
    assert (logs / "small.log").read_text() == "y" * 10


def test_age_counts_from_the_last_rotation_and_min_size_holds_it_back(logs: Path) -> None:
    (logs / "app.log").write_text("x" * 100)
    (logs / "tiny.log").write_text("y")
    first = rotate_now(logs, max_age=3600, min_size=10)
    assert first["rotated"] == []  # first sight: the age starts now
    state = first["state"]
    assert isinstance(state, dict)
    assert state[str(logs / "app.log")] == {"since": NOW.isoformat()}
    later = NOW + timedelta(hours=1)
    second = rotate_now(logs, state, now=later, max_age=3600, min_size=10)
    assert [r["path"] for r in second["rotated"]] == [str(logs / "app.log")]  # type: ignore[attr-defined]
    assert second["state"][str(logs / "app.log")] == {"since": later.isoformat()}  # type: ignore[index]
    assert second["state"][str(logs / "tiny.log")] == {"since": NOW.isoformat()}  # type: ignore[index]


def test_an_empty_file_is_never_rotated(logs: Path) -> None:
    (logs / "app.log").write_text("")
    assert rotate_now(logs, max_size=0)["rotated"] == []


def test_copytruncate_keeps_the_inode_and_copies_the_content(logs: Path) -> None:
    log = logs / "app.log"
    log.write_text("line 1\nline 2\n")
    inode = log.stat().st_ino
    rotate_now(logs, max_size=1, mode="copytruncate")
    assert log.stat().st_ino == inode
    assert log.read_text() == ""
    assert (logs / "app.log.20261128T120000Z").read_text() == "line 1\nline 2\n"


def test_two_rotations_in_one_second_get_distinct_names(logs: Path) -> None:
    log = logs / "app.log"
    log.write_text("first\n")
    rotate_now(logs, max_size=1)
    log.write_text("second\n")
    rotate_now(logs, max_size=1)
    assert (logs / "app.log.20261128T120000Z").read_text() == "first\n"
    assert (logs / "app.log.20261128T120000Z-1").read_text() == "second\n"


@pytest.mark.parametrize(("compression", "reader"), [("zstd", "zstd"), ("gzip", "gzip")])
def test_compression_reads_back_to_the_original_bytes(
    logs: Path, compression: str, reader: str
) -> None:
    log = logs / "app.log"
    original = os.urandom(1000) + b"\n" + b"text line\n" * 1000
    log.write_bytes(original)
    rotate_now(logs, max_size=1)
    rotated = logs / "app.log.20261128T120000Z"
    os.utime(rotated, (0, 0))  # quiet for long: no wait
    result = rotate.finish(
        FinishRequest(
            (str(logs / "*.log"),),
            compression=compression,
            delay_compression=False,
            keep_last=None,
            keep_age=None,
        ),
        now=NOW,
    )
    ext = ".zst" if compression == "zstd" else ".gz"
    assert result["compressed"] == [str(rotated) + ext]
    assert not rotated.exists()
    packed = Path(str(rotated) + ext)
    assert (
        subprocess.run([reader, "-d", "-c", str(packed)], capture_output=True, check=True).stdout
        == original
    )
    if compression == "gzip":
        assert gzip.decompress(packed.read_bytes()) == original


def make_rotated(logs: Path, stamps: list[str], ext: str = "") -> list[Path]:
    made = []
    for stamp in stamps:
        path = logs / f"app.log.{stamp}{ext}"
        path.write_text(stamp)
        os.utime(path, (0, 0))
        made.append(path)
    return made


def test_delay_compression_leaves_the_newest_for_the_next_run(logs: Path) -> None:
    (logs / "app.log").write_text("live\n")
    old, new = make_rotated(logs, ["20261126T000000Z", "20261127T000000Z"])
    options = {
        "compression": "gzip",
        "delay_compression": True,
        "keep_last": None,
        "keep_age": None,
    }
    rotate.finish(FinishRequest((str(logs / "*.log"),), **options), now=NOW)  # type: ignore[arg-type]
    assert Path(f"{old}.gz").exists()
    assert not old.exists()
    assert new.exists()
    newest = make_rotated(logs, ["20261128T000000Z"])[0]
    rotate.finish(FinishRequest((str(logs / "*.log"),), **options), now=NOW)  # type: ignore[arg-type]
    assert Path(f"{new}.gz").exists()
    assert newest.exists()


def test_keep_last_and_keep_age_prune_exactly_and_only_our_names(logs: Path) -> None:
    (logs / "app.log").write_text("live\n")
    stamps = ["20261120T000000Z", "20261125T000000Z", "20261126T000000Z", "20261127T000000Z"]
    make_rotated(logs, stamps, ".gz")
    foreign = [logs / "app.log.old", logs / "other.log.20261101T000000Z", logs / "app.log.1"]
    for path in foreign:
        path.write_text("not ours")
    result = rotate.finish(
        FinishRequest(
            (str(logs / "*.log"),),
            compression="gzip",
            delay_compression=False,
            keep_last=3,
            keep_age=3 * 86400,  # older than 2026-11-25T12:00 goes
        ),
        now=NOW,
    )
    assert sorted(Path(p).name for p in result["deleted"]) == [  # type: ignore[attr-defined]
        "app.log.20261120T000000Z.gz",
        "app.log.20261125T000000Z.gz",
    ]
    left = sorted(p.name for p in logs.iterdir())
    assert left == sorted(
        ["app.log", "app.log.20261126T000000Z.gz", "app.log.20261127T000000Z.gz"]
        + [p.name for p in foreign]
    )


def test_the_tool_prints_its_result_and_fails_with_a_message(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (logs / "app.log").write_text("x\n")
    assert rotate.main(["rotate", "--max-size", "1", str(logs / "*.log")]) == 0
    result = result_of(capsys.readouterr().err)
    assert result["rotated"] == [{"path": str(logs / "app.log"), "to": ANY}]
    assert rotate.main(["rotate", "--state", "{bad", str(logs / "*.log")]) != 0


def test_a_file_written_to_while_compressed_is_kept_for_the_next_run(
    logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The app had not reopened its log yet: deleting the file would lose its new lines;
    the tool says so."""
    rotated = logs / "app.log.20261128T120000Z"
    rotated.write_text("old line\n")
    os.utime(rotated, (0, 0))
    (logs / "app.log").write_text("")
    real_run = subprocess.run

    def compress_while_the_app_writes(*args: object, **kwargs: object) -> object:
        with rotated.open("a") as f:
            f.write("a line written meanwhile\n")
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", compress_while_the_app_writes)
    result = rotate.finish(
        FinishRequest(
            (str(logs / "*.log"),),
            compression="gzip",
            delay_compression=False,
            keep_last=None,
            keep_age=None,
        ),
        now=NOW,
    )
    assert result["compressed"] == []
    assert rotated.read_text() == "old line\na line written meanwhile\n"
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", rotated.name]
    assert capsys.readouterr().err == (
        f"rotate: {rotated} was written to while compressed: left for the next run\n"
    )


def finish_now(logs: Path, roots: list[Path] | None = None, **rules: object) -> dict[str, object]:
    return helpers.finish_now(logs, roots, NOW, **rules)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_keep_last_0_never_deletes_a_rotated_file_still_being_written(
    logs: Path, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """keep_last = 0 and the app still writes into the file it had open (it has not reopened
    its log): the file is neither compressed nor deleted, and says so."""
    monkeypatch.setattr(rotate, "QUIET_MAX_S", 0.3)
    (logs / "app.log").write_text("")
    rotated = logs / "app.log.20261128T120000Z"
    rotated.write_text("line 1\n")
    stop = threading.Event()

    def app() -> None:
        n = 2
        while not stop.wait(0.02):
            with rotated.open("a") as f:
                f.write(f"line {n}\n")
            n += 1

    writer = threading.Thread(target=app)
    writer.start()
    try:
        result = finish_now(logs, keep_last=0, compression=compression)
    finally:
        stop.set()
        writer.join()
    assert result == {"compressed": [], "deleted": []}
    assert rotated.read_text().startswith("line 1\nline 2\n")
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", rotated.name]


def test_keep_last_0_deletes_quiet_rotated_files(logs: Path) -> None:
    """Once nothing writes into them, keep_last = 0 deletes every rotated file (boundary)."""
    (logs / "app.log").write_text("")
    made = make_rotated(logs, ["20261126T000000Z", "20261127T000000Z"])
    result = finish_now(logs, keep_last=0, compression="none")
    assert sorted(result["deleted"]) == sorted(str(p) for p in made)  # type: ignore[call-overload]
    assert [p.name for p in logs.iterdir()] == ["app.log"]


def test_only_our_own_stale_partials_are_removed(logs: Path) -> None:
    """A killed compression's partial goes; a foreign '<live>.x.partial', a partial still
    being written (fresh) and a symlink named like a partial stay."""
    (logs / "app.log").write_text("live\n")
    ours = logs / "app.log.20261127T000000Z.gz.partial"
    ours.write_bytes(b"half")
    os.utime(ours, (0, 0))
    fresh = logs / "app.log.20261128T000000Z.zst.partial"
    fresh.write_bytes(b"being written")
    foreign = logs / "app.log.backup.partial"
    foreign.write_bytes(b"not ours")
    os.utime(foreign, (0, 0))
    outside = logs.parent / "outside"
    outside.write_text("keep me")
    link = logs / "app.log.20261126T000000Z.gz.partial"
    link.symlink_to(outside)
    finish_now(logs)
    assert not ours.exists()
    assert fresh.exists()
    assert foreign.exists()
    assert link.is_symlink()
    assert outside.read_text() == "keep me"


def test_a_symlink_named_like_a_rotated_file_is_never_followed(logs: Path) -> None:
    """'app.log.<stamp>' pointing at a file outside the volume: not compressed, not copied,
    not deleted; the outside file is untouched."""
    (logs / "app.log").write_text("live\n")
    outside = logs.parent / "secret.txt"
    outside.write_text("outside the volume\n")
    outside.chmod(0o600)
    link = logs / "app.log.20261127T000000Z"
    link.symlink_to(outside)
    result = finish_now(logs, keep_last=0)
    assert result == {"compressed": [], "deleted": []}
    assert link.is_symlink()
    assert outside.read_text() == "outside the volume\n"
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", link.name]


def test_a_name_of_the_pattern_with_no_such_time_is_left_alone(logs: Path) -> None:
    """'app.log.20261399T000000Z' (month 13) is not a rotation of app.log: not compressed,
    not deleted, and it does not stop the others' finishing (it was an error)."""
    (logs / "app.log").write_text("live\n")
    odd = logs / "app.log.20261399T000000Z"
    odd.write_text("not ours\n")
    old = logs / "app.log.20261127T000000Z"
    old.write_text("rotated\n")
    os.utime(old, (0, 0))
    result = finish_now(logs, keep_last=0, compression="none")
    assert result == {"compressed": [], "deleted": [str(old)]}
    assert odd.read_text() == "not ours\n"
    assert sorted(p.name for p in logs.iterdir()) == ["app.log", odd.name]


def test_a_dangling_symlink_at_the_rotated_name_is_not_written_through(logs: Path) -> None:
    """copytruncate never copies into a symlink planted at the name it would use."""
    log = logs / "app.log"
    log.write_text("line\n")
    target = logs.parent / "planted"
    (logs / "app.log.20261128T120000Z").symlink_to(target)
    rotate_now(logs, max_size=1, mode="copytruncate")
    assert not target.exists()
    assert (logs / "app.log.20261128T120000Z-1").read_text() == "line\n"


def test_globs_do_not_follow_a_directory_symlink_out_of_the_volumes(tmp_path: Path) -> None:
    """'/logs/*/app.log' with '/logs/evil -> /elsewhere': the file there is matched by the
    glob but left alone (it is not inside the mounted volumes); the real one rotates."""
    volume, elsewhere = tmp_path / "volume", tmp_path / "elsewhere"
    (volume / "app").mkdir(parents=True)
    elsewhere.mkdir()
    (volume / "app" / "app.log").write_text("x" * 100)
    (elsewhere / "app.log").write_text("y" * 100)
    (volume / "evil").symlink_to(elsewhere)
    result = rotate.rotate(
        RotateRequest((str(volume / "*" / "app.log"),), max_size=10, mode="rename"),
        {},
        now=NOW,
        roots=[volume],
    )
    assert [r["path"] for r in result["rotated"]] == [str(volume / "app" / "app.log")]  # type: ignore[attr-defined]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["app.log"]
    assert (elsewhere / "app.log").read_text() == "y" * 100
