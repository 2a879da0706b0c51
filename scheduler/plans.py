"""A job's plan on the engine: built with this daemon's ops image, its steps then its
cleanup carried out by the step executor for one attempt, every failure an outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.base import PlanContext
from scheduler.errors import EngineError, EngineUnavailableError, PullDeniedError
from scheduler.logs import get_logger
from scheduler.runs import Outcome, RunInterruptedError, Status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.base import BaseJob
    from jobs.plan import Plan, Step
    from scheduler.runs import Attempt
    from scheduler.settings import JobEntry
    from scheduler.steps import StepExecutor


class Plans:
    """Builds the plans of runs and executes an attempt's."""

    def __init__(self, steps: StepExecutor, ops_image: str) -> None:
        """``steps`` carries the plans out; ``ops_image`` runs the ops tools."""
        self._steps = steps
        self._ops_image = ops_image
        self._log = get_logger()

    def execute(self, attempt: Attempt) -> Outcome:
        """Execute the plan; every failure becomes an outcome, never an escaping error (but
        ``RunInterruptedError``: the engine went away while the attempt's container existed)."""
        try:
            env = attempt.parent.env() if attempt.parent is not None else {}
            plan = self._plan(attempt.job, attempt.job_name, env)
            outcome = Outcome(Status.SUCCEEDED, exit_code=0)
            try:
                outcome = self._steps.run_all(attempt, plan.steps)
            finally:
                for step in plan.cleanup:  # post_exec and the like: on every path
                    after = self._steps.run(attempt, step)
                    if after.status is not Status.SUCCEEDED and outcome.status is Status.SUCCEEDED:
                        outcome = after
        except RunInterruptedError:
            raise
        except EngineError as e:
            if attempt.cancelled.is_set():
                return Outcome(Status.CANCELLED, reason=attempt.cancelled.reason, error=str(e))
            reason = None
            if isinstance(e, EngineUnavailableError):
                reason = "engine_unavailable"
            elif isinstance(e, PullDeniedError):
                reason = "pull_denied"
            return Outcome(Status.FAILED, reason=reason, error=str(e))
        except Exception as e:  # one run's bug must not take the daemon down
            self._log.exception("run.crashed")
            return Outcome(Status.FAILED, error=f"internal error: {type(e).__name__}: {e}")
        return outcome

    def of(self, entry: JobEntry) -> Plan:
        """The plan of a run of ``entry``."""
        return self._plan(entry.job, entry.name)

    def all_steps(self, entry: JobEntry) -> tuple[Step, ...]:
        """The steps of a run of ``entry``: its plan's, then its cleanup's."""
        plan = self.of(entry)
        return plan.steps + plan.cleanup

    def _plan(self, job: BaseJob, name: str, env: Mapping[str, str] | None = None) -> Plan:
        """The plan of a run of ``job`` (named ``name``) with this daemon's ops image and the
        variables ``env`` the daemon sets for the run (a chained run's)."""
        return job.plan(PlanContext(job=name, ops_image=self._ops_image, env=env or {}))
