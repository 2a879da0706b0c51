"""Chains on the real engine: dump → backup → ship with a failure branch, the parent's run
seen from inside the chained containers and in the history, and @manual jobs that never
fire on their own."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING, Any

import pytest

from scheduler.engine import LABEL_DAEMON, LABEL_JOB

from .conftest import BUSYBOX, PROJECT_IMAGE, event, run_job, unique
from .helpers import Inspector, cli

if TYPE_CHECKING:
    from collections.abc import Callable

    import docker

    from .conftest import Daemon

pytestmark = pytest.mark.integration

SAY_PARENT = (
    'echo "parent=$CRONTAINER_PARENT_JOB run=$CRONTAINER_PARENT_RUN_ID '
    'status=$CRONTAINER_PARENT_STATUS"'
)


def output(daemon: Daemon, job: str) -> list[str]:
    """The output lines of ``job``'s runs, as logged."""
    return [e["line"] for e in daemon.log.matching(event("run.output", job=job))]


def env_of(seen: list[dict[str, Any]], daemon: Daemon, job: str) -> dict[str, str]:
    """The environment of the one container of ``job`` the inspector saw."""
    found = [
        c
        for c in seen
        if c.get("Config", {}).get("Labels", {}).get(LABEL_DAEMON) == daemon.name
        and c["Config"]["Labels"].get(LABEL_JOB) == job
    ]
    assert len(found) == 1, [c.get("Id") for c in found]
    return dict(item.split("=", 1) for item in found[0]["Config"]["Env"] or [])


def test_a_chain_with_a_failure_branch(
    start_daemon: Callable[..., Daemon],
    engine: docker.DockerClient,
    make: Callable[..., Any],
    make_volume: Callable[[str], str],
) -> None:
    """dump succeeds → backup (chained, its archive made) → ship, which sees backup's run
    and the archive; broken fails → page (on_failure), never its on_success job; page is not
    run by dump's success. History records each chained run's parent; @manual jobs that
    nothing chains never run, and `crontainer jobs` shows them manual."""
    target = make_volume("crontainer-test-chain-backups")
    data = make(BUSYBOX, ["true"], name=unique("t-chain-data"), volumes=["/data"])
    assert data.wait(timeout=60)["StatusCode"] == 0
    jobs = (
        run_job(
            "dump",
            ["sh", "-c", "echo rows > /data/dump.sql"],
            schedule="@manual",
            run_on_start=True,
            volumes_from=[data.name],
            on_success=["backup"],
            on_failure=["page"],
        )
        + '[jobs.backup]\nkind = "backup"\nschedule = "@manual"\n'
        f'volumes_from = ["{data.name}"]\ntarget = "{target}"\non_success = ["ship"]\n\n'
        + run_job(
            "ship",
            ["sh", "-c", f"{SAY_PARENT}; ls /backups"],
            schedule="@manual",
            volumes=[f"{target}:/backups:ro"],
        )
        + run_job(
            "broken",
            ["sh", "-c", "exit 3"],
            schedule="@manual",
            run_on_start=True,
            on_success=["never"],
            on_failure=["page"],
        )
        + run_job("page", ["sh", "-c", SAY_PARENT], schedule="@manual")
        + run_job("never", ["true"], schedule="@manual")
        + run_job("idle", ["true"], schedule="@manual")
    )
    watching = Inspector(engine)
    try:
        daemon = start_daemon(jobs, daemon=f'ops_image = "{PROJECT_IMAGE}"')
        daemon.log.wait_for(event("run.succeeded", job="ship"), timeout=120)
        daemon.log.wait_for(event("run.succeeded", job="page"), timeout=60)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(60) == 0
    finally:
        watching.close()

    runs = {r["job"]: r for r in daemon.history()}
    assert sorted(runs) == ["backup", "broken", "dump", "page", "ship"]  # never, idle: no run
    assert [(r["job"], r["status"]) for r in daemon.history() if r["job"] == "page"] == [
        ("page", "succeeded")
    ]  # once: from broken's failure, not from dump's success
    assert (runs["dump"]["trigger"], runs["dump"]["parent_run_id"]) == ("start", None)
    assert (runs["broken"]["status"], runs["broken"]["exit_code"]) == ("failed", 3)
    expected = {
        "backup": runs["dump"]["run_id"],
        "ship": runs["backup"]["run_id"],
        "page": runs["broken"]["run_id"],
    }
    assert {j: (runs[j]["trigger"], runs[j]["parent_run_id"]) for j in expected} == {
        j: ("chain", parent) for j, parent in expected.items()
    }

    backup_id, broken_id = runs["backup"]["run_id"], runs["broken"]["run_id"]
    archive = daemon.log.matching(event("run.succeeded", job="backup"))[0]["archive"]
    assert output(daemon, "ship") == [
        f"parent=backup run={backup_id} status=succeeded",
        archive,
        f"{archive}.sha256",
    ]
    assert output(daemon, "page") == [f"parent=broken run={broken_id} status=failed"]

    dispatched = daemon.log.matching(event("chain.dispatched"))
    assert sorted((e["job"], e["child"], e["on"], e["parent_status"]) for e in dispatched) == [
        ("backup", "ship", "on_success", "succeeded"),
        ("broken", "page", "on_failure", "failed"),
        ("dump", "backup", "on_success", "succeeded"),
    ]
    assert {e["child"]: e["child_run_id"] for e in dispatched} == {
        j: runs[j]["run_id"] for j in expected
    }

    # the variables reach the containers of the kinds that run a user's command only
    ship_env = env_of(watching.seen, daemon, "ship")
    assert ship_env["CRONTAINER_PARENT_RUN_ID"] == backup_id
    backup_env = env_of(watching.seen, daemon, "backup")
    assert not [k for k in backup_env if k.startswith("CRONTAINER_PARENT_")]
    left = engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"})
    assert left == []  # every run's container removed, the chained ones' too

    listed = json.loads(cli(daemon, "jobs", "--json"))
    assert (listed["idle"]["manual"], listed["idle"]["next_run"]) == (True, None)
    table = cli(daemon, "history", "ship")
    assert backup_id in table.splitlines()[1].split()


