"""Runs: the scheduler's policies around the steps of a plan.

Policies live here, not in the job kinds: concurrency (``forbid`` skips,
``allow`` overlaps, ``replace`` stops the previous run first), the exclusive locks of
the job key ``lock`` (``scheduler/locks.py``), then the global cap
``max_concurrent_runs`` (its slots: ``scheduler/slots.py``) — both waited for until the
job's ``starting_deadline`` — and retries with capped exponential backoff. Every run
gets a thread and bound log fields (``job``, ``run_id``); ``scheduler/recording.py``
gives it history rows: one per attempt, or one row for a run that never started
(skipped, missed, cancelled while waiting or queued). A run waits for its locks before it
takes a slot: a run waiting for a lock holds no slot of the cap, only its job's place in
flight (its concurrency policy counts it). Runs an earlier daemon left are followed
by ``scheduler/adoption.py``. A run that finishes starts the jobs chained to it
(``scheduler/chains.py``, a listener of the recorder) through ``dispatch`` again. With
``ha = "swarm"`` a fire (``schedule``, ``catch_up``) runs only once this replica claimed it
(``scheduler/claims.py``), first thing on its thread.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from scheduler.adoption import Adoption
from scheduler.chains import Chains
from scheduler.claims import CLAIMED_TRIGGERS
from scheduler.engine_health import EngineHealth
from scheduler.errors import EngineError, EngineNotFoundError
from scheduler.exec_ahead import ExecsAhead, Preparers
from scheduler.locks import Holder, Locks
from scheduler.logs import get_logger
from scheduler.plans import Plans
from scheduler.prepared import Preparations
from scheduler.recording import Recorder
from scheduler.run_files import OutputDirs, RunFiles
from scheduler.runs import ActiveRun, ChainParent, Outcome, RunInterruptedError, Status
from scheduler.slots import Slots
from scheduler.steps import StepExecutor
from scheduler.steps.containers import AFTER_STOP_WAIT_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime

    from jobs.base import BaseJob
    from scheduler.claims import Claims
    from scheduler.clock import Clock
    from scheduler.engine import Engine
    from scheduler.history import History, RunRecord
    from scheduler.prepared import PreparedRun
    from scheduler.run_files import RunFile
    from scheduler.runs import RunListener
    from scheduler.settings import DaemonSettings, JobEntry

UNSCHEDULED = frozenset({"manual", "chain"})
"""Triggers of runs at no scheduled time: they leave the job's last scheduled time alone."""
REPLACE_MARGIN_S = 5.0
"""Beyond stop_grace and the post-stop wait, how long a replacing run waits for the old one."""


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What became of a run handed to the runner: started (``status`` None), or not and why."""

    run_id: str
    status: Status | None = None
    reason: str | None = None


def new_run_id() -> str:
    """A short random id, unique enough to name a run in labels and logs."""
    return uuid.uuid4().hex[:12]


def retry_delay(job: BaseJob, failed_attempt: int) -> float:
    """Seconds to wait after attempt ``failed_attempt``: retry_delay doubling, capped."""
    return float(min(job.retry_delay * 2 ** (failed_attempt - 1), job.retry_delay_max))


def _cancelled_after(run: ActiveRun, failed: Outcome) -> Outcome:
    """How a run cancelled while it waited to try again ends: cancelled, for its
    cancellation's reason, with the last attempt's exit code and output."""
    return Outcome(
        Status.CANCELLED,
        exit_code=failed.exit_code,
        reason=run.cancelled.reason,
        output=failed.output,
    )


def should_retry(job: BaseJob, outcome: Outcome, attempt: int) -> bool:
    """Another attempt after this one? Only for failures and time-outs, within ``retries``."""
    if attempt > job.retries or outcome.status not in (Status.FAILED, Status.TIMED_OUT):
        return False
    if job.retry_exit_codes:
        return outcome.status is Status.FAILED and outcome.exit_code in job.retry_exit_codes
    return True


class Runner:
    """Applies the policies, starts runs in threads, cancels them on shutdown. Its parts:
    the global cap's ``slots``, the plans the attempts execute, a recorder of each run's
    life, and the adoption of runs an earlier daemon left."""

    def __init__(
        self,
        engine: Engine,
        settings: DaemonSettings,
        clock: Clock,
        ops_image: str,
        history: History,
        *,
        listeners: Iterable[RunListener] = (),
        engine_health: EngineHealth | None = None,
        jobs: Callable[[], Mapping[str, JobEntry]] | None = None,
        claims: Claims | None = None,
    ) -> None:
        """``claims``: with ``ha = "swarm"``, this replica's claims — a fire runs only once
        claimed (``scheduler/claims.py``), and the claim hears of its run's end.
        ``listeners`` hear of every attempt that ended and every run skipped or missed
        (the metrics), and of each run's start and its end after the last attempt (the
        notifications); more with ``add_listener``. ``engine_health`` is the watch's view of
        the engine: a run due while it is down is missed. ``jobs``: the jobs in force now,
        where a run's chains find the jobs that follow it (none without)."""
        self.clock = clock
        """The runner's time: how late a run is, how long it took, how long ``join`` waits."""
        self.history = history
        """The run history every run is recorded in."""
        self._claims = claims
        replica = claims.replica if claims is not None else None
        self.steps = StepExecutor(engine, settings, clock, history, replica)
        """Executes an attempt's steps, and stops them when its run is cancelled."""
        self.slots = Slots(settings.max_concurrent_runs, clock)
        """The global cap ``max_concurrent_runs``: a run holds a slot through its attempts."""
        self.locks = Locks(clock)
        """The exclusive locks (the job key ``lock``): a run holds its job's through its
        attempts, taken before its slot."""
        self._plans = Plans(self.steps, ops_image)
        self.chains = Chains(self.dispatch, jobs or dict, clock)
        """Starts the jobs that follow a run when it finishes (``close`` at a stop)."""
        claiming = [claims] if claims is not None else []
        self._recorder = Recorder(history, clock, [*claiming, *listeners, self.chains])
        self.run_files = RunFiles(OutputDirs(settings.output_dir, engine), clock.now)
        """Each run's output file, for the jobs that keep their output."""
        self._adoption = Adoption(self.steps, self._plans, self._recorder, clock, self.run_files)
        self._engine_health = engine_health or EngineHealth()
        self._engine = engine
        self.preparations = Preparations(
            self.steps.containers,
            self._plans.of,
            clock,
            self._engine_health,
            new_run_id,
            skipped=self._forbidden,
        )
        """The runs prepared ahead of their time (the ticker prepares them, dispatch takes
        them)."""
        self._prepared: dict[str, PreparedRun] = {}
        """Prepared runs taken by a run in flight, by run id, until its first attempt."""
        self._overlapping: dict[str, str] = {}
        """By job: the run in flight that made its last scheduled run be skipped (forbid)."""
        self._interrupted: dict[str, Holder] = {}
        """By run id: the runs an engine outage cut off, whose containers may still run —
        they keep their locks until the engine is back (``adopt`` takes them over, or
        ``release_interrupted`` gives them back)."""
        self._settles = 0
        """How many settlings (``release_interrupted``, at each engine return) have ended."""
        self.execs_ahead = ExecsAhead(engine, self._plans.of, clock, self._engine_health)
        """The execs created ahead of their runs' time (the ticker prepares them, dispatch
        takes them)."""
        self.preparer = Preparers(self.preparations, self.execs_ahead)
        """What the ticker tells of runs coming: the runs' and the execs' preparations."""
        self._active: dict[str, ActiveRun] = {}
        self._lock = threading.Lock()
        self._log = get_logger()

    # --- called by the ticker and the daemon ----------------------------------

    def add_listener(self, listener: RunListener) -> None:
        """``listener`` hears of runs from now on (after those given at construction)."""
        self._recorder.add_listener(listener)

    def active_runs(self) -> dict[str, ActiveRun]:
        """The runs in flight now, by run id (a copy: runs come and go meanwhile)."""
        with self._lock:
            return dict(self._active)

    def running_by_job(self) -> dict[str, int]:
        """Runs in flight, by job."""
        counts: dict[str, int] = {}
        for run in self.active_runs().values():
            counts[run.entry.name] = counts.get(run.entry.name, 0) + 1
        return counts

    def active_ids(self) -> frozenset[str]:
        """Run ids in flight (an engine-return settle leaves them alone)."""
        with self._lock:
            return frozenset(self._active)

    def active(self) -> int:
        """Runs in flight."""
        with self._lock:
            return len(self._active)

    def submit(
        self, entry: JobEntry, scheduled_at: datetime, trigger: str = "schedule"
    ) -> str | None:
        """Apply the job's concurrency policy; start a run unless it is skipped. Return its id."""
        dispatched = self.dispatch(entry, scheduled_at, trigger)
        return dispatched.run_id if dispatched.status is None else None

    def dispatch(
        self,
        entry: JobEntry,
        scheduled_at: datetime,
        trigger: str = "schedule",
        parent: ChainParent | None = None,
    ) -> Dispatched:
        """``submit``, telling why a run did not start (skipped, missed, failed); ``parent``:
        the run whose end chained this one (trigger ``chain``)."""
        if trigger not in UNSCHEDULED:  # no scheduled time (catch-up looks at those)
            self.history.record_fire(entry.name, scheduled_at)
        prepared = self.preparations.take(entry, scheduled_at) if trigger == "schedule" else None
        run_id = prepared.run_id if prepared is not None else new_run_id()
        run = ActiveRun(run_id, entry, scheduled_at, trigger, parent=parent)
        if trigger == "schedule":
            run.exec_ahead = self.execs_ahead.take(entry, scheduled_at)
        if prepared is not None:
            with self._lock:
                self._prepared[run_id] = prepared
        if (engine_error := self._engine_health.error) is not None:
            self._unstarted(run, Status.MISSED, "engine_unavailable", error=engine_error)
            return Dispatched(run.run_id, Status.MISSED, "engine_unavailable")
        with self._lock:
            mine = [r for r in self._active.values() if r.entry.name == entry.name]
            policy = entry.job.concurrency
            if mine and policy == "forbid":
                blocking = mine[0].run_id
                if trigger == "schedule":
                    self._overlapping[entry.name] = blocking
            else:
                blocking = None
                replaced = mine if policy == "replace" else []
                self._active[run.run_id] = run
        if blocking is not None:
            reason = "previous run still running"
            self._unstarted(run, Status.SKIPPED, reason, running_run_id=blocking)
            return Dispatched(run.run_id, Status.SKIPPED, reason)
        run.thread = threading.Thread(
            target=self._thread,
            args=(run, lambda: self._execute(run, replaced)),
            name=f"run-{entry.name}-{run.run_id}",  # pragma: no mutate
            daemon=True,
        )
        if (error := self._start(run, run.thread)) is not None:
            self._unstarted(run, Status.FAILED, "thread_start_failed", error=str(error))
            return Dispatched(run.run_id, Status.FAILED, "thread_start_failed")
        return Dispatched(run.run_id)

    def _forbidden(self, entry: JobEntry) -> bool:
        """``entry``'s runs overlap: ``forbid``, and the run that made its last scheduled
        run be skipped is still in flight — its next run is most likely skipped too. (A run
        merely in flight is no such sign: it may well end before the next one is due.)"""
        with self._lock:
            blocking = self._overlapping.get(entry.name)
            if blocking is None:
                return False
            if blocking in self._active and entry.job.concurrency == "forbid":
                return True
            del self._overlapping[entry.name]
            return False

    def _unstarted(self, run: ActiveRun, status: Status, reason: str, **fields: object) -> None:
        """Record a run that never started; remove the container prepared for it (at once on
        the run's own thread, else in a thread: the ticker's loop never waits)."""
        self._recorder.unstarted(run, status, reason, **fields)
        self._release(run, reason, wait=threading.current_thread() is run.thread)
        self._keep_exec(run)

    def _release(self, run: ActiveRun, reason: str, *, wait: bool) -> None:
        """The container prepared for ``run`` will not be started: remove it."""
        with self._lock:
            prepared = self._prepared.pop(run.run_id, None)
        if prepared is not None:
            self.preparations.discard(prepared, reason, wait=wait)

    def _keep_exec(self, run: ActiveRun) -> None:
        """The exec created ahead for ``run`` was not started: it serves the job's next run."""
        with self._lock:
            ahead, run.exec_ahead = run.exec_ahead, None
        if ahead is not None:
            self.execs_ahead.give_back(ahead)

    def stop_preparing(self, *, wait: bool = True) -> None:
        """Prepare no more runs; remove the prepared ones no run has taken (a stop); with
        ``wait``, wait (bounded) for the preparations under way, else ``finish_preparing``
        does."""
        self.preparations.close(wait=wait)
        self.execs_ahead.close()

    def finish_preparing(self) -> None:
        """Wait (bounded) for the preparations and removals under way (after a stop)."""
        self.preparations.finish()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every run to end; True when none is left."""
        deadline = self.clock.monotonic() + timeout
        while True:
            with self._lock:
                threads = [r.thread for r in self._active.values() if r.thread is not None]
            if not threads:
                return True
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            threads[0].join(remaining)

    def cancel_all(self, reason: str = "daemon_stopping") -> None:
        """Stop every run in flight: its container gets the stop signal, then a kill."""
        for run in self.active_runs().values():
            self._cancel(run, reason)

    def _cancel(self, run: ActiveRun, reason: str) -> None:
        run.cancelled.cancel(reason)
        attempt = run.attempt
        self.slots.wake_all()  # a queued run sees its flag and gives up
        self.locks.wake_all()  # as does a run waiting for a lock
        if attempt is not None:
            self.steps.stop(attempt)

    # --- a run's thread -------------------------------------------------------

    def _start(self, run: ActiveRun, thread: threading.Thread) -> RuntimeError | None:
        """Start ``thread``, ``run``'s; on failure (the process's thread limit: "can't start new
        thread") take ``run`` out of the runs in flight, so that it blocks none of its job's
        later runs, and return the error."""
        try:
            thread.start()
        except RuntimeError as e:
            with self._lock:
                self._active.pop(run.run_id, None)
            return e
        return None

    def _thread(self, run: ActiveRun, body: Callable[[], None]) -> None:
        """A run's thread: ``body`` with the run's log fields bound; a bug (or a broken state
        database) ends this run, not the daemon; then the run is no longer in flight."""
        structlog.contextvars.bind_contextvars(job=run.entry.name, run_id=run.run_id)
        try:
            body()  # its locks and slot are released when it returns
            self._recorder.after(run)  # then its chains start
        except Exception:
            self._log.exception("run.crashed")
        finally:
            self._release(run, "not_started", wait=True)
            self._keep_exec(run)
            with self._lock:
                self._active.pop(run.run_id, None)
            structlog.contextvars.clear_contextvars()

    def _execute(self, run: ActiveRun, replaced: list[ActiveRun]) -> None:
        if self._container_stopped(run) or not self._claimed(run):
            return
        self._replace(replaced)
        holder = Holder(run.entry.name, run.run_id)
        if not self._take_locks(run, holder):
            return
        interrupted = False
        try:
            if self._take_slot(run):
                try:
                    interrupted = self._attempts(run)
                finally:
                    self.slots.free()
        finally:
            self._let_go(run, holder, interrupted=interrupted)

    def _let_go(self, run: ActiveRun, holder: Holder, *, interrupted: bool) -> None:
        """A run's thread ends: its locks go back — unless an engine outage cut it off and
        no settling has passed since: its container may run on, so the locks wait for the
        settling that adopts it (or finds it gone). A settling that came while this thread
        was still in hand skipped the run: nothing would ever give them back."""
        with self._lock:
            parked = interrupted and run.settles_seen == self._settles
            if parked:
                self._interrupted[run.run_id] = holder
        if not parked:
            self.locks.release(holder)

    def _container_stopped(self, run: ActiveRun) -> bool:
        """A label job whose container does not run (stopped, or removed since the last
        scan): the run is recorded skipped, reason ``container_not_running``. The container
        is the one that declared this very job (one recreated since is another's). An engine
        that does not answer is no answer: the run takes the normal path (an outage)."""
        container = run.entry.container
        if container is None:
            return False
        try:
            if self._engine.is_running(container.id):
                return False
        except EngineNotFoundError:
            pass  # removed since the last scan: not running either
        except EngineError:
            return False
        self._unstarted(run, Status.SKIPPED, "container_not_running", container=container.name)
        return True

    def _claimed(self, run: ActiveRun) -> bool:
        """With ``ha = "swarm"``, a fire runs only once this replica claimed it: another's
        claim is ``run.skipped`` (``claimed``, its ``claimant``); no answer from the store is
        ``run.missed`` (``claim_failed``, the ``error``). Other triggers are not claimed."""
        claims = self._claims
        if claims is None or run.trigger not in CLAIMED_TRIGGERS:
            return True
        decision = claims.claim(run.entry.name, run.scheduled_at, run.run_id)
        if decision.won:
            return True
        reason = decision.reason or "claim_failed"
        if reason == "claimed":
            self._unstarted(run, Status.SKIPPED, reason, claimant=decision.claimant)
        else:
            fields = {"error": decision.error} if decision.error else {}
            self._unstarted(run, Status.MISSED, reason, **fields)
        return False

    def _replace(self, replaced: list[ActiveRun]) -> None:
        if not replaced:
            return
        self._log.info("run.replacing", replaced_run_ids=[r.run_id for r in replaced])
        for old in replaced:
            self._cancel(old, "replaced")
        for old in replaced:
            if old.thread is not None:
                old.thread.join(old.entry.job.stop_grace + AFTER_STOP_WAIT_S + REPLACE_MARGIN_S)

    def _take_locks(self, run: ActiveRun, holder: Holder) -> bool:
        """Wait for the job's locks (all or none) until the starting deadline; record why
        not, if not. The names are the job's as the run was dispatched (a reload changes
        those of later runs)."""
        deadline = run.entry.job.starting_deadline
        names = run.entry.job.locks
        refused = self.locks.acquire(holder, names, run.scheduled_at, deadline, run.cancelled)
        if refused is None:
            return True
        fields: dict[str, object] = {}
        if (holding := refused.holder) is not None:
            fields = {"holder_job": holding.job, "holder_run_id": holding.run_id}
        missed = refused.lock is not None or refused.reason == "starting_deadline"
        self._refused(run, refused.reason, refused.late_s, missed=missed, **fields)
        return False

    def _take_slot(self, run: ActiveRun) -> bool:
        """Wait for a global slot until the starting deadline; record why not, if not."""
        deadline = run.entry.job.starting_deadline
        refused = self.slots.take(run.scheduled_at, deadline, run.cancelled)
        if refused is None:
            return True
        missed = refused.reason == "starting_deadline"
        self._refused(run, refused.reason, refused.late_s, missed=missed)
        return False

    def _refused(
        self, run: ActiveRun, reason: str, late_s: float, *, missed: bool, **fields: object
    ) -> None:
        """A run that waited (for its locks, or a slot) and gave up: ``missed`` past its
        starting deadline (how late, the deadline and ``fields``), else cancelled."""
        if missed:
            deadline = run.entry.job.starting_deadline
            self._unstarted(
                run,
                Status.MISSED,
                reason,
                lag_s=round(late_s, 3),
                starting_deadline_s=deadline,
                **fields,
            )
        else:
            self._unstarted(run, Status.CANCELLED, reason)

    def _attempts(self, run: ActiveRun) -> bool:
        """Run the attempts; True when the engine went away during one (the run is left to
        the settling at its return)."""
        job = run.entry.job
        file = self.run_files.open(run.entry.name, job.output, run.run_id)
        number = 1
        try:
            while True:
                outcome = self._attempt(run, number, file)
                if outcome is None:
                    if file is not None:
                        file.abandon()  # ended by the settling, when the engine is back
                    return True  # interrupted: settled when the engine is back
                if run.cancelled.is_set() or not should_retry(job, outcome, number):
                    self._recorder.ended(run, number, outcome)
                    return False
                delay = retry_delay(job, number)
                self._log.info(
                    "run.retrying", attempt=number, next_attempt=number + 1, delay_s=delay
                )
                if file is not None:
                    file.meta(f"retry attempt={number + 1} delay_s={delay}")
                if self.clock.sleep(delay, run.cancelled):  # cancelled between attempts
                    self._end_file(run, file, Status.CANCELLED.value, outcome.exit_code)
                    self._recorder.ended(run, number, _cancelled_after(run, outcome))
                    return False
                number += 1
        finally:  # unless ended above: a bug ended the run; the file is kept
            self._end_file(run, file, "crashed", None, keep=True)

    def _end_file(
        self,
        run: ActiveRun,
        file: RunFile | None,
        status: str,
        exit_code: int | None,
        *,
        keep: bool | None = None,
    ) -> None:
        """End the run's output file (before the run's last attempt is recorded and logged:
        whoever follows the file, or waits for ``run.<status>``, finds its end line there);
        once: a file already ended stays as it is."""
        spec = run.entry.job.output
        if file is not None and spec is not None and not file.closed:
            self.run_files.close(
                run.entry.name, spec, file, status=status, exit_code=exit_code, keep=keep
            )

    def _attempt(self, run: ActiveRun, number: int, file: RunFile | None) -> Outcome | None:
        started, began = self.clock.now(), self.clock.monotonic()
        attempt = self._recorder.began(run, number, started)
        attempt.output_file = file
        with self._lock:  # only the first attempt starts what was prepared
            prepared = self._prepared.pop(run.run_id, None)
            attempt.exec_ahead, run.exec_ahead = run.exec_ahead, None
        attempt.prepared = prepared.created if prepared is not None else None
        run.attempt = attempt
        try:
            outcome = self._plans.execute(attempt)
        except RunInterruptedError as e:
            with self._lock:
                run.settles_seen = self._settles
            self._recorder.interrupted(number, e)
            return None  # still recorded running: settled when the engine is back
        finally:
            run.attempt = None
            if prepared is not None and attempt.prepared is not None:  # its step did not
                self.preparations.discard(prepared, "not_claimed", wait=True)
            if attempt.exec_ahead is not None:  # its step did not start it
                self.execs_ahead.give_back(attempt.exec_ahead)
        if run.cancelled.is_set() or not should_retry(run.entry.job, outcome, number):
            self._end_file(run, file, outcome.status.value, outcome.exit_code)  # the last one
        self._recorder.finished(run, attempt, outcome, self.clock.monotonic() - began)
        return outcome

    # --- runs an earlier daemon started -------------------------------------------

    def adopt(
        self,
        entry: JobEntry,
        record: RunRecord,
        container_id: str,
        start_after: list[str] | None = None,
    ) -> None:
        """Wait for a container left running by an earlier instance; record how it ends; then
        start ``start_after`` again (containers that run had stopped). The run holds its
        job's locks meanwhile (taken at once: it runs already; a run an engine outage cut
        off kept them), and keeps its chain parent if the record names one."""
        run = ActiveRun(
            record.run_id, entry, record.scheduled_at, record.trigger, parent=self._parent(record)
        )
        after = start_after or []
        holder = Holder(entry.name, run.run_id)
        with self._lock:  # cut off by an outage: it kept its locks (same run, same holder)
            self._interrupted.pop(run.run_id, None)
        self._claim(holder, entry.job.locks)

        def follow() -> None:
            try:
                self._adoption.follow(run, record, container_id, after)
            finally:
                self.locks.release(holder)

        run.thread = threading.Thread(
            target=self._thread,
            args=(run, follow),
            name=f"adopt-{run.run_id}",  # pragma: no mutate
            daemon=True,
        )
        with self._lock:
            self._active[run.run_id] = run
        if (error := self._start(run, run.thread)) is not None:  # the next start settles it
            self.locks.release(holder)
            self._log.warning(
                "run.adopt_failed", job=entry.name, run_id=run.run_id, error=str(error)
            )

    def _claim(self, holder: Holder, names: tuple[str, ...]) -> None:
        """An adopted run holds its job's locks at once; a name another run holds stays
        that run's (``run.locks_not_claimed``: the two may overlap)."""
        taken = self.locks.claim(holder, names)
        missing = [name for name in names if name not in taken]
        if missing:
            held = self.locks.held()
            self._log.warning(
                "run.locks_not_claimed",
                job=holder.job,
                run_id=holder.run_id,
                locks=missing,
                holder_run_ids=sorted({h.run_id for n, h in held.items() if n in missing}),
            )

    def _parent(self, record: RunRecord) -> ChainParent | None:
        """The run that chained ``record``'s, as recorded (None: not a chained run, or its
        parent's rows are gone)."""
        if record.parent_run_id is None:
            return None
        parent = self.history.run(record.parent_run_id)
        if parent is None:
            return None
        try:
            status = Status(parent.status)
        except ValueError:
            return None
        return ChainParent(parent.job, parent.run_id, status)

    def release_interrupted(self) -> None:
        """The engine is back and settled: the runs an outage cut off that were not adopted
        (their containers are gone) give back their locks."""
        with self._lock:
            holders, self._interrupted = list(self._interrupted.values()), {}
            self._settles += 1
        for holder in holders:
            self.locks.release(holder)

    def drop_taken(self, reason: str) -> None:
        """The engine is back: what runs still waiting (a lock, a slot) took — a prepared
        container, an exec created ahead — was made before it went away and may be gone;
        dropped, those runs take the normal path."""
        with self._lock:
            prepared, self._prepared = list(self._prepared.values()), {}
            execs = []
            for run in self._active.values():
                if run.exec_ahead is not None:
                    execs.append(run.exec_ahead)
                    run.exec_ahead = None
        for item in prepared:
            self.preparations.discard(item, reason, wait=False)
        for ahead in execs:
            self.execs_ahead.drop(ahead, reason)

    def recover(self, entry: JobEntry, container_id: str) -> None:
        """Keep what an ended container of ``entry``'s, left by a dead daemon, holds (a
        shipping tool's checkpoints in its log): the job's step handlers say what."""
        self.steps.recover(entry.name, self._plans.all_steps(entry), container_id)
