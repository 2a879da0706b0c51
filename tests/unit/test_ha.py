"""ha = "swarm": claim names, the decision on each answer of the store, the outcome on the
claim, the sweep, lease staleness, a dead replica's containers, and the runner's use of it."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog

from scheduler.claims import (
    LABEL_CLAIMED,
    LABEL_SCHEDULED,
    LABEL_SETTLED_BY,
    LABEL_STATUS,
    ClaimRecord,
    Claims,
    claim_name,
    cluster_runs,
    decide,
    expired,
)
from scheduler.clock import SystemClock
from scheduler.dead_replicas import settle_foreign, settle_foreign_service
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_REPLICA,
    LABEL_RUN,
    ConfigInfo,
    ContainerInfo,
    ExitStatus,
    ServiceInfo,
    SwarmStore,
    TaskInfo,
)
from scheduler.errors import (
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineUnavailableError,
)
from scheduler.notify import RunReport
from scheduler.recovery import settle
from scheduler.replicas import Keeper, Lease, Liveness
from scheduler.reports import cluster_table
from scheduler.runner import Runner
from scheduler.settings import Config
from scheduler.startup import take_lease

from . import test_daemon
from .fakes import FakeClock, FakeEngine
from .helpers import events, open_history
from .test_runner import make_config

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@dataclass
class FakeStore:
    """The Swarm's configs in memory: unique names, labels updated against the version."""

    configs_by_name: dict[str, ConfigInfo] = field(default_factory=dict)
    fail: dict[str, EngineError] = field(default_factory=dict)
    creates: list[str] = field(default_factory=list)
    _next: int = 1

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail:
            raise self.fail[what]

    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], timeout: float
    ) -> str:
        assert data
        assert timeout > 0
        self._maybe_fail("create")
        self.creates.append(name)
        if name in self.configs_by_name:
            raise EngineConflictError(f"config {name} already exists")
        self._next += 1
        self.configs_by_name[name] = ConfigInfo(f"id-{self._next}", name, self._next, dict(labels))
        return f"id-{self._next}"

    def config(self, name: str) -> ConfigInfo:
        self._maybe_fail("config")
        if name not in self.configs_by_name:
            raise EngineNotFoundError(name)
        return self.configs_by_name[name]

    def configs(self, labels: Mapping[str, str]) -> list[ConfigInfo]:
        self._maybe_fail("configs")
        return [
            c
            for c in self.configs_by_name.values()
            if all(c.labels.get(k) == v for k, v in labels.items())
        ]

    def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
        self._maybe_fail("update")
        current = self.configs_by_name[config.name]
        if current.version != config.version:
            raise EngineError("update out of sequence")
        self._next += 1
        self.configs_by_name[config.name] = ConfigInfo(
            current.id, current.name, self._next, dict(labels)
        )

    def remove_config(self, config_id: str) -> None:
        for name, c in list(self.configs_by_name.items()):
            if c.id == config_id:
                del self.configs_by_name[name]

    def manager_problem(self) -> str | None:
        return None


def claims_of(store: FakeStore, clock: FakeClock, replica: str = "r1") -> Claims:
    return Claims(store, "d1", replica, clock, timeout=5, keep=3600)


# --- naming and deciding --------------------------------------------------------------


def test_a_claim_name_is_one_per_daemon_job_and_instant_and_fits_a_config_name() -> None:
    """The same fire gives the same name on every replica (whatever the zone the instant is
    written in); another daemon, job or instant another name; 64 characters at most."""
    name = claim_name("d1", "backup", AT)
    same = claim_name("d1", "backup", AT.astimezone(UTC).replace(tzinfo=UTC))
    in_paris = claim_name("d1", "backup", AT.astimezone(timezone_paris()))
    others = {
        claim_name("d2", "backup", AT),
        claim_name("d1", "backup2", AT),
        claim_name("d1", "backup", AT + timedelta(seconds=1)),
    }
    assert name == same == in_paris
    assert name not in others
    assert len(others) == 3
    assert name.startswith("crontainer-claim-")
    assert len(name) <= 64


def timezone_paris() -> tzinfo:
    return ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("answer", "won", "reason"),
    [
        (None, True, None),
        (EngineConflictError("409"), False, "claimed"),
        (EngineUnavailableError("no answer"), False, "claim_failed"),
        (
            EngineError("rpc error: code = Unknown desc = raft: no elected cluster leader"),
            False,
            "claim_failed",
        ),
        (EngineNotFoundError("404"), False, "claim_failed"),
    ],
)
def test_only_a_successful_create_runs_the_fire(
    answer: Exception | None, won: bool, reason: str | None
) -> None:
    """Created: run it; 409: another replica's; any other answer: not run here (never run
    without a claim)."""
    decision = decide(answer, "r2")
    assert (decision.won, decision.reason) == (won, reason)
    if reason == "claimed":
        assert decision.claimant == "r2"
    if reason == "claim_failed":
        assert decision.error == str(answer)


