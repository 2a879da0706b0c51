"""The steps of one restic run: back up, forget by the keep rules, check when one is due —
opening (or creating) the repository and removing stale locks only when a step fails for
want of them — and ``run``, which takes them in that order and gives the run's result."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jobs.protocol.fields import RequestError
from jobs.protocol.lines import say
from jobs.protocol.restic import ResticResult
from jobs.tools.backup.archive import target_aliases, volume_mounts
from jobs.tools.paths import holder, mount_points
from jobs.tools.restic.runner import TOOL, Finished, Restic, ResticError
from jobs.tools.restic.ssh import session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from jobs.protocol.restic import ResticRequest

CHECK_DAYS = {"weekly": 7, "monthly": 30}
"""How old the last check may grow before ``check = weekly`` / ``monthly`` checks again."""
MISSING = ("no such file or directory", "does not exist", "not found")
"""How restic's storage backends say that the repository's config file is not there
(local and sftp, rest and s3, the others)."""
MOUNTINFO = Path("/proc/self/mountinfo")
LIST_LOCKS = ["list", "locks", "--no-lock"]
LOCKED = ("unable to create lock", "already locked")
"""How restic says that a lock is in a command's way."""
T = TypeVar("T")


class NoSnapshotError(ResticError):
    """A backup that made no snapshot: restic's run, to learn why."""

    def __init__(self, message: str, finished: Finished) -> None:
        super().__init__(message)
        self.finished = finished


PID_PASSES = 4096
"""How many short processes ``pass_pid`` starts at most (the pids of a fresh container's
restic processes are in the tens)."""


def check_due(request: ResticRequest, now: datetime) -> bool:
    """Whether this run checks the repository; a ``last_check`` that is not an ISO time is
    a RequestError."""
    if request.check == "never":
        return False
    if request.check == "always" or request.last_check is None:
        return True
    try:
        last = datetime.fromisoformat(request.last_check)
    except ValueError:
        raise RequestError("request field 'last_check': expected an ISO time") from None
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return now - last >= timedelta(days=CHECK_DAYS[request.check])


def local_repository(request: ResticRequest) -> Path | None:
    """The repository's directory when it is a path in this container (a volume)."""
    return Path(request.repository) if request.repository.startswith("/") else None


def sources(request: ResticRequest, mountinfo: Path = MOUNTINFO) -> list[str]:
    """What the run backs up: the request's paths (each must exist), else every volume
    mounted here but the one that holds a local repository (however often mounted)."""
    if request.paths:
        missing = [p for p in request.paths if not os.path.lexists(p)]
        if missing:
            raise ResticError(f"nothing to back up at {', '.join(missing)}")
        return list(request.paths)
    repository = local_repository(request)
    points = mount_points(mountinfo)
    if repository is not None:
        held = holder(repository, points) or repository
        kept = volume_mounts(repository, mountinfo)
        points = [p for p in kept if p not in target_aliases(held, kept)]
    if not points:
        raise ResticError("nothing to back up: no path given and no volume mounted")
    return [str(p) for p in points]


def open_repository(restic: Restic, *, create: bool) -> tuple[bool, set[str]]:
    """Open the repository — listing its locks, which reads its config and key as any
    command does — creating it when it does not exist and ``create`` says so: whether it
    was created, and its locks. Failures say why, the repository redacted."""
    shown = restic.redact.repository
    opened = restic.run(LIST_LOCKS, quiet=True)
    if opened.code == 0:
        return False, set(opened.output)
    reason = opened.reason()
    if "wrong password" in reason:
        raise ResticError(f"wrong password for repository {shown}")
    if not ("unable to open config file" in reason and any(m in reason for m in MISSING)):
        raise ResticError(f"cannot open repository {shown}: {reason}")
    if not create:
        raise ResticError(f"repository {shown} does not exist (init = false): {reason}")
    made = restic.run(["init"])
    if made.code != 0:
        raise ResticError(f"cannot create repository {shown}: {made.reason()}")
    say(TOOL, f"created repository {shown}")
    return True, set()


