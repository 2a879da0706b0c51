"""Live change on the real engine: file edits and SIGHUP reload jobs; a bad file keeps the old."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

import docker
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]


def rewrite(daemon: Daemon, jobs: str) -> None:
    """Replace the config file the way editors do: a new file renamed over the old one."""
    head = daemon.config.read_text().split("[defaults]")[0]
    labels = daemon.config.read_text().split("[defaults]")[1].split("\n")[1]
    new = daemon.config.with_suffix(".new")
    new.write_text(f"{head}[defaults]\n{labels}\n{jobs}")
    new.replace(daemon.config)


def test_file_change_adds_removes_and_changes_jobs(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """Added jobs run, removed jobs stop, changed jobs take the new definition; a run in
    flight is not touched."""
    daemon = start_daemon(
        run_job("stays", ["sh", "-c", "echo v1"])
        + run_job("goes", "true")
        + run_job("slow", ["sh", "-c", "sleep 4; echo slow-done"], schedule="@every 2s"),
        daemon='config_poll = "0.5s"',
    )
    log = daemon.log
    log.wait_for(event("run.succeeded", job="goes"))
    slow = log.wait_for(event("run.started", job="slow"))[0]
    rewrite(
        daemon,
        run_job("stays", ["sh", "-c", "echo v2"])
        + run_job("comes", ["sh", "-c", "echo new job"])
        + run_job("slow", ["sh", "-c", "sleep 4; echo slow-done"], schedule="@every 2s"),
    )
    reloaded = log.wait_for(event("config.reloaded"), timeout=10)[0]
    assert reloaded["trigger"] == "file_changed"
    assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == (
        ["comes"],
        ["goes"],
        ["stays"],
    )
    position = len(log.events)
    log.wait_for(event("run.output", job="comes", line="new job"))
    log.wait_for(event("run.output", job="stays", line="v2"))
    log.wait_for(
        event("run.succeeded", run_id=slow["run_id"]), timeout=15
    )  # the run in flight finished
    assert not [
        e
        for e in log.events[position:]
        if e.get("event") == "run.started" and e.get("job") == "goes"
    ]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_a_bad_file_keeps_the_running_config_and_sighup_reloads(
    start_daemon: Start, engine: docker.DockerClient
) -> None:
    """config.invalid lists every error and the old jobs go on; SIGHUP loads the fixed file."""
    daemon = start_daemon(run_job("steady", "true"), daemon='config_poll = "0.5s"')
    log = daemon.log
    log.wait_for(event("run.succeeded", job="steady"))
    rewrite(
        daemon, run_job("steady", "true", schedule="* * * * * *") + '[jobs.broken]\nkind = "nope"\n'
    )
    invalid = log.wait_for(event("config.invalid"), timeout=10)[0]
    assert invalid["errors"] == [
        (
            "jobs.steady.schedule: 6 fields: a seconds field must be marked, as in "
            "'@with-seconds * * * * * *'; standard cron has 5 fields"
        ),
        "jobs.broken.kind: unknown kind 'nope' (one of: run, exec, signal, backup, logship, rotate, service)",
    ]
    before = len(log.matching(event("run.succeeded", job="steady")))
    log.wait_for(event("run.succeeded", job="steady"), count=before + 2)  # the old config runs on
    # A fixed file, and SIGHUP: the reload happens now, whichever of the two notices first.
    rewrite(daemon, run_job("steady", "true") + run_job("second", "true", schedule="@every 2s"))
    daemon.signal(signal.SIGHUP)
    reloaded = log.wait_for(event("config.reloaded"), timeout=10)[0]
    assert reloaded["added"] == ["second"]
    log.wait_for(event("run.succeeded", job="second"))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert (
        engine.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon.name}"}) == []
    )


def test_included_files_are_picked_up_live_and_a_bad_one_keeps_the_running_jobs(
    start_daemon: Start,
) -> None:
    """include = ["conf.d/*.toml"] on the real engine: a file dropped in is noticed by the
    poll and its job runs; a bad file and a name defined twice are config.invalid naming
    the files, while the running jobs go on; the file fixed and SIGHUP: applied."""
    daemon = start_daemon(
        run_job("steady", "true"),
        daemon='config_poll = "0.5s"',
        top='include = ["conf.d/*.toml"]\n',
    )
    log = daemon.log
    log.wait_for(event("run.succeeded", job="steady"))
    conf = daemon.config.parent / "conf.d"
    conf.mkdir()
    (conf / "app.toml").write_text(run_job("app-clean", "true"))
    assert log.wait_for(event("config.reloaded"), timeout=10)[0]["added"] == ["app-clean"]
    log.wait_for(event("run.succeeded", job="app-clean"))
    (conf / "bad.toml").write_text(run_job("steady", "true") + '[jobs.x]\nkind = "nope"\n')
    invalid = log.wait_for(event("config.invalid"), timeout=10)[0]
    assert invalid["errors"] == [
        "jobs.steady: defined in " + daemon.config.name + " and again in conf.d/bad.toml",
        (
            "conf.d/bad.toml: jobs.x.kind: unknown kind 'nope' (one of: run, exec, signal, backup, "
            "logship, rotate, service)"
        ),
    ]
    before = len(log.matching(event("run.succeeded", job="app-clean")))
    log.wait_for(event("run.succeeded", job="app-clean"), count=before + 2)  # runs on
    (conf / "bad.toml").write_text(run_job("second", "true"))
    daemon.signal(signal.SIGHUP)
    assert log.wait_for(event("config.reloaded"), count=2, timeout=10)[1]["added"] == ["second"]
    log.wait_for(event("run.succeeded", job="second"))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0


def test_nothing_a_config_holds_stops_the_daemon(start_daemon: Start) -> None:
    """Files that used to crash the daemon after validation — a 100,000-deep array, a jitter
    and an interval past any date, an exec timeout past any wait — are each config.invalid at
    a reload: the running job goes on, a good file applies after them, and SIGTERM still
    drains and exits 0."""
    daemon = start_daemon(run_job("steady", "true"), daemon='config_poll = "0.5s"')
    log = daemon.log
    log.wait_for(event("run.succeeded", job="steady"))
    bad = [
        run_job("steady", "true") + "deep = " + "[" * 100_000 + "]" * 100_000 + "\n",
        run_job("steady", "true", jitter="100000000w"),
        run_job("steady", "true", schedule="@every 99999999999w"),
        run_job("steady", "true")
        + '[jobs.e]\nkind = "exec"\nschedule = "@hourly"\ncontainer = "c"\ncommand = "true"\n'
        + 'timeout = "20000w"\n',
    ]
    for number, text in enumerate(bad, start=1):
        rewrite(daemon, text)
        invalid = log.wait_for(event("config.invalid"), count=number, timeout=10)[-1]
        assert invalid["kept"] == "running config"
        before = len(log.matching(event("run.succeeded", job="steady")))
        log.wait_for(event("run.succeeded", job="steady"), count=before + 1)  # still running
    rewrite(daemon, run_job("steady", "true") + run_job("second", "true"))
    assert log.wait_for(event("config.reloaded"), timeout=10)[0]["added"] == ["second"]
    log.wait_for(event("run.succeeded", job="second"))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert not log.matching(event("daemon.crashed"))


def test_run_on_start_runs_once_at_start(start_daemon: Start) -> None:
    """run_on_start: one run with trigger 'start' right away, though the schedule is far off;
    not again at a reload, which names the [daemon] keys that wait for a restart."""
    daemon = start_daemon(
        run_job("boot", ["echo", "booted"], schedule="@yearly", run_on_start=True)
    )
    done = daemon.log.wait_for(event("run.succeeded", job="boot"), timeout=20)[0]
    started = daemon.log.matching(event("run.started", run_id=done["run_id"]))[0]
    assert started["trigger"] == "start"
    text = daemon.config.read_text().replace("[daemon]\n", '[daemon]\nshutdown_grace = "9s"\n')
    daemon.config.write_text(text + run_job("later", ["echo", "later"], schedule="@every 1s"))
    daemon.signal(signal.SIGHUP)
    restart = daemon.log.wait_for(event("config.restart_required"), timeout=10)[0]
    assert restart["keys"] == ["shutdown_grace"]
    assert daemon.log.wait_for(event("config.reloaded"))[0]["added"] == ["later"]
    daemon.log.wait_for(event("run.succeeded", job="later"))  # the reload is long done
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    assert len(daemon.log.matching(event("run.started", job="boot"))) == 1


def test_trigger_runs_a_job_now_under_its_concurrency_policy(
    start_daemon: Start, tmp_path: object
) -> None:
    """crontainer trigger: a manual run now; unknown job exit 2; skipped under forbid exit 1."""
    daemon = start_daemon(
        run_job("report", ["echo", "manual"], schedule="@yearly")
        + run_job("busy", ["sleep", "30"], schedule="@yearly", stop_grace="1s"),
        daemon='shutdown_grace = "1s"',
    )
    daemon.log.wait_for(event("daemon.started"))

    def trigger(job: str) -> subprocess.CompletedProcess[str]:
        args = [
            sys.executable,
            "-m",
            "scheduler",
            "trigger",
            job,
            "--state-dir",
            str(daemon.state_dir),
        ]
        return subprocess.run(args, capture_output=True, text=True, check=False)

    done = trigger("report")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    started = daemon.log.wait_for(event("run.started", run_id=run_id))[0]
    assert started["trigger"] == "manual"
    daemon.log.wait_for(event("run.succeeded", run_id=run_id))
    unknown = trigger("nope")
    assert unknown.returncode == 2
    assert "unknown job 'nope'" in unknown.stderr
    assert trigger("busy").returncode == 0
    skipped = trigger("busy")
    assert skipped.returncode == 1
    assert "skipped" in skipped.stderr
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(30) == 0
    rows = daemon.history("report")
    assert [(r["trigger"], r["status"]) for r in rows] == [("manual", "succeeded")]
    gone = trigger("report")
    assert gone.returncode == 1
    assert "no daemon answers" in gone.stderr