def test_the_second_claim_of_a_fire_names_the_first_claimant() -> None:
    """Two replicas claim one fire: the first wins, the second learns who has it."""
    store, clock = FakeStore(), FakeClock(AT)
    first = claims_of(store, clock, "r1").claim("j", AT, "run1")
    second = claims_of(store, clock, "r2").claim("j", AT, "run2")
    assert first.won
    assert (second.won, second.reason, second.claimant) == (False, "claimed", "r1")
    labels = store.config(claim_name("d1", "j", AT)).labels
    assert (labels[LABEL_RUN], labels[LABEL_REPLICA], labels[LABEL_SCHEDULED]) == (
        "run1",
        "r1",
        AT.isoformat(),
    )


def test_a_store_that_does_not_answer_means_no_run() -> None:
    """A create that times out is claim_failed with the error: the fire is not run here."""
    store, clock = FakeStore(fail={"create": EngineUnavailableError("timed out")}), FakeClock(AT)
    decision = claims_of(store, clock).claim("j", AT, "run1")
    assert (decision.won, decision.reason, decision.error) == (False, "claim_failed", "timed out")


def test_a_catch_up_older_than_the_claims_kept_is_not_claimed() -> None:
    """An instant older than ha_claim_keep may have lost its claim to the sweep: not run."""
    store, clock = FakeStore(), FakeClock(AT + timedelta(hours=2))
    decision = claims_of(store, clock).claim("j", AT, "run1")
    assert (decision.won, decision.reason) == (False, "claim_expired")
    assert store.creates == []


# --- the outcome on the claim, the sweep ---------------------------------------------


def report(status: str, attempt: int | None = 1, trigger: str = "schedule") -> RunReport:
    return RunReport(
        job="j",
        run_id="run1",
        status=status,
        attempt=attempt,
        exit_code=3 if attempt else None,
        scheduled_at=AT.isoformat(),
        trigger=trigger,
    )


def test_a_claimed_runs_end_goes_onto_its_claim() -> None:
    """The run ends: status, end and exit code become the claim's labels, in place of an
    outcome another replica wrote meanwhile."""
    store, clock = FakeStore(), FakeClock(AT)
    claims = claims_of(store, clock)
    assert claims.claim("j", AT, "run1").won
    claims.report(None, report("started"))
    name = claim_name("d1", "j", AT)
    assert LABEL_STATUS not in store.config(name).labels
    # another replica judged this one dead meanwhile and closed the claim: the real end wins
    outcome = {LABEL_STATUS: "failed", "crontainer.reason": "replica_died", LABEL_SETTLED_BY: "r2"}
    assert claims_of(store, clock, "r2").record_outcome(name, outcome)
    claims.report(None, report("failed"))
    record = ClaimRecord.of(store.config(name))
    assert (record.status, record.exit_code, record.replica) == ("failed", 3, "r1")
    assert (record.reason, record.settled_by) == (None, None)
    assert record.ended_at == AT.isoformat()


def test_a_fire_lost_to_another_replica_leaves_its_claim_alone() -> None:
    """The loser's skipped run (no attempt) does not write onto the winner's claim."""
    store, clock = FakeStore(), FakeClock(AT)
    assert claims_of(store, clock, "r1").claim("j", AT, "run1").won
    loser = claims_of(store, clock, "r2")
    assert not loser.claim("j", AT, "run2").won
    loser.report(None, report("skipped", attempt=None))
    assert LABEL_STATUS not in store.config(claim_name("d1", "j", AT)).labels


def test_an_update_the_store_refuses_is_logged_not_raised() -> None:
    """An outcome that cannot be written: ha.claim_update_failed, the run is unaffected."""
    store, clock = FakeStore(), FakeClock(AT)
    claims = claims_of(store, clock)
    assert claims.claim("j", AT, "run1").won
    store.fail["update"] = EngineError("no quorum")
    with structlog.testing.capture_logs() as logs:
        claims.report(None, report("succeeded"))
    assert [e["error"] for e in events(logs, "ha.claim_update_failed")] == ["no quorum"]


def record_at(job: str, at: datetime, number: int) -> ClaimRecord:
    return ClaimRecord(
        f"id{number}", job, at.isoformat(), "r", f"run{number}", at.isoformat(),
        None, None, None, None, None,
    )  # fmt: skip


def test_the_sweep_removes_old_claims_but_each_jobs_newest() -> None:
    """Past ha_claim_keep a claim goes, unless it is one of its job's newest history_limit;
    a job no longer configured keeps none past the window; younger claims all stay."""
    now = AT + timedelta(hours=10)
    old = [record_at("a", AT + timedelta(minutes=i), i) for i in range(5)]
    young = [record_at("a", now - timedelta(minutes=1), 10)]
    gone_job = [record_at("b", AT, 20), record_at("b", now, 21)]
    removed = expired([*old, *young, *gone_job], now, keep=3600, limits={"a": 3})
    assert sorted(r.id for r in removed) == ["id0", "id1", "id2", "id20"]


