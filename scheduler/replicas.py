"""Replicas of one daemon (``[daemon] ha = "swarm"``): who is alive, and what a dead one left.

Each process is a replica with a random id. Instead of the single-instance lock container,
it keeps a *lease*: the Swarm config ``crontainer-replica-<h(name)>-<replica>``, whose
labels it updates every ``ha_lease_interval``. Another replica counts it dead when that
lease's version index has not moved for ``LEASE_MISSES`` intervals, timed by its own
monotonic clock (no two hosts' clocks are compared), or when it is gone. A clean stop
removes the lease.

The ``Keeper`` of each replica, every interval: renews its lease (on a thread of its own,
so that slow settling never holds it back), and on another thread reads the others' leases,
settles the containers of dead replicas (``settle_foreign``), removes a dead replica's lease
once nothing of it is left, and every ``SWEEP_EVERY`` intervals sweeps old claims.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import TYPE_CHECKING, Protocol

from scheduler.dead_replicas import settle_foreign, settle_foreign_service
from scheduler.engine import LABEL_DAEMON, LABEL_REPLICA, LABEL_ROLE
from scheduler.errors import EngineError, EngineNotFoundError
from scheduler.logs import get_logger
from scheduler.recovery import OTHERS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from scheduler.claims import Claims
    from scheduler.clock import Clock
    from scheduler.engine import ConfigInfo, ContainerInfo, Engine, ServiceInfo, SwarmStore
    from scheduler.history import History
    from scheduler.settings import JobEntry

LEASE_PREFIX = "crontainer-replica-"
ROLE_REPLICA = "replica"
LABEL_BEAT = "crontainer.beat"
LABEL_HOST = "crontainer.host"
LEASE_MISSES = 3
"""A lease that has not moved for this many intervals is a dead replica's."""
SWEEP_EVERY = 12
"""Claims are swept every this many lease intervals."""


class Settleable(Protocol):
    """A container or a service of a replica: its labels name the replica and the run."""

    @property
    def labels(self) -> Mapping[str, str]: ...


def new_replica_id() -> str:
    """A random id for this process."""
    return uuid.uuid4().hex[:12]


def lease_name(daemon: str, replica: str) -> str:
    """The lease's config name (48 characters: a config name takes 64)."""
    return f"{LEASE_PREFIX}{hashlib.sha256(daemon.encode()).hexdigest()[:16]}-{replica}"


def lease_labels(daemon: str) -> dict[str, str]:
    """The labels every lease of ``daemon`` carries (what a listing filters on)."""
    return {LABEL_DAEMON: daemon, LABEL_ROLE: ROLE_REPLICA}


class Liveness:
    """Which replicas are dead, judged from the leases' version indexes as this replica saw
    them move, by its own monotonic clock."""

    def __init__(self, stale_after: float) -> None:
        self._stale_after = stale_after
        self._seen: dict[str, tuple[int, float]] = {}
        """By replica: its lease's version, and when this replica first saw that version."""

    def observe(self, versions: Mapping[str, int], now: float) -> None:
        """The leases listed at ``now`` (monotonic): replica → version index."""
        seen: dict[str, tuple[int, float]] = {}
        for replica, version in versions.items():
            known = self._seen.get(replica)
            seen[replica] = known if known is not None and known[0] == version else (version, now)
        self._seen = seen

    def dead(self, replica: str, now: float) -> bool:
        """Whether ``replica`` is dead at ``now``: its lease is gone, or has not moved for
        ``stale_after`` seconds since this replica first saw it."""
        known = self._seen.get(replica)
        return known is None or now - known[1] >= self._stale_after

    def forget(self) -> None:
        """This replica was cut off from the store: what it saw before says nothing of the
        time since (nobody may have been able to renew), so each lease listed next counts
        from then."""
        self._seen = {}

    def known(self) -> frozenset[str]:
        """The replicas whose leases were listed last."""
        return frozenset(self._seen)


