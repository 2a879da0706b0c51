"""The backup tool's age encryption, driving the real ``age`` and ``age-keygen``: the stored
bytes are age's (no tar, no zstd without the identity), the checksum is of them, a restore
with the identity gives back the exact tree, a wrong or missing identity writes nothing."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.retention import SUFFIXES, Retention
from jobs.tools.backup.archive import create
from jobs.tools.backup.cli import main
from jobs.tools.backup.keys import AgeKey
from jobs.tools.backup.listing import listing, prune, verify
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.restore import restore
from tests.control import result_of

from .helpers import build_tree, snapshot, staging_left

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
AGE_HEADER = b"age-encryption.org/v1\n"


def key_pair(directory: Path, name: str = "key") -> tuple[Path, str]:
    """A new age identity file (made by the real age-keygen) and its public key."""
    identity = directory / name
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    )
    return identity, public.stdout.strip()


def volume(root: Path, source: Path) -> Path:
    into = root / str(source).lstrip("/")
    into.mkdir(parents=True)
    return into


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_an_encrypted_archive_round_trips_with_its_identity_only(
    tmp_path: Path, compression: str
) -> None:
    data = build_tree(tmp_path / "src")
    identity, public = key_pair(tmp_path)
    target = tmp_path / "backups"
    made = create("db", target, [data], compression, now=NOW, recipients=[public])
    name = str(made["archive"])
    assert name == "db-20261128T120000Z" + SUFFIXES[compression] + ".age"
    assert made["encrypted"] is True
    assert made["files"] == len(snapshot(data))
    stored = (target / name).read_bytes()
    assert stored.startswith(AGE_HEADER)
    assert made["sha256"] == hashlib.sha256(stored).hexdigest()  # of the stored bytes
    assert verify(target, name) == made["sha256"]  # no key needed to check it
    restored = tmp_path / "restored"
    into = volume(restored, data)
    result = restore(
        target, name, [into], root=restored, key=AgeKey(identity=identity.read_bytes())
    )
    assert snapshot(into) == snapshot(data)
    assert result["entries"] == len(snapshot(data))
    assert staging_left(into) == []


def test_the_stored_bytes_cannot_be_read_without_the_identity(tmp_path: Path) -> None:
    data = build_tree(tmp_path / "src")
    identity, public = key_pair(tmp_path)
    target = tmp_path / "backups"
    archive = target / str(create("db", target, [data], "zstd", recipients=[public])["archive"])
    for program in (["zstd", "-t", str(archive)], ["tar", "-tf", str(archive)]):
        assert subprocess.run(program, capture_output=True, check=False).returncode != 0
    plain = subprocess.run(
        ["age", "-d", "-i", str(identity), str(archive)], capture_output=True, check=True
    )
    members = subprocess.run(
        ["tar", "--zstd", "-tf", "-"], input=plain.stdout, capture_output=True, check=True
    )
    assert f"{str(data).lstrip('/')}/café ☃ naïve.txt".encode() in members.stdout.splitlines()


def test_any_of_several_recipients_restores_an_ssh_key_too(tmp_path: Path) -> None:
    data = build_tree(tmp_path / "src")
    _, first = key_pair(tmp_path, "first")
    ssh_key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(ssh_key)],
        check=True,
    )
    ssh_public = ssh_key.with_suffix(".pub").read_text().strip()
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "gzip", recipients=[first, ssh_public])["archive"])
    restored = tmp_path / "restored"
    into = volume(restored, data)
    restore(target, name, [into], root=restored, key=AgeKey(identity=ssh_key.read_bytes()))
    assert snapshot(into) == snapshot(data)


def test_a_wrong_identity_fails_before_anything_is_written(tmp_path: Path) -> None:
    data = build_tree(tmp_path / "src")
    _, public = key_pair(tmp_path, "right")
    wrong, _ = key_pair(tmp_path, "wrong")
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", recipients=[public])["archive"])
    restored = tmp_path / "restored"
    into = volume(restored, data)
    (into / "kept.txt").write_text("already here")
    before = snapshot(into)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [into], root=restored, key=AgeKey(identity=wrong.read_bytes()))
    assert str(failed.value).startswith(
        f"could not read {name} (nothing restored): the identity does not decrypt {name} "
        "(age: error: no identity matched any of the recipients"
    )
    assert snapshot(into) == before
    assert staging_left(into) == []


def test_an_encrypted_archive_without_identity_is_refused(tmp_path: Path) -> None:
    data = build_tree(tmp_path / "src")
    _, public = key_pair(tmp_path)
    target = tmp_path / "backups"
    name = str(create("db", target, [data], "zstd", recipients=[public])["archive"])
    into = volume(tmp_path / "restored", data)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [into], root=tmp_path / "restored")
    assert str(failed.value) == (
        f"could not read {name} (nothing restored): {name} is encrypted: restoring it needs "
        "an age identity or the passphrase"
    )
    assert list(into.iterdir()) == []


def test_age_refusing_a_recipient_fails_the_run_naming_age_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    with pytest.raises(ToolError) as failed:
        create("db", target, [data], "zstd", recipients=["age1notakey"])
    assert str(failed.value).startswith("age failed (exit 1): ")
    assert "age1notakey" in str(failed.value)
    assert list(target.iterdir()) == []


def test_the_command_line_tool_reads_the_identity_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``restore --identity-stdin``: the identity comes on stdin, never on the command line."""
    data = build_tree(tmp_path / "src")
    identity, public = key_pair(tmp_path)
    target = tmp_path / "backups"
    assert (
        main(["create", "--job", "db", "--target", str(target), "--recipient", public, str(data)])
        == 0
    )
    made = result_of(capsys.readouterr().err)
    assert made["encrypted"] is True
    restored = tmp_path / "restored"
    into = volume(restored, data)
    monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: [into])
    back = ["restore", "--target", str(target), "--root", str(restored), "--identity-stdin"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main([*back, made["archive"]]) == 1
    assert "backup: no age identity on stdin" in capsys.readouterr().err
    assert list(into.iterdir()) == []
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(identity.read_bytes())))
    assert main([*back, made["archive"]]) == 0
    assert result_of(capsys.readouterr().err)["entries"] == len(snapshot(data))
    assert snapshot(into) == snapshot(data)


