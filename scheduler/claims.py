"""One claim per fire (``[daemon] ha = "swarm"``): the Swarm config that lets exactly one
replica run a scheduled fire.

Before a fire runs (triggers ``schedule`` and ``catch_up``: cron times, ``@every``, ``@at``
instants, a missed instant caught up), the replica creates the config named by
``claim_name`` — daemon, job, instant — in the Swarm's Raft store. The create succeeds once:
that replica runs the fire. A 409 means another replica claimed it (``claimed``, and who);
any other answer means this replica cannot know, so it does not run the fire
(``claim_failed``). When a claimed run ends, its outcome goes onto the claim's labels, so
the claims are the cluster's history (``crontainer history --cluster``). The sweep removes
claims older than ``ha_claim_keep``, keeping each job's newest ``history_limit`` of each
outcome.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.engine import LABEL_DAEMON, LABEL_JOB, LABEL_REPLICA, LABEL_ROLE, LABEL_RUN
from scheduler.errors import EngineConflictError, EngineError, EngineNotFoundError
from scheduler.logs import get_logger
from scheduler.recovery import Settled
from scheduler.runs import RunListener, Status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from jobs.base import NotifySpec
    from scheduler.clock import Clock
    from scheduler.engine import ConfigInfo, SwarmStore
    from scheduler.notify import RunReport

CLAIM_PREFIX = "crontainer-claim-"
CLAIMED_TRIGGERS = frozenset({"schedule", "catch_up"})
"""The runs that are a fire, claimed once across the replicas; the others (``manual``,
``chain``, ``start``) are the replica's own."""
ROLE_CLAIM = "claim"
LABEL_SCHEDULED = "crontainer.scheduled_at"
LABEL_CLAIMED = "crontainer.claimed_at"
LABEL_STATUS = "crontainer.status"
LABEL_ENDED = "crontainer.ended_at"
LABEL_EXIT = "crontainer.exit_code"
LABEL_REASON = "crontainer.reason"
LABEL_SETTLED_BY = "crontainer.settled_by"
OUTCOME_LABELS = frozenset({LABEL_STATUS, LABEL_ENDED, LABEL_EXIT, LABEL_REASON, LABEL_SETTLED_BY})
"""The labels of a claim's outcome: an outcome written replaces all of them."""
UPDATE_TRIES = 3
"""How often an outcome's update is tried (read again after an out-of-sequence answer)."""


def instant(at: datetime) -> str:
    """A scheduled instant as claims write it: UTC, ISO 8601 (one text per instant)."""
    return at.astimezone(UTC).isoformat()


