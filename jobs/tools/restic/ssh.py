"""SFTP repositories: the job's SSH key and known_hosts in a private temporary directory,
the ``sftp.command`` that has restic's ssh use them and nothing else, and ssh's refusals
(from its log, in that directory too) said in words.

restic 0.14 runs ``-o sftp.command=…`` instead of its own ``ssh host -s sftp``, splitting
it at blanks (quotes and backslashes split too: ``sftp_location`` refuses a user or host
with one, and the temporary directory's name has none). The key is written mode 0600 into
a directory of mode 0700 that is removed when the run ends, failed or not."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.fields import RequestError
from jobs.protocol.restic import SftpLocation, sftp_location
from jobs.tools.backup.processes import tail

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jobs.protocol.restic import ResticRequest

SSH = "ssh"
"""The program (OpenSSH's client in the ops image)."""
OPTIONS = (
    "IdentitiesOnly=yes",
    "StrictHostKeyChecking=yes",
    "GlobalKnownHostsFile=/dev/null",
    "UpdateHostKeys=no",
    "BatchMode=yes",
    "ConnectTimeout=30",
    "ServerAliveInterval=60",
)
"""Only the job's key, only its known_hosts (an unknown or changed host key refuses the
connection), never a question; a host that does not answer fails within 30 s, a
connection gone dead within about 3 minutes."""

LOG_TAIL = 64 * 1024
"""How much of the end of ssh's log ``Ssh.refusal`` reads."""

KNOWN = "known_hosts (ssh.known_hosts)"
CHANGED = f"does not match {KNOWN}: the host key changed, or known_hosts holds another one"
UNVERIFIED = f"could not be verified against {KNOWN}"


@dataclass(frozen=True, slots=True)
class Ssh:
    """How restic reaches one ``sftp:`` repository: the key and known_hosts files."""

    location: SftpLocation
    key: Path
    known_hosts: Path
    log: Path
    """Where ssh writes what it says (restic 0.14 may end before it passes ssh's stderr
    on)."""

    def command(self) -> list[str]:
        """ssh's command line for restic: the sftp subsystem on the repository's host."""
        args = [SSH, "-F", "none", "-i", str(self.key)]
        args += ["-E", str(self.log), "-o", f"UserKnownHostsFile={self.known_hosts}"]
        for option in OPTIONS:
            args += ["-o", option]
        if self.location.port is not None:
            args += ["-p", str(self.location.port)]
        if self.location.user is not None:
            args += ["-l", self.location.user]
        return [*args, "-s", self.location.host, "sftp"]

    def options(self) -> list[str]:
        """restic's global options that make it connect so."""
        return ["-o", "sftp.command=" + " ".join(self.command())]

    def refusal(self) -> str | None:
        """Why ssh did not connect, from what it wrote last in its log (its last LOG_TAIL
        bytes: an ssh that logs in a loop grows no memory here): a refused host key or key
        in words, else its last line; None when it said nothing."""
        try:
            fd = os.open(self.log, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            text = tail(fd, LOG_TAIL)
        finally:
            os.close(fd)
        said = [line.strip() for line in text.splitlines() if line.strip()]
        host = self.location.known_as()
        for words, reason in (
            ("host key is known for", f"host key of {host} is not in {KNOWN}"),
            ("REMOTE HOST IDENTIFICATION HAS CHANGED", f"host key of {host} {CHANGED}"),
            ("Host key verification failed", f"host key of {host} {UNVERIFIED}"),
            ("Permission denied", f"{host} refused the SSH key (ssh.key): "),
            ("Load key", "the SSH key (ssh.key) cannot be read: "),
        ):
            found = next((line for line in said if words in line), None)
            if found is not None:
                return reason + found if reason.endswith(": ") else reason
        return f"ssh: {said[-1]}" if said else None


@contextmanager
def session(request: ResticRequest) -> Iterator[Ssh | None]:
    """An ``sftp:`` repository's key and known_hosts written where only this process
    reads them, for as long as the run lasts; None for another sort of repository. A
    request without them (or with them for another sort) is a RequestError."""
    try:
        location = sftp_location(request.repository)
    except ValueError as e:
        raise RequestError(f"request field 'repository': {e}") from None
    given = [k for k in ("ssh_key", "known_hosts") if getattr(request, k) is not None]
    if location is None:
        if given:
            raise RequestError(f"request field {given[0]!r}: only for an sftp: repository")
        yield None
        return
    for name in ("ssh_key", "known_hosts"):
        if name not in given:
            raise RequestError(f"request field {name!r}: expected a string, got nothing")
    with tempfile.TemporaryDirectory(prefix="restic-ssh-") as directory:  # mode 0700
        files = (Path(directory, name) for name in ("key", "known_hosts", "ssh.log"))
        ssh = Ssh(location, *files)
        _write(ssh.key, str(request.ssh_key))
        _write(ssh.known_hosts, str(request.known_hosts))
        yield ssh


def _write(path: Path, text: str) -> None:
    """``text`` (with its last newline: ssh reads no key without) into a new file only
    its owner reads."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text.rstrip("\n") + "\n")
