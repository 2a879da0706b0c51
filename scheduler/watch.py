"""Watching the engine while the daemon runs: outages, the lock, settling on return.

The daemon's main loop calls ``EngineWatch.check`` every few seconds (more
often, with backoff, while the engine is away). On the first failed ping it
logs ``engine.unavailable`` once and tells the runner, which records runs due
meanwhile as ``missed`` (reason ``engine_unavailable``). When the engine answers
again: ``engine.available``, the single-instance lock is taken again (the
engine's restart ended the lock container), and what the outage left is
settled by the orphan logic before new runs may start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.engine import LABEL_DAEMON, LockHeldError
from scheduler.errors import EngineError
from scheduler.logs import get_logger
from scheduler.recovery import settle

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from scheduler.clock import Clock
    from scheduler.engine import Engine, Lock, PullAuth
    from scheduler.engine_health import EngineHealth
    from scheduler.history import History
    from scheduler.recovery import Settled
    from scheduler.runner import Runner
    from scheduler.settings import JobEntry

UP_INTERVAL_S = 2.0
DOWN_BACKOFF_S = (0.5, 5.0)
"""First and longest wait between pings while the engine is away."""


def take_lock(
    engine: Engine, daemon: str, image: str, auth: Callable[[], PullAuth] | None = None
) -> Lock:
    """The single-instance lock of daemon ``daemon`` (see Engine.lock)."""
    return engine.lock(f"{daemon}.lock", image, {LABEL_DAEMON: daemon}, auth)


class EngineWatch:
    """Pings the engine; reacts to it going away and coming back."""

    def __init__(
        self,
        engine: Engine,
        history: History,
        runner: Runner,
        lock: Lock,
        *,
        daemon: str,
        ops_image: str,
        clock: Clock,
        health: EngineHealth,
        replica: str | None = None,
        settled_elsewhere: Callable[[str], Settled | None] | None = None,
    ) -> None:
        """``health`` is the one view of the engine the watch keeps up to date; ``replica``
        (``ha = "swarm"``): this replica's id — settling leaves the others' containers alone
        and takes a run's outcome from its claim if another replica settled it
        (``settled_elsewhere``)."""
        self._replica = replica
        self._settled_elsewhere = settled_elsewhere
        self._engine, self._history, self._runner = engine, history, runner
        self._health = health
        self.lock = lock
        self._daemon, self._ops_image, self._clock = daemon, ops_image, clock
        self._down_since: float | None = None
        self._backoff = DOWN_BACKOFF_S[0]
        self._log = get_logger()

    @property
    def interval(self) -> float:
        """How long the main loop may sleep before the next check."""
        return UP_INTERVAL_S if self._down_since is None else self._backoff

    def _went_down(self, error: str) -> None:
        self._down_since = self._clock.monotonic()
        self._log.warning("engine.unavailable", error=error)
        self._health.down(error)

    def check(self, jobs: Mapping[str, JobEntry]) -> str | None:
        """One check; return a reason when the daemon must stop (another took the lock)."""
        was_down = self._down_since is not None
        if self.lock.lost.is_set() and not was_down:
            # The lock's stream closes the moment the engine stops: an outage, however
            # short, even if the engine answers again by now.
            self._went_down("the engine closed the connection of the daemon's lock")
        try:
            self._engine.ping()
        except EngineError as e:
            if self._down_since is None:
                self._went_down(str(e))
            elif was_down:
                self._backoff = min(self._backoff * 2, DOWN_BACKOFF_S[1])
            return None
        try:
            if self.lock.lost.is_set():
                self.lock = take_lock(self._engine, self._daemon, self._ops_image)
                self._log.info("lock.retaken")
            if self._down_since is not None:
                self._log.info(
                    "engine.available", down_s=round(self._clock.monotonic() - self._down_since, 3)
                )
                settle(
                    self._engine,
                    self._history,
                    self._runner,
                    jobs=jobs,
                    daemon=self._daemon,
                    clock=self._clock,
                    busy=self._runner.active_ids(),
                    replica=self._replica,
                    settled_elsewhere=self._settled_elsewhere,
                )
                self._down_since, self._backoff = None, DOWN_BACKOFF_S[0]
                self._health.up()
        except LockHeldError as e:
            self._log.error("daemon.failed", reason="lock_taken", error=str(e))
            return "lock_taken"
        except EngineError as e:  # the engine is flapping: try again at the next check
            self._log.warning("engine.recheck", error=str(e))
        return None
