"""Adopted runs: a container an earlier instance of the daemon left running, followed to its
end as the attempt it was, then recorded and reported like any other attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.logs import get_logger
from scheduler.runs import Attempt

if TYPE_CHECKING:
    from scheduler.clock import Clock
    from scheduler.history import RunRecord
    from scheduler.plans import Plans
    from scheduler.recording import Recorder
    from scheduler.run_files import RunFiles
    from scheduler.runs import ActiveRun
    from scheduler.steps import StepExecutor


class Adoption:
    """Follows adopted runs, each in the thread the runner gives it."""

    def __init__(
        self,
        steps: StepExecutor,
        plans: Plans,
        recorder: Recorder,
        clock: Clock,
        run_files: RunFiles,
    ) -> None:
        """``plans`` gives the steps of a run of a job, whose handlers know what an adopted
        container's end means; ``steps`` waits for it; ``run_files`` ends the run's output
        file, which the earlier daemon left without an end."""
        self._steps = steps
        self._run_files = run_files
        self._plans = plans
        self._recorder = recorder
        self._clock = clock
        self._log = get_logger()

    def follow(
        self, run: ActiveRun, record: RunRecord, container_id: str, start_after: list[str]
    ) -> None:
        """Wait for ``container_id``, attempt ``record.attempt`` of ``run``, within what is
        left of its job's timeout; start ``start_after`` again (containers that run had
        stopped), even if waiting failed; record and report how it ended."""
        started = record.started_at or run.scheduled_at
        elapsed = max(0.0, (self._clock.now() - started).total_seconds())
        self._log.info(
            "run.adopted",
            attempt=record.attempt,
            container_id=container_id,
            running_s=round(elapsed, 3),
        )
        history = self._recorder.history
        attempt = Attempt(
            run.run_id,
            run.entry.name,
            run.entry.job,
            run.cancelled,
            number=record.attempt,
            on_started=lambda name: history.unmark_stopped(run.run_id, name),
        )
        run.attempt = attempt
        began = self._clock.monotonic()
        try:
            outcome = self._steps.adopt(
                attempt,
                container_id,
                max(0.0, run.entry.job.timeout - elapsed),
                self._plans.all_steps(run.entry),
            )
        finally:
            self._steps.start_again(attempt, start_after)
        self._run_files.settle(
            run.entry.name,
            run.entry.job.output,
            run.run_id,
            status=outcome.status.value,
            exit_code=outcome.exit_code,
            how="adopted after a restart: the output since then is not in this file",
        )
        self._recorder.finished(run, attempt, outcome, elapsed + self._clock.monotonic() - began)
        self._recorder.ended(run, record.attempt, outcome)
