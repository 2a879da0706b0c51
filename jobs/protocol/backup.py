"""The backup tool's requests and results (stdlib only, and ``jobs.retention``'s names of the
compressions, which the tool imports as well). A request is built by the plan
(``jobs.backup``: create) or by the backups commands (``scheduler.backups``: list, restore),
becomes the tool's command line (``argv()``), and is read back by the tool
(``jobs.tools.backup``) with ``parse_request``: one parser, next to the types, so the plan and
the tool cannot disagree. A result is what the tool emits as its ``result`` control line; the
daemon reads the listing back with ``parse_list_result``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from jobs.protocol.fields import Fields
from jobs.retention import SUFFIXES

if TYPE_CHECKING:
    from collections.abc import Sequence

PROGRAM = ("python3", "-m", "jobs.tools.backup")
"""How an ops container runs the tool; a request's ``argv()`` starts with it."""
KEEP_RULES = ("last", "daily", "weekly", "monthly")
"""The retention rules, in the order the command line gives them (``--keep-<rule> N``)."""


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Archive ``sources`` (and, with ``mounts``, every volume mounted into the container) into
    ``target``, then delete the job's archives its retention does not keep."""

    COMMAND: ClassVar[str] = "create"
    job: str
    target: str
    sources: tuple[str, ...] = ()
    mounts: bool = False
    compression: str = "zstd"
    recipients: tuple[str, ...] = ()
    """age recipients (public keys): the archive is encrypted to them (``….age``)."""
    passphrase: bool = False
    """The archive is encrypted with the passphrase the tool reads on its stdin."""
    timezone: str = "UTC"
    """The zone of the retention's days, weeks and months."""
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None

    def argv(self) -> tuple[str, ...]:
        """The tool's command line for this request."""
        keep = (self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly)
        rules = [
            word
            for rule, count in zip(KEEP_RULES, keep, strict=True)
            if count is not None
            for word in (f"--keep-{rule}", str(count))
        ]
        return (
            *PROGRAM,
            *(self.COMMAND, "--job", self.job, "--target", self.target),
            *("--compression", self.compression, "--timezone", self.timezone),
            *(word for recipient in self.recipients for word in ("--recipient", recipient)),
            *(("--passphrase-stdin",) if self.passphrase else ()),
            *rules,
            *(("--mounts",) if self.mounts else ()),
            *self.sources,
        )


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """Check ``archive`` in ``target`` against its ``.sha256``."""

    COMMAND: ClassVar[str] = "verify"
    target: str
    archive: str

    def argv(self) -> tuple[str, ...]:
        """The tool's command line for this request."""
        return (*PROGRAM, self.COMMAND, "--target", self.target, self.archive)


@dataclass(frozen=True, slots=True)
class ListRequest:
    """The archives of ``job`` in ``target``, newest first."""

    COMMAND: ClassVar[str] = "list"
    job: str
    target: str

    def argv(self) -> tuple[str, ...]:
        """The tool's command line for this request."""
        return (*PROGRAM, self.COMMAND, "--job", self.job, "--target", self.target)


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    """Restore ``archive`` of ``target`` into the volumes mounted into the container: the
    archive's path ``p`` goes to ``root/p``; with ``only``, just these archived paths. With
    ``identity``, the tool reads an age identity file on its stdin (to decrypt ``….age``);
    with ``passphrase``, the archive's passphrase."""

    COMMAND: ClassVar[str] = "restore"
    target: str
    archive: str
    root: str = "/"
    only: tuple[str, ...] = ()
    identity: bool = False
    passphrase: bool = False

    def argv(self) -> tuple[str, ...]:
        """The tool's command line for this request."""
        only = [word for path in self.only for word in ("--only", path)]
        root = ("--root", self.root, *(("--identity-stdin",) if self.identity else ()))
        root += ("--passphrase-stdin",) if self.passphrase else ()
        return (*PROGRAM, self.COMMAND, "--target", self.target, *root, *only, self.archive)


