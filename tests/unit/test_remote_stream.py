"""The remote tool's ``stream`` (a backup with ``copy_to`` and no ``target``): the archive
piped straight into ``rclone rcat`` against a real WebDAV server, then renamed, its
``.sha256`` beside it — and ``copy`` with ``from_first``, from that first destination to the
others. Nothing partial under a final name when tar, age or the destination fails."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobs.protocol.remote import Copied, Destination, RemoteRequest, parse_copied
from jobs.tools.remote import cli as remote_cli
from jobs.tools.remote import streaming
from jobs.tools.remote.copying import check_upload
from jobs.tools.remote.rclone import Rclone, RemoteError
from tests.control import result_of

from .helpers import build_tree, snapshot
from .test_backup_tool_age import key_pair
from .test_remote_tool import JOB, OLD, archive, dav, destination, run_tool, serving_dav

__all__ = ["dav"]  # the fixture, imported for the tests below

FOLDER = ("backups", "app")


def stream_request(url: str, sources: list[Path], **given: object) -> RemoteRequest:
    return RemoteRequest(
        "stream", JOB, "/backup", ("dav",), (destination(url),),
        sources=tuple(map(str, sources)), **given,  # type: ignore[arg-type]
    )  # fmt: skip


def files(served: Path) -> list[str]:
    return sorted(p.name for p in served.joinpath(*FOLDER).iterdir())


def extracted(stored: Path, into: Path) -> Path:
    """The zstd archive ``stored`` extracted into ``into`` (made); ``into``."""
    into.mkdir()
    subprocess.run(
        ["tar", "--zstd", "-xpf", str(stored), "-C", str(into), "--numeric-owner"], check=True
    )
    return into


def test_a_streamed_archive_lands_under_its_name_with_its_checksum_and_holds_the_tree(
    dav: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = dav
    data = build_tree(tmp_path / "src")
    stale = served.joinpath(*FOLDER, f"{JOB}-{OLD}.tar.zst.partial")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed run")
    done = run_tool(stream_request(url, [data]))
    assert done.returncode == 0, done.stderr
    result = result_of(done.stderr)
    name = result["archive"]
    assert name.startswith(f"{JOB}-")
    assert name.endswith(".tar.zst")
    assert files(served) == [name, f"{name}.sha256"]
    stored = served.joinpath(*FOLDER, name)
    digest = hashlib.sha256(stored.read_bytes()).hexdigest()
    assert served.joinpath(*FOLDER, f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    assert (result["sha256"], result["bytes"]) == (digest, stored.stat().st_size)
    assert result["files"] == len([data, *data.rglob("*")])
    assert result["sources"] == [str(data)]
    size = stored.stat().st_size
    assert parse_copied(result) == [Copied("dav", (name,), size, "size", ())]
    back = extracted(stored, tmp_path / "back")
    assert snapshot(back / str(data).lstrip("/")) == snapshot(data)


def test_a_stream_encrypted_to_a_recipient_is_unreadable_without_the_identity(
    dav: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = dav
    data = build_tree(tmp_path / "src")
    identity, public = key_pair(tmp_path)
    done = run_tool(stream_request(url, [data], recipients=(public,)))
    assert done.returncode == 0, done.stderr
    name = result_of(done.stderr)["archive"]
    assert name.endswith(".tar.zst.age")
    assert result_of(done.stderr)["encrypted"] is True
    stored = served.joinpath(*FOLDER, name)
    assert (
        subprocess.run(["zstd", "-t", str(stored)], capture_output=True, check=False).returncode
        != 0
    )
    plain = tmp_path / "plain.tar.zst"
    subprocess.run(["age", "-d", "-i", str(identity), "-o", str(plain), str(stored)], check=True)
    back = extracted(plain, tmp_path / "back")
    assert snapshot(back / str(data).lstrip("/")) == snapshot(data)


def test_retention_applies_on_the_destination_after_the_stream(
    dav: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = dav
    folder = served.joinpath(*FOLDER)
    folder.mkdir(parents=True)
    old = archive(folder, OLD)
    other = archive(folder, OLD, job="app-logs")
    data = build_tree(tmp_path / "src")
    done = run_tool(stream_request(url, [data], keep={"last": 1}))
    assert done.returncode == 0, done.stderr
    result = result_of(done.stderr)
    assert result["deleted"] == [old]
    assert files(served) == sorted(
        [result["archive"], f"{result['archive']}.sha256", other, f"{other}.sha256"]
    )


def test_a_failing_encryption_or_a_refusing_destination_leaves_nothing_under_a_final_name(
    tmp_path: Path,
) -> None:
    data = build_tree(tmp_path / "src")
    served = tmp_path / "served"
    served.joinpath(*FOLDER).mkdir(parents=True)
    with serving_dav(served) as url:
        bad = stream_request(url, [data], recipients=("age1notakey",))
        done = run_tool(bad)
    assert done.returncode == 1
    assert "age failed" in done.stderr.strip().splitlines()[-1]
    assert files(served) == []
    with serving_dav(served, "--read-only") as url:
        done = run_tool(stream_request(url, [data]))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("remote: stream to remote 'dav' failed: rclone rcat:"), last
    assert files(served) == []
    missing = run_tool(stream_request("http://127.0.0.1:9", [tmp_path / "nothing-here"]))
    assert missing.returncode == 1
    assert f"nothing to back up at {tmp_path / 'nothing-here'}" in missing.stderr


def test_the_archives_of_the_first_destination_are_copied_to_the_others(
    dav: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = dav
    data = build_tree(tmp_path / "src")
    assert run_tool(stream_request(url, [data])).returncode == 0
    name = files(served)[0]
    second = tmp_path / "second"
    with serving_dav(second) as other:
        stale = second.joinpath(*FOLDER, f"{JOB}-{OLD}.tar.zst.sha256.partial")
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"cut")
        places = (destination(url), destination(other, name="box"))
        request = RemoteRequest("copy", JOB, "/backup", ("dav", "box"), places, from_first=True)
        done = run_tool(request)
        assert done.returncode == 0, done.stderr
        size = served.joinpath(*FOLDER, name).stat().st_size
        assert parse_copied(result_of(done.stderr)) == [Copied("box", (name,), size, "size")]
        assert files(second) == files(served)
        for file in files(served):
            copy = second.joinpath(*FOLDER, file).read_bytes()
            assert copy == served.joinpath(*FOLDER, file).read_bytes()
        again = run_tool(request)
    assert parse_copied(result_of(again.stderr)) == [Copied("box")]


@pytest.mark.parametrize(
    ("given", "offered", "how"),
    [
        ({"md5": "AB"}, ("md5",), "size+md5"),  # compared without regard to case
        ({"md5": "ff"}, ("md5",), "the md5 of the uploaded file differs"),
        ({}, ("md5",), "size"),  # offered, but not given for this object: size only
        ({"sha1": "ab"}, (), "size"),  # a hash the backend does not offer is not asked for
    ],
)
def test_an_upload_is_checked_by_size_then_by_the_hash_the_backend_gives(
    given: dict[str, str], offered: tuple[str, ...], how: str
) -> None:
    asked: list[str | None] = []

    class Backend:
        def stat(self, name: str, where: str, kind: str | None) -> tuple[int, dict[str, str]]:
            asked.append(kind)
            return 3, given

    def check(size: int) -> str:
        digests = {"md5": "ab", "sha1": "ab"}
        fake: Any = Backend()
        return check_upload(fake, "a", "p", size=size, offered=offered, digest=digests.get)

    if how.startswith("size"):
        assert check(3) == how
    else:
        with pytest.raises(RemoteError, match=f"^a: {how}$"):
            check(3)
    with pytest.raises(RemoteError, match=r"^a: 3 bytes arrived of 4$"):
        check(4)
    assert asked == [offered[0] if offered else None] * 2


def test_the_hash_computed_on_the_way_is_the_one_the_backend_gives(tmp_path: Path) -> None:
    def of(kind: str, **options: str) -> tuple[str, ...]:
        private = tmp_path / f"p-{kind}-{options.get('vendor')}"
        private.mkdir()
        return Rclone(Destination("r", kind, "f", options), private).hashes()

    assert of("s3") == ("md5",)
    assert of("sftp") == ("md5", "sha1")
    assert of("webdav", url="http://x", vendor="other") == ()
    assert of("webdav", url="http://x", vendor="nextcloud") == ("sha1",)


def test_a_failed_rename_leaves_neither_the_archive_nor_its_checksum_under_a_name(
    dav: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = dav
    data = build_tree(tmp_path / "src")
    real = Rclone.run

    def refusing(self: Rclone, *args: str, allow: tuple[int, ...] = ()) -> tuple[int, str]:
        if args[0] == "moveto" and not args[1].endswith(".sha256.partial"):
            raise RemoteError("rclone moveto: refused")  # the archive's rename, the last one
        return real(self, *args, allow=allow)

    monkeypatch.setattr(Rclone, "run", refusing)
    with pytest.raises(RemoteError, match="stream to remote 'dav' failed: rclone moveto"):
        remote_cli.stream_one(stream_request(url, [data]))
    assert files(served) == []


def test_a_clean_up_failing_after_the_archive_landed_fails_the_run_keeping_the_archive(
    dav: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = dav
    data = build_tree(tmp_path / "src")

    def failing(*_: object) -> list[str]:
        raise RemoteError("rclone deletefile: 423 Locked")

    monkeypatch.setattr(streaming, "prune", failing)
    result = remote_cli.stream_one(stream_request(url, [data], keep={"last": 1}))
    name = result["archive"]
    assert files(served) == [name, f"{name}.sha256"]
    (copy,) = parse_copied(result)
    assert copy.uploaded == (name,)
    assert copy.error == (
        f"the archive {name} is there, but its clean-up failed: rclone deletefile: 423 Locked"
    )
    assert remote_cli._streamed(result) == 1


def test_a_first_remote_that_cannot_be_read_is_named_and_nothing_is_copied(
    dav: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = dav
    gone = destination("http://127.0.0.1:9", name="gone")
    request = RemoteRequest(
        "copy", JOB, "/backup", ("gone", "dav"), (gone, destination(url)), from_first=True
    )
    done = run_tool(request)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("remote: reading remote 'gone' failed: rclone lsjson:"), last
    assert not served.joinpath(*FOLDER).exists()