class Lease:
    """This replica's lease; in place of the lock (``lost`` is never set: a lease lost to an
    outage is made again at the next renewal)."""

    def __init__(self, store: SwarmStore, daemon: str, replica: str, host: str) -> None:
        self._store = store
        self.name = lease_name(daemon, replica)
        self._labels = lease_labels(daemon) | {LABEL_REPLICA: replica, LABEL_HOST: host}
        self._beat = 0
        self._id = ""
        self._failing = False
        self.lost = threading.Event()
        self._log = get_logger()

    def take(self, timeout: float) -> None:
        """Create the lease (EngineError if the store refuses)."""
        self._id = self._store.create_config(
            self.name, json.dumps(self._labels).encode(), self._labels | self._beat_label(), timeout
        )

    def _beat_label(self) -> dict[str, str]:
        return {LABEL_BEAT: str(self._beat)}

    def renew(self, timeout: float) -> bool:
        """Move the lease's version (made again if it is gone); False if the store did not
        answer (``ha.lease_failed`` once until it answers again)."""
        self._beat += 1
        try:
            try:
                current = self._store.config(self.name)
            except EngineNotFoundError:
                self.take(timeout)
                self._log.warning("ha.lease_retaken", lease=self.name)
            else:
                self._store.update_config_labels(current, self._labels | self._beat_label())
        except EngineError as e:
            if not self._failing:
                self._log.warning("ha.lease_failed", lease=self.name, error=str(e))
            self._failing = True
            return False
        if self._failing:
            self._log.info("ha.lease_renewed", lease=self.name)
        self._failing = False
        return True

    def release(self) -> None:
        """A clean stop: the lease goes (the others need not wait to see it stale)."""
        try:
            self._store.remove_config(self._id)
        except EngineError as e:
            self._log.warning("ha.lease_failed", lease=self.name, error=str(e))


