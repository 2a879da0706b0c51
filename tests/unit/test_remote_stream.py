"""The remote tool's ``stream`` (a backup with ``copy_to`` and no ``target``): the archive
piped straight into ``rclone rcat`` against a real WebDAV server, then renamed, its
``.sha256`` beside it — and ``copy`` with ``from_first``, from that first destination to the
others. Nothing partial under a final name when tar, age or the destination fails."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from jobs.protocol.remote import Copied, Destination, RemoteRequest, parse_copied
from jobs.tools.remote import streaming
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


@pytest.mark.parametrize("kind", ["sha256", "md5"])
def test_the_upload_is_checked_with_the_hash_the_backend_gives(
    kind: str,
) -> None:
    class Backend:
        def stat(self, name: str, where: str) -> tuple[int, dict[str, str]]:
            return 3, {kind: "00"}

        def path(self, name: str) -> str:
            return name

    sent = streaming.Streamed(3, {"sha256": "ab", "md5": "00"}, 1, 3)
    if kind == "md5":
        assert streaming._checked(Backend(), "p", "a", sent) == "size+md5"  # type: ignore[arg-type]
    else:
        with pytest.raises(RemoteError, match="a: the sha256 of the uploaded file differs"):
            streaming._checked(Backend(), "p", "a", sent)  # type: ignore[arg-type]


def test_the_hash_computed_on_the_way_is_the_one_the_backend_gives(tmp_path: Path) -> None:
    def of(kind: str, **options: str) -> tuple[str, ...]:
        private = tmp_path / f"p-{kind}-{options.get('vendor')}"
        private.mkdir()
        return Rclone(Destination("r", kind, "f", options), private).hashes()

    assert of("s3") == ("md5",)
    assert of("sftp") == ("md5", "sha1")
    assert of("webdav", url="http://x", vendor="other") == ()
    assert of("webdav", url="http://x", vendor="nextcloud") == ("sha1",)
