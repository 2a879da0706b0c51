"""The tool's command line: the request read from it (``jobs.protocol.backup``), run, and its
result emitted as a control line (``python -m jobs.tools.backup`` runs ``main``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.backup import (
    CreateRequest,
    CreateResult,
    ListRequest,
    ListResult,
    RestoreResult,
    VerifyRequest,
    VerifyResult,
    parse_request,
)
from jobs.protocol.lines import emit, say
from jobs.retention import Retention
from jobs.tools.backup.archive import create, target_aliases, throughput_mib_s, volume_mounts
from jobs.tools.backup.keys import one_line, restore_key
from jobs.tools.backup.listing import listing, prune, verify
from jobs.tools.backup.processes import TOOL, ToolError
from jobs.tools.backup.restore import restore

if TYPE_CHECKING:
    from jobs.protocol.backup import BackupRequest


def _create_command(request: CreateRequest) -> CreateResult:
    """Archive, then apply the retention; the warning names archives stamped in the future."""
    target = Path(request.target)
    points = volume_mounts(target)
    aliases = target_aliases(target, points)
    for alias in aliases:
        say(TOOL, f"{alias} is the target volume mounted again: left out of the archive")
    sources = [Path(s) for s in request.sources]
    if request.mounts:
        sources += [p for p in points if p not in aliases]
    made = create(
        request.job,
        target,
        sources,
        request.compression,
        exclude=aliases,
        recipients=list(request.recipients),
        passphrase=_passphrase() if request.passphrase else None,
    )
    policy = Retention(
        request.keep_last,
        request.keep_daily,
        request.keep_weekly,
        request.keep_monthly,
        request.timezone,
    )
    deleted, future = prune(request.job, target, policy, made["archive"])
    if future:
        emit({"warning": {"event": "backup.future_archive", "archives": future}})
    return {
        **made,
        "deleted": deleted,
        "sources": [str(s) for s in sources],
        "throughput_mib_s": throughput_mib_s(made["data_bytes"], made["bytes"], made["archive_s"]),
    }


def _run(request: BackupRequest) -> CreateResult | VerifyResult | ListResult | RestoreResult:
    """Do what ``request`` asks; ToolError says why it could not."""
    target = Path(request.target)
    if isinstance(request, CreateRequest):
        return _create_command(request)
    if isinstance(request, VerifyRequest):
        return {"archive": request.archive, "sha256": verify(target, request.archive)}
    if isinstance(request, ListRequest):
        return {"archives": listing(request.job, target)}
    mounts = volume_mounts(target)
    key = restore_key(
        identity=_stdin("age identity") if request.identity else None,
        passphrase=_stdin("passphrase") if request.passphrase and not request.identity else None,
    )
    try:
        root = Path(request.root)
        return restore(target, request.archive, mounts, list(request.only), root, key=key)
    finally:
        if key is not None:
            key.close()


def _stdin(what: str) -> bytes:
    """What the daemon (or the CLI) wrote on stdin: a secret, never on the command line."""
    given = sys.stdin.buffer.read()
    if not given.strip():
        raise ToolError(f"no {what} on stdin")
    return given


def _passphrase() -> bytes:
    """The passphrase on stdin: one line (typed into age's terminal, it cannot hold one)."""
    return one_line(_stdin("passphrase"))


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 with the result's control line, 1 with the error on stderr (2:
    a command line argparse refuses)."""
    request = parse_request(argv)
    try:
        result = _run(request)
    except ToolError as e:
        say(TOOL, str(e))
        return 1
    emit({"result": result})
    return 0
