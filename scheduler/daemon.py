"""The composition root: connect, schedule, wait for signals, drain.

Signals are handled without handlers: the main thread blocks SIGTERM, SIGINT
and SIGHUP before any other thread exists (threads inherit the mask) and
takes them with ``sigtimedwait``, so nothing runs inside a signal handler.

Its life reads top to bottom in ``Daemon._serve``: ``_start`` takes what the
daemon needs (the parts are ``scheduler.startup``'s), entering each resource
into one ``ExitStack`` as soon as it is taken; ``_loop`` serves until a stop
signal; ``_shutdown`` closes the stack.
The stack's reverse order is the shutdown's: the admin socket, the HTTP
listener, the scheduling loop, the runs (drained), the notifications, the
lock, the state database, the engine. A start-up that fails at any point, by
a logged failure or by an exception, releases what it took through the same
stack.
"""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.clock import Clock, SystemClock
from scheduler.errors import EngineUnavailableError
from scheduler.exits import EXIT_FAILURE, EXIT_OK
from scheduler.jobset import JobSet
from scheduler.labels.scan import LabelJobs, Rules, rules_of
from scheduler.labels.watch import LabelWatch
from scheduler.logs import get_logger
from scheduler.one_shots import OneShots
from scheduler.recovery import settle
from scheduler.reload import ConfigWatcher, log_warnings, reload
from scheduler.replicas import Keeper
from scheduler.startup import (
    Base,
    Parts,
    admin_server,
    catch_up,
    output_reachable,
    run_on_start,
    start_runner,
    status_pages,
    status_server,
    swarm_check,
    take_base,
)
from scheduler.steps.containers import AFTER_STOP_WAIT_S
from scheduler.ticker import Ticker
from scheduler.watch import EngineWatch

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from scheduler.engine import Engine
    from scheduler.metrics import Metrics
    from scheduler.runner import Runner
    from scheduler.settings import Config, JobEntry

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HEALTH_CHECK_S = 5.0
"""How often the main thread checks that the loop thread is alive."""
DRAIN_POLL_S = 0.2
LOOP_JOIN_S = 5.0
"""At shutdown, how long the scheduling loop's thread may take to end."""


def _touch(path: Path) -> None:
    """Touch the heartbeat file; a failure is logged, never raised."""
    try:
        path.touch()
    except OSError as e:
        get_logger().warning("daemon.heartbeat_failed", path=str(path), error=str(e))


@dataclass(frozen=True)
class _Running:
    """What the main loop and the shutdown use once the daemon has started."""

    runner: Runner
    loop: threading.Thread
    watch: EngineWatch
    metrics: Metrics
    engine: Engine


def _stop_loop(ticker: Ticker, loop: threading.Thread) -> None:
    """Stop the scheduling loop; wait a little for its thread, if it was started."""
    ticker.stop()
    if loop.ident is not None:
        loop.join(LOOP_JOIN_S)