def test_listing_and_retention_count_encrypted_and_plain_archives_alike(tmp_path: Path) -> None:
    """A job that switched encryption on: its old plain archives are listed and kept or
    deleted under the same rules as the new encrypted ones."""
    data = build_tree(tmp_path / "src")
    _, public = key_pair(tmp_path)
    target = tmp_path / "backups"
    days = [NOW - timedelta(days=n) for n in (3, 2, 1, 0)]
    names = [
        str(
            create("db", target, [data], "zstd", now=day, recipients=[public] if n > 1 else None)[
                "archive"
            ]
        )
        for n, day in enumerate(days)
    ]
    assert [n.endswith(".age") for n in names] == [False, False, True, True]
    assert [a["archive"] for a in listing("db", target)] == names[::-1]
    deleted, _ = prune("db", target, Retention(keep_last=3), names[-1])
    assert deleted == [names[0]]
    deleted, _ = prune("db", target, Retention(keep_last=1), names[-1])
    assert deleted == names[1:3]
    assert sorted(p.name for p in target.iterdir()) == [names[-1], f"{names[-1]}.sha256"]


PASSPHRASE = b"correct horse battery staple"


def test_a_passphrase_archive_round_trips_through_ages_terminal(tmp_path: Path) -> None:
    """age 1.1 reads a passphrase only from a terminal: the tool types it into a
    pseudo-terminal of age's own; the archive is age's scrypt kind, restored with the
    passphrase, and a wrong passphrase writes nothing."""
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    made = create("db", target, [data], "zstd", now=NOW, passphrase=PASSPHRASE)
    name = str(made["archive"])
    assert name == "db-20261128T120000Z.tar.zst.age"
    assert made["encrypted"] is True
    stored = (target / name).read_bytes()
    assert stored.startswith(AGE_HEADER + b"-> scrypt ")
    assert PASSPHRASE not in stored
    restored = tmp_path / "restored"
    into = volume(restored, data)
    with pytest.raises(ToolError) as failed:
        restore(target, name, [into], root=restored, key=AgeKey(passphrase=b"not it"))
    assert str(failed.value) == (
        f"could not read {name} (nothing restored): the passphrase does not decrypt {name} "
        "(age: error: incorrect passphrase)"
    )
    assert list(into.iterdir()) == []
    restore(target, name, [into], root=restored, key=AgeKey(passphrase=PASSPHRASE))
    assert snapshot(into) == snapshot(data)
    assert staging_left(into) == []


def test_the_command_line_tool_reads_the_passphrase_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_tree(tmp_path / "src")
    target = tmp_path / "backups"
    make = ["create", "--job", "db", "--target", str(target), "--passphrase-stdin", str(data)]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"two\nlines\n")))
    assert main(make) == 1
    assert "backup: the passphrase on stdin is more than one line" in capsys.readouterr().err
    assert not target.exists() or list(target.iterdir()) == []
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(PASSPHRASE + b"\n")))
    assert main(make) == 0
    made = result_of(capsys.readouterr().err)
    assert made["archive"].endswith(".tar.zst.age")
    restored = tmp_path / "restored"
    into = volume(restored, data)
    monkeypatch.setattr("jobs.tools.backup.cli.volume_mounts", lambda _target: [into])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(PASSPHRASE + b"\n")))
    back = ["restore", "--target", str(target), "--root", str(restored), "--passphrase-stdin"]
    assert main([*back, made["archive"]]) == 0
    assert snapshot(into) == snapshot(data)
