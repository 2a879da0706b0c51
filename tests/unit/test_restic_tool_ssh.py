"""The restic tool and ``sftp:`` repositories: the ``sftp.command`` for each repository form,
the key's file (mode 0600, in a 0700 directory, removed at the end, also on failure), and
ssh's refusals in words — through the real restic 0.14, with a stand-in ``ssh`` on PATH
that records what it was given and answers as OpenSSH does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from jobs.protocol.fields import RequestError
from jobs.protocol.restic import ResticRequest, SftpLocation
from jobs.tools.restic.runner import Redactor
from jobs.tools.restic.ssh import LOG_TAIL, Ssh, session

ROOT = Path(__file__).resolve().parents[2]
KEY_LINE = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwMadeUpKey"
KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_LINE}\n-----END OPENSSH PRIVATE KEY-----"
KNOWN = "backup-host ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMadeUp"
PASSWORD = "pw-Zq8-made-up"  # noqa: S105 - a made-up one
UNKNOWN = (
    "No ED25519 host key is known for backup-host and you have requested strict checking.\n"
    "Host key verification failed.\n"
)
CHANGED = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
    "Host key for backup-host has changed and you have requested strict checking.\n"
    "Host key verification failed.\n"
)
DENIED = "backup@backup-host: Permission denied (publickey).\n"
FAKE_SSH = """#!/bin/sh
# Records its arguments, the modes of the key file and its directory and the key, then
# says $SAYS into its log (-E) as OpenSSH would, and fails as it does.
args="$*"
key=""
log=""
while [ $# -gt 0 ]; do
  [ "$1" = -i ] && key=$2
  [ "$1" = -E ] && log=$2
  shift
done
{ echo "$args"; echo $(stat -c %a "$key" "$(dirname "$key")"); cat "$key"; } > "$RECORD"
printf '%s' "$SAYS" >> "$log"
exit 255
"""


def request(
    repository: str, ssh_key: str | None = KEY, known_hosts: str | None = KNOWN
) -> ResticRequest:
    return ResticRequest(
        "db",
        "crontainer",
        repository,
        password=PASSWORD,
        ssh_key=ssh_key,
        known_hosts=known_hosts,
    )


@pytest.mark.parametrize(
    ("repository", "tail"),
    [
        ("sftp:backup@backup-host:/srv/restic/app", ["-l", "backup", "-s", "backup-host", "sftp"]),
        (
            "sftp://backup@backup-host:2222//srv/restic/app",
            ["-p", "2222", "-l", "backup", "-s", "backup-host", "sftp"],
        ),
        ("sftp:backup-host:relative", ["-s", "backup-host", "sftp"]),
    ],
)
def test_the_sftp_command_uses_the_jobs_key_and_known_hosts_only(
    repository: str, tail: list[str]
) -> None:
    with session(request(repository)) as ssh:
        assert ssh is not None
        command = ssh.command()
        directory = ssh.key.parent
        assert command == [
            "ssh", "-F", "none", "-i", f"{directory}/key", "-E", f"{directory}/ssh.log",
            "-o", f"UserKnownHostsFile={directory}/known_hosts",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=60",
            *tail,
        ]  # fmt: skip
        assert ssh.options() == ["-o", "sftp.command=" + " ".join(command)]
        assert ssh.key.stat().st_mode & 0o777 == 0o600
        assert directory.stat().st_mode & 0o777 == 0o700
        assert ssh.key.read_text() == KEY + "\n"  # ssh reads no key without its last newline
        assert ssh.known_hosts.read_text() == KNOWN + "\n"
    assert not directory.exists()


def test_the_key_is_removed_when_the_run_fails() -> None:
    made: list[Path] = []

    def fail() -> None:
        with session(request("sftp:u@h:/r")) as ssh:
            assert ssh is not None
            made.append(ssh.key.parent)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert made
    assert not made[0].exists()


@pytest.mark.parametrize(
    ("made", "error"),
    [
        (request("sftp:u@h:/r", None), "request field 'ssh_key': expected a string, got"),
        (request("sftp:u@h:/r", KEY, None), "request field 'known_hosts': expected a string"),
        (request("/repo"), "request field 'ssh_key': only for an sftp: repository"),
        (request("sftp:u@h:"), "request field 'repository': repository 'sftp:u@h:': no dir"),
    ],
)
def test_a_request_without_its_ssh_fields_or_with_them_for_another_repository_is_refused(
    made: ResticRequest, error: str
) -> None:
    with pytest.raises(RequestError, match=error), session(made):
        pass


def test_other_repositories_get_no_ssh() -> None:
    with session(ResticRequest("db", "crontainer", "/repo", password=PASSWORD)) as ssh:
        assert ssh is None


@pytest.mark.parametrize(
    ("says", "reason"),
    [
        (UNKNOWN, "host key of [backup-host]:2222 is not in known_hosts (ssh.known_hosts)"),
        (CHANGED, "host key of [backup-host]:2222 does not match known_hosts (ssh.known_hosts)"),
        ("Host key verification failed.\n", "host key of [backup-host]:2222 could not be"),
        (DENIED, "[backup-host]:2222 refused the SSH key (ssh.key): backup@backup-host: Perm"),
        ('Load key "/tmp/x/key": invalid format\n', "the SSH key (ssh.key) cannot be read: Load"),
        ("debug\nConnection closed by 10.0.0.1 port 22\n\n", "ssh: Connection closed by 10."),
        ("", None),
    ],
)
def test_ssh_refusals_in_words(tmp_path: Path, says: str, reason: str | None) -> None:
    """From ssh's log (-E): what it said, in words where it matters."""
    location = SftpLocation("backup", "backup-host", 2222, "/r")
    log = tmp_path / "ssh.log"
    if says:
        log.write_text(says)
    refusal = Ssh(location, Path("/k"), Path("/kh"), log).refusal()
    assert refusal == reason or (refusal or "").startswith(str(reason))


def test_only_the_tail_of_a_large_log_is_read(tmp_path: Path) -> None:
    """An ssh that logs in a loop: the reason comes from the log's last LOG_TAIL bytes —
    a refusal said before them is not read, one said within them is."""
    location = SftpLocation("backup", "backup-host", None, "/r")
    log = tmp_path / "ssh.log"
    loop = "debug1: channel 0: new [client-session] \u00e9\n" * (4 * LOG_TAIL // 40)
    log.write_text(DENIED + loop + "Connection closed by 10.0.0.1 port 22\n")
    assert log.stat().st_size > 4 * LOG_TAIL
    ssh = Ssh(location, Path("/k"), Path("/kh"), log)
    assert ssh.refusal() == "ssh: Connection closed by 10.0.0.1 port 22"
    with log.open("a") as more:
        more.write(DENIED + loop[: LOG_TAIL // 2])
    assert ssh.refusal() == f"backup-host refused the SSH key (ssh.key): {DENIED.strip()}"


@pytest.mark.parametrize(
    ("says", "error"),
    [
        (
            UNKNOWN,
            (
                "cannot open repository sftp:backup@backup-host:/srv/restic/app: host key of "
                "backup-host is not in known_hosts (ssh.known_hosts)"
            ),
        ),
        (
            CHANGED,
            (
                "cannot open repository sftp:backup@backup-host:/srv/restic/app: host key of "
                "backup-host does not match known_hosts (ssh.known_hosts): the host key "
                "changed, or known_hosts holds another one"
            ),
        ),
    ],
)
@pytest.mark.parametrize("command", ["backup", "snapshots", "restore"])
def test_the_real_restic_runs_the_sftp_command_and_a_refused_host_key_fails_the_run(
    tmp_path: Path, says: str, error: str, command: str
) -> None:
    """restic 0.14 runs the stand-in ssh as told — for a backup, a listing and a restore
    alike; the run fails naming the host key, no key line anywhere in what the tool says,
    and the key's directory is gone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(FAKE_SSH)
    fake.chmod(0o755)
    record = tmp_path / "record"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    asked = replace(request("sftp:backup@backup-host:/srv/restic/app"), command=command)
    line = asked.to_json()
    ran = subprocess.run(
        [sys.executable, "-m", "jobs.tools.restic"],
        input=line + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "TMPDIR": str(temporary),
            "RECORD": str(record),
            "SAYS": says,
        },
        timeout=120,
        check=False,
    )
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.splitlines()[-1] == f"restic: {error}"
    args, modes, key = record.read_text().split("\n", 2)
    directory = next(a for a in args.split() if a.endswith("/key")).removesuffix("/key")
    assert args.startswith(f"-F none -i {directory}/key -E {directory}/ssh.log -o User")
    assert args.endswith("-l backup -s backup-host sftp")
    assert modes.split() == ["600", "700"]
    assert key == KEY + "\n"
    for secret in (PASSWORD, KEY_LINE):
        assert secret not in ran.stdout + ran.stderr
    assert list(temporary.iterdir()) == []  # the cache and the key's directory removed
    assert json.loads(line)["ssh_key"] == KEY


def test_the_redactor_hides_every_line_of_the_key() -> None:
    redact = Redactor(request("sftp:backup@backup-host:/srv/restic/app"))
    assert redact(f"oops: {KEY_LINE} and {PASSWORD}") == "oops: *** and ***"