def test_the_sweep_removes_the_expired_claims_from_the_store() -> None:
    """Claims.sweep lists this daemon's claims and removes the expired ones."""
    store, clock = FakeStore(), FakeClock(AT)
    claims = claims_of(store, clock)
    for minute in range(4):
        assert claims.claim("j", AT + timedelta(minutes=minute), f"run{minute}").won
    clock.advance(3 * 3600)
    assert claims.sweep({"j": 1}) == 3
    left = [ClaimRecord.of(c) for c in store.configs({})]
    assert [r.run_id for r in left] == ["run3"]


# --- leases -------------------------------------------------------------------------


def test_a_lease_is_stale_after_it_stops_moving_for_the_window() -> None:
    """Unmoved for the window (by the observer's own clock): dead; moved: alive again; a
    replica without a lease: dead; a lease first seen is given the whole window."""
    live = Liveness(stale_after=15)
    live.observe({"r1": 4, "r2": 9}, now=100)
    assert not live.dead("r1", 114)
    live.observe({"r1": 5, "r2": 9}, now=110)
    assert not live.dead("r1", 124)
    assert live.dead("r2", 115)
    assert not live.dead("r2", 114)
    live.observe({"r1": 5, "r2": 10}, now=120)
    assert not live.dead("r2", 134)
    assert live.dead("r3", 120)
    live.observe({"r1": 5}, now=130)
    assert live.dead("r2", 130)


def test_a_lease_is_renewed_made_again_when_gone_and_removed_at_a_stop() -> None:
    """Each renewal moves the lease's version; a lease swept meanwhile is made again
    (ha.lease_retaken); a store that does not answer is ha.lease_failed once."""
    store = FakeStore()
    lease = Lease(store, "d1", "r1", "host")
    lease.take(5)
    version = store.config(lease.name).version
    assert lease.renew(5)
    assert store.config(lease.name).version > version
    store.configs_by_name.clear()
    with structlog.testing.capture_logs() as logs:
        assert lease.renew(5)
        store.fail["config"] = EngineUnavailableError("cut off")
        assert not lease.renew(5)
        assert not lease.renew(5)
    assert [e["event"] for e in logs] == ["ha.lease_retaken", "ha.lease_failed"]
    del store.fail["config"]
    lease.release()
    assert store.configs({}) == []


# --- a dead replica's containers ------------------------------------------------------


def container(replica: str, state: str, run_id: str = "run1") -> ContainerInfo:
    labels = {
        LABEL_DAEMON: "d1",
        LABEL_JOB: "j",
        LABEL_RUN: run_id,
        LABEL_ATTEMPT: "1",
        LABEL_REPLICA: replica,
    }
    return ContainerInfo(f"c-{replica}-{run_id}", f"d1-j-{run_id}", state, labels)


def test_a_dead_replicas_ended_container_is_settled_onto_its_claim(tmp_path: Path) -> None:
    """Its exit code goes onto the claim with settled_by; the container is removed."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock, exit_status=ExitStatus(0))
    assert claims_of(store, clock, "dead").claim("j", AT, "run1").won
    survivor = claims_of(store, clock, "r2")
    with structlog.testing.capture_logs() as logs:
        settled = settle_foreign(
            engine,
            survivor,
            open_history(config),
            container("dead", "exited"),
            jobs=config.jobs,
            now=clock.now(),
        )
    assert settled
    record = ClaimRecord.of(store.config(claim_name("d1", "j", AT)))
    assert (record.status, record.exit_code, record.settled_by) == ("succeeded", 0, "r2")
    assert ("remove", "c-dead-run1") in engine.calls
    assert [e["replica"] for e in events(logs, "run.settled")] == ["dead"]


def test_a_dead_replicas_running_container_is_left_until_its_timeout(tmp_path: Path) -> None:
    """Running within its job's timeout: left alone; past timeout and stop_grace since its
    claim: stopped, then settled (cancelled, orphan_stopped)."""
    config = make_config(tmp_path)  # timeout 10m, stop_grace 3s
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock)
    assert claims_of(store, clock, "dead").claim("j", AT, "run1").won
    survivor, history = claims_of(store, clock, "r2"), open_history(config)
    running = container("dead", "running")
    assert not settle_foreign(engine, survivor, history, running, jobs=config.jobs, now=AT)
    assert engine.calls == []
    late = AT + timedelta(minutes=10, seconds=4)
    assert settle_foreign(engine, survivor, history, running, jobs=config.jobs, now=late)
    assert engine.names()[:1] == ["stop"]
    labels = store.config(claim_name("d1", "j", AT)).labels
    assert (labels[LABEL_STATUS], labels[LABEL_SETTLED_BY]) == ("cancelled", "r2")


def test_a_dead_replicas_unclaimed_run_is_stopped_after_its_timeout_since_created(
    tmp_path: Path,
) -> None:
    """A run that claims nothing (manual, chained): its container's creation time counts;
    within the job's timeout it is left running, past it stopped and removed."""
    config = make_config(tmp_path)  # timeout 10m, stop_grace 3s
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock)
    survivor, history = claims_of(store, clock, "r2"), open_history(config)
    made = ContainerInfo(
        "c1", "d1-j-run7", "running", container("dead", "running", "run7").labels,
        created=AT.timestamp(),
    )  # fmt: skip
    soon, late = AT + timedelta(minutes=9), AT + timedelta(minutes=11)
    assert not settle_foreign(engine, survivor, history, made, jobs=config.jobs, now=soon)
    assert settle_foreign(engine, survivor, history, made, jobs=config.jobs, now=late)
    assert engine.names() == ["stop", "wait", "remove"]


