"""Job kind ``service`` on a real Swarm (the private single-node manager): each run is a job
service, judged by each slot's first task, its tasks' logs as run.output, removed after."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import BUSYBOX, Daemon, PrivateSwarm, event

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
DAEMON = 'ops_image = "busybox:latest"\nshutdown_grace = "5s"'


def service_job(name: str, schedule: str = "@manual", **keys: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return (
        f'[jobs.{name}]\nkind = "service"\nschedule = "{schedule}"\nimage = "{BUSYBOX}"\n{lines}\n'
    )


def services_of(swarm: PrivateSwarm, daemon: Daemon) -> list[object]:
    """The services the daemon left on the swarm."""
    return list(swarm.client.services.list(filters={"label": f"{LABEL_DAEMON}={daemon.name}"}))


def start(start_daemon: Start, swarm: PrivateSwarm, jobs: str) -> Daemon:
    return start_daemon(jobs, daemon=DAEMON, env={"DOCKER_HOST": swarm.host})


def test_a_failing_task_of_three_fails_the_run_naming_it(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """replicated-job, 3 replicas (slots 0 to 2), slot 2 exits 3: run.failed says "1 of 3 tasks failed"
    with exit code 3 (however many replacement tasks the engine made); each task's lines
    arrive as run.output with its node and task; the service is removed."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "three",
            schedule="@yearly",
            run_on_start="true",
            replicas="3",
            env='{ SLOT = "{{.Task.Slot}}" }',
            command="""["sh", "-c", "echo slot-$SLOT; [ \\"$SLOT\\" != 2 ] || exit 3"]""",
        ),
    )
    failed = daemon.log.wait_for(event("run.failed", job="three"), timeout=120)[0]
    assert failed["reason"] == "tasks_failed"
    assert failed["exit_code"] == 3
    assert failed["error"].startswith("1 of 3 tasks failed; first: task ")
    assert "(slot 2)" in failed["error"]
    assert failed["error"].endswith(": exit code 3")
    lines = daemon.log.matching(event("run.output", run_id=failed["run_id"]))
    # A job's slots count from 0; {{.Task.Slot}} renders slot 0 as the node's id.
    info = private_swarm.client.info()
    assert sorted(e["line"] for e in lines) == sorted(
        ["slot-1", "slot-2", f"slot-{info['Swarm']['NodeID']}"]
    )
    node = info["Name"]
    assert {e["node"] for e in lines} == {node}
    assert len({e["task"] for e in lines}) == 3
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_global_job_runs_one_task_per_node_and_succeeds(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """global-job on a one-node swarm: one task, its line with the node's name, succeeded;
    the service is removed."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "everywhere",
            schedule="@yearly",
            run_on_start="true",
            mode='"global-job"',
            command="""["sh", "-c", "echo on-node"]""",
        ),
    )
    done = daemon.log.wait_for(event("run.succeeded", job="everywhere"), timeout=120)[0]
    lines = daemon.log.matching(event("run.output", run_id=done["run_id"]))
    assert [(e["line"], e["node"]) for e in lines] == [
        ("on-node", private_swarm.client.info()["Name"])
    ]
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_global_job_runs_on_every_node_of_a_two_node_swarm(
    start_daemon: Start, two_node_swarm: PrivateSwarm
) -> None:
    """global-job on a manager and a worker: one task on each node, each node's line in
    run.output under its own node name and task, one run succeeded; the service is removed."""
    daemon = start(
        start_daemon,
        two_node_swarm,
        service_job(
            "everywhere",
            schedule="@yearly",
            run_on_start="true",
            mode='"global-job"',
            command="""["sh", "-c", "echo on-node"]""",
        ),
    )
    done = daemon.log.wait_for(event("run.succeeded", job="everywhere"), timeout=120)[0]
    lines = daemon.log.matching(event("run.output", run_id=done["run_id"]))
    nodes = {n.attrs["Description"]["Hostname"] for n in two_node_swarm.client.nodes.list()}
    assert nodes == {two_node_swarm.client.info()["Name"], "crt-worker-1"}
    assert sorted(e["node"] for e in lines) == sorted(nodes)
    assert {e["line"] for e in lines} == {"on-node"}
    assert len({e["task"] for e in lines}) == 2
    assert services_of(two_node_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_timeout_removes_the_service(start_daemon: Start, private_swarm: PrivateSwarm) -> None:
    """A task that outlives the job's timeout: run.timed_out, and the service is gone."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "slow",
            schedule="@yearly",
            run_on_start="true",
            timeout='"3s"',
            command="""["sleep", "300"]""",
        ),
    )
    ended = daemon.log.wait_for(event("run.timed_out", job="slow"), timeout=120)[0]
    assert ended["reason"] == "timeout"
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_an_unknown_swarm_secret_fails_the_run_clearly(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """A secret named in the job but not in the swarm: the run fails, reason unknown_secret,
    naming it; no service is made."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "secretive",
            schedule="@yearly",
            run_on_start="true",
            secrets='["no-such-secret"]',
            command='["true"]',
        ),
    )
    failed = daemon.log.wait_for(event("run.failed", job="secretive"), timeout=60)[0]
    assert failed["reason"] == "unknown_secret"
    assert "'no-such-secret'" in failed["error"]
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_swarm_secret_and_config_reach_the_tasks(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """Secrets and configs named in the job are mounted in the task (looked up by name)."""
    client = private_swarm.client
    client.secrets.create(name="svc-secret", data=b"s3cret")
    client.configs.create(name="svc-config", data=b"conf-text")
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "reader",
            schedule="@yearly",
            run_on_start="true",
            secrets='["svc-secret"]',
            configs='["svc-config"]',
            command="""["sh", "-c", "cat /run/secrets/svc-secret; echo; cat /svc-config"]""",
        ),
    )
    done = daemon.log.wait_for(event("run.succeeded", job="reader"), timeout=120)[0]
    lines = daemon.log.matching(event("run.output", run_id=done["run_id"]))
    assert [e["line"] for e in lines] == ["s3cret", "conf-text"]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_non_manager_engine_fails_the_run(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """On an engine that is not a Swarm manager (the shared one): reason not_swarm_manager."""
    daemon = start_daemon(
        service_job("nowhere", schedule="@yearly", run_on_start="true", command='["true"]')
    )
    failed = daemon.log.wait_for(event("run.failed", job="nowhere"), timeout=60)[0]
    assert failed["reason"] == "not_swarm_manager"
    assert "not a Swarm manager" in failed["error"]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_killed_daemons_service_is_settled_by_the_next(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """kill -9 while a service runs; the task then fails; the next daemon (same name and
    state) records the run failed from the task, reason settled_after_restart, and removes
    the service."""
    command = """["sh", "-c", "sleep 4; exit 7"]"""
    first = start(
        start_daemon,
        private_swarm,
        service_job("held", schedule="@yearly", run_on_start="true", command=command),
    )
    first.log.wait_for(event("run.started", job="held"), timeout=60)
    deadline = time.monotonic() + 60
    while not services_of(private_swarm, first):
        assert time.monotonic() < deadline, "no service was made"
        time.sleep(0.2)
    first.kill()
    deadline = time.monotonic() + 60
    while True:  # the task ends on its own (exit 7) while no daemon runs
        service = services_of(private_swarm, first)[0]
        states = [t["Status"]["State"] for t in service.tasks()]  # type: ignore[attr-defined]
        if "failed" in states:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    second = start_daemon(
        service_job("held", schedule="@yearly", command=command),
        daemon=f'{DAEMON}\nstate_dir = "{first.state_dir}"',
        env={"DOCKER_HOST": private_swarm.host},
        name=first.name,
    )
    settled = second.log.wait_for(event("run.settled", job="held"), timeout=60)[0]
    assert (settled["status"], settled["exit_code"], settled["reason"]) == (
        "failed",
        7,
        "settled_after_restart",
    )
    assert services_of(private_swarm, second) == [], second.log.raw[-30:]
    rows = second.history("held")
    assert [(r["status"], r["exit_code"]) for r in rows] == [("failed", 7)]
    assert rows[0]["error"].startswith("1 of 1 tasks failed")
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def test_a_daemon_stop_removes_a_running_service(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """SIGTERM while the tasks run: past shutdown_grace the run is cancelled
    (daemon_stopping) and the service removed; the daemon exits 0."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job("long", schedule="@yearly", run_on_start="true", command='["sleep", "300"]'),
    )
    daemon.log.wait_for(event("run.started", job="long"), timeout=60)
    deadline = time.monotonic() + 60
    while not services_of(private_swarm, daemon):
        assert time.monotonic() < deadline, "no service was made"
        time.sleep(0.2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    cancelled = daemon.log.matching(event("run.cancelled", job="long"))
    assert [e["reason"] for e in cancelled] == ["daemon_stopping"]
    assert services_of(private_swarm, daemon) == []


def test_a_killed_daemons_running_service_is_adopted_by_the_next(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """kill -9 while the task runs; the next daemon adopts the service (run.adopted),
    follows it to its end (exit 0: succeeded, its later output as run.output) and removes it."""
    command = """["sh", "-c", "sleep 6; echo late-line"]"""
    first = start(
        start_daemon,
        private_swarm,
        service_job("kept", schedule="@yearly", run_on_start="true", command=command),
    )
    started = first.log.wait_for(event("run.started", job="kept"), timeout=60)[0]
    deadline = time.monotonic() + 60
    while not services_of(private_swarm, first):
        assert time.monotonic() < deadline, "no service was made"
        time.sleep(0.2)
    first.kill()
    second = start_daemon(
        service_job("kept", schedule="@yearly", command=command),
        daemon=f'{DAEMON}\nstate_dir = "{first.state_dir}"',
        env={"DOCKER_HOST": private_swarm.host},
        name=first.name,
    )
    second.log.wait_for(event("run.adopted", run_id=started["run_id"]), timeout=60)
    done = second.log.wait_for(event("run.succeeded", run_id=started["run_id"]), timeout=120)[0]
    assert done["job"] == "kept"
    lines = second.log.matching(event("run.output", run_id=started["run_id"]))
    assert [e["line"] for e in lines] == ["late-line"]
    assert services_of(private_swarm, second) == []
    assert [r["status"] for r in second.history("kept")] == ["succeeded"]
    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0


def test_a_failing_task_with_fewer_at_once_than_replicas_fails_the_run(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """replicas = 2, max_concurrent = 1, every task exits 4: the engine replaces slot 0's
    failed task over and over and never makes slot 1; the run fails on slot 0's first
    task ("1 of 1 tasks failed") instead of waiting for the job's timeout."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "serial",
            schedule="@yearly",
            run_on_start="true",
            replicas="2",
            max_concurrent="1",
            timeout='"90s"',
            command="""["sh", "-c", "exit 4"]""",
        ),
    )
    ended = daemon.log.wait_for(
        lambda e: e.get("job") == "serial" and e.get("event") in {"run.failed", "run.timed_out"},
        timeout=150,
    )[0]
    assert (ended["event"], ended["reason"], ended.get("exit_code")) == (
        "run.failed",
        "tasks_failed",
        4,
    )
    assert ended["error"].startswith("1 of 1 tasks failed; first: task ")
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_retried_service_job_runs_each_attempt(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """retries = 1: the second attempt creates its own service (the first one's name is
    free again once it is removed) and fails on its task, as the first did."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job(
            "again",
            schedule="@yearly",
            run_on_start="true",
            retries="1",
            retry_delay='"1s"',
            command="""["sh", "-c", "exit 6"]""",
        ),
    )
    failed = daemon.log.wait_for(event("run.failed", job="again", attempt=2), timeout=150)[0]
    assert (failed["reason"], failed["exit_code"]) == ("tasks_failed", 6)
    assert services_of(private_swarm, daemon) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0


def test_a_service_removed_by_someone_else_fails_the_run_as_interrupted(
    start_daemon: Start, private_swarm: PrivateSwarm
) -> None:
    """`docker service rm` of a run's service while its task runs: the run fails, reason
    interrupted, saying the service is gone (the engine then refuses to list its tasks)."""
    daemon = start(
        start_daemon,
        private_swarm,
        service_job("removed", schedule="@yearly", run_on_start="true", command='["sleep", "300"]'),
    )
    daemon.log.wait_for(event("run.started", job="removed"), timeout=60)
    deadline = time.monotonic() + 60
    while not (made := services_of(private_swarm, daemon)):
        assert time.monotonic() < deadline, "no service was made"
        time.sleep(0.2)
    made[0].remove()  # type: ignore[attr-defined]
    failed = daemon.log.wait_for(event("run.failed", job="removed"), timeout=60)[0]
    assert (failed.get("reason"), failed.get("error")) == (
        "interrupted",
        "the service is gone: something else removed it",
    )
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
