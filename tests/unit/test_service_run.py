"""A service job's run against the fake engine: each slot's first task decides (engine
20.10's replacement tasks do not count), the outcome's words, the tasks' output with node
and task, the service removed on every path; and a dead daemon's services settled."""

from __future__ import annotations

import base64
import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from jobs.base import OutputSpec, PlanContext
from jobs.plan import Mount, RunService, ServiceSpec
from jobs.service import ServiceJob
from scheduler.docker_engine import DockerEngine
from scheduler.docker_services import service_body, split_details, task_info
from scheduler.engine import (
    LABEL_ATTEMPT,
    LABEL_DAEMON,
    LABEL_JOB,
    LABEL_ROLE,
    LABEL_RUN,
    PullAuth,
    ServiceInfo,
    TaskInfo,
)
from scheduler.errors import EngineNotFoundError, EngineUnavailableError
from scheduler.history import History
from scheduler.job_tasks import decide, judge
from scheduler.recovery import settle
from scheduler.run_files import RunFile
from scheduler.runner import Runner
from scheduler.runs import Attempt, Cancellation, Outcome, RunInterruptedError, Status
from scheduler.settings import load_config
from scheduler.startup import swarm_check
from scheduler.steps import StepExecutor
from scheduler.steps.service import service_name

from .configs import load_job
from .fakes import FakeClock, FakeEngine
from .test_recovery import T0

Logs = list[MutableMapping[str, Any]]


def task(
    tid: str,
    slot: int,
    state: str,
    *,
    created: str = "1",
    code: int | None = None,
    node: str = "n1",
    updated: str = "9",
    error: str | None = None,
) -> TaskInfo:
    return TaskInfo(tid, node, slot, state, f"2026-01-05T12:00:0{created}Z", updated, code, error)


def test_each_slots_first_task_decides_not_the_replacements() -> None:
    """Engine 20.10 makes new tasks for a failed slot: the first one created counts, and
    the job is judged once every expected slot's first task has ended."""
    tasks = [
        task("a", 0, "complete", code=0),
        task("b", 1, "failed", code=3, error="task: non-zero exit (3)"),
        task("b2", 1, "complete", created="5", code=0),  # a replacement
        task("b3", 1, "running", created="6"),
    ]
    assert not judge(tasks[:1], expected=3).done  # slots 1 and 2 have no task yet
    assert not judge([*tasks, task("c", 2, "running")], expected=3).done
    state = judge([*tasks, task("c", 2, "complete", code=0)], expected=3)
    assert state.done
    assert sorted(t.id for t in state.counted.values()) == ["a", "b", "c"]
    outcome = decide(state.counted.values(), lambda n: f"host-{n}", replicated=True)
    assert (outcome.status, outcome.exit_code, outcome.reason) == (Status.FAILED, 3, "tasks_failed")
    assert outcome.error == "1 of 3 tasks failed; first: task b (slot 1) on host-n1: exit code 3"


def test_a_failed_first_task_decides_without_the_slots_never_made() -> None:
    """Fewer tasks at once than replicas: engine 20.10 replaces slot 0's failed task in its
    slot and never makes slot 1 — the job is judged once the tasks there are have ended
    (not left to its timeout); without a failure, the missing slot is waited for."""
    first = task("a", 0, "failed", code=4)
    replacement = task("a2", 0, "running", created="5")
    state = judge([first, replacement], expected=2)
    assert state.done
    outcome = decide(state.counted.values(), str, replicated=True)
    assert (outcome.status, outcome.exit_code) == (Status.FAILED, 4)
    assert outcome.error == "1 of 1 tasks failed; first: task a (slot 0) on n1: exit code 4"
    assert not judge([task("a", 0, "complete", code=0)], expected=2).done
    assert not judge([first, task("b", 1, "running")], expected=2).done


def test_the_first_task_is_the_earliest_made_however_its_time_is_written() -> None:
    """The engine writes times with their fraction's trailing zeros left out: a task made
    at 01.5 s was made before one made at 01.51 s (not after, as the texts sort), and is
    the slot's first; the first failure likewise."""
    first = task("a", 0, "failed", created="1.5", code=2, updated="2026-01-05T12:00:03.5Z")
    replacement = task("a2", 0, "failed", created="1.51", code=7)
    state = judge([replacement, first], expected=1)
    assert [t.id for t in state.counted.values()] == ["a"]
    early = task("b", 1, "failed", code=3, updated="2026-01-05T12:00:03.51Z")
    outcome = decide([early, first], str, replicated=True)
    assert outcome.exit_code == 2


