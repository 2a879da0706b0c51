"""The remote tool (``python -m jobs.tools.remote``) driving the real rclone against a real
WebDAV server (``rclone serve webdav`` on localhost, with a user and a password): archives
and checksums under their final names and nothing partial, what is missing uploaded by the
next run, retention on the remote touching only the job's own archives, a failing
destination named with what it said (never a secret) while the others are still copied;
the rclone environment (options, obscured password, private key file) and the request's
round trip."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.protocol.fields import RequestError
from jobs.protocol.remote import Copied, Destination, RemoteRequest, parse_copied
from jobs.retention import needs_key
from jobs.tools.backup.archive import create
from jobs.tools.backup.processes import ToolError
from jobs.tools.redact import Redactor
from jobs.tools.remote import cli as remote_cli
from jobs.tools.remote.copying import fetch
from jobs.tools.remote.rclone import Rclone, RemoteError
from tests.control import result_of

from .helpers import build_tree, snapshot, staging_left
from .test_backup_tool_age import key_pair

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
USER = "backup"
PASSWORD = "dav-Pw7-made-up"  # noqa: S105 - a made-up one
AGE_PASSPHRASE = "made-up passphrase"  # noqa: S105 - a made-up one
WRONG_PASSPHRASE = "not it"  # noqa: S105 - a made-up one
JOB = "app"
OLD, MID, NEW = "20260101T030000Z", "20260102T030000Z", "20260103T030000Z"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving_dav(served: Path, *extra: str) -> Iterator[str]:
    """``rclone serve webdav`` of ``served`` with a user and a password (and ``extra``
    options), on a free port of localhost; its URL."""
    served.mkdir(exist_ok=True)
    port = _free_port()
    rclone = shutil.which("rclone") or "rclone"
    server = subprocess.Popen(
        [
            *(rclone, "serve", "webdav", str(served), "--addr", f"127.0.0.1:{port}"),
            *("--user", USER, "--pass", PASSWORD),
            *("--dir-cache-time", "0s"),  # files the tests change behind its back: seen at once
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while server.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
        assert server.poll() is None, "rclone serve webdav ended"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A WebDAV server's directory and URL (``serving_dav``)."""
    with serving_dav(tmp_path / "served") as url:
        yield tmp_path / "served", url


def destination(url: str, password: str = PASSWORD, name: str = "dav") -> Destination:
    return Destination(
        name, "webdav", "backups/app", {"url": url, "vendor": "other", "user": USER},
        {"pass": password},
    )  # fmt: skip


def archive(target: Path, stamp: str, job: str = JOB, data: bytes = b"") -> str:
    """An archive of ``job`` with its checksum in ``target``; its name."""
    name = f"{job}-{stamp}.tar.zst"
    content = data or f"archive {job} {stamp}".encode() * 100
    (target / name).write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    (target / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return name


def run_tool(request: RemoteRequest) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.tools.remote"],
        input=request.to_json() + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def copy_request(target: Path, *dests: Destination, **keep: int) -> RemoteRequest:
    return RemoteRequest("copy", JOB, str(target), tuple(d.name for d in dests), dests, keep=keep)


def copied(target: Path, url: str, *stamps: str) -> list[str]:
    """Archives of these times in ``target`` (made unless there), copied to the server at
    ``url``; their names."""
    names = [
        f"{JOB}-{s}.tar.zst" if (target / f"{JOB}-{s}.tar.zst").exists() else archive(target, s)
        for s in stamps
    ]
    done = run_tool(copy_request(target, destination(url)))
    assert done.returncode == 0, done.stderr
    return names


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    return path


def test_a_copy_uploads_the_archives_and_checksums_under_their_final_names(
    dav: tuple[Path, str], target: Path
) -> None:
    served, url = dav
    names = [archive(target, OLD), archive(target, NEW)]
    (target / f"{JOB}-{MID}.tar.zst").write_bytes(b"no checksum: incomplete, not copied")
    done = run_tool(copy_request(target, destination(url)))
    assert done.returncode == 0, done.stderr
    folder = served / "backups" / "app"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*names, *(f"{n}.sha256" for n in names)]
    )
    for name in names:
        assert (folder / name).read_bytes() == (target / name).read_bytes()
        assert (folder / f"{name}.sha256").read_text() == (target / f"{name}.sha256").read_text()
    copies = parse_copied(result_of(done.stderr))
    sent = sum((target / n).stat().st_size for n in names)
    assert copies == [Copied("dav", tuple(reversed(names)), sent, "size", ())]
    again = run_tool(copy_request(target, destination(url)))
    assert again.returncode == 0, again.stderr
    assert parse_copied(result_of(again.stderr)) == [Copied("dav")]


