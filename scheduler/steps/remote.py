"""The ``RemoteArchives`` step: a backup's archive (its body), then the remote tool's
container fed on stdin its request completed with each remote of ``[daemon.remotes]`` as
rclone reaches it — secrets read now, never logged, never in the container's command,
environment or labels (a restore's age identity or passphrase too, in the request). The
run's details are the archive's plus the tool's ``copies``; a copy that fails fails the run
naming the remote, the archive kept in the target. A streamed archive (no target) is itself
the tool's ``stream`` (its passphrase in the request), whose result has its first remote's
copy; the copies to the other remotes come after it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.plan import RemoteArchives
from jobs.protocol.fields import RequestError
from jobs.protocol.remote import Destination, parse_copied
from scheduler.runs import Outcome, Status
from scheduler.secrets import SecretError, ref_value, resolve
from scheduler.settings.remotes import S3Remote, SftpRemote
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import stdin_writer

if TYPE_CHECKING:
    from jobs.protocol.remote import RemoteRequest
    from scheduler.runs import Attempt
    from scheduler.settings.remotes import WebdavRemote


def destination(name: str, remote: S3Remote | SftpRemote | WebdavRemote) -> Destination:
    """``remote`` as rclone's backend options, its secrets' values read now."""

    def value(key: str, given: object) -> str:
        return resolve(given, f"daemon.remotes.{name}.{key}")

    if isinstance(remote, S3Remote):
        plain = {"provider": remote.provider, "env_auth": "false"}
        plain |= {k: v for k, v in (("endpoint", remote.endpoint), ("region", remote.region)) if v}
        secrets = {
            "access_key_id": value("access_key_id", remote.access_key_id),
            "secret_access_key": value("secret_access_key", remote.secret_access_key),
        }
        return Destination(name, "s3", remote.location(), plain, secrets)
    if isinstance(remote, SftpRemote):
        plain = {"host": remote.host, "port": str(remote.port), "user": remote.user}
        key, known = value("key", remote.key), value("known_hosts", remote.known_hosts)
        return Destination(name, "sftp", remote.location(), plain, {}, key, known)
    plain = {"url": remote.url, "vendor": remote.vendor}
    plain |= {"user": remote.user} if remote.user else {}
    secrets = {"pass": value("password", remote.password)} if remote.password else {}
    return Destination(name, "webdav", remote.location(), plain, secrets)


def _copies(details: dict[str, object]) -> list[dict[str, object]]:
    """The copies a result reports (none if it has none)."""
    try:
        return [c.to_json() for c in parse_copied(details)]
    except RequestError:
        return []


class RemoteHandler(StepHandler[RemoteArchives]):
    """The archive, then its copies; or a one-off listing or restore from a remote."""

    step = RemoteArchives

    def run(self, attempt: Attempt, step: RemoteArchives) -> Outcome:
        made = Outcome(Status.SUCCEEDED, exit_code=0)
        if step.body is not None:
            made = self.context.steps.run(attempt, step.body)
            if made.status is not Status.SUCCEEDED or attempt.cancelled.is_set():
                return made
        try:
            request = self.completed(step.request)
            if step.identity is not None:
                request = replace(request, identity=ref_value(step.identity))
            if step.passphrase is not None:
                request = replace(request, passphrase=ref_value(step.passphrase))
        except SecretError as e:
            return Outcome(Status.FAILED, error=str(e), details=made.details)
        give = stdin_writer(self.engine, request.to_json().encode() + b"\n")
        outcome = self.context.containers.run_tool(attempt, step.spec, "remote", before_start=give)
        if step.body is None:
            return outcome
        copies = _copies(made.details)  # a streamed archive's: its first remote
        # no copies in the result: the tool failed before it copied (its error says why)
        copies += _copies(outcome.details)
        outcome.details = {**made.details, "copies": copies}
        outcome.output = made.output + outcome.output
        return outcome

    def completed(self, request: RemoteRequest) -> RemoteRequest:
        """``request`` with each remote it names as a Destination; SecretError names a
        secret that cannot be read or a remote the daemon does not have."""
        remotes = self.context.settings.remotes
        missing = [name for name in request.remotes if name not in remotes]
        if missing:
            raise SecretError(
                f"remote {missing[0]!r} is not in the daemon's [daemon.remotes] (a remote "
                "added by a reload takes effect at the daemon's restart)"
            )
        places = tuple(destination(name, remotes[name]) for name in request.remotes)
        return replace(request, destinations=places)