def test_start_up_settling_leaves_another_replicas_containers_and_rows_alone(
    tmp_path: Path,
) -> None:
    """A live replica's running container is neither adopted nor stopped, its run's row is
    left running; a container made before HA is settled by the replica whose history has
    its run, and left alone by the others (two replicas may share one engine)."""
    config = make_config(tmp_path)
    clock = FakeClock(AT)
    other = container("r-other", "running", "run9")
    labels = {LABEL_DAEMON: "d1", LABEL_JOB: "j"}
    before_ha = ContainerInfo("c-old", "d1-j-run8", "exited", labels | {LABEL_RUN: "run8"})
    not_mine = ContainerInfo("c-else", "d1-j-run5", "running", labels | {LABEL_RUN: "run5"})
    engine = FakeEngine(clock, containers=[other, before_ha, not_mine])
    history = open_history(config)
    for run_id in ("run9", "run8"):
        history.begin(run_id, 1, "j", trigger="schedule", scheduled_at=AT, started_at=AT)
    runner = Runner(engine, config.daemon, clock, "ops:1", history)
    settle(engine, history, runner, jobs=config.jobs, daemon="d1", clock=clock, replica="r-me")
    touched = {arg for _, arg in engine.calls if isinstance(arg, str)}
    assert ("remove", "c-old") in engine.calls
    assert not touched & {"c-r-other-run9", "c-else"}
    assert [r.run_id for r in history.in_flight()] == ["run9"]
    assert runner.active() == 0


def test_the_keeper_settles_a_replica_only_after_its_lease_went_stale(tmp_path: Path) -> None:
    """While the other lease moves, its containers are untouched; after 3 intervals without
    a move, its ended container is settled and its lease removed (ha.replica_dead)."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock, containers=[container("r-other", "exited")])
    other = Lease(store, "d1", "r-other", "h2")
    other.take(5)
    mine = Lease(store, "d1", "r-me", "h1")
    mine.take(5)
    assert claims_of(store, clock, "r-other").claim("j", AT, "run1").won
    later = AT + timedelta(minutes=1)
    assert claims_of(store, clock, "r-other").claim("j", later, "run2").won  # no container
    keeper = Keeper(
        engine,
        store,
        mine,
        claims_of(store, clock, "r-me"),
        open_history(config),
        interval=5,
        clock=clock,
        jobs=lambda: config.jobs,
    )
    for _ in range(4):
        other.renew(5)
        keeper.tick()
        clock.advance(5)
    assert "remove" not in engine.names()
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            keeper.tick()
            clock.advance(5)
    assert ("remove", "c-r-other-run1") in engine.calls
    assert [e["replica"] for e in events(logs, "ha.replica_dead")] == ["r-other"]
    assert store.configs({LABEL_REPLICA: "r-other", "crontainer.role": "replica"}) == []
    claim = store.config(claim_name("d1", "j", AT)).labels
    assert claim[LABEL_SETTLED_BY] == "r-me"
    orphan = ClaimRecord.of(store.config(claim_name("d1", "j", later)))
    assert (orphan.status, orphan.reason, orphan.settled_by) == ("failed", "replica_died", "r-me")


# --- the runner -----------------------------------------------------------------------


def ha_runner(config: Config, engine: FakeEngine, claims: Claims) -> Runner:
    return Runner(engine, config.daemon, engine.clock, "ops:1", open_history(config), claims=claims)


def test_a_fire_claimed_elsewhere_is_skipped_and_creates_nothing(tmp_path: Path) -> None:
    """run.skipped (info), reason claimed, with the claimant; no container is made."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    assert claims_of(store, clock, "r1").claim("j", AT, "runX").won
    engine = FakeEngine(clock)
    runner = ha_runner(config, engine, claims_of(store, clock, "r2"))
    with structlog.testing.capture_logs() as logs:
        runner.submit(config.jobs["j"], AT)
        assert runner.join(10)
    skipped = events(logs, "run.skipped")
    assert [(e["reason"], e["claimant"], e["log_level"]) for e in skipped] == [
        ("claimed", "r1", "info")
    ]
    assert "create" not in engine.names()