BackupRequest = CreateRequest | VerifyRequest | ListRequest | RestoreRequest
"""One run of the tool: its command and arguments."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.tools.backup")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser(CreateRequest.COMMAND)
    make.add_argument("--job", required=True)
    make.add_argument("--target", required=True)
    make.add_argument("--compression", choices=sorted(SUFFIXES), default="zstd")
    make.add_argument("--mounts", action="store_true", help="back up every volume mounted here")
    make.add_argument(
        "--recipient", action="append", help="age-encrypt to this public key (repeatable)"
    )
    make.add_argument(
        "--passphrase-stdin", action="store_true", help="age-encrypt with a passphrase on stdin"
    )
    for rule in KEEP_RULES:
        make.add_argument(f"--keep-{rule}", type=int)
    make.add_argument("--timezone", default="UTC", help="the zone of days, weeks and months")
    make.add_argument("sources", nargs="*")
    check = commands.add_parser(VerifyRequest.COMMAND)
    check.add_argument("--target", required=True)
    check.add_argument("archive")
    back = commands.add_parser(RestoreRequest.COMMAND)
    back.add_argument("--target", required=True)
    back.add_argument("--root", default="/")
    back.add_argument(
        "--only", action="append", help="restore just this archived path (repeatable)"
    )
    key = back.add_mutually_exclusive_group()
    key.add_argument(
        "--identity-stdin", action="store_true", help="read an age identity file on stdin"
    )
    key.add_argument(
        "--passphrase-stdin", action="store_true", help="read the archive's passphrase on stdin"
    )
    back.add_argument("archive")
    show = commands.add_parser(ListRequest.COMMAND)
    show.add_argument("--job", required=True)
    show.add_argument("--target", required=True)
    return parser


def parse_request(args: Sequence[str] | None = None) -> BackupRequest:
    """The request of the tool's command line (without ``PROGRAM``; None: ``sys.argv``'s). A
    bad one ends the process with argparse's usage message and exit code 2."""
    given = _parser().parse_args(args)
    if given.command == CreateRequest.COMMAND:
        return CreateRequest(
            given.job,
            given.target,
            tuple(given.sources),
            given.mounts,
            given.compression,
            tuple(given.recipient or ()),
            given.passphrase_stdin,
            given.timezone,
            *(getattr(given, f"keep_{rule}") for rule in KEEP_RULES),
        )
    if given.command == VerifyRequest.COMMAND:
        return VerifyRequest(given.target, given.archive)
    if given.command == ListRequest.COMMAND:
        return ListRequest(given.job, given.target)
    only = tuple(given.only or ())
    return RestoreRequest(
        given.target,
        given.archive,
        given.root,
        only,
        identity=given.identity_stdin,
        passphrase=given.passphrase_stdin,
    )


class Archived(TypedDict):
    """The archive ``create`` made: its name, whether it is age-encrypted, its size, members,
    the bytes of its tar stream (None when tar's totals could not be read), sha256 (of the
    stored bytes, encrypted ones included), and the seconds it took."""

    archive: str
    encrypted: bool
    bytes: int
    files: int
    data_bytes: int | None
    sha256: str
    archive_s: float


class CreateResult(Archived):
    """create's result: the archive, then the archives retention deleted, the paths archived,
    and MiB of data (of the archive without tar's totals) per second of archiving."""

    deleted: list[str]
    sources: list[str]
    throughput_mib_s: float


class VerifyResult(TypedDict):
    """verify's result: the archive and its checked sha256."""

    archive: str
    sha256: str


class ArchiveEntry(TypedDict):
    """One archive of a listing: name, time (ISO 8601), bytes, good (it has its checksum),
    future (stamped later than now: made while the clock was wrong; left out by a tool older
    than the key)."""

    archive: str
    time: str
    bytes: int
    good: bool
    future: NotRequired[bool]


class ListResult(TypedDict):
    """list's result: the job's archives, newest first."""

    archives: list[ArchiveEntry]


class RestoreResult(TypedDict):
    """restore's result: the archive, the root its paths went under, the volumes written,
    the members restored, and the seconds it took."""

    archive: str
    restored_to: str
    volumes: list[str]
    entries: int
    duration_s: float


def parse_list_result(value: object) -> ListResult:
    """list's result from its JSON; RequestError names a bad field (``archives[2].good``)."""
    fields = Fields(value, "")
    return {
        "archives": [
            _archive_entry(Fields(item, f"archives[{index}]"))
            for index, item in enumerate(fields.array("archives"))
        ]
    }


def _archive_entry(fields: Fields) -> ArchiveEntry:
    entry: ArchiveEntry = {
        "archive": fields.text("archive"),
        "time": fields.text("time"),
        "bytes": fields.integer("bytes"),
        "good": fields.flag("good"),
    }
    if "future" in fields.data:
        entry["future"] = fields.flag("future")
    return entry
