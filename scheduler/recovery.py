"""Settling what an earlier instance of this daemon left behind (a crash, a kill -9).

At start, after taking the single-instance lock and before scheduling:

- a container of ours that has exited: its attempt is recorded with the true
  outcome (from its exit code) and the container is removed;
- a container of ours still running, of a job that still exists (not a service job
  now), is adopted:
  waited for under what is left of the job's timeout, recorded, removed;
- one still running whose job or run is unknown is stopped and removed;
- an attempt recorded as running whose container is gone is recorded
  ``failed`` with reason ``interrupted``;
- a service job's Swarm service (``scheduler.steps.service``): one whose tasks that count
  have all ended is recorded with the outcome they decide, and removed; one still running,
  of a job (still a service job) and run that still exist, is adopted (followed like a
  container); any other is
  removed (recorded ``cancelled``, reason ``orphan_stopped``, if its run is known);
- a container prepared ahead of its run's time (``scheduler.prepared``) and never
  started has a run id without a run record (or the record of a run that did not start):
  an orphan, removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from jobs.service import ServiceJob
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_REPLICA,
    LABEL_ROLE,
    LABEL_RUN,
    ContainerInfo,
)
from scheduler.errors import EngineError
from scheduler.job_tasks import decide, judge
from scheduler.logs import get_logger
from scheduler.runs import Status
from scheduler.steps.containers import AFTER_STOP_WAIT_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from scheduler.clock import Clock
    from scheduler.engine import Engine, ExitStatus, ServiceInfo
    from scheduler.history import History, RunRecord
    from scheduler.runner import Runner
    from scheduler.settings import JobEntry

ORPHAN_STOP_GRACE_S = 10.0
OTHERS = frozenset({"lock", "service"})
"""Roles of containers not settled as a run's: the lock, a service job's task (its
service is settled, and removing it removes its tasks' containers)."""


ALIVE = frozenset({"running", "paused"})
"""Container states that have not ended: a paused container goes on when unpaused, so it
is adopted (or, an orphan, stopped) like a running one — never waited for and removed."""


def settle(
    engine: Engine,
    history: History,
    runner: Runner,
    *,
    jobs: Mapping[str, JobEntry],
    daemon: str,
    clock: Clock,
    busy: frozenset[str] = frozenset(),
    replica: str | None = None,
    settled_elsewhere: Callable[[str], Settled | None] | None = None,
) -> None:
    """Record, adopt or remove every container and in-flight row an earlier instance (or
    this one, before the engine went away) left; runs in ``busy`` are in hand already. With
    ``replica`` (``ha = "swarm"``), a container another replica made is left alone, and so
    is its run's row: a live replica's is its own, a dead one's is settled by
    ``scheduler.replicas`` once its lease is stale. ``settled_elsewhere`` tells how another
    replica settled a run whose container is gone (its claim's outcome), if it did."""
    log = get_logger()
    # Made before the engine went away: it may be gone (an engine restart). The
    # preparations remove what they hold; listed below, it is left to them (removed once).
    runner.drop_taken("engine_returned")  # by runs still waiting: they take the normal path
    busy = busy | runner.preparations.discard_all("engine_returned")
    in_flight = {(r.run_id, r.attempt): r for r in history.in_flight() if r.run_id not in busy}
    stopped_by: dict[str, list[str]] = {}
    for run_id, name in history.still_stopped():
        stopped_by.setdefault(run_id, []).append(name)
    for container in _ours(engine.list_containers({LABEL_DAEMON: daemon}), in_flight, replica):
        if container.labels.get(LABEL_ROLE) in OTHERS or container.labels.get(LABEL_RUN) in busy:
            continue
        record = in_flight.pop(_key(container), None)
        entry = jobs.get(record.job) if record else None
        try:
            alive = container.state in ALIVE
            if alive and record is not None and entry is not None and _runs(entry, service=False):
                # What the dead run stopped starts again when its archive has ended.
                runner.adopt(entry, record, container.id, stopped_by.pop(record.run_id, []))
                continue
            if entry is not None:  # its steps' handlers keep what it holds (checkpoints)
                runner.recover(entry, container.id)
            ended = _settle_one(engine, history, container, record, clock)
            if record is not None and ended is not None:
                _end_output(runner, jobs, record, *ended)
        except EngineError as e:
            log.warning("run.settle_failed", container_id=container.id, error=str(e))
    _settle_services(engine, history, runner, jobs, daemon, clock, busy, in_flight, replica)
    _start_left_stopped(engine, history, stopped_by, busy)
    _take_settled_elsewhere(history, runner, in_flight, settled_elsewhere, jobs=jobs, clock=clock)
    _record_interrupted(history, in_flight.values(), clock)
    for record in in_flight.values():
        _end_output(runner, jobs, record, Status.FAILED, None)
    runner.release_interrupted()  # the runs cut off by an outage and not adopted above


def _runs(entry: JobEntry, *, service: bool) -> bool:
    """Whether the job ``entry`` runs now in what a dead run left running, a Swarm service
    (``service``) or a container: it can be adopted. A job whose kind changed since (a
    service job now, or no longer) cannot: what was left is an orphan."""
    return isinstance(entry.job, ServiceJob) == service


class _Labelled(Protocol):
    """A container or a service of ours: its labels say which run (and replica) it is."""

    @property
    def labels(self) -> Mapping[str, str]: ...


Labelled = TypeVar("Labelled", bound=_Labelled)


def _key(container: _Labelled) -> tuple[str, int]:
    """The (run id, attempt) a container (or service) of ours was made for."""
    labels = container.labels
    return labels.get(LABEL_RUN, ""), int(labels.get(LABEL_ATTEMPT, "1"))


def _ours(
    containers: list[Labelled],
    in_flight: dict[tuple[str, int], RunRecord],
    replica: str | None,
) -> list[Labelled]:
    """``containers`` (or services) but those another replica than ``replica`` made (None:
    HA is off), whose rows are taken out of ``in_flight``: they wait for that replica's
    settling. One made before HA (no replica label) is this replica's only if its run is in
    this one's history: two replicas on one engine would otherwise both settle it."""
    ours = []
    for container in containers:
        made_by = container.labels.get(LABEL_REPLICA)
        if replica is None or made_by == replica:
            ours.append(container)
        elif made_by is None:
            if _key(container) in in_flight:
                ours.append(container)
        else:
            in_flight.pop(_key(container), None)
    return ours


def _end_output(
    runner: Runner,
    jobs: Mapping[str, JobEntry],
    record: RunRecord,
    status: Status,
    exit_code: int | None,
) -> None:
    """End the output file the settled run left without an end line (if its job, still
    configured, keeps output)."""
    entry = jobs.get(record.job)
    runner.run_files.settle(
        record.job,
        entry.job.output if entry is not None else None,
        record.run_id,
        status=status.value,
        exit_code=exit_code,
        how="settled after a restart: the output since the daemon stopped is not in this file",
    )


def _start_left_stopped(
    engine: Engine, history: History, stopped_by: dict[str, list[str]], busy: frozenset[str]
) -> None:
    """Start again what dead runs stopped (those whose archive is not being adopted)."""
    log = get_logger()
    for run_id, names in stopped_by.items():
        if run_id in busy:
            continue
        for name in names:
            try:
                if not engine.is_running(name):
                    engine.start(name)
                    log.warning(
                        "run.container_restarted_after_crash", run_id=run_id, container=name
                    )
            except EngineError as e:
                log.error("run.container_start_failed", run_id=run_id, container=name, error=str(e))  # noqa: TRY400
                continue
            history.unmark_stopped(run_id, name)


@dataclass(frozen=True, slots=True)
class Settled:
    """How another replica settled a run (``ha = "swarm"``: from its claim)."""

    status: Status
    exit_code: int | None
    by: str
    """The replica that settled it."""


def _take_settled_elsewhere(
    history: History,
    runner: Runner,
    in_flight: dict[tuple[str, int], RunRecord],
    settled_elsewhere: Callable[[str], Settled | None] | None,
    *,
    jobs: Mapping[str, JobEntry],
    clock: Clock,
) -> None:
    """The rows in ``in_flight`` (their containers gone) that another replica settled: their
    outcome recorded from the claim, and taken out of ``in_flight``."""
    if settled_elsewhere is None:
        return
    for key, record in list(in_flight.items()):
        if (settled := settled_elsewhere(record.run_id)) is not None:
            _record_settled_elsewhere(history, record, settled, clock)
            _end_output(runner, jobs, in_flight.pop(key), settled.status, settled.exit_code)


def _record_settled_elsewhere(
    history: History, record: RunRecord, settled: Settled, clock: Clock
) -> None:
    """A run whose container another replica settled (this one was cut off, or its
    predecessor died): its outcome as that replica wrote it on the claim."""
    ended = (settled.status, settled.exit_code, "settled_by_replica")
    _record_settled(history, record, clock, ended, replica=settled.by)


def _record_interrupted(history: History, records: Iterable[RunRecord], clock: Clock) -> None:
    """Attempts recorded as running whose container is gone: failed, ``interrupted``."""
    log = get_logger()
    for record in records:
        history.finish(
            record.run_id,
            record.attempt,
            status=Status.FAILED,
            finished_at=clock.now(),
            reason="interrupted",
            error="the daemon stopped during this run and its container is gone",
        )
        log.warning(
            "run.settled",
            job=record.job,
            run_id=record.run_id,
            attempt=record.attempt,
            status="failed",
            reason="interrupted",
        )


def _settle_one(
    engine: Engine,
    history: History,
    container: ContainerInfo,
    record: RunRecord | None,
    clock: Clock,
) -> tuple[Status, int | None] | None:
    """Record how an exited (or stopped) container ended, then remove it; the status and
    exit code recorded (None: no run of it is recorded)."""
    log = get_logger()
    reason = "settled_after_restart"
    if container.state in ALIVE:  # its job or run is unknown: nobody waits for it
        engine.stop(container.id, ORPHAN_STOP_GRACE_S)
        reason = "orphan_stopped"
    status = engine.wait(container.id, AFTER_STOP_WAIT_S) if container.state != "created" else None
    engine.remove(container.id)
    if record is None:
        log.warning(
            "run.orphan_removed", container_id=container.id, name=container.name, reason=reason
        )
        return None
    outcome, code, reason = settled_outcome(status, reason)
    _record_settled(history, record, clock, (outcome, code, reason), container_id=container.id)
    return outcome, code


def _record_settled(
    history: History,
    record: RunRecord,
    clock: Clock,
    ended: tuple[Status, int | None, str],
    error: str | None = None,
    **what: str,
) -> None:
    """Record ``record``'s attempt as ended (status, exit code, reason) and log
    ``run.settled`` with ``what`` was settled (its container_id or service_id)."""
    status, code, reason = ended
    history.finish(
        record.run_id,
        record.attempt,
        status=status,
        finished_at=clock.now(),
        exit_code=code,
        reason=reason,
        error=error,
    )
    get_logger().info(
        "run.settled",
        job=record.job,
        run_id=record.run_id,
        attempt=record.attempt,
        status=status.value,
        exit_code=code,
        reason=reason,
        **what,
    )


def settled_outcome(status: ExitStatus | None, reason: str) -> tuple[Status, int | None, str]:
    """The recorded status, exit code and reason of a settled container: never started,
    stopped as an orphan (cancelled), killed for memory, or its exit code's."""
    if status is None:
        return Status.FAILED, None, "never_started"
    if reason == "orphan_stopped":
        return Status.CANCELLED, status.exit_code, reason
    if status.oom_killed:
        return Status.FAILED, status.exit_code, "oom_killed"
    return (Status.SUCCEEDED if status.exit_code == 0 else Status.FAILED), status.exit_code, reason


def _settle_services(  # noqa: PLR0917 - settle's state, handed on
    engine: Engine,
    history: History,
    runner: Runner,
    jobs: Mapping[str, JobEntry],
    daemon: str,
    clock: Clock,
    busy: frozenset[str],
    in_flight: dict[tuple[str, int], RunRecord],
    replica: str | None = None,
) -> None:
    """Settle (or adopt) each service job's service an earlier instance left; the in-flight
    rows they answer for are taken out of ``in_flight``. With ``replica``, another replica's
    services are left alone (``_ours``)."""
    log = get_logger()
    for service in _ours(engine.list_services({LABEL_DAEMON: daemon}), in_flight, replica):
        if service.labels.get(LABEL_RUN) in busy:
            continue
        record = in_flight.pop(_key(service), None)
        entry = jobs.get(record.job) if record else None
        try:
            ended = _settle_service(
                engine, runner, history, service, record=record, entry=entry, clock=clock
            )
            if record is not None and ended is not None:
                _end_output(runner, jobs, record, *ended)
        except EngineError as e:
            log.warning("run.settle_failed", service_id=service.id, error=str(e))


def _settle_service(
    engine: Engine,
    runner: Runner,
    history: History,
    service: ServiceInfo,
    *,
    record: RunRecord | None,
    entry: JobEntry | None,
    clock: Clock,
) -> tuple[Status, int | None] | None:
    """A dead daemon's service: adopted if it still runs for a known run (None); else
    recorded with what its tasks decide (or cancelled, an orphan still running) and
    removed — the status and exit code recorded (None: no run of it is recorded)."""
    log = get_logger()
    state = judge(engine.service_tasks(service.id), service.replicas)
    if not state.done and record is not None and entry is not None and _runs(entry, service=True):
        runner.adopt(entry, record, service.id)
        return None
    engine.service_remove(service.id)
    if record is None:
        log.warning(
            "run.orphan_removed",
            service_id=service.id,
            name=service.name,
            reason="settled_after_restart" if state.done else "orphan_stopped",
        )
        return None
    if state.done:
        outcome = decide(
            state.counted.values(), engine.node_name, replicated=service.replicas is not None
        )
        status, code, error = outcome.status, outcome.exit_code, outcome.error
        reason = "settled_after_restart"
    else:
        status, code, error, reason = Status.CANCELLED, None, None, "orphan_stopped"
    _record_settled(history, record, clock, (status, code, reason), error, service_id=service.id)
    return status, code
