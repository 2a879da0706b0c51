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
BACKEND_HASHES = {"s3": ("md5",), "sftp": ("md5", "sha1")}
"""The hashes rclone 1.60 gives for a file of these backends (S3: the MD5 of an object
uploaded in one part; SFTP: when the server lets it run md5sum or sha1sum)."""
SHA1_VENDORS = frozenset({"owncloud", "nextcloud"})
"""WebDAV servers that give a file's SHA-1 (other WebDAV servers give none)."""
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
        return self.begin(*args, allow=allow).result()

    def begin(self, *args: str, allow: tuple[int, ...] = (), given: str | None = None) -> Pending:
        """rclone with ``args`` started (``given``: what it reads on its stdin), while this
        process goes on; its ``result()`` is ``run``'s."""
        return Pending(self, args, allow, given)

    def failure(self, command: str, code: int, said: str) -> RemoteError:
        """The error of rclone ``command`` that exited ``code`` having said ``said``: its
        last line without its time, redacted, with a hint for a host key refusal."""
        lines = [line for line in said.splitlines() if line.strip()]
        last = _STAMP.sub("", lines[-1].strip()) if lines else f"exit code {code}"
        hint = next((h for words, h in HINTS.items() if words in last), "")
        return RemoteError(f"rclone {command}: {self.redact(last)}{hint}")

    def command(self, *args: str) -> list[str]:
        """rclone's command line with ``args`` (its process gets ``env``)."""
        return [RCLONE, *FLAGS, *args]

    def writer(self, name: str, said: int) -> subprocess.Popen[bytes]:
        """``rclone rcat`` writing what it reads on its stdin (a pipe) into file ``name``;
        what it says goes to the file descriptor ``said`` (no pipe nobody reads). rclone's
        own check after the upload is left out (``--ignore-checksum``: on SFTP it reads the
        whole file again on the server): the tool checks the upload itself, once."""
        return subprocess.Popen(
            self.command("rcat", "--ignore-checksum", self.path(name)),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=said,
            env=self.env,
        )

    def hashes(self) -> tuple[str, ...]:
        """The hashes rclone 1.60's backend of this destination can give for a file."""
        if self.dest.type == "webdav":
            return ("sha1",) if self.dest.options.get("vendor") in SHA1_VENDORS else ()
        return BACKEND_HASHES.get(self.dest.type, ())

    def streamed_hashes(self) -> tuple[str, ...]:
        """The hashes the backend gives for a file uploaded as a stream (of unknown size):
        S3 keeps no MD5 of an object uploaded in parts."""
        return () if self.dest.type == "s3" else self.hashes()

    def files(self, folder: str | None = None) -> dict[str, int]:
        """The files in the destination's folder (or in rclone's ``folder``) and their
        sizes ({} if it does not exist)."""
        return listed(self.listing(folder))

    def listing(self, folder: str | None = None) -> Pending:
        """``files`` started; ``listed`` of it is its result."""
        return self.begin(
            "lsjson", "--files-only", "--no-mimetype", folder or self.path(), allow=(NOT_FOUND,)
        )

    def stat(
        self, name: str, where: str | None = None, kind: str | None = None
    ) -> tuple[int, dict[str, str]]:
        """The size of file ``name`` on the destination (or rclone's file ``where``) and the
        hashes the backend gives for it (maybe none; with ``kind``, only that one: on SFTP
        each hash is a read of the whole file on the server)."""
        place = where or self.path(name)
        only = ("--hash-type", kind) if kind else ()
        _, out = self.run("lsjson", "--hash", *only, "--files-only", "--no-mimetype", place)
        listed = json.loads(out or "[]")
        if not listed:
            raise RemoteError(f"{name}: not found ({place})")
        hashes = listed[0].get("Hashes") or {}
        return int(listed[0]["Size"]), {k: v for k, v in hashes.items() if v}


class Pending:
    """An rclone process under way."""

    def __init__(
        self, rclone: Rclone, args: tuple[str, ...], allow: tuple[int, ...], given: str | None
    ) -> None:
        self._rclone, self._args, self._allow, self._given = rclone, args, allow, given
        self._process = subprocess.Popen(
            rclone.command(*args),
            stdin=subprocess.DEVNULL if given is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=rclone.env,
        )

    def result(self) -> tuple[int, str]:
        """Its exit code (0 or one of those allowed) and stdout, once it ended; another exit
        code raises RemoteError with rclone's last line, redacted."""
        out, said = self._process.communicate(self._given)
        code = self._process.returncode
        if code == 0 or code in self._allow:
            return code, out
        raise self._rclone.failure(self._args[0], code, said)

    def cancel(self) -> None:
        """Kill it, if it still runs (its result is not wanted); its pipes closed."""
        if self._process.poll() is None:
            self._process.kill()
        for pipe in (self._process.stdin, self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()
        self._process.wait()


def listed(listing: Pending) -> dict[str, int]:
    """The files a listing found and their sizes ({} if the folder does not exist)."""
    code, out = listing.result()
    if code == NOT_FOUND:
        return {}
    return {item["Name"]: int(item["Size"]) for item in json.loads(out or "[]")}
