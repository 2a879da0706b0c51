"""The remote tool's command: the request from the first line of stdin, each destination
done in turn, the result out.

Exit 0 with the result as a control line on stderr; 1 when a destination failed (the
others are still done; the result still comes, then the last diagnostic names each failed
destination and what rclone said, redacted); 2 when the request cannot be read."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import emit, say
from jobs.protocol.remote import Copied, RemoteRequest, parse_copied
from jobs.retention import AGE_SUFFIX, needs_key
from jobs.tools.backup.archive import check_sources, volume_mounts
from jobs.tools.backup.keys import one_line, restore_key
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.restore import restore
from jobs.tools.paths import mount_points
from jobs.tools.remote.copying import FirstDestination, Origin, Target, copy, fetch, remote_listing
from jobs.tools.remote.rclone import Rclone, RemoteError
from jobs.tools.remote.streaming import stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobs.tools.backup.keys import AgeKey

TOOL = "remote"


def copy_all(request: RemoteRequest) -> list[Copied]:
    """Each destination in turn (but the first, the origin, with ``from_first``: listed once;
    RemoteError when it cannot be, naming it); one that fails does not stop the others."""
    copies = []
    origin = request.destinations[0] if request.from_first else None
    there: dict[str, int] = {}
    if origin is not None:
        with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
            try:
                there = Rclone(origin, Path(private)).files()
            except RemoteError as e:
                raise RemoteError(f"reading remote {origin.name!r} failed: {e}") from None
    for dest in request.destinations[1:] if origin is not None else request.destinations:
        with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
            try:
                rclone = Rclone(dest, Path(private), origin)
                source: Origin = FirstDestination(rclone, there)
                if origin is None:
                    source = Target(Path(request.target))
                copies.append(copy(rclone, request, dest.name, source))
            except RemoteError as e:
                copies.append(Copied(dest.name, error=str(e)))
    return copies


def stream_one(request: RemoteRequest) -> dict[str, object]:
    """A new archive of the request's sources (and the volumes mounted) streamed to the
    first destination."""
    sources = [Path(s) for s in request.sources]
    if request.mounts:
        sources += mount_points()
    check_sources(sources, None)
    passphrase = None if request.passphrase is None else one_line(request.passphrase.encode())
    first = request.destinations[0]
    with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
        try:
            return stream(Rclone(first, Path(private)), request, sources, passphrase)
        except RemoteError as e:
            raise RemoteError(f"stream to remote {first.name!r} failed: {e}") from None


def one(request: RemoteRequest) -> dict[str, object]:
    """list or restore, on the request's (first) destination."""
    dest = request.destinations[0]
    with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
        rclone = Rclone(dest, Path(private))
        if request.command == "list":
            return {"remote": dest.name, "archives": list(remote_listing(rclone, request.job))}
        staging = Path(private) / "archive"
        staging.mkdir()
        key = restore_key(
            identity=None if request.identity is None else request.identity.encode(),
            passphrase=None if request.passphrase is None else request.passphrase.encode(),
        )
        try:
            name = fetch(rclone, request.job, request.archive or "latest", staging, _keyed(key))
            mounts = volume_mounts(staging)
            only, root = list(request.only), Path(request.root)
            result = restore(staging, name, mounts, only, root, key=key)
        finally:
            if key is not None:
                key.close()
        return {**result, "remote": dest.name}


def _keyed(key: AgeKey | None) -> Callable[[str], None]:
    """Refuses to fetch an encrypted archive when the request has nothing to decrypt it."""

    def check(name: str) -> None:
        if key is None and name.endswith(AGE_SUFFIX):
            raise ToolError(needs_key(name))

    return check


def _streamed(result: dict[str, object]) -> int:
    """Emit a stream's result; 1 (saying why) if its destination's clean-up or retention
    failed after the archive landed."""
    emit({"result": result})
    copies = parse_copied(result)
    failed = [c for c in copies if c.error is not None]
    if failed:
        say(TOOL, f"stream to remote {failed[0].remote!r}: {failed[0].error}")
        return 1
    return 0


def main() -> int:
    """Read the request, run, report the result; see the module's exit codes."""
    try:
        request = RemoteRequest.from_line(sys.stdin.readline())
        if request.command == "stream":
            return _streamed(stream_one(request))
        if request.command != "copy":
            emit({"result": one(request)})
            return 0
        copies = copy_all(request)
    except RequestError as e:
        say(TOOL, str(e))
        return 2
    except (RemoteError, ToolError) as e:
        say(TOOL, str(e))
        return 1
    emit({"result": {"copies": [c.to_json() for c in copies]}})
    failed = [c for c in copies if c.error is not None]
    if failed:
        say(TOOL, "; ".join(f"copy to remote {c.remote!r} failed: {c.error}" for c in failed))
        return 1
    return 0
