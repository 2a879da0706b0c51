"""The ``RotateLogs`` step: rotate (the tool gets the state of earlier runs on stdin), tell
the app if something rotated, then compress and prune — whatever the signal gave."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.plan import RotateLogs
from jobs.protocol.fields import RequestError
from jobs.protocol.rotate import FinishResult, RotateResult, state_line
from scheduler.runs import Outcome, Status
from scheduler.steps.base import StepHandler
from scheduler.steps.containers import stdin_writer

if TYPE_CHECKING:
    from scheduler.runs import Attempt


class RotateHandler(StepHandler[RotateLogs]):
    """Rotate → tell the app if something rotated → compress and prune. A failing signal
    fails the run after the rotation, saying which part failed; compression still runs."""

    step = RotateLogs

    def run(self, attempt: Attempt, step: RotateLogs) -> Outcome:
        store, job, steps = self.context.checkpoints, attempt.job_name, self.context.steps
        containers = self.context.containers
        saved = store.tool_state(job) if store is not None else {}

        give_state = stdin_writer(self.engine, state_line(saved))
        rotated = containers.run_tool(attempt, step.rotate, "rotate", before_start=give_state)
        if rotated.status is not Status.SUCCEEDED:
            return rotated
        try:
            result = RotateResult.parse(rotated.details)
        except RequestError as e:
            # Files may have been renamed: tell the app anyway, and say what went wrong.
            told = steps.run(attempt, step.tell) if step.tell is not None else None
            signalled = "" if told is None else f" (the app was told: {told.status.value})"
            return Outcome(
                Status.FAILED, error=f"the rotation's result cannot be used: {e}{signalled}"
            )
        if store is not None:
            gone = [path for path in saved if path not in result.state]
            store.save_tool_state(job, result.state, gone, self.context.clock.now())
        for path, to in result.moves:
            self.log.info("run.file_rotated", path=path, to=to)
        moved = [to for _path, to in result.moves]
        told = None
        if moved and step.tell is not None:
            told = steps.run(attempt, step.tell)
        return self._finish(attempt, step, moved, told)

    def _finish(
        self, attempt: Attempt, step: RotateLogs, moved: list[str], told: Outcome | None
    ) -> Outcome:
        """Compress and prune; the run's outcome says which part failed, if one did."""
        finished = self.context.containers.run_tool(attempt, step.finish, "rotate")
        details: dict[str, object] = {"rotated": moved}
        if finished.status is Status.SUCCEEDED:
            try:
                details = {**FinishResult.parse(finished.details).to_json(), **details}
            except RequestError as e:
                why = f"its result cannot be used: {e}"
                finished = Outcome(Status.FAILED, 0, error=why, output=finished.output)
        if told is not None and told.status is not Status.SUCCEEDED:
            return Outcome(
                Status.FAILED,
                error=f"rotated {len(moved)} file(s), but telling the app failed: {told.error}",
                details=details,
            )
        if finished.status is not Status.SUCCEEDED:
            why = finished.error or (finished.output[-1] if finished.output else "")
            finished.error = (
                f"rotated {len(moved)} file(s), but compressing or pruning failed: {why}"
            )
            return finished
        return Outcome(Status.SUCCEEDED, exit_code=0, details=details)