def test_a_fire_whose_claim_fails_is_missed_and_creates_nothing(tmp_path: Path) -> None:
    """No answer from the store: run.missed, reason claim_failed with the error."""
    config = make_config(tmp_path)
    store, clock = FakeStore(fail={"create": EngineUnavailableError("frozen")}), FakeClock(AT)
    engine = FakeEngine(clock)
    runner = ha_runner(config, engine, claims_of(store, clock))
    with structlog.testing.capture_logs() as logs:
        runner.submit(config.jobs["j"], AT)
        assert runner.join(10)
    missed = events(logs, "run.missed")
    assert [(e["reason"], e["error"]) for e in missed] == [("claim_failed", "frozen")]
    assert "create" not in engine.names()


def test_a_won_fire_runs_labelled_with_its_replica_and_its_end_is_on_the_claim(
    tmp_path: Path,
) -> None:
    """The claimant runs it; its container carries crontainer.replica; the claim ends
    succeeded. A manual run is not claimed."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock)
    runner = ha_runner(config, engine, claims_of(store, clock, "r1"))
    runner.submit(config.jobs["j"], AT)
    assert runner.join(10)
    assert engine.created_labels[LABEL_REPLICA] == "r1"
    assert ClaimRecord.of(store.config(claim_name("d1", "j", AT))).status == "succeeded"
    runner.submit(config.jobs["j"], AT + timedelta(hours=1), trigger="manual")
    assert runner.join(10)
    assert len(store.creates) == 1
    assert engine.created() == 2


def test_two_runners_on_one_store_run_each_fire_once(tmp_path: Path) -> None:
    """Two replicas fire the same instants at once: each instant runs on exactly one."""
    store, clock = FakeStore(), FakeClock(AT)
    lock = threading.Lock()

    class Locked(FakeStore):
        def create_config(
            self, name: str, data: bytes, labels: Mapping[str, str], timeout: float
        ) -> str:
            with lock:
                return store.create_config(name, data, labels, timeout)

        def config(self, name: str) -> ConfigInfo:
            return store.config(name)

        def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
            with lock:
                store.update_config_labels(config, labels)

    engines, runners = [], []
    for replica in ("r1", "r2"):
        (tmp_path / replica).mkdir()
        config = make_config(tmp_path / replica, job='concurrency = "allow"')
        engine = FakeEngine(clock)
        engines.append(engine)
        runners.append(ha_runner(config, engine, claims_of(Locked(), clock, replica)))
    for minute in range(20):
        for runner in runners:
            runner.submit(config.jobs["j"], AT + timedelta(minutes=minute))
    for runner in runners:
        assert runner.join(10)
    assert sum(e.created() for e in engines) == 20
    assert len(store.configs_by_name) == 20
    assert all(LABEL_CLAIMED in c.labels for c in store.configs_by_name.values())


def test_the_docker_engine_is_a_swarm_store() -> None:
    """The daemon's engine offers the config store ha = "swarm" needs."""
    from scheduler.docker_engine import DockerEngine  # noqa: PLC0415

    assert issubclass(DockerEngine, SwarmStore)
    assert isinstance(FakeStore(), SwarmStore)


# --- start-up -------------------------------------------------------------------------


@dataclass
class SwarmEngine(FakeEngine):
    """A fake engine with a config store (the Swarm's), for the start-up."""

    store: FakeStore = field(default_factory=FakeStore)
    problem: str | None = None

    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], timeout: float
    ) -> str:
        return self.store.create_config(name, data, labels, timeout)

    def config(self, name: str) -> ConfigInfo:
        return self.store.config(name)

    def configs(self, labels: Mapping[str, str]) -> list[ConfigInfo]:
        return self.store.configs(labels)

    def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
        self.store.update_config_labels(config, labels)

    def remove_config(self, config_id: str) -> None:
        self.store.remove_config(config_id)

    def manager_problem(self) -> str | None:
        return self.problem

    def host_name(self) -> str:
        return "host1"


def test_ha_needs_a_swarm_managers_engine(tmp_path: Path) -> None:
    """ha = "swarm" on an engine without a config store, or not a manager's: daemon.failed,
    reason ha, saying why; on a manager's: a lease in place of the lock, no lock container."""
    config = make_config(tmp_path, daemon='ha = "swarm"')
    clock = FakeClock(AT)
    with structlog.testing.capture_logs() as logs:
        plain = take_lease(FakeEngine(clock), config.daemon, clock)
        worker = take_lease(
            SwarmEngine(clock, problem="the engine is a Swarm worker"), config.daemon, clock
        )
    assert (plain, worker) == (None, None)
    failed = events(logs, "daemon.failed")
    assert [(e["reason"], e["error"]) for e in failed] == [
        ("ha", "this engine has no Swarm config store"),
        ("ha", "the engine is a Swarm worker"),
    ]
    engine = SwarmEngine(clock)
    ha = take_lease(engine, config.daemon, clock)
    assert ha is not None
    lease = engine.store.config(ha.lease.name)
    assert (lease.labels[LABEL_REPLICA], lease.labels["crontainer.host"]) == (ha.replica, "host1")
    assert ha.claims.replica == ha.replica
    assert "lock" not in engine.names()