def test_a_global_jobs_slots_are_its_nodes_and_all_complete_succeeds() -> None:
    """global-job: one counted task per node; every one complete → succeeded."""
    tasks = [task("a", 0, "complete", code=0), task("b", 0, "complete", code=0, node="n2")]
    state = judge(tasks, expected=None)
    assert state.done
    assert len(state.counted) == 2
    assert decide(state.counted.values(), str, replicated=False).status is Status.SUCCEEDED


def test_the_first_failure_is_the_earliest_ended_and_a_rejection_says_why() -> None:
    """Two failures: the error names the one that ended first; a task rejected without an
    exit code is named by the engine's error."""
    tasks = [
        task("late", 0, "failed", code=1, updated="8"),
        task("early", 1, "rejected", updated="2", error="no suitable node"),
    ]
    outcome = decide(tasks, str, replicated=True)
    assert outcome.exit_code is None
    assert (
        outcome.error == "2 of 2 tasks failed; first: task early (slot 1) on n1: no suitable node"
    )


def test_a_tasks_exit_code_is_read_only_once_it_has_ended() -> None:
    """The engine may say ExitCode 0 for a task that has not run yet: not taken then."""
    item = {"ID": "t", "NodeID": "n", "Slot": 1, "CreatedAt": "c"}
    running = {**item, "Status": {"State": "running", "ContainerStatus": {"ExitCode": 0}}}
    failed = {**item, "Status": {"State": "failed", "ContainerStatus": {"ExitCode": 2}}}
    assert task_info(running).exit_code is None
    assert task_info(failed).exit_code == 2


def test_a_log_lines_details_name_its_task_and_node() -> None:
    """The details the engine puts before a service's log line are split off."""
    line = b"com.docker.swarm.node.id=N,com.docker.swarm.service.id=S,com.docker.swarm.task.id=T hi there\n"
    assert split_details(line) == ("T", "N", b"hi there\n")