class Keeper:
    """This replica's lease kept, the dead replicas' runs settled, old claims swept: a thread
    that does one ``tick`` every ``ha_lease_interval``."""

    def __init__(
        self,
        engine: Engine,
        store: SwarmStore,
        lease: Lease,
        claims: Claims,
        history: History,
        *,
        interval: float,
        clock: Clock,
        jobs: Callable[[], Mapping[str, JobEntry]],
    ) -> None:
        self._engine, self._store, self._lease, self._claims = engine, store, lease, claims
        self._history = history
        self._interval = interval
        self._clock = clock
        self._jobs = jobs
        self.liveness = Liveness(LEASE_MISSES * interval)
        self._told_dead: set[str] = set()
        self._ticks = 0
        self._stop = threading.Event()
        self._renewed = True
        """Whether the last renewal of the lease was answered (False: cut off)."""
        self._thread = threading.Thread(target=self._run, name="ha-keeper", daemon=True)
        self._renewer = threading.Thread(target=self._renew_run, name="ha-lease", daemon=True)
        """The lease is renewed on a thread of its own: settling a dead replica's container
        (a stop waits up to its job's stop_grace) or a long sweep must not hold it back, or
        this replica in turn would look dead to the others."""
        self._log = get_logger()

    def start(self) -> None:
        """Start the threads."""
        self._renewer.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop the threads (bounded: a tick's engine calls have their deadlines)."""
        self._stop.set()
        for thread in (self._renewer, self._thread):
            if thread.ident is not None:
                thread.join(self._interval + 5)

    def _renew_run(self) -> None:
        while not self._clock.sleep(self._interval, self._stop):
            try:
                self._renewed = self._lease.renew(self._interval)
            except Exception:  # the lease must outlive any one renewal
                self._renewed = False
                self._log.exception("ha.tick_failed")

    def _run(self) -> None:
        while not self._clock.sleep(self._interval, self._stop):
            try:
                self._ticks += 1
                self._after_renewal()
            except Exception:  # the keeper must outlive any one tick
                self._log.exception("ha.tick_failed")

    def tick(self) -> None:
        """Renew the lease; read the leases; settle what dead replicas left; sweep claims
        every ``SWEEP_EVERY`` ticks (the two threads' work, done once, in turn)."""
        self._ticks += 1
        self._renewed = self._lease.renew(self._interval)
        self._after_renewal()

    def _after_renewal(self) -> None:
        """Judge the others, unless cut off: then judge nobody from here, and forget what
        was seen (a store that took no write for a while moved nobody's lease)."""
        if self._renewed:
            self._judge()
        else:
            self.liveness.forget()

    def _judge(self) -> None:
        """Read the leases; settle what dead replicas left; sweep claims every
        ``SWEEP_EVERY`` ticks."""
        # What runs is listed before the leases: a replica takes its lease before it makes
        # anything, so each item listed has its replica's lease in the listing that follows
        # (listed after the leases, a replica started in between was judged dead).
        items = self._items()
        now = self._clock.monotonic()
        try:
            leases = self._store.configs(lease_labels(self._claims.daemon))
        except EngineError as e:
            self._log.warning("ha.tick_failed", error=str(e))
            return
        by_replica = {c.labels.get(LABEL_REPLICA, ""): c for c in leases}
        self.liveness.observe({r: c.version for r, c in by_replica.items()}, now)
        self._told_dead -= {r for r in by_replica if not self.liveness.dead(r, now)}
        self._settle_dead(by_replica, items, now)
        if self._ticks % SWEEP_EVERY == 0:
            limits = {name: e.job.history_limit for name, e in self._jobs().items()}
            try:
                self._claims.sweep(limits)
            except EngineError as e:
                self._log.warning("ha.tick_failed", error=str(e))

    def _items(self) -> tuple[list[ContainerInfo], list[ServiceInfo]]:
        """This daemon's containers (a service's tasks are its service's) and services."""
        daemon = {LABEL_DAEMON: self._claims.daemon}
        containers = [
            c
            for c in self._engine.list_containers(daemon)
            if c.labels.get(LABEL_ROLE) not in OTHERS  # a service's tasks: its service's
        ]
        return containers, self._engine.list_services(daemon)

    def _settle_dead(
        self,
        leases: Mapping[str, ConfigInfo],
        items: tuple[list[ContainerInfo], list[ServiceInfo]],
        now: float,
    ) -> None:
        """Settle the containers and services (``items``, listed before ``leases``) of dead
        replicas (``scheduler.dead_replicas``); a dead replica's lease is removed once nothing
        of it runs, its claims left without an outcome closed first."""
        containers, services = items
        left: set[str] = set()
        for container in containers:
            self._settle(container, container.id, now, left, settle_foreign)
        for service in services:
            self._settle(service, service.id, now, left, settle_foreign_service)
        me = self._claims.replica
        for replica, lease in leases.items():
            if replica != me and replica not in left and self.liveness.dead(replica, now):
                self._tell_dead(replica)
                self._claims.close_orphans(replica)
                self._store.remove_config(lease.id)

    def _settle(
        self,
        item: Settleable,
        item_id: str,
        now: float,
        left: set[str],
        settle: Callable[..., bool],
    ) -> None:
        """``item`` (a container or a service) of a dead replica: ``settle`` it; its replica
        is in ``left`` while it runs on (or cannot be settled now)."""
        replica = item.labels.get(LABEL_REPLICA)
        if replica is None or replica == self._claims.replica:
            return
        if not self.liveness.dead(replica, now):
            return
        self._tell_dead(replica)
        try:
            args = (self._engine, self._claims, self._history, item)
            if not settle(*args, jobs=self._jobs(), now=self._clock.now()):
                left.add(replica)
        except EngineError as e:
            left.add(replica)
            self._log.warning("run.settle_failed", container_id=item_id, error=str(e))

    def _tell_dead(self, replica: str) -> None:
        if replica not in self._told_dead:
            self._told_dead.add(replica)
            self._log.warning("ha.replica_dead", replica=replica, by=self._claims.replica)