def test_a_run_another_replica_settled_takes_the_claims_outcome(tmp_path: Path) -> None:
    """A row left running whose container another replica settled meanwhile (this one was
    cut off) is finished with the outcome on its claim, not as interrupted."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    mine = claims_of(store, clock, "r-me")
    assert mine.claim("j", AT, "run1").won
    assert claims_of(store, clock, "r2").record_outcome(
        claim_name("d1", "j", AT),
        {LABEL_STATUS: "failed", "crontainer.exit_code": "4", LABEL_SETTLED_BY: "r2"},
    )
    history = open_history(config)
    history.begin("run1", 1, "j", trigger="schedule", scheduled_at=AT, started_at=AT)
    history.begin("run2", 1, "j", trigger="manual", scheduled_at=AT, started_at=AT)
    engine = FakeEngine(clock)
    runner = Runner(engine, config.daemon, clock, "ops:1", history)
    with structlog.testing.capture_logs() as logs:
        settle(
            engine, history, runner, jobs=config.jobs, daemon="d1", clock=clock,
            replica="r-me", settled_elsewhere=mine.settled,
        )  # fmt: skip
    rows = {r.run_id: r for r in history.runs("j", 10)}
    assert (rows["run1"].status, rows["run1"].exit_code, rows["run1"].reason) == (
        "failed",
        4,
        "settled_by_replica",
    )
    assert (rows["run2"].status, rows["run2"].reason) == ("failed", "interrupted")
    assert [e["replica"] for e in events(logs, "run.settled") if "replica" in e] == ["r2"]


def test_the_cluster_history_lists_claims_newest_first_with_their_outcome() -> None:
    """history --cluster: newest fire first; a claim whose run has not ended shows
    `claimed`; the replica that ran each fire, and who settled it if not itself."""
    store, clock = FakeStore(), FakeClock(AT)
    first, second = claims_of(store, clock, "r1"), claims_of(store, clock, "r2")
    assert first.claim("j", AT, "run1").won
    assert second.claim("j", AT + timedelta(minutes=1), "run2").won
    first.report(None, report("failed"))
    records = cluster_runs(store, "d1")
    assert [(r.run_id, r.replica, r.status) for r in records] == [
        ("run2", "r2", None),
        ("run1", "r1", "failed"),
    ]
    lines = cluster_table(records).splitlines()
    assert lines[0].split() == [
        "SCHEDULED", "JOB", "RUN", "ID", "REPLICA", "STATUS", "EXIT", "ENDED", "SETTLED", "BY",
    ]  # fmt: skip
    assert lines[1].split()[1:6] == ["j", "run2", "r2", "claimed", "-"]
    assert lines[2].split()[1:6] == ["j", "run1", "r1", "failed", "3"]
    assert [r["status"] for r in (x.as_json() for x in records)] == ["claimed", "failed"]


def test_a_dead_replicas_service_is_settled_by_its_tasks_or_left_running(tmp_path: Path) -> None:
    """A service job's service of a dead replica: while its tasks run (within the job's
    timeout) it is left; once every slot's first task ended, what they decide goes onto the
    claim and the service is removed; its tasks' containers are never settled as runs."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    assert claims_of(store, clock, "dead").claim("j", AT, "run1").won
    labels = container("dead", "running").labels
    service = ServiceInfo("svc1", "d1-j-run1", {**labels, "crontainer.role": "service"}, 1)
    task = container("dead", "running")
    task_container = ContainerInfo(
        task.id, task.name, "running", {**task.labels, "crontainer.role": "service"}
    )
    running = TaskInfo("t1", "n1", 1, "running", "2026-01-05T12:00:01Z", "2026-01-05T12:00:01Z")
    failed = TaskInfo("t1", "n1", 1, "failed", "2026-01-05T12:00:01Z", "2026-01-05T12:00:09Z", 5)
    engine = FakeEngine(clock, services=[service], containers=[task_container])
    engine.task_script = [[running]]
    survivor, history = claims_of(store, clock, "r2"), open_history(config)
    assert not settle_foreign_service(engine, survivor, history, service, jobs=config.jobs, now=AT)
    engine.task_script = [[failed]]
    assert settle_foreign_service(engine, survivor, history, service, jobs=config.jobs, now=AT)
    assert engine.removed_services == ["svc1"]
    record = ClaimRecord.of(store.config(claim_name("d1", "j", AT)))
    assert (record.status, record.exit_code, record.settled_by) == ("failed", 5, "r2")
    keeper_engine = FakeEngine(clock, containers=[task_container])
    lease = Lease(store, "d1", "r2", "h")
    lease.take(5)
    keeper = Keeper(
        keeper_engine, store, lease, survivor, history,
        interval=1, clock=clock, jobs=lambda: config.jobs,
    )  # fmt: skip
    for _ in range(5):
        keeper.tick()
        clock.advance(1)
    assert "stop" not in keeper_engine.names()
    assert "remove" not in keeper_engine.names()


