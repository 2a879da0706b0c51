"""The remote tool's request and result (stdlib only). The plan (``jobs.backup``) or the
backups commands build a ``RemoteRequest`` naming the remotes; the daemon completes it with
each remote as rclone reaches it (``Destination``: its backend options and secrets, read at
run time) and writes it as one JSON line on the tool's stdin — never into the ops
container's command, environment or labels. The tool (``jobs.tools.remote``) reads it back
with ``RemoteRequest.parse``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.protocol.fields import Fields, RequestError, json_object
from jobs.retention import SUFFIXES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

PROGRAM = ("python3", "-m", "jobs.tools.remote")
"""How an ops container runs the tool (its request comes on stdin)."""
COMMANDS = ("copy", "stream", "list", "restore")
"""copy: the job's archives in the target (or, ``from_first``, on the first destination) to
each (other) destination, then retention there; stream: a new archive of the volumes mounted
(or ``sources``) piped straight to the (one) destination, then retention there; list: the
job's archives on the (one) destination; restore: one archive fetched, verified (decrypted
with the request's identity or passphrase if it is an ``….age`` one) and restored into the
volumes mounted."""
TYPES = ("s3", "sftp", "webdav")
KEEP_RULES = ("last", "daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Destination:
    """One remote as rclone reaches it: ``name`` (the config's), rclone's backend ``type``,
    the ``folder`` the archives are in, the backend's plain ``options`` and ``secrets``
    (in clear: the tool obscures what rclone wants obscured, and redacts them all from what
    it says), an SSH ``key`` and ``known_hosts`` (sftp)."""

    name: str
    type: str
    folder: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None

    @classmethod
    def parse(cls, value: object, where: str) -> Destination:
        """One destination of a request (``where``: its place, for the error)."""
        fields = Fields(value, where)
        return cls(
            fields.text("name"),
            fields.choice("type", TYPES),
            **fields.given(
                {
                    "folder": fields.text,
                    "options": fields.text_table,
                    "secrets": fields.text_table,
                    "key": fields.text,
                    "known_hosts": fields.text,
                }
            ),
        )


@dataclass(frozen=True, slots=True)
class RemoteRequest:
    """What one run of the remote tool does (``command``) for ``job``, whose archives are in
    ``target`` (copy) or go through it (restore), with ``remotes`` (their names; the daemon
    fills ``destinations`` in the same order)."""

    command: str
    job: str
    target: str
    remotes: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    timezone: str = "UTC"
    keep: Mapping[str, int] = field(default_factory=dict)
    archive: str | None = None
    """restore: the archive's name, or ``latest``."""
    root: str = "/"
    only: tuple[str, ...] = ()
    identity: str | None = field(default=None, repr=False)
    """restore: the age identity file's content that decrypts an ``….age`` archive (from
    ``--identity FILE``, read where the command runs), or ``passphrase``: the job's (stream:
    the one the new archive is encrypted with)."""
    passphrase: str | None = field(default=None, repr=False)
    from_first: bool = False
    """copy: the archives are on the first destination (a streamed backup's), not in
    ``target``; they are copied from there to the others."""
    sources: tuple[str, ...] = ()
    """stream: the paths archived; with ``mounts``, every volume mounted too."""
    mounts: bool = False
    compression: str = "zstd"
    recipients: tuple[str, ...] = ()
    """stream: age recipients (public keys) the archive is encrypted to."""

    def to_json(self) -> str:
        """The request as the tool reads it: one line of JSON (without its newline)."""
        places = [json_object(d) for d in self.destinations]
        return json.dumps({**json_object(self), "destinations": places})

    @classmethod
    def parse(cls, value: object) -> RemoteRequest:
        """The request from its JSON (``from_line``: the line on the tool's stdin); a bad
        field raises RequestError naming it."""
        fields = Fields(value, "")
        given: dict[str, Any] = {
            key: read(fields, key) for key, read in _OPTIONAL.items() if key in fields.data
        }
        for rule, count in given.get("keep", {}).items():
            if rule not in KEEP_RULES or not isinstance(count, int) or count < 1:
                raise RequestError(f"request field 'keep.{rule}': expected a rule and a count")
        places = fields.array("destinations") if "destinations" in fields.data else []
        return cls(
            fields.choice("command", COMMANDS),
            fields.text("job"),
            fields.text("target"),
            destinations=tuple(
                Destination.parse(item, f"destinations[{i}]") for i, item in enumerate(places)
            ),
            **given,
        )

    @classmethod
    def from_line(cls, line: str) -> RemoteRequest:
        """The request of the first line of the tool's stdin: it must name a destination."""
        try:
            request = cls.parse(json.loads(line))
        except json.JSONDecodeError:
            raise RequestError("the first line of stdin is not the JSON request") from None
        if not request.destinations:
            raise RequestError("request field 'destinations': expected at least one, got none")
        return request


_OPTIONAL: dict[str, Callable[[Fields, str], object]] = {
    "remotes": Fields.texts,
    "timezone": Fields.text,
    "keep": Fields.table,
    "archive": Fields.text,
    "root": Fields.text,
    "only": Fields.texts,
    "identity": Fields.text,
    "passphrase": Fields.text,
    "from_first": Fields.flag,
    "sources": Fields.texts,
    "mounts": Fields.flag,
    "compression": lambda fields, key: fields.choice(key, tuple(SUFFIXES)),
    "recipients": Fields.texts,
}
"""The request's keys that may be left out, each with its reader."""


@dataclass(frozen=True, slots=True)
class Copied:
    """What a copy did on one destination: the archives uploaded (with their checksums),
    their bytes, how each upload was verified, the archives retention deleted there; or
    the error that stopped it."""

    remote: str
    uploaded: tuple[str, ...] = ()
    bytes: int = 0
    verified_by: str | None = None
    deleted: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        """The destination's part of the result."""
        return json_object(self)


def parse_copied(value: object) -> list[Copied]:
    """copy's result (``{"copies": [...]}``); RequestError names a bad field."""
    found = []
    for index, item in enumerate(Fields(value, "").array("copies")):
        fields = Fields(item, f"copies[{index}]")
        found.append(
            Copied(
                fields.text("remote"),
                **fields.given(
                    {
                        "uploaded": fields.texts,
                        "bytes": fields.integer,
                        "verified_by": fields.text,
                        "deleted": fields.texts,
                        "error": fields.text,
                    }
                ),
            )
        )
    return found