def rewrite_jobs(daemon: Daemon, jobs: str) -> None:
    """Replace the daemon's jobs in its config file (a new file renamed over the old)."""
    head, rest = daemon.config.read_text().split("[defaults]")
    labels = rest.split("\n")[1]
    new = daemon.config.with_suffix(".new")
    new.write_text(f"{head}[defaults]\n{labels}\n{jobs}")
    new.replace(daemon.config)


def test_a_triggered_run_chains_and_a_reload_removes_the_edge(
    start_daemon: Callable[..., Daemon],
) -> None:
    """`crontainer trigger` of a @manual job starts its chain; after a SIGHUP reload that
    removed the edge, the next triggered run starts nothing."""
    child = run_job("after", ["sh", "-c", SAY_PARENT], schedule="@manual")
    daemon = start_daemon(
        run_job("first", ["true"], schedule="@manual", on_finish=["after"]) + child
    )
    daemon.log.wait_for(event("daemon.started"))
    cli(daemon, "trigger", "first")
    chained = daemon.log.wait_for(event("run.succeeded", job="after"))[0]
    rewrite_jobs(daemon, run_job("first", ["true"], schedule="@manual") + child)
    daemon.signal(signal.SIGHUP)
    assert daemon.log.wait_for(event("config.reloaded"))[0]["changed"] == ["first"]
    cli(daemon, "trigger", "first")
    daemon.log.wait_for(event("run.succeeded", job="first"), count=2)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0

    runs = daemon.history()
    first = [r["run_id"] for r in runs if r["job"] == "first"]
    assert [(r["job"], r["trigger"]) for r in runs] == [
        ("first", "manual"),
        ("after", "chain"),
        ("first", "manual"),
    ]
    assert [r["parent_run_id"] for r in runs if r["job"] == "after"] == [first[0]]
    assert output(daemon, "after") == [f"parent=first run={first[0]} status=succeeded"]
    assert chained["run_id"] == runs[1]["run_id"]
    assert daemon.log.matching(event("chain.skipped")) == []