def own_pids(restic: Restic, locks: set[str]) -> list[int]:
    """The pids of the ``locks`` made under this container's host name (``restic cat
    lock``): a backup run's host name is its job's (``ResticRequest.lock_host``), so these
    are locks an earlier run of the job left."""
    host, pids = socket.gethostname(), []
    for lock in sorted(locks):
        shown = restic.run(["cat", "lock", lock, "--no-lock"], quiet=True)
        try:
            value = json.loads("\n".join(shown.output)) if shown.code == 0 else None
        except ValueError:
            value = None
        if isinstance(value, dict) and value.get("hostname") == host:
            pid = value.get("pid")
            pids += [pid] if isinstance(pid, int) else []
    return pids


def pass_pid(pid: int) -> None:
    """Have the kernel hand out only pids above ``pid`` from now on: short processes are
    started until one gets a higher pid (at most PID_PASSES)."""
    for _ in range(PID_PASSES):
        child = subprocess.Popen(["true"])
        child.wait()
        if child.pid > pid:
            return


def unlock(restic: Restic, locks: set[str]) -> int:
    """Remove the locks restic deems stale (``restic unlock``, never ``--remove-all``):
    older than 30 minutes, or made under this host name by a process that is gone. The
    others stay; how many of each is said. How many were removed.

    restic asks whether a lock's process is gone by sending its pid SIGHUP here, in a new
    container whose processes got pids from 1 again: the pid of the restic that held the
    job's earlier lock may be that of a process running now (``restic unlock`` itself,
    started at the same place in the same order). So the pids are first moved past the
    highest such pid: no process here has it when restic asks."""
    if not locks:
        return 0
    ours = own_pids(restic, locks)
    if ours:
        pass_pid(max(ours))
    removed = restic.run(["unlock"])
    if removed.code != 0:
        raise ResticError(f"cannot remove stale locks: {removed.reason()}")
    listed = restic.run(LIST_LOCKS)
    if listed.code != 0:
        raise ResticError(f"cannot list the repository's locks: {listed.reason()}")
    left = set(listed.output)
    say(TOOL, f"removed {len(locks - left)} stale lock(s); {len(left)} still held")
    return len(locks - left)


def backup(restic: Restic, request: ResticRequest, paths: list[str]) -> dict[str, Any]:
    """Snapshot ``paths`` with the job's host and tags; restic's summary. Files restic
    could not read (exit 3: the snapshot is made without them) fail the run, counted."""
    args = ["backup", "--json", "--host", request.daemon]
    for tag in request.tags():
        args += ["--tag", tag]
    if (repository := local_repository(request)) is not None:
        args += ["--exclude", str(repository)]
    done = restic.run([*args, "--", *paths], quiet=True)
    summaries = [
        v for v in done.values if isinstance(v, dict) and v.get("message_type") == "summary"
    ]
    if done.code != 0 and not summaries:
        raise NoSnapshotError(f"backup failed: {done.reason()}", done)
    done.say_again()
    if done.code == 3:  # noqa: PLR2004 - restic: "some source data could not be read"
        count = max(len(done.errors), 1)
        snapshot = summaries[-1].get("snapshot_id")
        raise ResticError(f"{count} file(s) could not be read: snapshot {snapshot} lacks them")
    if done.code != 0 or not summaries:
        raise ResticError(f"backup failed: {done.reason()}")
    return summaries[-1]