def test_the_next_run_uploads_what_is_missing_and_removes_its_own_stale_partials(
    dav: tuple[Path, str], target: Path
) -> None:
    served, url = dav
    (first,) = copied(target, url, OLD)
    folder = served / "backups" / "app"
    (folder / f"{first}.sha256").unlink()  # as if cut between the archive and its checksum
    (folder / f"{JOB}-{MID}.tar.zst.partial").write_bytes(b"cut mid-way")
    (folder / f"{JOB}-logs-{MID}.tar.zst.partial").write_bytes(b"another job's")
    second = archive(target, NEW)
    done = run_tool(copy_request(target, destination(url)))
    assert done.returncode == 0, done.stderr
    assert parse_copied(result_of(done.stderr))[0].uploaded == (second, first)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [first, f"{first}.sha256", second, f"{second}.sha256", f"{JOB}-logs-{MID}.tar.zst.partial"]
    )


def test_retention_on_the_remote_deletes_only_the_jobs_archives_it_does_not_keep(
    dav: tuple[Path, str], target: Path
) -> None:
    served, url = dav
    folder = served / "backups" / "app"
    folder.mkdir(parents=True)
    for stamp in (OLD, MID):
        archive(folder, stamp)
    other = archive(folder, OLD, job="app-logs")
    newest = archive(target, NEW)
    done = run_tool(copy_request(target, destination(url), last=2))
    assert done.returncode == 0, done.stderr
    copied = parse_copied(result_of(done.stderr))[0]
    assert copied.deleted == (f"{JOB}-{OLD}.tar.zst",)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{n}{s}" for n in (f"{JOB}-{MID}.tar.zst", newest, other) for s in ("", ".sha256")
    )


def test_a_failing_destination_is_named_with_what_it_said_and_the_others_are_copied(
    dav: tuple[Path, str], target: Path
) -> None:
    served, url = dav
    name = archive(target, NEW)
    wrong = destination(url, password="not-the-Pw9-password", name="wrong")  # noqa: S106
    gone = destination(f"http://127.0.0.1:{_free_port()}", name="gone")
    done = run_tool(copy_request(target, wrong, destination(url), gone))
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "copy to remote 'wrong' failed: rclone lsjson:" in last
    assert "401" in last
    assert "copy to remote 'gone' failed:" in last
    assert "connection refused" in last
    assert "not-the-Pw9-password" not in done.stderr
    assert PASSWORD not in done.stderr
    assert (served / "backups" / "app" / name).read_bytes() == (target / name).read_bytes()
    assert (target / name).exists()
    by_remote = {c.remote: c for c in parse_copied(result_of(done.stderr))}
    assert by_remote["dav"].uploaded == (name,)
    assert by_remote["wrong"].uploaded == ()
    assert by_remote["wrong"].error is not None


def test_an_archive_is_fetched_back_whole_or_the_error_names_it(
    dav: tuple[Path, str], target: Path, tmp_path: Path
) -> None:
    _, url = dav
    archive(target, NEW, data=os.urandom(3 << 20))
    names = copied(target, url, OLD, NEW)
    private, into = tmp_path / "private", tmp_path / "into"
    private.mkdir()
    into.mkdir()
    rclone = Rclone(destination(url), private)
    assert fetch(rclone, JOB, "latest", into) == names[1]
    assert (into / names[1]).read_bytes() == (target / names[1]).read_bytes()
    assert fetch(rclone, JOB, names[0], into) == names[0]
    with pytest.raises(RemoteError, match=r"no complete archive 'app-2025.*' on the remote"):
        fetch(rclone, JOB, f"{JOB}-20250101T000000Z.tar.zst", into)
    with pytest.raises(RemoteError, match="no complete archive of job 'other' on the remote"):
        fetch(rclone, "other", "latest", into)