def test_the_service_is_never_restarted_by_the_engine_and_carries_the_labels() -> None:
    """The create request: restart condition none, the job's mode, the job's and the
    daemon's labels on the service and on its tasks' containers (as documented), secrets by
    id."""
    spec = ServiceSpec("busybox", replicas=3, secrets=("pw",), labels={"team": "ops"})
    body = service_body(
        spec, name="n", labels={LABEL_DAEMON: "d"}, secrets={"pw": "id1"}, configs={}
    )
    template = body["TaskTemplate"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert body["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 3}}
    assert body["Labels"] == {"team": "ops", LABEL_DAEMON: "d"}
    assert template["ContainerSpec"]["Labels"] == {"team": "ops", LABEL_DAEMON: "d"}
    assert template["ContainerSpec"]["Secrets"][0]["SecretID"] == "id1"


def run_service(
    tmp_path: Path,
    engine: FakeEngine,
    keys: str = "",
    cancel: bool = False,
    output_file: RunFile | None = None,
) -> tuple[Outcome, Logs]:
    text = (
        f'[jobs.s]\nkind = "service"\nschedule = "@daily"\n'
        f'image = "busybox"\ntimeout = "10s"\n{keys}'
    )
    job = load_job(tmp_path, text, "s", ServiceJob)
    config = load_config(tmp_path / "c.toml", {})
    (step,) = job.plan(PlanContext("s", "ops:1")).steps
    assert isinstance(step, RunService)
    executor = StepExecutor(engine, config.daemon, engine.clock)
    cancelled = Cancellation()
    if cancel:
        cancelled.cancel("daemon_stopping")
    with structlog.testing.capture_logs() as logs:
        attempt = Attempt("r1", "s", job, cancelled, output_file=output_file)
        outcome = executor.run(attempt, step)
    return outcome, logs


def test_a_run_follows_the_tasks_and_removes_the_service(tmp_path: Path) -> None:
    """Two polls (running, then ended with a replacement): failed "1 of 2"; the counted
    tasks' lines are run.output with node and task (and in the run's file), a
    replacement's are not; lines the follower missed come from the whole log, once; the
    service is removed."""
    engine = FakeEngine(FakeClock())
    file = RunFile(tmp_path / "s", "r1", OutputSpec(volume="out"), engine.clock.now)
    engine.task_script = [
        [task("a", 0, "running"), task("b", 1, "running")],
        [
            task("a", 0, "complete", code=0),
            task("b", 1, "failed", code=4),
            task("b2", 1, "failed", created="7", code=4),
        ],
    ]
    engine.service_lines = [("a", "n1", "stdout", b"from a"), ("b2", "n1", "stdout", b"again")]
    engine.whole_log = [*engine.service_lines[:1], ("b", "n1", "stderr", b"from b\n")]
    outcome, logs = run_service(tmp_path, engine, "replicas = 2\n", output_file=file)
    assert (outcome.status, outcome.exit_code) == (Status.FAILED, 4)
    assert outcome.error == "1 of 2 tasks failed; first: task b (slot 1) on host-n1: exit code 4"
    lines = [(e["line"], e["node"], e["task"]) for e in logs if e["event"] == "run.output"]
    assert sorted(lines) == [("from a", "host-n1", "a"), ("from b", "host-n1", "b")]
    kept = file.close("failed", 4)
    assert kept is not None
    written = [line.split(" ", 1)[1] for line in kept.read_text().splitlines()[:-1]]
    assert sorted(written) == ["stderr from b", "stdout from a"]
    assert engine.removed_services == ["svc1"]
    assert engine.created_labels == {
        LABEL_DAEMON: "crontainer",
        LABEL_JOB: "s",
        LABEL_RUN: "r1",
        LABEL_ATTEMPT: "1",
        LABEL_ROLE: "service",
    }


def test_a_timeout_removes_the_service_and_times_the_run_out(tmp_path: Path) -> None:
    """Tasks still running at the job's timeout: timed_out, service removed."""
    engine = FakeEngine(FakeClock())
    engine.task_script = [[task("a", 0, "running")]]
    outcome, logs = run_service(tmp_path, engine)
    assert (outcome.status, outcome.reason) == (Status.TIMED_OUT, "timeout")
    assert engine.clock.monotonic() >= 1010.0  # the job's 10 s passed
    assert engine.removed_services == ["svc1"]
    assert [e["event"] for e in logs if e["event"] == "run.stopping"] == ["run.stopping"]


def test_a_cancel_removes_the_service(tmp_path: Path) -> None:
    """A run cancelled (the daemon stops): cancelled with its reason, service removed."""
    engine = FakeEngine(FakeClock())
    engine.task_script = [[task("a", 0, "running")]]
    outcome, _ = run_service(tmp_path, engine, cancel=True)
    assert (outcome.status, outcome.reason) == (Status.CANCELLED, "daemon_stopping")
    assert engine.removed_services == ["svc1"]


def test_no_swarm_manager_or_an_unknown_secret_fails_before_any_service(tmp_path: Path) -> None:
    """Not a manager: not_swarm_manager. A config not in the swarm: unknown_config, named."""
    engine = FakeEngine(FakeClock(), manager=False)
    outcome, _ = run_service(tmp_path, engine)
    assert (outcome.status, outcome.reason) == (Status.FAILED, "not_swarm_manager")
    engine = FakeEngine(FakeClock())
    engine.swarm_objects = {"secret": {"pw": "id1"}}
    outcome, _ = run_service(tmp_path, engine, 'secrets = ["pw"]\nconfigs = ["c1", "c2"]\n')
    assert (outcome.status, outcome.reason) == (Status.FAILED, "unknown_config")
    assert outcome.error is not None
    assert outcome.error.startswith("no Swarm config named 'c1', 'c2'")
    assert engine.service_specs == []


def test_a_dead_daemons_services_are_settled_adopted_or_removed(tmp_path: Path) -> None:
    """Ended: recorded with what its tasks decide, removed. Running with a known run:
    adopted, followed to its end. Unknown run: removed."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n[jobs.j]\nkind = "service"\n'
        'image = "i"\nschedule = "@daily"\nreplicas = 2\n'
    )
    config = load_config(path, {})
    history = History.open(tmp_path)
    for run_id in ("ended", "running"):
        history.begin(run_id, 1, "j", trigger="schedule", scheduled_at=T0, started_at=T0)
    engine = FakeEngine(FakeClock())

    def service(sid: str, run_id: str) -> ServiceInfo:
        labels = {LABEL_DAEMON: "d", LABEL_JOB: "j", LABEL_RUN: run_id, LABEL_ATTEMPT: "1"}
        return ServiceInfo(sid, sid, {**labels, LABEL_ROLE: "service"}, replicas=2)

    engine.services = [
        service("s-ended", "ended"),
        service("s-run", "running"),
        service("s-x", "x"),
    ]
    ended = [task("a", 0, "complete", code=0), task("b", 1, "failed", code=5)]
    engine.task_script = [ended, [task("c", 0, "running")], [], ended]
    runner = Runner(engine, config.daemon, engine.clock, "ops", history)
    with structlog.testing.capture_logs() as logs:
        settle(engine, history, runner, jobs=config.jobs, daemon="d", clock=engine.clock)
        assert runner.join(10)
    rows = {r.run_id: r for r in history.runs("j")}
    assert (rows["ended"].status, rows["ended"].exit_code) == (Status.FAILED, 5)
    assert rows["ended"].reason == "settled_after_restart"
    assert (rows["running"].status, rows["running"].exit_code) == (Status.FAILED, 5)
    assert sorted(engine.removed_services) == ["s-ended", "s-run", "s-x"]
    assert [e["service_id"] for e in logs if e["event"] == "run.orphan_removed"] == ["s-x"]
    assert [e["event"] for e in logs if e["event"] == "run.adopted"] == ["run.adopted"]


def test_an_engine_outage_leaves_the_service_to_the_orphan_logic(tmp_path: Path) -> None:
    """The engine stops answering while the tasks run: the attempt is interrupted (it stays
    recorded running) and the service is not removed — the settling on the engine's
    return judges it from its tasks."""
    engine = FakeEngine(FakeClock())
    engine.fail["service_tasks"] = EngineUnavailableError("no answer")
    with pytest.raises(RunInterruptedError) as caught:
        run_service(tmp_path, engine)
    assert caught.value.container_id == "svc1"
    assert engine.removed_services == []


def test_a_service_name_is_one_swarm_takes() -> None:
    """Dots become dashes; a long daemon and job name is cut at the front's end, the run id
    kept, 63 characters at most."""
    assert service_name("cron", "db.dump", "abc123") == "cron-db-dump-abc123"
    long = service_name("d" * 40, "j" * 40, "0123456789ab")
    assert len(long) == 63
    assert long.endswith("-0123456789ab")


def test_the_start_warns_of_service_jobs_on_an_engine_that_is_no_manager(tmp_path: Path) -> None:
    """daemon.not_swarm_manager names the enabled service jobs; a manager, or no such job,
    gives no warning."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}"\n'
        '[jobs.a]\nkind = "service"\nimage = "i"\nschedule = "@daily"\n'
        '[jobs.b]\nkind = "service"\nimage = "i"\nschedule = "@daily"\nenabled = false\n'
        '[jobs.c]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n'
    )
    jobs = load_config(path, {}).jobs
    heard = []
    for manager, given in ((False, jobs), (True, jobs), (False, {"c": jobs["c"]})):
        with structlog.testing.capture_logs() as logs:
            swarm_check(FakeEngine(FakeClock(), manager=manager), given)
        heard.append([(e["event"], e["jobs"]) for e in logs])
    assert heard == [[("daemon.not_swarm_manager", ["a"])], [], []]


def test_a_service_removed_by_someone_else_fails_the_run(tmp_path: Path) -> None:
    """Its tasks seen, then none: failed, reason interrupted, saying the service is gone
    (not a wait until the timeout)."""
    engine = FakeEngine(FakeClock())
    engine.task_script = [[task("a", 0, "running")], []]
    outcome, _ = run_service(tmp_path, engine)
    assert (outcome.status, outcome.reason) == (Status.FAILED, "interrupted")
    assert outcome.error == "the service is gone: something else removed it"
    assert engine.clock.monotonic() < 1010.0  # before the job's 10 s timeout


def test_a_service_the_engine_no_longer_finds_fails_the_run_or_is_cancelled(
    tmp_path: Path,
) -> None:
    """A real engine refuses to list a removed service's tasks (not found, not an empty
    list): removed by someone else, the run fails as interrupted, saying so; removed by a
    canceller, the run is cancelled."""
    engine = FakeEngine(FakeClock())
    engine.task_script = [[task("a", 0, "running")], None]
    engine.fail["whole_log"] = EngineNotFoundError("service s: not found")  # its log too
    outcome, logs = run_service(tmp_path, engine)
    assert (outcome.status, outcome.reason) == (Status.FAILED, "interrupted")
    assert outcome.error == "the service is gone: something else removed it"
    assert [e for e in logs if e["event"] == "run.output_lost"] == []  # not a lost output
    engine = FakeEngine(FakeClock())
    engine.task_script = [None]
    outcome, _ = run_service(tmp_path, engine, cancel=True)
    assert (outcome.status, outcome.reason) == (Status.CANCELLED, "daemon_stopping")


def test_mounts_networks_resources_and_placement_reach_the_request() -> None:
    """A host path is a bind, a name a volume; networks by name; CPUs in nano-CPUs; spread
    preferences; a global job's mode."""
    spec = ServiceSpec(
        "busybox",
        mounts=(Mount("data", "/data", read_only=True), Mount("/srv", "/srv")),
        networks=("backend",),
        cpus=0.5,
        memory=64,
        reserve_cpus=0.25,
        reserve_memory=32,
        constraints=("node.role == worker",),
        preferences=("node.labels.zone",),
        global_job=True,
    )
    body = service_body(spec, name="n", labels={}, secrets={}, configs={})
    template = body["TaskTemplate"]
    mounts = template["ContainerSpec"]["Mounts"]
    assert [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in mounts] == [
        ("volume", "data", "/data", True),
        ("bind", "/srv", "/srv", False),
    ]
    assert template["Networks"] == [{"Target": "backend"}]
    assert template["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64},
        "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 32},
    }
    assert template["Placement"] == {
        "Constraints": ["node.role == worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
    }
    assert body["Mode"] == {"GlobalJob": {}}


class _Api:
    """What DockerEngine.service_create asks of docker-py's client, recorded."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def _url(self, path: str) -> str:
        return path

    def _post_json(self, url: str, data: object, headers: dict[str, str]) -> object:
        self.headers = headers
        return data

    def _result(self, response: object, json: bool) -> dict[str, str]:
        return {"ID": "svc-id"}


def test_registry_credentials_go_with_the_service_to_the_nodes() -> None:
    """The job's credentials are the X-Registry-Auth header of the create request (the
    nodes pull with them); anonymous: no header."""
    api = _Api()
    engine = DockerEngine(api)
    auth = PullAuth("r.example", "r.example", "the job's registry_auth", "u", "p4ss")
    spec = ServiceSpec("r.example/app:1")
    made = engine.service_create(spec, name="n", labels={}, secrets={}, configs={}, auth=auth)
    assert made == "svc-id"
    header = json.loads(base64.urlsafe_b64decode(api.headers["X-Registry-Auth"]))
    assert header == {"serveraddress": "r.example", "username": "u", "password": "p4ss"}
    engine.service_create(spec, name="n", labels={}, secrets={}, configs={}, auth=None)
    assert api.headers == {}


def _settle_after_kind_change(
    tmp_path: Path, engine: FakeEngine, kind: str
) -> tuple[History, Logs]:
    """Settle with job j now of ``kind`` (and its run "left" recorded running)."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nname = "d"\nstate_dir = "{tmp_path}"\n[jobs.j]\nkind = "{kind}"\n'
        'image = "i"\nschedule = "@daily"\n'
    )
    config = load_config(path, {})
    history = History.open(tmp_path)
    history.begin("left", 1, "j", trigger="schedule", scheduled_at=T0, started_at=T0)
    runner = Runner(engine, config.daemon, engine.clock, "ops", history)
    with structlog.testing.capture_logs() as logs:
        settle(engine, history, runner, jobs=config.jobs, daemon="d", clock=engine.clock)
        assert runner.join(10)
    return history, logs


