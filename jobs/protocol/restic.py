"""The restic tool's request and results (stdlib only): a backup into a restic repository,
the listing of a job's snapshots, a restore of one.

The plan (``jobs.backup``, a job with ``repository``) builds a ``ResticRequest`` without
its secrets; the daemon (``scheduler.steps.restic``) completes it — the repository's
password and the secret environment values, read at run time, and when the repository was
last checked — and writes ``to_json()`` as the first line of the tool's stdin, so no secret
is ever in the ops container's environment, command line or labels. The tool
(``jobs.tools.restic``) reads it with ``parse`` and gives restic the secrets in the
environment of the restic processes only. Its result (``ResticResult``) goes out as the
tool's control line; the daemon reads it back with ``ResticResult.parse``. A request's
``command`` may instead ask for the job's snapshots (``parse_snapshots`` reads the listing,
``ResticSnapshot`` each) or a restore (``ResticRestored``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from jobs.protocol.fields import Fields, RequestError, json_object

if TYPE_CHECKING:
    from collections.abc import Mapping

PROG = "python -m jobs.tools.restic"
COMMANDS = ("backup", "snapshots", "restore")
"""What a request asks: a backup run (the job's schedule), the job's snapshots listed, or
one of them restored (``crontainer backups`` / ``crontainer restore``)."""
CHECKS = ("never", "always", "weekly", "monthly")
"""When a run also checks the repository (``restic check``): never, at every run, or
when the last check is at least 7 / 30 days old."""
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
"""``keep_<rule>`` → ``restic forget --keep-<rule> N``."""


def url_password(repository: str) -> str:
    """The password in ``repository``'s URL (``rest:https://user:secret@host/``), or ""."""
    _scheme, found, rest = repository.partition("://")
    user, at, _host = rest.partition("/")[0].rpartition("@")
    return user.partition(":")[2] if found and at else ""


def redacted(repository: str) -> str:
    """``repository`` as it may be shown in logs, results and errors: a password in its URL
    (``rest:https://user:secret@host/``) replaced by ``***``."""
    scheme, found, rest = repository.partition("://")
    authority, slash, path = rest.partition("/")
    user, _at, host = authority.rpartition("@")
    if not found or ":" not in user:
        return repository
    return f"{scheme}://{user.partition(':')[0]}:***@{host}{slash}{path}"


@dataclass(frozen=True, slots=True)
class SftpLocation:
    """Where an ``sftp:`` repository is: ssh's user (None: ssh's default), host and port
    (None: 22), and the directory."""

    user: str | None
    host: str
    port: int | None
    path: str

    def known_as(self) -> str:
        """The host as ``known_hosts`` names it: ``host``, or ``[host]:port``."""
        return self.host if self.port in (None, 22) else f"[{self.host}]:{self.port}"


_SSH_WORD = re.compile(r"[^\s'\"\\@]+")
"""A user or host ssh gets as one argument of restic's ``sftp.command`` (restic splits
that at blanks, quotes and backslashes)."""


def sftp_location(repository: str) -> SftpLocation | None:
    """Where an ``sftp:user@host:/path`` or ``sftp://user@host:port//path`` repository
    is, as restic reads it; None for another sort. ValueError says what is wrong."""
    if not repository.startswith("sftp:"):
        return None
    if repository.startswith("sftp://"):
        authority, _, path = repository.removeprefix("sftp://").partition("/")
        user, at, host = authority.rpartition("@")
        host, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
    else:
        authority, _, path = repository.removeprefix("sftp:").partition(":")
        user, at, host = authority.rpartition("@")
        colon = port = ""
    if not path:
        raise ValueError(f"repository {repository!r}: no directory (sftp:user@host:/path)")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):  # noqa: PLR2004 - ports
        raise ValueError(f"repository {repository!r}: port {port!r} is not a port number")
    for what, word in (("user", user), ("host", host)):
        if (word or what == "host") and not (_SSH_WORD.fullmatch(word) and word[0] != "-"):
            raise ValueError(f"repository {repository!r}: {what} {word!r} is not one ssh takes")
    return SftpLocation(user if at else None, host, int(port) if colon else None, path)