def claim_name(daemon: str, job: str, at: datetime) -> str:
    """The claim's config name: the same on every replica for one fire, another for any other
    daemon, job or instant; 57 characters (a config name takes 64)."""
    key = f"{daemon}\n{job}\n{instant(at)}".encode()
    return CLAIM_PREFIX + hashlib.sha256(key).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a claim's create decided: run the fire (``won``), or not and why — ``claimed``
    (by ``claimant``), ``claim_failed`` (the store's ``error``), ``claim_expired``."""

    won: bool
    reason: str | None = None
    claimant: str | None = None
    error: str | None = None


def decide(create: Exception | None, claimant: str | None = None) -> Decision:
    """The decision on a create's answer: None (it succeeded), a 409 (another replica's:
    ``claimant``), or any other error — never run without a claim."""
    if create is None:
        return Decision(won=True)
    if isinstance(create, EngineConflictError):
        return Decision(won=False, reason="claimed", claimant=claimant or "unknown")
    return Decision(won=False, reason="claim_failed", error=str(create))


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A claim as its labels tell it: who claimed which fire, and how its run ended."""

    id: str
    job: str
    scheduled_at: str
    replica: str
    run_id: str
    claimed_at: str
    status: str | None
    ended_at: str | None
    exit_code: int | None
    reason: str | None
    settled_by: str | None

    @classmethod
    def of(cls, config: ConfigInfo) -> ClaimRecord:
        """The record of a claim's config."""
        labels = config.labels
        code = labels.get(LABEL_EXIT)
        return cls(
            id=config.id,
            job=labels.get(LABEL_JOB, ""),
            scheduled_at=labels.get(LABEL_SCHEDULED, ""),
            replica=labels.get(LABEL_REPLICA, ""),
            run_id=labels.get(LABEL_RUN, ""),
            claimed_at=labels.get(LABEL_CLAIMED, ""),
            status=labels.get(LABEL_STATUS),
            ended_at=labels.get(LABEL_ENDED),
            exit_code=int(code) if code is not None and code.lstrip("-").isdigit() else None,
            reason=labels.get(LABEL_REASON),
            settled_by=labels.get(LABEL_SETTLED_BY),
        )

    def as_json(self) -> dict[str, object]:
        """The record as ``history --cluster --json`` prints it."""
        return {
            "job": self.job,
            "scheduled_at": self.scheduled_at,
            "replica": self.replica,
            "run_id": self.run_id,
            "claimed_at": self.claimed_at,
            "status": self.status or "claimed",
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "settled_by": self.settled_by,
        }


def claim_labels(daemon: str) -> dict[str, str]:
    """The labels every claim of ``daemon`` carries (what a listing filters on)."""
    return {LABEL_DAEMON: daemon, LABEL_ROLE: ROLE_CLAIM}


def cluster_runs(store: SwarmStore, daemon: str, job: str | None = None) -> list[ClaimRecord]:
    """Every claim of ``daemon`` (of ``job``), newest instant first: the cluster's runs."""
    wanted = claim_labels(daemon) | ({LABEL_JOB: job} if job else {})
    records = [ClaimRecord.of(c) for c in store.configs(wanted)]
    return sorted(records, key=lambda r: (r.scheduled_at, r.claimed_at), reverse=True)


def expired(
    records: Iterable[ClaimRecord], now: datetime, keep: float, limits: Mapping[str, int]
) -> list[ClaimRecord]:
    """The claims the sweep removes: older than ``keep`` seconds (by their instant), except
    each job's newest ``limits[job]`` of each outcome (its history_limit, as a local history
    keeps them; no outcome yet is one more; 0 for a job no longer configured)."""
    by_job: dict[tuple[str, str | None], list[ClaimRecord]] = {}
    for record in records:
        by_job.setdefault((record.job, record.status), []).append(record)
    cutoff = now - timedelta(seconds=keep)
    gone: list[ClaimRecord] = []
    for (job, _), claims in by_job.items():
        claims.sort(key=lambda r: r.scheduled_at, reverse=True)
        for record in claims[limits.get(job, 0) :]:
            at = _parsed(record.scheduled_at)
            if at is None or at < cutoff:
                gone.append(record)
    return gone


def _parsed(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class Claims(RunListener):
    """This replica's claims: made before a fire runs, given their run's outcome when it ends
    (a runner's listener), swept when old."""

    def __init__(
        self,
        store: SwarmStore,
        daemon: str,
        replica: str,
        clock: Clock,
        *,
        timeout: float,
        keep: float,
    ) -> None:
        """``store``: the Swarm's configs; ``timeout``: a create's deadline
        (``ha_claim_timeout``); ``keep``: how long a claim is kept (``ha_claim_keep``)."""
        self.store = store
        self.daemon = daemon
        self.replica = replica
        self._clock = clock
        self._timeout = timeout
        self._keep = keep
        self._won: dict[str, str] = {}
        """Claims this replica won whose run has not ended yet: the run that won each (another
        run of the same fire here, skipped as ``claimed``, must not write onto it)."""
        self._lock = threading.Lock()
        self._log = get_logger()

    def claim(self, job: str, at: datetime, run_id: str) -> Decision:
        """Claim ``job``'s fire at ``at`` for run ``run_id``: the decision (see ``decide``).
        An instant older than ``ha_claim_keep`` is not claimed (``claim_expired``): its claim
        may have been swept already."""
        now = self._clock.now()
        if (now - at).total_seconds() > self._keep:
            return Decision(won=False, reason="claim_expired")
        name = claim_name(self.daemon, job, at)
        labels = claim_labels(self.daemon) | {
            LABEL_JOB: job,
            LABEL_SCHEDULED: instant(at),
            LABEL_RUN: run_id,
            LABEL_REPLICA: self.replica,
            LABEL_CLAIMED: instant(now),
        }
        data = json.dumps(labels, sort_keys=True).encode()
        try:
            self.store.create_config(name, data, labels, self._timeout)
        except EngineConflictError as e:
            return decide(e, self._claimant(name))
        except EngineError as e:
            return decide(e)
        with self._lock:
            self._won[name] = run_id
        return decide(None)

    def _claimant(self, name: str) -> str | None:
        """The replica that holds claim ``name`` (None: it cannot be read)."""
        try:
            return self.store.config(name).labels.get(LABEL_REPLICA)
        except EngineError:
            return None

    def report(self, spec: NotifySpec | None, report: RunReport) -> None:  # noqa: ARG002
        """A claimed run of this replica ended after its last attempt (or never started after
        its claim: cancelled, missed waiting), or an adopted one: its outcome goes onto its
        claim."""
        if report.status == "started" or report.trigger not in CLAIMED_TRIGGERS:
            return
        if report.scheduled_at is None:
            return
        name = claim_name(self.daemon, report.job, datetime.fromisoformat(report.scheduled_at))
        with self._lock:
            won = self._won.get(name) == report.run_id
            if won:
                del self._won[name]
        if not won and report.attempt is None:
            return  # never started, and not claimed here: another replica's, or lost
        outcome = {LABEL_STATUS: report.status, LABEL_ENDED: instant(self._clock.now())}
        if report.exit_code is not None:
            outcome[LABEL_EXIT] = str(report.exit_code)
        if report.reason:
            outcome[LABEL_REASON] = report.reason
        self.record_outcome(name, outcome)

    def record_outcome(self, name: str, outcome: Mapping[str, str]) -> bool:
        """Write ``outcome`` on claim ``name``'s labels, in place of any outcome written before
        (read again after a concurrent update); False after ``ha.claim_update_failed``."""
        error = ""
        for _ in range(UPDATE_TRIES):
            try:
                current = self.store.config(name)
                kept = {k: v for k, v in current.labels.items() if k not in OUTCOME_LABELS}
                self.store.update_config_labels(current, kept | dict(outcome))
            except EngineNotFoundError as e:
                error = str(e)
                break  # swept, or never made: nothing to update
            except EngineError as e:
                error = str(e)
                continue
            return True
        self._log.warning("ha.claim_update_failed", claim=name, error=error)
        return False

    def settled(self, run_id: str) -> Settled | None:
        """How run ``run_id``'s claim says it ended, when another replica settled it (None:
        no such claim, or not settled by another; a store that does not answer is None)."""
        try:
            found = self.store.configs(claim_labels(self.daemon) | {LABEL_RUN: run_id})
        except EngineError:
            return None
        for config in found:
            record = ClaimRecord.of(config)
            if record.status is None or record.settled_by in (None, self.replica):
                continue
            try:
                status = Status(record.status)
            except ValueError:
                continue
            return Settled(status, record.exit_code, record.settled_by or "")
        return None

    def close_orphans(self, replica: str) -> int:
        """The claims of dead ``replica`` that have no outcome and no container left (its
        runs were settled first): ``failed``, reason ``replica_died``, settled by this replica
        (an exec's run, or a run it claimed and never began); how many."""
        found = self.store.configs(claim_labels(self.daemon) | {LABEL_REPLICA: replica})
        closed = 0
        for config in found:
            record = ClaimRecord.of(config)
            if record.status is not None:
                continue
            outcome = {
                LABEL_STATUS: Status.FAILED.value,
                LABEL_ENDED: instant(self._clock.now()),
                LABEL_REASON: "replica_died",
                LABEL_SETTLED_BY: self.replica,
            }
            if self.record_outcome(config.name, outcome):
                closed += 1
                self._log.warning(
                    "run.settled",
                    job=record.job,
                    run_id=record.run_id,
                    status=Status.FAILED.value,
                    reason="replica_died",
                    replica=replica,
                )
        return closed

    def sweep(self, limits: Mapping[str, int]) -> int:
        """Remove the claims past ``ha_claim_keep`` (``expired``); how many went."""
        records = cluster_runs(self.store, self.daemon)
        gone = expired(records, self._clock.now(), self._keep, limits)
        for record in gone:
            self.store.remove_config(record.id)
        if gone:
            self._log.info("ha.claims_swept", removed=len(gone), kept=len(records) - len(gone))
        return len(gone)
