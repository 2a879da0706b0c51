"""The daemon's start-up, part by part, and what runs once when it has started.

The parts: the state database, the ops image and the lock (``take_base``, on a connected
engine); the metrics, health, notifier and runner (``start_runner``); the HTTP listener
(``status_server``) and the admin socket (``admin_server``). Each is entered into the
daemon's ``ExitStack`` as soon as it is taken; a part that cannot be had is logged as
``daemon.failed``. ``Daemon._start`` calls them in order. Once started: a missed run of each
``catch_up`` job (the latest missed time, within its ``starting_deadline``; the one-shots'
instants are ``scheduler.one_shots``'s), then every ``run_on_start`` job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scheduler.admin import AdminServer, trigger
from scheduler.claims import Claims
from scheduler.clock import SystemClock
from scheduler.engine import LockHeldError, SwarmStore
from scheduler.engine_health import EngineHealth
from scheduler.errors import EngineError
from scheduler.history import History, HistoryError
from scheduler.logs import get_logger
from scheduler.metrics import Live, Metrics
from scheduler.notify import Notifier
from scheduler.one_shots import catch_up_in_time
from scheduler.registries import Registries
from scheduler.replicas import Lease, new_replica_id
from scheduler.run_files import OutputDirs
from scheduler.runner import Runner
from scheduler.schedule import latest_fire
from scheduler.secrets import SecretError
from scheduler.status import Health, StatusServer
from scheduler.ui import PageSource, StatusPages
from scheduler.watch import take_lock

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping
    from contextlib import ExitStack
    from datetime import datetime

    from scheduler.clock import Clock
    from scheduler.engine import Engine, Lock
    from scheduler.settings import DaemonSettings, JobEntry
    from scheduler.ticker import Ticker
    from scheduler.watch import EngineWatch

DEFAULT_OPS_IMAGE = "crontainer:latest"
NOTIFY_DRAIN_S = 10.0
"""At shutdown, how long queued notifications may still take."""


@dataclass
class Parts:
    """Parts read before they exist (by the HTTP listener, by the lock's release), set
    as the daemon starts them."""

    runner: Runner | None = None
    engine_health: EngineHealth = field(default_factory=EngineHealth)
    """The engine as the watch last saw it: the runner, the metrics and /healthz read it."""
    loop: threading.Thread | None = None
    watch: EngineWatch | None = None
    ticker: Ticker | None = None
    """The scheduling loop: the metrics read each job's next time from it."""


@dataclass(frozen=True)
class Ha:
    """With ``ha = "swarm"``: the Swarm's store, this replica's id, lease and claims."""

    store: SwarmStore
    replica: str
    lease: Lease
    claims: Claims


@dataclass(frozen=True)
class Base:
    """The engine, the state database and the lock (with ``ha = "swarm"``: the replica's
    lease, and its claims): what every other part is built on."""

    engine: Engine
    history: History
    lock: Lock
    ops_image: str
    ops_image_source: str
    ha: Ha | None = None


def take_base(
    stack: ExitStack,
    engine: Engine,
    settings: DaemonSettings,
    parts: Parts,
    clock: Clock | None = None,
) -> Base | None:
    """The state database and the lock (with ``ha = "swarm"``: the lease, on ``clock``) on
    a connected ``engine``, each entered into ``stack``; None after ``daemon.failed`` if one
    cannot be had."""
    log = get_logger()
    try:
        history = History.open(settings.state_dir)
    except HistoryError as e:
        log.error("daemon.failed", reason="state_dir", error=str(e))  # noqa: TRY400
        return None
    stack.callback(history.close)
    image, source = ops_image(settings, engine)
    if settings.ha == "swarm":
        ha = take_lease(engine, settings, clock or SystemClock())
        if ha is None:
            return None
        stack.callback(ha.lease.release)
        return Base(engine, history, ha.lease, image, source, ha)
    try:
        auth = Registries(settings.registry_config).auth_for(image, None)
        lock = take_lock(engine, settings.name, image, auth)
    except (EngineError, SecretError) as e:  # SecretError: the registry's credentials
        reason = "already_running" if isinstance(e, LockHeldError) else "lock"
        log.error("daemon.failed", reason=reason, error=str(e))  # noqa: TRY400
        return None
    stack.callback(_release_lock, parts, lock)
    return Base(engine, history, lock, image, source)


def take_lease(engine: Engine, settings: DaemonSettings, clock: Clock) -> Ha | None:
    """``ha = "swarm"``: the engine must be a Swarm manager's; this replica's id, its lease
    taken (in place of the single-instance lock) and its claims. None after
    ``daemon.failed`` (reason ``ha``)."""
    log = get_logger()
    if not isinstance(engine, SwarmStore):
        log.error("daemon.failed", reason="ha", error="this engine has no Swarm config store")
        return None
    replica = new_replica_id()
    try:
        problem = engine.manager_problem()
        if problem is not None:
            log.error("daemon.failed", reason="ha", error=problem)
            return None
        lease = Lease(engine, settings.name, replica, _host(engine))
        lease.take(settings.ha_claim_timeout)
    except EngineError as e:
        log.error("daemon.failed", reason="ha", error=str(e))  # noqa: TRY400
        return None
    claims = Claims(
        engine,
        settings.name,
        replica,
        clock,
        timeout=settings.ha_claim_timeout,
        keep=settings.ha_claim_keep,
    )
    log.info("ha.replica_started", replica=replica, lease=lease.name)
    return Ha(engine, replica, lease, claims)


def _host(engine: Engine) -> str:
    try:
        return engine.host_name()
    except EngineError:
        return "unknown"


def output_reachable(
    engine: Engine, settings: DaemonSettings, jobs: Mapping[str, JobEntry]
) -> bool:
    """Whether the output volume of every enabled job that keeps its output is reachable
    (``[daemon] output_dir``); False after ``daemon.failed`` (reason ``output``) naming each
    job and volume that is not."""
    problems = OutputDirs(settings.output_dir, engine).problems(jobs)
    if problems:
        get_logger().error("daemon.failed", reason="output", errors=problems)
        return False
    return True


def swarm_check(engine: Engine, jobs: Mapping[str, JobEntry]) -> None:
    """Warn (``daemon.not_swarm_manager``) when enabled service jobs exist and the engine is
    not a Swarm manager: their runs would fail (reason ``not_swarm_manager``)."""
    names = sorted(n for n, e in jobs.items() if e.job.kind == "service" and e.job.enabled)
    if not names:
        return
    try:
        manager = engine.swarm_manager()
    except EngineError:
        return  # the runs say it, when the engine answers
    if not manager:
        get_logger().warning("daemon.not_swarm_manager", jobs=names)


def _release_lock(parts: Parts, taken: Lock) -> None:
    """Let go of the lock held now: the watch's (taken again after an outage), else the first."""
    (parts.watch.lock if parts.watch is not None else taken).release()


def ops_image(settings: DaemonSettings, engine: Engine) -> tuple[str, str]:
    """The ops containers' image and where it came from (config, own container, default)."""
    if settings.ops_image:
        return settings.ops_image, "config"
    own = engine.own_image()
    if own:
        return own, "own_container"
    return DEFAULT_OPS_IMAGE, "default"


def start_runner(
    stack: ExitStack,
    base: Base,
    parts: Parts,
    settings: DaemonSettings,
    *,
    jobs: Callable[[], Mapping[str, JobEntry]],
    clock: Clock,
) -> tuple[Runner, Metrics, Health]:
    """Metrics and health, the notifier and the runner; the notifier is entered into
    ``stack`` (closed at the end), the runner's drain is the caller's to enter."""
    metrics, health = _observe(base.history, parts, jobs, clock)
    notifier = _notifier(base.engine, base.history, settings, clock)
    stack.callback(notifier.close, NOTIFY_DRAIN_S)
    runner = Runner(
        base.engine,
        settings,
        clock,
        base.ops_image,
        base.history,
        listeners=(metrics, notifier),
        engine_health=parts.engine_health,
        jobs=jobs,
        claims=base.ha.claims if base.ha is not None else None,
    )
    parts.runner = runner
    return runner, metrics, health


def _notifier(engine: Engine, history: History, settings: DaemonSettings, clock: Clock) -> Notifier:
    """The notification sender, knowing each job's last outcome (for recovery)."""
    try:
        host = engine.host_name()
    except EngineError:
        host = "unknown"
    last = {job: mark.last_status for job, mark in history.marks().items() if mark.last_status}
    notifier = Notifier(host, settings.name, clock, last_status=last)
    notifier.start()
    return notifier


def _observe(
    history: History, parts: Parts, jobs: Callable[[], Mapping[str, JobEntry]], clock: Clock
) -> tuple[Metrics, Health]:
    """Metrics and health, reading the runner and the loop once they exist."""
    live = Live(
        jobs=jobs,
        running=lambda: parts.runner.running_by_job() if parts.runner else {},
        now=clock.now,
        engine_error=lambda: parts.engine_health.error if parts.runner else "starting",
        planned=lambda: parts.ticker.planned() if parts.ticker else {},
        waiting=lambda: parts.runner.locks.waiting() if parts.runner else {},
    )
    metrics = Metrics(live)
    for job, mark in history.marks().items():
        metrics.seed(job, mark.last_finished_at, mark.last_success_at)
    health = Health(
        loop_alive=lambda: parts.loop is not None and parts.loop.is_alive(),
        engine_error=live.engine_error,
        state_error=lambda: history.write_error,
    )
    return metrics, health


def status_pages(
    settings: DaemonSettings,
    base: Base,
    health: Health,
    *,
    jobs: Callable[[], Mapping[str, JobEntry]],
    sources: Callable[[], Mapping[str, str]],
    clock: Clock,
    metrics: Metrics,
) -> StatusPages | None:
    """The status page's pages (``[daemon] ui``), or None when it is off."""
    if not settings.ui:
        return None
    source = PageSource(
        jobs=jobs,
        sources=sources,
        history=base.history,
        health=health,
        now=clock.now,
        daemon=settings.name,
        output_dirs=OutputDirs(settings.output_dir, base.engine) if settings.ui_output else None,
        reloads=metrics.reloads,
    )
    return StatusPages(source)


def status_server(
    stack: ExitStack,
    settings: DaemonSettings,
    metrics: Metrics,
    health: Health,
    pages: StatusPages | None = None,
) -> bool:
    """The HTTP listener of /metrics, /healthz and /readyz (unless turned off), and of the
    status page's ``pages`` if given, entered into ``stack``; False after ``daemon.failed``
    when its address cannot be bound."""
    address = settings.http_address()
    if address is None:
        return True
    log = get_logger()
    try:
        status = StatusServer(*address, metrics, health, pages=pages)
    except OSError as e:
        log.error("daemon.failed", reason="http", http=settings.http, error=str(e))  # noqa: TRY400
        return False
    stack.callback(status.stop)
    status.start()
    log.info("http.listening", address=settings.http, port=status.port, ui=pages is not None)
    return True


def admin_server(
    stack: ExitStack,
    settings: DaemonSettings,
    runner: Runner,
    *,
    jobs: Callable[[], Mapping[str, JobEntry]],
    clock: Clock,
) -> None:
    """The admin socket (run now one of the jobs configured at that moment), entered into
    ``stack``: removed at the end."""
    admin = AdminServer(settings.state_dir, lambda job: trigger(runner, jobs(), job, clock.now()))
    stack.callback(admin.stop)
    admin.start()


def catch_up(jobs: Mapping[str, JobEntry], history: History, runner: Runner, now: datetime) -> None:
    """A job with catch_up whose run fell due while the daemon was down runs once, for the
    latest missed time, if that is within its starting_deadline. One-shots (``@at``) are
    ``scheduler.one_shots``'s: their instant is claimed, and kept done."""
    marks = history.marks()
    for entry in jobs.values():
        job, mark = entry.job, marks.get(entry.name)
        if not (job.enabled and job.catch_up) or mark is None or mark.last_scheduled_at is None:
            continue
        if entry.schedule.one_shot is not None:
            continue
        missed = latest_fire(entry.schedule, mark.last_scheduled_at, now)
        if missed is None:
            continue
        if catch_up_in_time(entry, missed, now):
            runner.submit(entry, missed, trigger="catch_up")


def run_on_start(jobs: Mapping[str, JobEntry], runner: Runner, now: datetime) -> None:
    """Every enabled job with run_on_start runs (trigger ``start``)."""
    for entry in jobs.values():
        if entry.job.enabled and entry.job.run_on_start:
            runner.submit(entry, now, trigger="start")
