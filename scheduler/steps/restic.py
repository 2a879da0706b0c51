"""The ``ResticBackup`` step: the restic tool's container, fed on stdin its request completed
with the secrets (read now, never logged), the daemon's name and the last check; the check
time its result reports is stored in the job's tool state. The same step lists the job's
snapshots and restores one (the request's ``command``: ``crontainer backups`` / ``restore``,
which read those results themselves). A backup run's container has the job's own host name
(``ResticRequest.lock_host``), under which restic sees the lock of the job's earlier run
killed outright as stale; a listing's or a restore's keeps the engine's (its id), so that
its ``restic unlock`` never takes the lock of a backup running meanwhile."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from jobs.plan import ResticBackup
from jobs.protocol.fields import RequestError
from jobs.protocol.restic import ResticResult
from scheduler.runs import Outcome, Status
from scheduler.secrets import SecretError, read_secret
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import stdin_writer

if TYPE_CHECKING:
    from jobs.plan import SecretRef
    from jobs.protocol.restic import ResticRequest
    from scheduler.runs import Attempt

CHECK_SOURCE = "restic:check"
"""The job's tool state record of its last repository check: ``{"at": ISO time}``."""


def _read(secret: SecretRef, what: str) -> str:
    return read_secret(env=secret.env, file=secret.file, what=what)


class ResticHandler(StepHandler[ResticBackup]):
    """Snapshot into a restic repository; the secrets reach the tool on stdin only."""

    step = ResticBackup

    def run(self, attempt: Attempt, step: ResticBackup) -> Outcome:
        store, job = self.context.checkpoints, attempt.job_name
        saved = store.tool_state(job) if store is not None else {}
        try:
            request = self._request(step, saved.get(CHECK_SOURCE, {}).get("at"))
        except SecretError as e:
            return Outcome(Status.FAILED, error=str(e))

        give_request = stdin_writer(self.engine, request.to_json().encode() + b"\n")
        containers = self.context.containers
        spec = step.spec
        if request.command == "backup":
            spec = replace(spec, hostname=request.lock_host())
        outcome = containers.run_tool(attempt, spec, "restic", before_start=give_request)
        if outcome.status is not Status.SUCCEEDED or step.request.command != "backup":
            return outcome
        try:
            result = ResticResult.parse(outcome.details)
        except RequestError as e:
            why = f"the restic tool's result cannot be used: {e}"
            return Outcome(Status.FAILED, 0, error=why, output=outcome.output)
        if result.checked and store is not None:
            now = self.context.clock.now()
            store.save_tool_state(job, {CHECK_SOURCE: {"at": now.isoformat()}}, [], now)
        outcome.details = result.to_json()
        return outcome

    def _request(self, step: ResticBackup, last_check: object) -> ResticRequest:
        """The tool's request, completed: the secrets' values and known_hosts (read now),
        the daemon's name and the last check's time."""
        request = step.request
        env = {**request.env, **{s.name: _read(s, f"env {s.name}") for s in step.env}}
        return replace(
            request,
            daemon=self.context.settings.name,
            password=_read(step.password, "password") if step.password else request.password,
            env=env,
            last_check=last_check if isinstance(last_check, str) else None,
            ssh_key=_read(step.ssh_key, "ssh.key") if step.ssh_key else request.ssh_key,
            known_hosts=(
                _read(step.known_hosts, "ssh.known_hosts")
                if step.known_hosts
                else request.known_hosts
            ),
        )