def test_the_list_command_gives_the_jobs_archives_on_the_remote(
    dav: tuple[Path, str], target: Path
) -> None:
    _, url = dav
    (name,) = copied(target, url, NEW)
    listing = RemoteRequest("list", JOB, "/backup", ("dav",), (destination(url),))
    done = run_tool(listing)
    assert done.returncode == 0, done.stderr
    result = result_of(done.stderr)
    assert result["remote"] == "dav"
    assert [(a["archive"], a["bytes"], a["good"]) for a in result["archives"]] == [
        (name, (target / name).stat().st_size, True)
    ]


def test_rclone_gets_the_options_in_its_own_environment_the_password_obscured(
    tmp_path: Path,
) -> None:
    dest = Destination(
        "box", "sftp", "/srv", {"host": "h", "port": "22", "user": "u"}, {"pass": PASSWORD},
        key="-----BEGIN KEY-----\nsecret-key-line\n-----END KEY-----", known_hosts="h ssh-ed25519 A",
    )  # fmt: skip
    rclone = Rclone(dest, tmp_path)
    env, redact = rclone.env, rclone.redact
    assert env["RCLONE_CONFIG_DEST_TYPE"] == "sftp"
    assert (env["RCLONE_CONFIG_DEST_HOST"], env["RCLONE_CONFIG_DEST_USER"]) == ("h", "u")
    obscured = env["RCLONE_CONFIG_DEST_PASS"]
    assert obscured != PASSWORD
    revealed = subprocess.run(
        [shutil.which("rclone") or "rclone", "reveal", "--", obscured],
        capture_output=True,
        text=True,
        check=True,
    )
    assert revealed.stdout.strip() == PASSWORD
    key = Path(env["RCLONE_CONFIG_DEST_KEY_FILE"])
    assert key.read_text().splitlines()[1] == "secret-key-line"
    assert key.stat().st_mode & 0o777 == 0o600
    assert Path(env["RCLONE_CONFIG_DEST_KNOWN_HOSTS_FILE"]).read_text() == "h ssh-ed25519 A\n"
    assert not any(k.startswith("RCLONE_") for k in os.environ)
    said = redact(f"auth {PASSWORD} {obscured} failed; key secret-key-line")
    assert said == "auth *** *** failed; key ***"
    assert Redactor({"abcdef", "abc"})("xabcdefx abc") == "x***x ***"


