"""The remote tool's command: the request from the first line of stdin, each destination
done in turn, the result out.

Exit 0 with the result as a control line on stderr; 1 when a destination failed (the
others are still done; the result still comes, then the last diagnostic names each failed
destination and what rclone said, redacted); 2 when the request cannot be read."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import emit, say
from jobs.protocol.remote import Copied, RemoteRequest
from jobs.tools.backup.archive import volume_mounts
from jobs.tools.backup.processes import ToolError
from jobs.tools.backup.restore import restore
from jobs.tools.remote.copying import copy, fetch, remote_listing
from jobs.tools.remote.rclone import Rclone, RemoteError

TOOL = "remote"


def copy_all(request: RemoteRequest) -> list[Copied]:
    """Each destination in turn; one that fails does not stop the others."""
    copies = []
    for dest in request.destinations:
        with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
            try:
                copies.append(copy(Rclone(dest, Path(private)), request, dest.name))
            except RemoteError as e:
                copies.append(Copied(dest.name, error=str(e)))
    return copies


def one(request: RemoteRequest) -> dict[str, object]:
    """list or restore, on the request's (first) destination."""
    dest = request.destinations[0]
    with tempfile.TemporaryDirectory(prefix="crontainer-remote-") as private:
        rclone = Rclone(dest, Path(private))
        if request.command == "list":
            return {"remote": dest.name, "archives": list(remote_listing(rclone, request.job))}
        staging = Path(private) / "archive"
        staging.mkdir()
        name = fetch(rclone, request.job, request.archive or "latest", staging)
        mounts = volume_mounts(staging)
        result = restore(staging, name, mounts, list(request.only), Path(request.root))
        return {**result, "remote": dest.name}


def main() -> int:
    """Read the request, run, report the result; see the module's exit codes."""
    try:
        request = RemoteRequest.from_line(sys.stdin.readline())
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