class Daemon:
    """One daemon process: ``run`` returns its exit code."""

    def __init__(
        self, config: Config, connect: Callable[[], Engine], clock: Clock | None = None
    ) -> None:
        self._config = config
        self._connect = connect
        self._clock = clock or SystemClock()
        self._log = get_logger()
        self._stop_requested = False
        self._ticker: Ticker | None = None
        self._labels: LabelWatch | None = None
        self.jobset = JobSet(self._schedule, config.jobs)
        """The jobs in force: the config's and, with ``[daemon] labels``, the containers'."""

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 0 after a clean stop, 1 if the engine never answered."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            return self._serve()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _serve(self) -> int:
        """Start, loop, shut down; what start-up took is released on every path."""
        with ExitStack() as stack:
            running = self._start(stack)
            if running is None:
                return EXIT_OK if self._stop_requested else EXIT_FAILURE
            reason = self._loop(running)
            return self._shutdown(stack, running, reason)

    def _start(self, stack: ExitStack) -> _Running | None:
        """Take the engine, the database and the lock; start the parts, settle what an
        earlier daemon left, start the schedule and the admin socket — each entered into
        ``stack`` once taken. None after a failure it logged."""
        settings, parts = self._config.daemon, Parts()
        log_warnings(self._config)
        engine = self._wait_for_engine()
        if engine is None:
            return None
        stack.callback(engine.close)
        base = take_base(stack, engine, settings, parts, self._clock)
        if base is None or not output_reachable(engine, settings, self._config.jobs):
            return None
        swarm_check(engine, self._config.jobs)
        runner, metrics, health = start_runner(
            stack, base, parts, settings, jobs=self._jobs, clock=self._clock
        )
        keeper = self._keeper(stack, base)  # stopped after the drain: see _keeper
        stack.callback(self._drain, runner)
        one_shots = OneShots(
            base.history,
            self._clock,
            runner.submit,
            engine_health=parts.engine_health,
            jobs=self.jobset.all,
        )
        runner.add_listener(one_shots)
        one_shots.load()
        self._ticker = parts.ticker = ticker = Ticker(
            self._clock, one_shots.fire, preparer=runner.preparer
        )
        loop = threading.Thread(target=ticker.run, name="ticker", daemon=True)
        stack.callback(_stop_loop, ticker, loop)
        pages = status_pages(
            settings,
            base,
            health,
            jobs=self._jobs,
            sources=self._sources,
            clock=self._clock,
            metrics=metrics,
        )
        if not status_server(stack, settings, metrics, health, pages):
            return None
        self._discover(stack, engine)
        jobs = self.jobset.all()
        replica = base.ha.replica if base.ha is not None else None
        settle(
            engine,
            base.history,
            runner,
            jobs=jobs,
            daemon=settings.name,
            clock=self._clock,
            replica=replica,
            settled_elsewhere=base.ha.claims.settled if base.ha is not None else None,
        )
        if keeper is not None:
            keeper.start()
        parts.watch = watch = self._watch(base, runner, parts)
        self.jobset.schedule()
        parts.loop = loop
        loop.start()
        if self._labels is not None:
            self._labels.start()
        now = self._clock.now()
        catch_up(jobs, base.history, runner, now)
        one_shots.at_start(jobs, now)
        run_on_start(jobs, runner, now)
        health.ready.set()
        admin_server(stack, settings, runner, jobs=self._jobs, clock=self._clock)
        self._log.info(
            "daemon.started",
            name=settings.name,
            jobs=len(jobs),
            config=str(self._config.path),
            ops_image=base.ops_image,
            ops_image_source=base.ops_image_source,
        )
        return _Running(runner, loop, watch, metrics, engine)

    def _keeper(self, stack: ExitStack, base: Base) -> Keeper | None:
        """With ``ha = "swarm"``: the keeper of the replica's lease (renewed, the dead
        replicas' runs settled, old claims swept), started once the start-up settled; at
        shutdown stopped after the runs drained (the others would judge this replica dead,
        its lease not renewed, and settle its containers from under its runs), before the
        lease goes."""
        if base.ha is None:
            return None
        keeper = Keeper(
            base.engine,
            base.ha.store,
            base.ha.lease,
            base.ha.claims,
            base.history,
            interval=self._config.daemon.ha_lease_interval,
            clock=self._clock,
            jobs=self._jobs,
        )
        stack.callback(keeper.stop)
        return keeper

    def _discover(self, stack: ExitStack, engine: Engine) -> None:
        """With ``[daemon] labels``: the containers' label jobs now, and the watch that keeps
        them current (started with the schedule, stopped at shutdown)."""
        settings = self._config.daemon
        if not settings.labels:
            return
        self._labels = labels = LabelWatch(
            engine, settings.label_filter, settings.label_resync, self._rules, self._relabel
        )
        stack.callback(labels.stop)
        try:
            found = labels.scan()
        except Exception as e:
            self._log.warning("labels.scan_failed", error=str(e), trigger="start")
            labels.refresh("start")
            return
        self._relabel(found, "start", always=True)  # says that labels are on, jobs or none

    def _rules(self) -> Rules:
        """What label jobs may do, and take, under the config in force."""
        return rules_of(self._config)

    def _relabel(self, found: LabelJobs, trigger: str, *, always: bool = False) -> None:
        """A scan's label jobs are the ones in force from now on (``labels.applied`` when they
        changed, or ``always``)."""
        changes = self.jobset.set_labels(found)
        if always or changes.added or changes.removed or changes.changed:
            self._log.info(
                "labels.applied",
                trigger=trigger,
                added=changes.added,
                removed=changes.removed,
                changed=changes.changed,
                jobs=len(found.jobs),
            )

    def _schedule(self, jobs: Mapping[str, JobEntry]) -> None:
        if self._ticker is not None:
            self._ticker.set_jobs(jobs)

    def _watch(self, base: Base, runner: Runner, parts: Parts) -> EngineWatch:
        """The engine's watch: outages, the lock, settling on the engine's return."""
        return EngineWatch(
            base.engine,
            base.history,
            runner,
            base.lock,
            daemon=self._config.daemon.name,
            ops_image=base.ops_image,
            clock=self._clock,
            health=parts.engine_health,
            replica=base.ha.replica if base.ha is not None else None,
            settled_elsewhere=base.ha.claims.settled if base.ha is not None else None,
        )

    def _loop(self, running: _Running) -> str:
        """Serve until a stop signal (its name), another daemon took the lock (``lock_taken``)
        or the scheduling loop ended (``internal``): touch the heartbeat, check the engine,
        reload the config on SIGHUP or a changed file."""
        settings = self._config.daemon
        loop, watch = running.loop, running.watch
        watcher = ConfigWatcher(self._config.path)
        poll = settings.config_poll
        pause = min(HEALTH_CHECK_S, poll) if poll > 0 else HEALTH_CHECK_S
        now = self._clock.monotonic()
        next_check, next_poll = now + watch.interval, now + poll
        while True:
            if loop.is_alive():
                _touch(settings.heartbeat_file)
            signo = self._pause(min(pause, watch.interval))
            if self._clock.monotonic() >= next_check:
                if self._check_engine(watch) is not None:
                    return "lock_taken"
                next_check = self._clock.monotonic() + watch.interval
            if signo in STOP_SIGNALS:
                return signal.Signals(signo).name
            if signo == signal.SIGHUP:
                watcher.changed()  # this content is being loaded now
                self._reload(running, "SIGHUP")
            elif poll > 0 and self._clock.monotonic() >= next_poll:
                # every config_poll, not at every wake (the engine's check wakes the loop
                # every 2 s: a file of 10,000 jobs was read and hashed that often)
                next_poll = self._clock.monotonic() + poll
                if watcher.changed():
                    self._reload(running, "file_changed")
            if not loop.is_alive():
                self._log.error("daemon.failed", reason="scheduler loop ended")
                return "internal"

    def _shutdown(self, stack: ExitStack, running: _Running, reason: str) -> int:
        """Release what start-up took (the stack, in reverse order), then the heartbeat file;
        the exit code: 1 when another daemon took the lock, else 0."""
        self._log.info(
            "daemon.stopping",
            signal=reason,
            active_runs=running.runner.active(),
            shutdown_grace_s=self._config.daemon.shutdown_grace,
        )
        stack.close()
        self._forget_heartbeat()
        self._log.info("daemon.stopped", active_runs=running.runner.active())
        return EXIT_FAILURE if reason == "lock_taken" else EXIT_OK

    def _forget_heartbeat(self) -> None:
        """Remove the heartbeat file at a clean stop (it may be gone, or unremovable)."""
        path = self._config.daemon.heartbeat_file
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            self._log.warning("daemon.heartbeat_failed", path=str(path), error=str(e))

    def _wait_for_engine(self) -> Engine | None:
        """Connect, retrying with backoff for ``engine_wait``; None if it never answers."""
        wait = self._config.daemon.engine_wait
        deadline = self._clock.monotonic() + wait
        delay = 0.5
        announced = False
        while True:
            try:
                engine = self._connected()
            except EngineUnavailableError as e:
                if not announced:
                    self._log.warning("engine.unavailable", error=str(e), retry_for_s=wait)
                    announced = True
                if self._clock.monotonic() + delay > deadline:
                    self._log.error("daemon.failed", reason="engine_unavailable", error=str(e))
                    return None
                if self._pause(delay) in STOP_SIGNALS:
                    self._stop_requested = True
                    return None
                delay = min(delay * 2, 5.0)
            else:
                if announced:
                    self._log.info("engine.available")
                return engine

    def _connected(self) -> Engine:
        """A client whose engine answers a ping; a client whose engine does not is closed."""
        engine = self._connect()
        try:
            engine.ping()
        except BaseException:
            engine.close()
            raise
        return engine

    def _pause(self, seconds: float) -> int | None:
        """Sleep up to ``seconds``; return a handled signal that arrived meanwhile."""
        info = signal.sigtimedwait(HANDLED_SIGNALS, seconds)
        return info.si_signo if info else None

    def _check_engine(self, watch: EngineWatch) -> str | None:
        """One engine check; a bug in it is logged and the main loop goes on."""
        try:
            return watch.check(self.jobset.all())
        except Exception:  # the main loop must outlive any one check
            self._log.exception("engine.check_failed")
            return None

    def _reload(self, running: _Running, trigger: str) -> None:
        """Load the config file again; its jobs run from now on if it is good (a service job
        added or changed on an engine that is no Swarm manager: warned, as at the start)."""
        old = self._config
        reload(old, running.metrics, trigger, self._install)
        if self._config is not old:
            new = self._config.jobs
            touched = {
                n: e for n, e in new.items() if e.job.kind == "service" and old.jobs.get(n) != e
            }
            swarm_check(running.engine, touched)

    def _install(self, config: Config) -> None:
        self.jobset.set_config(config.jobs)
        self._config = config
        if self._labels is not None:
            self._labels.refresh("reload")  # [defaults] and the config's names may differ

    def _jobs(self) -> Mapping[str, JobEntry]:
        """The jobs in force now (a reload or a scan of the labels replaces them)."""
        return self.jobset.all()

    def _sources(self) -> Mapping[str, str]:
        """By job in force, where it comes from: the config's (``config``, ``include:…``),
        else its container's labels."""
        return {**self.jobset.label_sources(), **self._config.sources}

    def _drain(self, runner: Runner) -> None:
        """Let runs finish within the grace; then stop what remains (a second signal: at once)."""
        # The loop has stopped: what it prepared is removed; a preparation still under way
        # (an image pull) is waited for after the runs, never before their grace. A run that
        # ends now starts no chained run (the drain would wait for it).
        runner.chains.close()
        runner.stop_preparing(wait=False)
        deadline = self._clock.monotonic() + self._config.daemon.shutdown_grace
        while runner.active() and (remaining := deadline - self._clock.monotonic()) > 0:
            if self._pause(min(remaining, DRAIN_POLL_S)) in STOP_SIGNALS:
                self._log.info("daemon.hurry", detail="second stop signal: stopping runs now")
                break
        if runner.active():
            self._log.warning("daemon.cancelling_runs", active_runs=runner.active())
            runner.cancel_all()
            grace = max((e.job.stop_grace for e in self.jobset.all().values()), default=10.0)
            runner.join(grace + AFTER_STOP_WAIT_S)
        runner.finish_preparing()