def test_a_dead_replicas_later_attempt_is_left_running_within_its_own_timeout(
    tmp_path: Path,
) -> None:
    """A claimed run's later attempt (a retry), or a run that waited for its lock or a slot
    after its claim, has its container made long after the claim: the job's timeout counts
    from that container's creation, not from the claim — within it, it is left running."""
    config = make_config(tmp_path)  # timeout 10m, stop_grace 3s
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock)
    assert claims_of(store, clock, "dead").claim("j", AT, "run1").won
    survivor, history = claims_of(store, clock, "r2"), open_history(config)
    created = AT + timedelta(minutes=10, seconds=30)
    labels = {**container("dead", "running").labels, LABEL_ATTEMPT: "2"}
    retry = ContainerInfo("c2", "d1-j-run1", "running", labels, created=created.timestamp())
    soon = created + timedelta(minutes=1)
    assert not settle_foreign(engine, survivor, history, retry, jobs=config.jobs, now=soon)
    assert engine.calls == []
    late = created + timedelta(minutes=10, seconds=4)
    assert settle_foreign(engine, survivor, history, retry, jobs=config.jobs, now=late)
    assert engine.names()[:1] == ["stop"]


class StartingReplicaStore(FakeStore):
    """A store on which replica ``r-new`` starts between two reads of the keeper's tick:
    once the leases were listed, it takes its lease and runs a fire (a container)."""

    def __init__(self, engine: FakeEngine, clock: FakeClock) -> None:
        super().__init__()
        self.engine, self.clock = engine, clock
        self.started = False

    def configs(self, labels: Mapping[str, str]) -> list[ConfigInfo]:
        found = super().configs(labels)
        if labels.get("crontainer.role") == "replica" and not self.started:
            self.started = True
            Lease(self, "d1", "r-new", "h2").take(5)
            assert claims_of(self, self.clock, "r-new").claim("j", AT, "run1").won
            self.engine.containers.append(container("r-new", "exited"))
        return found


def test_a_replica_started_during_a_keeper_tick_is_not_judged_dead(tmp_path: Path) -> None:
    """A replica that takes its lease, then makes a container, after the keeper listed the
    leases but before it listed the containers, is alive: its container is not settled
    (removed, its claim given an outcome) from under its run."""
    config = make_config(tmp_path)
    clock = FakeClock(AT)
    engine = FakeEngine(clock)
    store = StartingReplicaStore(engine, clock)
    mine = Lease(store, "d1", "r-me", "h1")
    mine.take(5)
    keeper = Keeper(
        engine,
        store,
        mine,
        claims_of(store, clock, "r-me"),
        open_history(config),
        interval=5,
        clock=clock,
        jobs=lambda: config.jobs,
    )
    with structlog.testing.capture_logs() as logs:
        keeper.tick()
    assert store.started
    assert "remove" not in engine.names()
    assert ClaimRecord.of(store.config(claim_name("d1", "j", AT))).status is None
    assert events(logs, "ha.replica_dead") == []


def test_a_second_run_of_a_fire_this_replica_holds_leaves_its_claim_alone() -> None:
    """The same fire dispatched again on the replica that won it (the wall clock stepped
    back and the ticker planned that instant again): its skip (``claimed``) does not write
    ``skipped`` onto the claim of the run still in flight, whose own end then does."""
    store, clock = FakeStore(), FakeClock(AT)
    claims = claims_of(store, clock)
    assert claims.claim("j", AT, "run1").won
    again = claims.claim("j", AT, "run2")
    assert (again.won, again.reason, again.claimant) == (False, "claimed", "r1")
    skipped = RunReport(
        job="j",
        run_id="run2",
        status="skipped",
        reason="claimed",
        scheduled_at=AT.isoformat(),
        trigger="schedule",
    )
    claims.report(None, skipped)
    name = claim_name("d1", "j", AT)
    assert LABEL_STATUS not in store.config(name).labels
    claims.report(None, report("succeeded"))
    assert store.config(name).labels[LABEL_STATUS] == "succeeded"


def test_the_sweep_keeps_each_jobs_newest_claims_of_each_outcome() -> None:
    """A local history keeps history_limit runs of each outcome: so do the claims (--cluster
    shows at least what a local history does) — an old failure is not swept because newer
    successes outnumber the limit, nor a run still in flight (no outcome yet)."""
    now = AT + timedelta(hours=10)

    def claim(number: int, minute: int, status: str | None) -> ClaimRecord:
        at = AT + timedelta(minutes=minute)
        fields = (status, None, None, None, None)
        return ClaimRecord(f"id{number}", "a", at.isoformat(), "r", f"run{number}", "", *fields)

    running = claim(1, 0, None)
    failed = claim(2, 1, "failed")
    succeeded = [claim(10 + i, 2 + i, "succeeded") for i in range(5)]
    removed = expired([running, failed, *succeeded], now, keep=3600, limits={"a": 3})
    assert sorted(r.id for r in removed) == ["id10", "id11"]