@dataclass(frozen=True, slots=True)
class ResticRequest:
    """What one run asks: snapshot ``paths`` (none: every volume mounted into the
    container) into ``repository``, tagged as the job's; then forget and prune by the keep
    rules (only snapshots with the job's tags and host); then check if one is due."""

    COMMAND: ClassVar[str] = "backup"
    job: str
    """The job's name: its snapshots carry the tag ``crontainer-job=<job>``."""
    daemon: str
    """The daemon's name: the snapshots' host, and the tag ``crontainer-daemon=<daemon>``."""
    repository: str
    paths: tuple[str, ...] = ()
    init: bool = False
    """Create the repository if it does not exist (else: such a run fails, saying so)."""
    keep: Mapping[str, int] = field(default_factory=dict)
    """``{rule: count}``, rules from KEEP_RULES; empty: nothing is forgotten."""
    check: str = "never"
    check_read_data: str | None = None
    """``restic check --read-data-subset`` (e.g. ``"5%"`` or ``"1/12"``); None: structure
    only."""
    last_check: str | None = None
    """When the repository was last checked by this job (ISO time; completed by the
    daemon from its state)."""
    password: str | None = field(default=None, repr=False)
    """The repository's password (completed by the daemon; never logged)."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """More environment for restic (cloud credentials…), values completed by the daemon."""
    command: str = "backup"
    """One of COMMANDS."""
    snapshot: str = "latest"
    """restore: the snapshot's id (or a prefix of it), or ``latest`` — the job's newest."""
    only: tuple[str, ...] = ()
    """restore: only these paths of the snapshot, each a volume mounted in the container
    (none: every path of the snapshot)."""
    ssh_key: str | None = field(default=None, repr=False)
    """An ``sftp:`` repository's SSH private key (completed by the daemon; never logged)."""
    known_hosts: str | None = None
    """The ``known_hosts`` lines ssh checks an ``sftp:`` repository's host key against."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", MappingProxyType(dict(self.keep)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def tags(self) -> tuple[str, ...]:
        """The tags every snapshot of the job carries, and retention selects by."""
        return (f"crontainer-job={self.job}", f"crontainer-daemon={self.daemon}")

    def lock_host(self) -> str:
        """The host name of a backup run's ops container: restic writes it into its locks,
        and counts a lock stale at once only when it holds the host name restic runs under
        (and no process of the lock's pid is there). The same for every backup run of the
        job of this daemon, another for any other job or daemon: a run clears the lock its
        job's earlier run left when killed outright, never another job's (the tool makes
        sure no process in the new container has that lock's pid: ``steps.unlock``)."""
        digest = hashlib.sha256(f"{self.daemon}\0{self.job}".encode()).hexdigest()
        return f"restic-{digest[:16]}"

    def selection(self) -> list[str]:
        """restic's options that select the job's own snapshots: its host and both tags."""
        return ["--host", self.daemon, "--tag", ",".join(self.tags())]

    def to_json(self) -> str:
        """The request as the tool reads it: one line of JSON (without its newline)."""
        return json.dumps(json_object(self))

    @classmethod
    def parse(cls, value: object) -> ResticRequest:
        """The request from its JSON; a bad field raises RequestError naming it."""
        fields = Fields(value, "")
        given = fields.given(
            {
                "paths": fields.texts,
                "init": fields.flag,
                "keep": fields.table,
                "check": lambda key: fields.choice(key, CHECKS),
                "check_read_data": fields.text,
                "last_check": fields.text,
                "password": fields.text,
                "env": fields.text_table,
                "command": lambda key: fields.choice(key, COMMANDS),
                "snapshot": fields.text,
                "only": fields.texts,
                "ssh_key": fields.text,
                "known_hosts": fields.text,
            }
        )
        keep = Fields(given.get("keep", {}), "keep")
        unknown = sorted(set(keep.data) - set(KEEP_RULES))
        if unknown:
            raise RequestError(f"request field 'keep': unknown rule {unknown[0]!r}")
        given["keep"] = {rule: keep.integer(rule) for rule in keep.data}
        return cls(fields.text("job"), fields.text("daemon"), fields.text("repository"), **given)


@dataclass(frozen=True, slots=True)
class ResticResult:
    """What a run did: the snapshot made (restic's own summary), the snapshots its
    retention forgot, and whether it checked the repository. These are the run's result
    fields (``run.succeeded``, history, notifications)."""

    repository: str
    """Redacted (``redacted``)."""
    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    bytes_added: int
    """What the repository grew by (restic's ``data_added``: after deduplication)."""
    bytes_processed: int
    files_processed: int
    restic_duration_s: float
    forgotten: tuple[str, ...] = ()
    """Short ids of the snapshots the keep rules removed."""
    checked: bool = False
    created_repository: bool = False

    def to_json(self) -> dict[str, object]:
        """The result as the tool's control line carries it."""
        return json_object(self)

    @classmethod
    def parse(cls, value: object) -> ResticResult:
        """The result from the tool's control line; RequestError names a bad field."""
        fields = Fields(value, "")
        return cls(
            fields.text("repository"),
            fields.text("snapshot_id"),
            files_new=fields.integer("files_new"),
            files_changed=fields.integer("files_changed"),
            files_unmodified=fields.integer("files_unmodified"),
            bytes_added=fields.integer("bytes_added"),
            bytes_processed=fields.integer("bytes_processed"),
            files_processed=fields.integer("files_processed"),
            restic_duration_s=fields.number("restic_duration_s"),
            **fields.given(
                {
                    "forgotten": fields.texts,
                    "checked": fields.flag,
                    "created_repository": fields.flag,
                }
            ),
        )


@dataclass(frozen=True, slots=True)
class ResticSnapshot:
    """One of the job's snapshots as ``crontainer backups`` lists it. restic 0.14 keeps no
    size or file count in a snapshot (only ``restic stats`` per snapshot, which reads its
    whole tree, could tell): the listing has none."""

    id: str
    short_id: str
    time: str
    """When restic made it (restic's RFC 3339 time)."""
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    hostname: str = ""

    def to_json(self) -> dict[str, object]:
        """The snapshot as the listing carries it."""
        return json_object(self)

    @classmethod
    def parse(cls, value: object, where: str) -> ResticSnapshot:
        """One snapshot of a listing (``where``: its place, for the error)."""
        fields = Fields(value, where)
        return cls(
            fields.text("id"),
            fields.text("short_id"),
            fields.text("time"),
            **fields.given({"paths": fields.texts, "tags": fields.texts, "hostname": fields.text}),
        )


def parse_snapshots(value: object) -> list[ResticSnapshot]:
    """The tool's listing (``{"snapshots": [...]}``, newest first); RequestError names a
    bad field."""
    listed = Fields(value, "").array("snapshots")
    return [ResticSnapshot.parse(item, f"snapshots[{i}]") for i, item in enumerate(listed)]


@dataclass(frozen=True, slots=True)
class ResticRestored:
    """What a restore did: the snapshot restored and the volumes it wrote into."""

    repository: str
    """Redacted (``redacted``)."""
    snapshot_id: str
    volumes: tuple[str, ...]
    """The mount points of the volumes written into."""
    duration_s: float

    def to_json(self) -> dict[str, object]:
        """The result as the tool's control line carries it."""
        return json_object(self)

    @classmethod
    def parse(cls, value: object) -> ResticRestored:
        """The result from the tool's control line; RequestError names a bad field."""
        fields = Fields(value, "")
        return cls(
            fields.text("repository"),
            fields.text("snapshot_id"),
            fields.texts("volumes"),
            fields.number("duration_s"),
        )