LEFT = {LABEL_DAEMON: "d", LABEL_JOB: "j", LABEL_RUN: "left", LABEL_ATTEMPT: "1"}


def test_a_running_service_of_a_job_now_of_another_kind_is_removed(tmp_path: Path) -> None:
    """The job was a service job when the dead daemon started the run, a run job now: its
    service still running is not adopted as if it were a container (never removed, the
    engine replacing its tasks on) but removed, the run recorded cancelled."""
    engine = FakeEngine(FakeClock())
    engine.services = [ServiceInfo("s-left", "s-left", {**LEFT, LABEL_ROLE: "service"}, 1)]
    engine.task_script = [[task("a", 0, "running")]]
    history, logs = _settle_after_kind_change(tmp_path, engine, "run")
    assert engine.removed_services == ["s-left"]
    (row,) = history.runs("j")
    assert (row.status, row.reason) == (Status.CANCELLED, "orphan_stopped")
    assert [e for e in logs if e["event"] == "run.adopted"] == []


def test_a_running_container_of_a_job_now_a_service_job_is_stopped(tmp_path: Path) -> None:
    """The job was a run job, a service job now: its container still running is not
    adopted as a service (gone at once, the container left running) but stopped and
    removed, the run recorded cancelled."""
    from scheduler.engine import ContainerInfo  # noqa: PLC0415

    engine = FakeEngine(
        FakeClock(), containers=[ContainerInfo("c-left", "c-left", "running", LEFT)]
    )
    history, logs = _settle_after_kind_change(tmp_path, engine, "service")
    assert ("remove", "c-left") in engine.calls
    assert any(name == "stop" for name, _ in engine.calls)
    (row,) = history.runs("j")
    assert (row.status, row.reason) == (Status.CANCELLED, "orphan_stopped")
    assert [e for e in logs if e["event"] == "run.adopted"] == []