@dataclass
class RenewalsEngine(SwarmEngine):
    """A SwarmEngine that notes when (monotonic) each lease's labels were updated."""

    renewals: list[float] = field(default_factory=list)

    def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
        if labels.get("crontainer.role") == "replica":
            self.renewals.append(time.monotonic())
        super().update_config_labels(config, labels)


def test_the_lease_is_kept_while_the_runs_drain_at_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At SIGTERM the runs may go on for shutdown_grace: the lease is renewed meanwhile, or
    the other replicas judge this one dead after 3 intervals and settle its containers from
    under its draining runs. It goes once the runs are done."""
    head = test_daemon.HEAD.replace('shutdown_grace = "1s"', 'shutdown_grace = "4s"')
    monkeypatch.setattr(test_daemon, "HEAD", head + 'ha = "swarm"\nha_lease_interval = "0.5s"\n')
    engine = RenewalsEngine(FakeClock(), exit_status=None, blocking=True)
    jobs = test_daemon.job("hangs", "@yearly", run_on_start="true", stop_grace='"1s"')
    with test_daemon.running(tmp_path, jobs, engine) as daemon:
        daemon.wait_for("run.started", job="hangs")
        daemon.signal(signal.SIGTERM)
        daemon.wait_for("daemon.stopping")
        stopping = time.monotonic()
        daemon.wait_for("daemon.cancelling_runs")
        cancelling = time.monotonic()
        daemon.thread.join(30)
    during = [t for t in engine.renewals if stopping <= t <= cancelling]
    assert len(during) >= 2  # 4 s of drain, a renewal every 0.5 s
    assert engine.store.configs({"crontainer.role": "replica"}) == []


class SlowStopEngine(FakeEngine):
    """Stopping a container takes ``seconds`` (its stop_grace, a slow engine)."""

    def __init__(self, clock: FakeClock, seconds: float, **kwargs: object) -> None:
        super().__init__(clock, **kwargs)  # type: ignore[arg-type]
        self.seconds = seconds
        self.stopping = threading.Event()

    def stop(self, container_id: str, grace: float) -> None:
        self.stopping.set()
        time.sleep(self.seconds)
        super().stop(container_id, grace)


def test_the_lease_is_renewed_while_the_keeper_stops_a_dead_replicas_container(
    tmp_path: Path,
) -> None:
    """Stopping an overdue container of a dead replica takes up to its job's stop_grace: the
    lease is renewed meanwhile, or this replica in turn looks dead to the others (3 intervals
    without a move) and its own containers are settled from under its runs."""
    config = make_config(tmp_path)  # timeout 10m, stop_grace 3s
    store = FakeStore()
    clock = SystemClock()
    engine = SlowStopEngine(FakeClock(AT), 3.0, containers=[container("dead", "running")])
    assert claims_of(store, FakeClock(AT), "dead").claim("j", AT, "run1").won  # long overdue
    mine = Lease(store, "d1", "r-me", "h1")
    mine.take(5)
    keeper = Keeper(
        engine,
        store,
        mine,
        Claims(store, "d1", "r-me", clock, timeout=5, keep=3600),
        open_history(config),
        interval=0.25,
        clock=clock,
        jobs=lambda: config.jobs,
    )
    keeper.start()
    try:
        assert engine.stopping.wait(10)  # the dead replica's lease was never seen: dead
        before = store.config(mine.name).version
        time.sleep(2.0)  # 8 intervals into the 3 s stop
        moved = store.config(mine.name).version
    finally:
        keeper.stop()
    assert moved > before


def test_a_store_outage_does_not_make_the_replicas_judge_each_other_dead(
    tmp_path: Path,
) -> None:
    """While the store takes no write (no quorum: a leader election, managers restarting),
    no lease moves, this replica's included; once it answers again, the first replica to
    renew must not judge the others dead for the time nobody could renew: their ended
    containers are left alone, their leases kept, until they have had the window to renew."""
    config = make_config(tmp_path)
    store, clock = FakeStore(), FakeClock(AT)
    engine = FakeEngine(clock, containers=[container("r-other", "exited")])
    other = Lease(store, "d1", "r-other", "h2")
    other.take(5)
    mine = Lease(store, "d1", "r-me", "h1")
    mine.take(5)
    keeper = Keeper(
        engine,
        store,
        mine,
        claims_of(store, clock, "r-me"),
        open_history(config),
        interval=5,
        clock=clock,
        jobs=lambda: config.jobs,
    )
    for _ in range(3):
        other.renew(5)
        keeper.tick()
        clock.advance(5)
    store.fail["update"] = EngineUnavailableError("no quorum")
    for _ in range(6):  # 30 s without a write
        assert not other.renew(5)
        keeper.tick()
        clock.advance(5)
    del store.fail["update"]
    with structlog.testing.capture_logs() as logs:
        keeper.tick()  # this replica renews first, then looks at the others
    assert events(logs, "ha.replica_dead") == []
    assert "remove" not in engine.names()
    assert store.configs({LABEL_REPLICA: "r-other", "crontainer.role": "replica"}) != []
