"""What a dead replica left (``ha = "swarm"``), settled by a survivor onto the claims.

``scheduler.replicas``'s keeper calls these for each container and service labelled with a
replica whose lease went stale: an ended one's outcome goes onto its run's claim
(``settled_by`` this replica) — and into this replica's own history if it holds that run
as running (its own predecessor's) — then it is removed. A running one is left to end, and
stopped (a service: removed) once older than its job's ``timeout`` plus ``stop_grace`` (since
its claim, or its container's creation when later).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scheduler.claims import (
    LABEL_CLAIMED,
    LABEL_ENDED,
    LABEL_EXIT,
    LABEL_REASON,
    LABEL_SETTLED_BY,
    LABEL_STATUS,
    claim_labels,
    instant,
)
from scheduler.engine import LABEL_ATTEMPT, LABEL_JOB, LABEL_REPLICA, LABEL_RUN
from scheduler.job_tasks import decide, judge
from scheduler.logs import get_logger
from scheduler.recovery import ALIVE, ORPHAN_STOP_GRACE_S, settled_outcome
from scheduler.runs import Status
from scheduler.steps.containers import AFTER_STOP_WAIT_S

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scheduler.claims import Claims
    from scheduler.engine import ConfigInfo, ContainerInfo, Engine, ServiceInfo
    from scheduler.history import History
    from scheduler.settings import JobEntry


def settle_foreign(
    engine: Engine,
    claims: Claims,
    history: History,
    container: ContainerInfo,
    *,
    jobs: Mapping[str, JobEntry],
    now: datetime,
) -> bool:
    """Settle ``container`` of a dead replica (see the module). True when it was settled,
    False when it is left running."""
    labels = container.labels
    claim = _claim_of(claims, labels.get(LABEL_RUN, ""))
    reason = "settled_after_replica_died"
    if container.state in ALIVE:
        entry = jobs.get(labels.get(LABEL_JOB, ""))
        if entry is not None and not _overdue(claim, container.created, entry, now):
            return False
        grace = entry.job.stop_grace if entry is not None else ORPHAN_STOP_GRACE_S
        engine.stop(container.id, grace)
        reason = "orphan_stopped"
    status = engine.wait(container.id, AFTER_STOP_WAIT_S) if container.state != "created" else None
    engine.remove(container.id)
    if claim is None:
        get_logger().warning(
            "run.orphan_removed", container_id=container.id, name=container.name, reason=reason
        )
        return True
    outcome, code, reason = settled_outcome(status, reason)
    _record(claims, history, claim, labels, (outcome, code, reason), now, container_id=container.id)
    return True


def settle_foreign_service(
    engine: Engine,
    claims: Claims,
    history: History,
    service: ServiceInfo,
    *,
    jobs: Mapping[str, JobEntry],
    now: datetime,
) -> bool:
    """Settle ``service`` (a service job's run) of a dead replica: what its tasks decide once
    every slot's first task ended; a service still running is left, and removed
    (``orphan_stopped``, cancelled) once older than its job's timeout. True when settled."""
    labels = service.labels
    claim = _claim_of(claims, labels.get(LABEL_RUN, ""))
    state = judge(engine.service_tasks(service.id), service.replicas)
    if not state.done:
        entry = jobs.get(labels.get(LABEL_JOB, ""))
        if entry is not None and not _overdue(claim, None, entry, now):
            return False
    engine.service_remove(service.id)
    if claim is None:
        get_logger().warning(
            "run.orphan_removed", service_id=service.id, name=service.name, reason="orphan"
        )
        return True
    if state.done:
        outcome = decide(
            state.counted.values(), engine.node_name, replicated=service.replicas is not None
        )
        ended = (outcome.status, outcome.exit_code, "settled_after_replica_died")
    else:
        ended = (Status.CANCELLED, None, "orphan_stopped")
    _record(claims, history, claim, labels, ended, now, service_id=service.id)
    return True


def _record(  # noqa: PLR0917 - the run's parts, handed on
    claims: Claims,
    history: History,
    claim: ConfigInfo,
    labels: Mapping[str, str],
    ended: tuple[Status, int | None, str],
    now: datetime,
    **where: str,
) -> None:
    """A dead replica's run ended ``ended`` (status, exit code, reason): onto its claim, into
    this replica's history if it holds the run as running; ``run.settled``."""
    status, code, reason = ended
    fields = {
        LABEL_STATUS: status.value,
        LABEL_ENDED: instant(now),
        LABEL_REASON: reason,
        LABEL_SETTLED_BY: claims.replica,
    }
    if code is not None:
        fields[LABEL_EXIT] = str(code)
    claims.record_outcome(claim.name, fields)
    run_id, attempt = labels.get(LABEL_RUN, ""), int(labels.get(LABEL_ATTEMPT, "1"))
    if any(r.run_id == run_id and r.attempt == attempt for r in history.in_flight()):
        history.finish(
            run_id, attempt, status=status, finished_at=now, exit_code=code, reason=reason
        )
    get_logger().info(
        "run.settled",
        job=labels.get(LABEL_JOB, ""),
        run_id=run_id,
        attempt=attempt,
        status=status.value,
        exit_code=code,
        reason=reason,
        replica=labels.get(LABEL_REPLICA),
        **where,
    )


def _claim_of(claims: Claims, run_id: str) -> ConfigInfo | None:
    """The claim of run ``run_id`` (None: the run never claimed: prepared, or not a fire)."""
    if not run_id:
        return None
    found = claims.store.configs(claim_labels(claims.daemon) | {LABEL_RUN: run_id})
    return found[0] if found else None


def _overdue(
    claim: ConfigInfo | None, created: float | None, entry: JobEntry, now: datetime
) -> bool:
    """A dead replica's run has outlived its job's timeout and stop_grace since the later of
    its claim and its container's creation (``created``): a retry's container, or one made
    after a wait for a lock or a slot, is made long after the claim, and the timeout is each
    attempt's. A run that claims nothing (manual, chained, at start): since ``created``;
    neither known: never judged overdue here."""
    times: list[datetime] = []
    if claim is not None:
        with contextlib.suppress(ValueError):
            times.append(datetime.fromisoformat(claim.labels.get(LABEL_CLAIMED, "")))
    if created is not None:
        times.append(datetime.fromtimestamp(created, UTC))
    if not times:
        return False
    began = max(times)
    return (now - began).total_seconds() > entry.job.timeout + entry.job.stop_grace
