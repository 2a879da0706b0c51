"""A run's life on the record: its history rows, its ``run.<status>`` events, the listeners'
calls and the notification reports — for each attempt, and for a run that never started."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.logs import get_logger
from scheduler.notify import RunReport
from scheduler.runs import Attempt, Status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from scheduler.clock import Clock
    from scheduler.history import History
    from scheduler.runs import ActiveRun, Outcome, RunInterruptedError, RunListener


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class Recorder:
    """Records runs in the history and tells the listeners, in the order they were added."""

    def __init__(self, history: History, clock: Clock, listeners: Iterable[RunListener]) -> None:
        """``listeners`` hear of every attempt that ended and every run that never started
        (``ended``), and of each run's start and its end after the last attempt (``report``)."""
        self.history = history
        """The run history every row goes to."""
        self._clock = clock
        self._listeners = list(listeners)
        self._log = get_logger()

    def add_listener(self, listener: RunListener) -> None:
        """``listener`` hears of runs from now on (after the others)."""
        self._listeners.append(listener)

    def unstarted(self, run: ActiveRun, status: Status, reason: str, **fields: object) -> None:
        """A run that never started a container: log it and record it (a fire another
        replica claimed at info: it is not this replica's to run)."""
        level = self._log.info if reason == "claimed" else self._log.warning
        level(
            f"run.{status.value}",
            job=run.entry.name,
            run_id=run.run_id,
            reason=reason,
            scheduled_at=run.scheduled_at.isoformat(),
            trigger=run.trigger,
            **fields,
        )
        now = self._clock.now()
        history = self.history
        history.record(
            run.run_id,
            run.entry.name,
            run.trigger,
            run.scheduled_at,
            status=status,
            at=now,
            reason=reason,
            parent_run_id=None if run.parent is None else run.parent.run_id,
        )
        history.prune(run.entry.name, status, run.entry.job.history_limit)
        for listener in self._listeners:
            listener.ended(run.entry.name, status, now, None)
        self._report(run, status.value, reason=reason, error=_text(fields.get("error")))

    def began(self, run: ActiveRun, number: int, started: datetime) -> Attempt:
        """Attempt ``number`` of ``run`` began at ``started``: log ``run.started``, report the
        run's start (at its first attempt), record the attempt's row. The attempt, whose hooks
        record its container and the containers it stops and starts again."""
        entry, history = run.entry, self.history
        chained = {} if run.parent is None else {"parent_run_id": run.parent.run_id}
        self._log.info(
            "run.started",
            kind=entry.job.kind,
            scheduled_at=run.scheduled_at.isoformat(),
            lag_s=round((started - run.scheduled_at).total_seconds(), 3),
            trigger=run.trigger,
            attempt=number,
            **chained,
        )
        if number == 1:
            self._report(run, "started")
        history.begin(
            run.run_id,
            number,
            entry.name,
            trigger=run.trigger,
            scheduled_at=run.scheduled_at,
            started_at=started,
            parent_run_id=None if run.parent is None else run.parent.run_id,
        )
        return Attempt(
            run.run_id,
            entry.name,
            entry.job,
            run.cancelled,
            number=number,
            parent=run.parent,
            on_container=lambda cid: history.set_container(run.run_id, number, cid),
            on_stop=lambda name: history.mark_stopped(run.run_id, name, self._clock.now()),
            on_started=lambda name: history.unmark_stopped(run.run_id, name),
        )

    def interrupted(self, number: int, error: RunInterruptedError) -> None:
        """Attempt ``number`` lost the engine while its container existed: log it; its row
        stays running, settled when the engine is back."""
        self._log.warning(
            "run.interrupted",
            attempt=number,
            container_id=error.container_id,
            reason="engine_unavailable",
            error=str(error),
        )

    def finished(self, run: ActiveRun, attempt: Attempt, outcome: Outcome, duration: float) -> None:
        """Log ``run.<status>`` and record the attempt's end."""
        fields: dict[str, object] = {
            "attempt": attempt.number,
            "duration_s": round(duration, 3),
            "container_id": attempt.created,
        }
        extra = {"exit_code": outcome.exit_code, "reason": outcome.reason, "error": outcome.error}
        fields.update((k, v) for k, v in extra.items() if v is not None)
        fields.update((k, v) for k, v in outcome.details.items() if k not in fields)
        level = self._log.info if outcome.status is Status.SUCCEEDED else self._log.warning
        level(f"run.{outcome.status.value}", **fields)
        finished_at = self._clock.now()
        self.history.finish(
            run.run_id,
            attempt.number,
            status=outcome.status,
            finished_at=finished_at,
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            error=outcome.error,
            output=outcome.output,
            sizes=backup_sizes(outcome.details) if run.entry.job.kind == "backup" else (None, None),
        )
        self.history.prune(run.entry.name, outcome.status, run.entry.job.history_limit)
        for listener in self._listeners:
            listener.ended(run.entry.name, outcome.status, finished_at, duration)
        run.last_duration = duration

    def ended(self, run: ActiveRun, attempt: int, outcome: Outcome) -> None:
        """Report a run's end after its last attempt, ``attempt``; ``after`` then tells the
        listeners that it finished (the chains start what follows it), once the run has let
        go of its locks and its slot."""
        self._report(
            run,
            outcome.status.value,
            attempt=attempt,
            exit_code=outcome.exit_code,
            duration_s=None if run.last_duration is None else round(run.last_duration, 3),
            reason=outcome.reason,
            error=outcome.error,
            output_tail=tuple(outcome.output),
        )
        run.outcome = outcome

    def after(self, run: ActiveRun) -> None:
        """``run``, ended (``ended``), holds no lock or slot any more: tell the listeners
        that it finished (its chains start: a child sharing its lock finds it free)."""
        outcome, run.outcome = run.outcome, None
        if outcome is None:  # it never ended: it never started, or the engine went away
            return
        for listener in self._listeners:
            listener.finished(run, outcome)

    def _report(self, run: ActiveRun, status: str, **fields: object) -> None:
        parent = run.parent
        report = RunReport(
            job=run.entry.name,
            run_id=run.run_id,
            status=status,
            scheduled_at=run.scheduled_at.isoformat(),
            trigger=run.trigger,
            parent_job=None if parent is None else parent.job,
            parent_run_id=None if parent is None else parent.run_id,
            parent_status=None if parent is None else parent.status.value,
            **fields,  # type: ignore[arg-type]
        )
        for listener in self._listeners:
            listener.report(run.entry.job.notify, report)


def backup_sizes(details: Mapping[str, object]) -> tuple[int | None, int | None]:
    """A backup run's stored and read bytes from its tool's result (``details``): the
    archive's ``bytes`` and tar's ``data_bytes``, or restic's ``bytes_added`` and
    ``bytes_processed``; None for what the result does not say (a failed run's, say)."""

    def number(*keys: str) -> int | None:
        for key in keys:
            value = details.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return None

    return number("bytes", "bytes_added"), number("data_bytes", "bytes_processed")