def test_a_request_round_trips_and_a_bad_field_is_named() -> None:
    request = RemoteRequest(
        "restore", JOB, "/backup", ("dav",), (destination("http://dav"),),
        keep={"last": 3}, archive="latest", only=("/data",),
    )  # fmt: skip
    assert RemoteRequest.parse(json.loads(request.to_json())) == request
    bad: list[tuple[dict[str, Any], str]] = [
        ({"command": "move", "job": JOB, "target": "/b"}, "unknown command 'move'"),
        ({"command": "copy", "target": "/b"}, "'job': expected a string, got nothing"),
        ({"command": "copy", "job": JOB, "target": "/b", "keep": {"hourly": 2}}, "'keep.hourly'"),
        (
            {"command": "copy", "job": JOB, "target": "/b", "destinations": [{"name": "x"}]},
            "'destinations[0].type': expected a string",
        ),
    ]
    for value, message in bad:
        with pytest.raises(RequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
            RemoteRequest.parse(value)
    done = run_tool(RemoteRequest("copy", JOB, "/backup"))
    assert done.returncode == 2
    assert "request field 'destinations': expected at least one" in done.stderr


def test_rclones_last_line_is_said_without_its_time_with_a_hint_for_host_key_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "rclone"
    fake.write_text(
        "#!/bin/sh\necho 'NOTICE: earlier line' >&2\n"
        'echo \'2026/12/03 05:59:29 Failed to create file system for "dest:/srv": '
        "ssh: handshake failed: knownhosts: key mismatch' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr("jobs.tools.remote.rclone.RCLONE", str(fake))
    private = tmp_path / "private"
    private.mkdir()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END"
    box = Destination("box", "sftp", "/srv", {"host": "h"}, {}, key, "h ssh-ed25519 A")
    with pytest.raises(RemoteError) as caught:
        Rclone(box, private).run("lsjson", "dest:/srv")
    said = str(caught.value)
    assert said.startswith(
        'rclone lsjson: Failed to create file system for "dest:/srv": ssh: handshake failed: '
        "knownhosts: key mismatch (the host's key is not the one known_hosts holds for it;"
    )
    assert "ssh-keyscan HOST" in said


def _sealed_on_the_remote(
    tmp_path: Path, url: str, passphrase: bytes | None = None
) -> tuple[Path, Path, str]:
    """A tree, an age identity, and the tree's archive encrypted to it (or with
    ``passphrase``), copied to the server at ``url``; the tree, the identity file, the
    archive's name."""
    data = build_tree(tmp_path / "src")
    identity, public = key_pair(tmp_path)
    target = tmp_path / "sealed"
    to = {"passphrase": passphrase} if passphrase else {"recipients": [public]}
    name = str(create(JOB, target, [data], "zstd", **to)["archive"])
    assert run_tool(copy_request(target, destination(url))).returncode == 0
    return data, identity, name


def _restore_from(
    url: str,
    data: Path,
    into_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    identity: str | None = None,
    passphrase: str | None = None,
) -> Path:
    """The remote tool's restore of the latest archive into ``into_root`` (the volume at
    the tree's path: where a container would have it mounted); that volume."""
    into = into_root / str(data).lstrip("/")
    into.mkdir(parents=True)
    monkeypatch.setattr(remote_cli, "volume_mounts", lambda _: [into])
    request = RemoteRequest(
        "restore", JOB, "/backup", ("dav",), (destination(url),), archive="latest",
        root=str(into_root), identity=identity, passphrase=passphrase,
    )  # fmt: skip
    remote_cli.one(request)
    return into


def test_an_encrypted_archive_is_restored_from_the_remote_with_the_identity_in_the_request(
    dav: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = dav
    data, identity, name = _sealed_on_the_remote(tmp_path, url)
    stored = served / "backups" / "app" / name
    for program in (["zstd", "-t", str(stored)], ["tar", "-tf", str(stored)]):
        assert subprocess.run(program, capture_output=True, check=False).returncode != 0
    into = _restore_from(url, data, tmp_path / "new", monkeypatch, identity=identity.read_text())
    assert snapshot(into) == snapshot(data)
    assert staging_left(into) == []


def test_a_wrong_or_missing_identity_restores_nothing_and_says_why(
    dav: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = dav
    data, _, name = _sealed_on_the_remote(tmp_path, url)
    other, _ = key_pair(tmp_path, "other")
    wrong = other.read_text()
    with pytest.raises(ToolError) as refused:
        _restore_from(url, data, tmp_path / "a", monkeypatch, identity=wrong)
    assert str(refused.value) == (
        f"could not read {name} (nothing restored): the identity does not decrypt {name} "
        "(age: error: no identity matched any of the recipients)"
    )
    with pytest.raises(ToolError, match=f"^{re.escape(needs_key(name))}$"):
        _restore_from(url, data, tmp_path / "b", monkeypatch)
    for tried in ("a", "b"):  # the volumes the restores would have written: still empty
        assert list((tmp_path / tried / str(data).lstrip("/")).iterdir()) == []


def test_a_passphrase_archive_is_restored_from_the_remote_with_the_passphrase_only(
    dav: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = dav
    data, _, name = _sealed_on_the_remote(tmp_path, url, AGE_PASSPHRASE.encode())
    with pytest.raises(ToolError, match=f"the passphrase does not decrypt {re.escape(name)}"):
        _restore_from(url, data, tmp_path / "a", monkeypatch, passphrase=WRONG_PASSPHRASE)
    assert list((tmp_path / "a" / str(data).lstrip("/")).iterdir()) == []
    into = _restore_from(url, data, tmp_path / "b", monkeypatch, passphrase=AGE_PASSPHRASE)
    assert snapshot(into) == snapshot(data)
