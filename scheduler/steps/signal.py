"""The ``SignalContainers`` step: a signal (or a restart) to every selected container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.plan import SignalContainers
from scheduler.errors import EngineError
from scheduler.runs import Outcome, Status
from scheduler.selection import RUNNING, matches, named
from scheduler.steps.base import StepHandler

if TYPE_CHECKING:
    from scheduler.runs import Attempt


class SignalHandler(StepHandler[SignalContainers]):
    """Signal (or restart) every selected container — the one a name names, whatever its
    state; the running ones a label or compose selector matches — and report every one
    that failed."""

    step = SignalContainers

    def run(self, attempt: Attempt, step: SignalContainers) -> Outcome:
        failures: list[str] = []
        for selector in step.selectors:
            try:
                found = matches(self.engine, selector)
            except EngineError as e:
                failures.append(str(e))
                continue
            if not named(selector):  # a name is acted on in any state (restart starts it)
                found = [c for c in found if c.state == RUNNING]
            if not found:
                what = "container is named" if named(selector) else "running container matches"
                failures.append(f"no {what} {selector!r}")
            for container in found:
                try:
                    if step.restart:
                        self.engine.restart(container.name, attempt.job.stop_grace)
                        self.log.info("run.container_restarted", container=container.name)
                    else:
                        self.engine.kill(container.name, step.signal)
                        self.log.info(
                            "run.signal_sent", container=container.name, signal=step.signal
                        )
                except EngineError as e:
                    failures.append(str(e))
        if failures:
            return Outcome(Status.FAILED, error="; ".join(failures))
        return Outcome(Status.SUCCEEDED)