def backed_up(
    restic: Restic, request: ResticRequest, paths: list[str]
) -> tuple[dict[str, Any], bool]:
    """The backup, the repository opened by restic's backup itself; whether the repository
    was created. A backup that made no snapshot has the repository opened on its own to
    learn why (a wrong password, a missing repository: ``open_repository``'s errors, its
    restic lines not said); one more backup follows when that created the repository or
    removed stale locks, else the backup's own failure stands, its lines said. A backup
    that was stopped (SIGTERM) fails at once."""
    try:
        return backup(restic, request, paths), False
    except NoSnapshotError as e:
        created = again = False
        if not e.finished.interrupted:
            created, locks = open_repository(restic, create=request.init)
            again = created or unlock(restic, locks) > 0
        if not again:
            e.finished.say_again()
            raise ResticError(str(e)) from None
    return backup(restic, request, paths), created


def unlocked(restic: Restic, step: Callable[[], T]) -> T:
    """``step``, once more when it failed for a lock in its way and stale locks could be
    removed (the locks listed, then ``unlock``)."""
    try:
        return step()
    except ResticError as e:
        if not any(words in str(e) for words in LOCKED):
            raise
        _created, locks = open_repository(restic, create=False)
        if not unlock(restic, locks):
            raise
    return step()


def forget(restic: Restic, request: ResticRequest) -> tuple[str, ...]:
    """Forget (and prune) the job's snapshots its keep rules do not keep — only those of
    its host and with both its tags; their short ids. No keep rule: nothing is forgotten."""
    if not request.keep:
        return ()
    args = ["forget", "--json", "--quiet", *request.selection(), "--group-by", "host,tags"]
    for rule, count in request.keep.items():
        args += [f"--keep-{rule}", str(count)]
    done = restic.run([*args, "--prune"])
    if done.code != 0:
        raise ResticError(f"forget failed: {done.reason()}")
    groups = next((v for v in done.values if isinstance(v, list)), [])
    return tuple(s["short_id"] for group in groups for s in group.get("remove") or [])


def check(restic: Restic, request: ResticRequest) -> None:
    """``restic check``, with ``--read-data-subset`` when the request asks for it."""
    args = ["check", "--quiet"]
    if request.check_read_data:
        args += ["--read-data-subset", request.check_read_data]
    done = restic.run(args)
    if done.code != 0:
        raise ResticError(f"check failed: {done.reason()}")


@contextmanager
def restic_for(request: ResticRequest) -> Iterator[Restic]:
    """restic for ``request``, its cache directory and an ``sftp:`` repository's SSH files
    lasting as long as the block. Every command (backup, listing, restore) works through
    this."""
    with tempfile.TemporaryDirectory(prefix="restic-cache-") as cache, session(request) as ssh:
        yield Restic(request, cache, ssh)


@contextmanager
def opened(request: ResticRequest) -> Iterator[Restic]:
    """restic for ``request`` on its repository, opened (never created) and rid of stale
    locks: for the listing and the restore."""
    with restic_for(request) as restic:
        _created, locks = open_repository(restic, create=False)
        unlock(restic, locks)
        yield restic


def run(request: ResticRequest, now: datetime) -> ResticResult:
    """The whole run; ResticError says why it failed (naming the snapshot once one is
    made), RequestError what in the request is wrong."""
    due = check_due(request, now)
    paths = sources(request)
    with restic_for(request) as restic:
        summary, created = backed_up(restic, request, paths)
        try:
            forgotten = unlocked(restic, lambda: forget(restic, request))
            if due:
                unlocked(restic, lambda: check(restic, request))
        except ResticError as e:
            raise ResticError(f"snapshot {summary.get('snapshot_id')} made, then {e}") from None
    return ResticResult(
        restic.redact.repository,
        str(summary.get("snapshot_id", "")),
        files_new=int(summary.get("files_new", 0)),
        files_changed=int(summary.get("files_changed", 0)),
        files_unmodified=int(summary.get("files_unmodified", 0)),
        bytes_added=int(summary.get("data_added", 0)),
        bytes_processed=int(summary.get("total_bytes_processed", 0)),
        files_processed=int(summary.get("total_files_processed", 0)),
        restic_duration_s=round(float(summary.get("total_duration", 0.0)), 3),
        forgotten=forgotten,
        checked=due,
        created_repository=created,
    )
