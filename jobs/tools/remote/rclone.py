"""rclone reaching one destination: the backend's options as ``RCLONE_CONFIG_DEST_*``
variables of the rclone processes only (never of the container), the passwords rclone wants
obscured (``rclone obscure``, fed on stdin), an SSH key and known_hosts in a private
temporary directory, and every secret redacted from what rclone says."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import TYPE_CHECKING

from jobs.tools.redact import Redactor

if TYPE_CHECKING:
    from pathlib import Path

    from jobs.protocol.remote import Destination

RCLONE = "rclone"
REMOTE = "dest"
"""The rclone remote's name, whatever the destination's: one remote per process (and
``SOURCE``, when it copies from one destination to another)."""
SOURCE = "src"
OBSCURED = frozenset({"pass"})
"""Backend options rclone reads obscured (webdav's and sftp's ``pass``)."""
FLAGS = (
    "--config",
    "/dev/null",
    "--retries",
    "1",
    "--low-level-retries",
    "3",
    "--contimeout",
    "30s",
    "--timeout",
    "5m",
    "--stats",
    "0",
)
"""No config file (everything comes in the environment), one try of a command (the next run
tries again), a host that does not answer fails within about 30 s."""
_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\w+\s*: )?")
"""rclone's log prefix: date, time, level."""
HINTS = {
    "knownhosts: key is unknown": " (the host is not in known_hosts)",
    "knownhosts: key mismatch": (
        " (the host's key is not the one known_hosts holds for it; rclone 1.60 checks the "
        "host's ECDSA key when it has one: give every key `ssh-keyscan HOST` prints)"
    ),
}
"""What rclone's host key refusals mean, added to them."""
NOT_FOUND = 3
"""rclone's exit code for a directory that does not exist."""
GONE = (NOT_FOUND, 4)
"""rclone's exit codes for a directory or a file that does not exist."""


class RemoteError(Exception):
    """A destination refused or failed; the message is redacted."""


def obscure(value: str) -> str:
    """``value`` as rclone's config holds a password (``rclone obscure``, read on stdin)."""
    done = subprocess.run(
        [RCLONE, "obscure", "-"],
        input=value,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    if done.returncode != 0:
        raise RemoteError("rclone obscure failed: " + Redactor({value})(done.stderr.strip()))
    return done.stdout.strip()


def environment(
    dest: Destination, private: Path, remote: str = REMOTE
) -> tuple[dict[str, str], Redactor]:
    """The rclone processes' environment for ``dest`` as rclone's remote ``remote`` (a key
    and known_hosts written into ``private``, a directory only this process reads), and the
    redactor of its secrets."""
    env, secrets = _settings(dest, private, remote)
    return {**_base(private), **env}, Redactor(secrets)


def _base(private: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(private)}


def _settings(dest: Destination, private: Path, remote: str) -> tuple[dict[str, str], set[str]]:
    """rclone's ``RCLONE_CONFIG_<REMOTE>_*`` variables for ``dest``, and its secrets."""
    prefix = f"RCLONE_CONFIG_{remote.upper()}_"
    env = {prefix + "TYPE": dest.type}
    secrets = set(dest.secrets.values())
    for option, value in dest.options.items():
        env[prefix + option.upper()] = value
    for option, value in dest.secrets.items():
        given = obscure(value) if option in OBSCURED else value
        secrets.add(given)
        env[prefix + option.upper()] = given
    if dest.key is not None:
        env[prefix + "KEY_FILE"] = str(_private_file(private / f"{remote}-key", dest.key))
        secrets.add(dest.key)
    if dest.known_hosts is not None:
        known = _private_file(private / f"{remote}-known_hosts", dest.known_hosts)
        env[prefix + "KNOWN_HOSTS_FILE"] = str(known)
    return env, secrets


def _place(remote: str, dest: Destination, name: str) -> str:
    folder = dest.folder.rstrip("/")
    inside = "/".join(p for p in (folder, name) if p) if folder != "/" else "/" + name
    return f"{remote}:{inside}"


def _private_file(path: Path, text: str) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text if text.endswith("\n") else text + "\n")
    return path


class Rclone:
    """rclone's commands on one destination (and, given a ``source``, copies from that other
    destination to it), each a process of its own."""

    def __init__(self, dest: Destination, private: Path, source: Destination | None = None) -> None:
        self.dest, self.source = dest, source
        env, secrets = _settings(dest, private, REMOTE)
        if source is not None:
            more, hidden = _settings(source, private, SOURCE)
            env, secrets = env | more, secrets | hidden
        self.env, self.redact = {**_base(private), **env}, Redactor(secrets)

    def path(self, name: str = "") -> str:
        """``dest:folder/name``: a file (or, with no name, the folder) on the destination."""
        return _place(REMOTE, self.dest, name)

    def source_path(self, name: str = "") -> str:
        """``src:folder/name``: a file (or the folder) on the source destination."""
        if self.source is None:
            raise RemoteError("no source destination")
        return _place(SOURCE, self.source, name)

    def run(self, *args: str, allow: tuple[int, ...] = ()) -> tuple[int, str]:
        """rclone with ``args``; its exit code (0 or one of ``allow``) and stdout. Another
        exit code raises RemoteError with rclone's last line, redacted."""
        done = subprocess.run(
            [RCLONE, *FLAGS, *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode == 0 or done.returncode in allow:
            return done.returncode, done.stdout
        raise self.failure(args[0], done.returncode, done.stderr)

    def failure(self, command: str, code: int, said: str) -> RemoteError:
        """The error of rclone ``command`` that exited ``code`` having said ``said``: its
        last line without its time, redacted, with a hint for a host key refusal."""
        lines = [line for line in said.splitlines() if line.strip()]
        last = _STAMP.sub("", lines[-1].strip()) if lines else f"exit code {code}"
        hint = next((h for words, h in HINTS.items() if words in last), "")
        return RemoteError(f"rclone {command}: {self.redact(last)}{hint}")

    def writer(self, name: str, said: int) -> subprocess.Popen[bytes]:
        """``rclone rcat`` writing what it reads on its stdin (a pipe) into file ``name``;
        what it says goes to the file descriptor ``said`` (no pipe nobody reads)."""
        return subprocess.Popen(
            [RCLONE, *FLAGS, "rcat", self.path(name)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=said,
            env=self.env,
        )

    def hash_kinds(self) -> list[str]:
        """The hashes the backend can give for its files (maybe none)."""
        _, out = self.run("backend", "features", f"{REMOTE}:")
        kinds = json.loads(out or "{}").get("Hashes") or []
        return [str(kind) for kind in kinds]

    def files(self, folder: str | None = None) -> dict[str, int]:
        """The files in the destination's folder (or in rclone's ``folder``) and their
        sizes ({} if it does not exist)."""
        listing = ("lsjson", "--files-only", "--no-mimetype", folder or self.path())
        code, out = self.run(*listing, allow=(NOT_FOUND,))
        if code == NOT_FOUND:
            return {}
        return {item["Name"]: int(item["Size"]) for item in json.loads(out or "[]")}

    def stat(self, name: str, where: str | None = None) -> tuple[int, dict[str, str]]:
        """The size of file ``name`` on the destination (or rclone's file ``where``) and the
        hashes the backend gives for it (maybe none)."""
        place = where or self.path(name)
        _, out = self.run("lsjson", "--hash", "--files-only", "--no-mimetype", place)
        listed = json.loads(out or "[]")
        if not listed:
            raise RemoteError(f"{name}: not on the destination after its upload")
        hashes = listed[0].get("Hashes") or {}
        return int(listed[0]["Size"]), {k: v for k, v in hashes.items() if v}
