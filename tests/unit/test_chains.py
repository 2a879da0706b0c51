"""Chains: on_success / on_failure / on_finish checked at validation (known names, never the
job itself, no cycle), and dispatched when a run ends — through the runner's normal path,
trigger chain, the parent on the record and in the child's environment. And @manual."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import structlog

from jobs.base import PlanContext
from jobs.exec import ExecJob
from jobs.plan import ExecCommand, RunContainer
from jobs.run import RunJob
from scheduler.chains import Chains
from scheduler.engine import ContainerInfo, ExitStatus
from scheduler.history import History
from scheduler.labels.rules import LABEL_KINDS, Fence
from scheduler.reports import history_table, jobs_table, run_json
from scheduler.runner import Dispatched, Runner
from scheduler.runs import ActiveRun, Outcome, Status
from scheduler.schedule import ScheduleError, parse_schedule
from scheduler.settings import Config, load_config

from .configs import file_errors, load_errors
from .fakes import FakeClock, FakeEngine
from .helpers import CAPTURE, SCHEDULED, Heard, Hooks, Logs, events, open_history, wait_for

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from scheduler.settings import JobEntry


def job(name: str, schedule: str = "@daily", **keys: str) -> str:
    """A run job's table; ``keys``: more lines, each ``key = <TOML value>``."""
    extra = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return (
        f'[jobs.{name}]\nkind = "run"\nimage = "img:1"\nschedule = "{schedule}"\n'
        f'pull = "never"\n{extra}'
    )


# --- validation ---------------------------------------------------------------------------


def test_an_unknown_name_is_refused_naming_the_key_and_the_near_name(tmp_path: Path) -> None:
    """A misspelt job: the key it is in, the name, and the job meant."""
    errors = load_errors(
        tmp_path, job("dump", on_success='["ship-dmp"]') + job("ship-dump", "@manual")
    )
    assert errors == ["jobs.dump.on_success: unknown job 'ship-dmp' (did you mean `ship-dump`?)"]


def test_a_job_chained_to_itself_is_refused(tmp_path: Path) -> None:
    """on_finish = its own name: refused with the path of the loop."""
    errors = load_errors(tmp_path, job("a", on_finish='["a"]'))
    assert errors == ["jobs.a.on_finish: a job cannot chain to itself (a -> a)"]


def test_a_cycle_across_keys_is_refused_naming_its_path(tmp_path: Path) -> None:
    """a succeeds into b, b fails into c, c finishes into a: one error, the whole path."""
    errors = load_errors(
        tmp_path,
        job("a", on_success='["b"]')
        + job("b", "@manual", on_failure='["c"]')
        + job("c", "@manual", on_finish='["a"]'),
    )
    assert errors == [
        (
            "jobs.a.on_success: a chain cycle: a -> b -> c -> a "
            "(chained runs would start each other for ever)"
        )
    ]


def test_a_cycle_away_from_the_first_job_names_only_the_cycle(tmp_path: Path) -> None:
    """start -> b -> c -> b: the path of the cycle is b -> c -> b, said at b."""
    errors = load_errors(
        tmp_path,
        job("start", on_success='["b"]')
        + job("b", "@manual", on_finish='["c"]')
        + job("c", "@manual", on_success='["b"]'),
    )
    assert errors == [
        "jobs.b.on_finish: a chain cycle: b -> c -> b (chained runs would start each other for ever)"
    ]


def test_diamonds_are_no_cycle(tmp_path: Path) -> None:
    """Two ways to one job (a -> b -> d, a -> c -> d) is not a cycle."""
    config = load_config_text(
        tmp_path,
        job("a", on_success='["b", "c"]')
        + job("b", "@manual", on_finish='["d"]')
        + job("c", "@manual", on_failure='["d"]')
        + job("d", "@manual"),
    )
    assert config.jobs["a"].job.on_success == ["b", "c"]


def test_a_name_twice_in_one_list_is_refused(tmp_path: Path) -> None:
    """Each job once per key."""
    errors = load_errors(tmp_path, job("a", on_success='["b", "b"]') + job("b", "@manual"))
    assert errors == ["jobs.a.on_success: names 'b' twice"]


def test_a_job_refused_for_another_reason_is_not_called_unknown(tmp_path: Path) -> None:
    """b exists but is invalid: only b's own error, not 'unknown job b' at a."""
    errors = load_errors(tmp_path, job("a", on_success='["b"]') + job("b", "@manual", retries="-1"))
    assert len(errors) == 1
    assert errors[0].startswith("jobs.b.retries:")


def test_chains_cannot_be_defaults(tmp_path: Path) -> None:
    """[defaults] on_failure would chain every job, its own targets too: refused."""
    errors = file_errors(
        tmp_path,
        f'[daemon]\nstate_dir = "{tmp_path}/s"\n[defaults]\non_failure = ["page"]\n'
        + job("page", "@manual"),
    )
    assert errors == [
        (
            "defaults.on_failure: chains cannot have a default (every job, the chained ones "
            "too, would start them): set on_failure in each job that chains"
        )
    ]


def test_a_label_job_may_not_chain_whatever_label_allow_says() -> None:
    """The fence refuses each chain key, even with every allowance given."""
    app = ContainerInfo(id="0123456789abcdef" * 4, name="app", state="running", labels={})
    table = {"schedule": "@daily", "command": "true", "on_success": ["x"], "on_finish": ["y"]}
    _, problems = Fence(app, LABEL_KINDS, ("image", "secrets", "other_containers")).check(table)
    assert [key for key, _ in problems] == ["on_success", "on_finish"]
    assert "does not chain" in problems[0][1]


# --- @manual ------------------------------------------------------------------------------


def test_manual_has_no_time_and_no_warning() -> None:
    """@manual: never a next time, never a latest one, nothing to warn about."""
    schedule = parse_schedule("@manual", "Europe/Berlin")
    assert schedule.manual
    assert schedule.next_after(SCHEDULED) is None
    assert schedule.next_times(SCHEDULED, 3) == []
    assert schedule.warnings(SCHEDULED) == []
    assert not parse_schedule("@daily").manual


def test_manual_takes_nothing_after_it(tmp_path: Path) -> None:
    """'@manual 5' is no schedule."""
    errors = load_errors(tmp_path, job("a", "@manual 5"))
    assert errors[0].startswith("jobs.a.schedule: unknown macro '@manual 5' (known: ")


@pytest.mark.parametrize("said", ["manual", "never", "on demand", "None"])
def test_a_job_without_a_schedule_written_in_words_is_told_manual(said: str) -> None:
    """'manual', 'never', 'on demand': write '@manual'."""
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(said)
    assert str(caught.value) == (
        f"{said!r} is not a schedule here: write '@manual' (runs only when chained or triggered)"
    )


def test_jobs_shows_a_manual_job_as_manual(tmp_path: Path) -> None:
    """The NEXT RUN column says manual; the JSON has no next run and says manual."""
    config = load_config_text(tmp_path, job("a", "@manual") + job("b"))
    table = jobs_table(config.jobs, {}, {}, SCHEDULED).splitlines()
    assert table[1].split()[:5] == ["a", "run", "@manual", "UTC", "manual"]
    assert table[2].split()[4] == "2026-01-06"


# --- the environment of a chained run -----------------------------------------------------

PARENT_ENV = {
    "CRONTAINER_PARENT_JOB": "dump",
    "CRONTAINER_PARENT_RUN_ID": "r1",
    "CRONTAINER_PARENT_STATUS": "failed",
}


def test_a_run_jobs_container_gets_the_parent_over_its_own_values(tmp_path: Path) -> None:
    """The daemon's variables replace the job's own of the same name, a secret's too."""
    config = load_config_text(
        tmp_path,
        job(
            "a",
            env='{ KEEP = "1", CRONTAINER_PARENT_JOB = "mine", '
            'CRONTAINER_PARENT_STATUS = { env = "X" } }',
        ),
    )
    plan = config.jobs["a"].job.plan(PlanContext(job="a", ops_image="o", env=PARENT_ENV))
    step = plan.steps[0]
    assert isinstance(step, RunContainer)
    assert dict(step.spec.env) == {"KEEP": "1", **PARENT_ENV}
    assert step.spec.secret_env == ()


def test_an_exec_gets_the_parent_in_its_environment(tmp_path: Path) -> None:
    """An exec job's command runs with the parent's variables beside its own env."""
    config = load_config_text(
        tmp_path,
        '[jobs.e]\nkind = "exec"\ncontainer = "app"\nschedule = "@manual"\ncommand = "true"\n'
        'env = { A = "1" }\n',
    )
    job_e = config.jobs["e"].job
    assert isinstance(job_e, ExecJob)
    step = job_e.plan(PlanContext(job="e", ops_image="o", env=PARENT_ENV)).steps[0]
    assert isinstance(step, ExecCommand)
    assert dict(step.env) == {"A": "1", **PARENT_ENV}


def test_a_plan_without_a_parent_has_no_parent_variables(tmp_path: Path) -> None:
    """A scheduled run's container: only its own env."""
    config = load_config_text(tmp_path, job("a", env='{ A = "1" }'))
    run_job = config.jobs["a"].job
    assert isinstance(run_job, RunJob)
    step = run_job.plan(PlanContext(job="a", ops_image="o")).steps[0]
    assert isinstance(step, RunContainer)
    assert dict(step.spec.env) == {"A": "1"}


# --- dispatch -----------------------------------------------------------------------------

CHAINED = (
    job("dump", on_success='["ship"]', on_failure='["page"]', on_finish='["ship", "tidy"]')
    + job("ship", "@manual")
    + job("page", "@manual")
    + job("tidy", "@manual")
)


def load_config_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nname = "d1"\nstate_dir = "{tmp_path}/state"\n{text}')
    return load_config(path, {})


class Chained:
    """A runner whose chains find their jobs in ``jobs`` (changed by a test as a reload
    would), on a fake engine."""

    def __init__(self, config: Config, engine: FakeEngine) -> None:
        self.jobs: Mapping[str, JobEntry] = config.jobs
        self.history: History = open_history(config)
        self.engine = engine
        self.runner = Runner(
            engine, config.daemon, engine.clock, "ops:1", self.history, jobs=lambda: self.jobs
        )

    def run(self, name: str, expected_runs: int) -> Logs:
        """Submit ``name``; wait until ``expected_runs`` runs are recorded and none is left."""
        with structlog.testing.capture_logs(processors=CAPTURE) as logs:
            assert self.runner.submit(self.jobs[name], SCHEDULED) is not None
            wait_for(lambda: len(self.history.runs(limit=100)) >= expected_runs)
            wait_for(lambda: self.runner.active() == 0)
        return logs

    def runs(self) -> dict[str, tuple[str, str, str | None]]:
        """By job: (status, trigger, parent run id) of its one run."""
        rows = self.history.runs(limit=100)
        assert len({r.job for r in rows}) == len(rows), rows
        return {r.job: (r.status, r.trigger, r.parent_run_id) for r in rows}


def test_a_success_starts_on_success_and_on_finish_each_once(tmp_path: Path) -> None:
    """dump succeeds: ship (in on_success and on_finish: once) and tidy run, trigger chain,
    dump's run as their parent; page (on_failure) does not."""
    chained = Chained(load_config_text(tmp_path, CHAINED), FakeEngine(FakeClock()))
    logs = chained.run("dump", 3)
    parent = next(e["run_id"] for e in events(logs, "run.started") if e["job"] == "dump")
    assert chained.runs() == {
        "dump": ("succeeded", "schedule", None),
        "ship": ("succeeded", "chain", parent),
        "tidy": ("succeeded", "chain", parent),
    }
    dispatched = events(logs, "chain.dispatched")
    assert [(e["job"], e["run_id"], e["child"], e["on"]) for e in dispatched] == [
        ("dump", parent, "ship", "on_success"),
        ("dump", parent, "tidy", "on_finish"),
    ]
    assert {e["parent_status"] for e in dispatched} == {"succeeded"}
    children = {r.job: r.run_id for r in chained.history.runs(limit=10) if r.job != "dump"}
    assert {e["child"]: e["child_run_id"] for e in dispatched} == children
    started = [e for e in events(logs, "run.started") if e["job"] != "dump"]
    assert {(e["trigger"], e["parent_run_id"]) for e in started} == {("chain", parent)}


def test_the_childrens_containers_see_the_parent(tmp_path: Path) -> None:
    """Each chained container's environment names the parent job, run and outcome."""
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(3)])
    chained = Chained(load_config_text(tmp_path, CHAINED), engine)
    chained.run("dump", 4)
    parent = next(r.run_id for r in chained.history.runs(limit=10) if r.job == "dump")
    envs = [dict(spec.env) for spec in engine.created_specs]
    assert envs[0] == {}
    assert (
        envs[1:]
        == [
            {
                "CRONTAINER_PARENT_JOB": "dump",
                "CRONTAINER_PARENT_RUN_ID": parent,
                "CRONTAINER_PARENT_STATUS": "failed",
            }
        ]
        * 3
    )


def test_a_failure_starts_on_failure_and_on_finish_not_on_success(tmp_path: Path) -> None:
    """dump fails: page and ship (on_finish) run; no run of ship as on_success."""
    engine = FakeEngine(FakeClock(), sequence=[ExitStatus(1)])
    chained = Chained(load_config_text(tmp_path, CHAINED), engine)
    logs = chained.run("dump", 4)
    assert {job: status for job, (status, _, _) in chained.runs().items()} == {
        "dump": "failed",
        "page": "succeeded",
        "ship": "succeeded",
        "tidy": "succeeded",
    }
    assert [(e["child"], e["on"]) for e in events(logs, "chain.dispatched")] == [
        ("page", "on_failure"),
        ("ship", "on_finish"),
        ("tidy", "on_finish"),
    ]


def test_a_time_out_counts_as_a_failure(tmp_path: Path) -> None:
    """A run that timed out starts on_failure."""
    text = job("dump", timeout='"1s"', on_failure='["page"]') + job("page", "@manual")
    engine = FakeEngine(FakeClock(), exit_status=None)  # no container ends on its own
    chained = Chained(load_config_text(tmp_path, text), engine)
    chained.run("dump", 2)
    runs = chained.runs()
    assert runs["dump"][0] == "timed_out"
    assert runs["page"][1:] == ("chain", next(iter(chained.history.runs("dump"))).run_id)


def test_a_disabled_child_is_skipped_and_told(tmp_path: Path) -> None:
    """A chained job with enabled = false does not run: chain.skipped, reason disabled."""
    text = job("dump", on_success='["ship"]') + job("ship", "@manual", enabled="false")
    chained = Chained(load_config_text(tmp_path, text), FakeEngine(FakeClock()))
    logs = chained.run("dump", 1)
    assert set(chained.runs()) == {"dump"}
    skipped = events(logs, "chain.skipped")
    assert [(e["child"], e["reason"], e["parent_status"]) for e in skipped] == [
        ("ship", "disabled", "succeeded")
    ]


def test_a_child_still_running_is_refused_by_its_own_policy(tmp_path: Path) -> None:
    """ship (forbid) still runs when dump ends: the chained run is skipped — its own
    run.skipped with trigger chain, and chain.skipped naming the running run."""
    release = threading.Event()
    engine = FakeEngine(FakeClock())
    text = job("dump", on_success='["ship"]') + job("ship", "@manual")
    chained = Chained(load_config_text(tmp_path, text), engine)
    first_ship = engine_blocking_ship(engine, release)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        ship_run = chained.runner.submit(chained.jobs["ship"], SCHEDULED, trigger="manual")
        wait_for(first_ship.is_set)
        chained.runner.submit(chained.jobs["dump"], SCHEDULED)
        wait_for(lambda: bool(events(logs, "chain.skipped")))
        release.set()
        wait_for(lambda: chained.runner.active() == 0)
    (skipped,) = events(logs, "chain.skipped")
    assert (skipped["child"], skipped["reason"], skipped["child_status"]) == (
        "ship",
        "previous run still running",
        "skipped",
    )
    (run_skipped,) = events(logs, "run.skipped")
    assert (run_skipped["job"], run_skipped["trigger"], run_skipped["running_run_id"]) == (
        "ship",
        "chain",
        ship_run,
    )
    rows = [r for r in chained.history.runs("ship") if r.status == "skipped"]
    assert [(r.trigger, r.parent_run_id is not None) for r in rows] == [("chain", True)]


def engine_blocking_ship(engine: FakeEngine, release: threading.Event) -> threading.Event:
    """The first container the engine waits for blocks until ``release``; the event
    returned is set once it is waited for."""
    waiting = threading.Event()
    original = engine.wait

    def wait(container_id: str, timeout: float) -> ExitStatus | None:
        if not waiting.is_set():
            waiting.set()
            release.wait(10)
        return original(container_id, timeout)

    engine.wait = wait  # type: ignore[method-assign]
    return waiting


def test_a_child_sharing_the_parents_lock_and_the_only_slot_starts_without_waiting(
    tmp_path: Path,
) -> None:
    """max_concurrent_runs = 1 and dump, ship share lock db: ship is dispatched once dump let
    go of its lock and slot — it neither waits for the lock (run.waiting naming its own
    parent) nor queues, and it runs."""
    text = (
        "max_concurrent_runs = 1\n"
        + job("dump", on_success='["ship"]', lock='"db"')
        + job("ship", "@manual", lock='"db"', starting_deadline='"1s"')
    )
    chained = Chained(load_config_text(tmp_path, text), FakeEngine(FakeClock()))
    logs = chained.run("dump", 2)
    assert events(logs, "run.waiting", "run.queued") == []
    assert chained.runs()["ship"][0] == "succeeded"
    assert chained.runner.locks.held() == {}


def test_a_chained_runs_reports_name_its_parent(tmp_path: Path) -> None:
    """The notifications' reports of ship's chained run carry dump's job, run id and how it
    ended; dump's own reports have no parent."""
    config = load_config_text(tmp_path, CHAINED)
    engine = FakeEngine(FakeClock())
    heard = Heard()
    runner = Runner(
        engine,
        config.daemon,
        engine.clock,
        "ops:1",
        open_history(config),
        listeners=[Hooks(heard.on_ended, heard.on_report)],
        jobs=lambda: config.jobs,
    )
    parent = runner.submit(config.jobs["dump"], SCHEDULED)
    wait_for(lambda: len([r for _, r in heard.reports if r.status != "started"]) == 3)
    told = {
        (r.job, r.status): (r.trigger, r.parent_job, r.parent_run_id, r.parent_status)
        for _, r in heard.reports
    }
    assert told[("dump", "succeeded")] == ("schedule", None, None, None)
    for child in ("ship", "tidy"):
        assert told[(child, "started")] == ("chain", "dump", parent, "succeeded")
        assert told[(child, "succeeded")] == ("chain", "dump", parent, "succeeded")


def test_an_adopted_chained_run_keeps_its_parent(tmp_path: Path) -> None:
    """A chained run of ship an earlier daemon left running (its parent, dump's run p1,
    failed): adopted, its report still names p1, dump and failed."""
    config = load_config_text(tmp_path, CHAINED)
    engine = FakeEngine(FakeClock(SCHEDULED))
    heard = Heard()
    history = open_history(config)
    runner = Runner(engine, config.daemon, engine.clock, "ops:1", history,
                    listeners=[Hooks(heard.on_ended, heard.on_report)], jobs=lambda: config.jobs)  # fmt: skip
    history.begin("p1", 1, "dump", trigger="schedule", scheduled_at=SCHEDULED,
                  started_at=SCHEDULED)  # fmt: skip
    history.finish("p1", 1, status=Status.FAILED, finished_at=SCHEDULED, exit_code=1)
    history.begin("c1", 1, "ship", trigger="chain", scheduled_at=SCHEDULED,
                  started_at=SCHEDULED, parent_run_id="p1")  # fmt: skip
    (record,) = history.in_flight()
    runner.adopt(config.jobs["ship"], record, "c-alive")
    wait_for(lambda: runner.active() == 0)
    ((_, report),) = [(s, r) for s, r in heard.reports if r.run_id == "c1"]
    assert (report.status, report.trigger) == ("succeeded", "chain")
    assert (report.parent_job, report.parent_run_id, report.parent_status) == (
        "dump",
        "p1",
        "failed",
    )


def test_an_edge_removed_by_a_reload_no_longer_fires(tmp_path: Path) -> None:
    """The jobs in force when the run ends decide: dump's edge to ship is gone."""
    chained = Chained(load_config_text(tmp_path, CHAINED), FakeEngine(FakeClock()))
    (tmp_path / "new").mkdir()
    reloaded = load_config_text(tmp_path / "new", job("dump") + job("ship", "@manual"))
    entry = chained.jobs["dump"]
    chained.jobs = reloaded.jobs  # as a reload: the run below started with the old entry
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        chained.runner.submit(entry, SCHEDULED)
        wait_for(lambda: chained.runner.active() == 0)
    assert set(chained.runs()) == {"dump"}
    assert events(logs, "chain.dispatched", "chain.skipped") == []


def test_a_parent_job_removed_meanwhile_starts_nothing(tmp_path: Path) -> None:
    """The parent's job left the config: its chains went with it (chain.skipped)."""
    chained = Chained(load_config_text(tmp_path, CHAINED), FakeEngine(FakeClock()))
    entry = chained.jobs["dump"]
    chained.jobs = {k: v for k, v in chained.jobs.items() if k != "dump"}
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        chained.runner.submit(entry, SCHEDULED)
        wait_for(lambda: chained.runner.active() == 0)
    assert set(chained.runs()) == {"dump"}
    assert [(e["child"], e["reason"]) for e in events(logs, "chain.skipped")] == [
        ("ship", "parent_removed"),
        ("tidy", "parent_removed"),
    ]


def test_no_chained_run_starts_once_the_daemon_stops(tmp_path: Path) -> None:
    """After chains.close() (the drain), a run that ends starts nothing."""
    chained = Chained(load_config_text(tmp_path, CHAINED), FakeEngine(FakeClock()))
    chained.runner.chains.close()
    logs = chained.run("dump", 1)
    assert set(chained.runs()) == {"dump"}
    assert {e["reason"] for e in events(logs, "chain.skipped")} == {"daemon_stopping"}


def test_a_run_that_never_started_chains_nothing(tmp_path: Path) -> None:
    """dump skipped (forbid, its own run in flight): no chain for the skipped run."""
    release = threading.Event()
    engine = FakeEngine(FakeClock())
    chained = Chained(load_config_text(tmp_path, CHAINED), engine)
    blocked = engine_blocking_ship(engine, release)
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        chained.runner.submit(chained.jobs["dump"], SCHEDULED)
        wait_for(blocked.is_set)
        assert chained.runner.submit(chained.jobs["dump"], SCHEDULED) is None
        skipped_first = list(events(logs, "chain.dispatched"))
        release.set()
        wait_for(lambda: len(chained.history.runs(limit=100)) >= 4)
        wait_for(lambda: chained.runner.active() == 0)
    assert skipped_first == []
    assert len(events(logs, "chain.dispatched")) == 2  # ship, tidy: once each


def test_history_shows_the_parent(tmp_path: Path) -> None:
    """The history table's PARENT column and the JSON's parent_run_id."""
    history = History.open(tmp_path / "state")
    try:
        at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        earlier = datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
        history.begin("c1", 1, "ship", trigger="chain", scheduled_at=at, started_at=at,
                      parent_run_id="p1")  # fmt: skip
        history.finish("c1", 1, status=Status.SUCCEEDED, finished_at=at, exit_code=0)
        history.record("c2", "ship", "chain", earlier, status=Status.SKIPPED, at=earlier,
                       reason="r", parent_run_id="p2")  # fmt: skip
        records = history.runs("ship")
    finally:
        history.close()
    assert [r.parent_run_id for r in records] == ["p1", "p2"]
    assert [line.split()[8] for line in history_table(records).splitlines()[1:]] == [
        "p1",
        "p2",
    ]
    assert run_json(records[0])["parent_run_id"] == "p1"


def test_a_child_that_cannot_be_started_leaves_the_others_started(tmp_path: Path) -> None:
    """A dispatch that raises (a bug) is chain.skipped at level error; the next child still
    starts; a child no longer in force is chain.skipped, removed."""
    config = load_config_text(tmp_path, CHAINED)
    started: list[str] = []

    def dispatch(entry: JobEntry, at: datetime, trigger: str, parent: object) -> Dispatched:
        del at, parent
        if entry.name == "ship":
            raise RuntimeError("boom")
        started.append(f"{entry.name}:{trigger}")
        return Dispatched(f"run-{entry.name}")

    jobs = {k: v for k, v in config.jobs.items() if k != "page"}
    chains = Chains(dispatch, lambda: jobs, FakeClock())
    run = ActiveRun("p1", config.jobs["dump"], SCHEDULED, "schedule")
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        chains.finished(run, Outcome(Status.FAILED, exit_code=1))
    assert started == ["tidy:chain"]
    skipped = events(logs, "chain.skipped")
    assert [(e["child"], e["reason"], e["log_level"]) for e in skipped] == [
        ("page", "removed", "warning"),
        ("ship", "internal", "error"),
    ]


def test_a_run_adopted_from_an_earlier_daemon_chains_when_it_ends(tmp_path: Path) -> None:
    """An earlier instance's run of dump, followed to its end (exit 0), starts ship and
    tidy with that run as their parent."""
    engine = FakeEngine(FakeClock(SCHEDULED))
    chained = Chained(load_config_text(tmp_path, CHAINED), engine)
    chained.history.begin(
        "old1", 1, "dump", trigger="schedule", scheduled_at=SCHEDULED, started_at=SCHEDULED
    )
    (record,) = chained.history.in_flight()
    with structlog.testing.capture_logs(processors=CAPTURE) as logs:
        chained.runner.adopt(chained.jobs["dump"], record, "c-alive")
        wait_for(lambda: len(chained.history.runs(limit=100)) >= 3)
        wait_for(lambda: chained.runner.active() == 0)
    assert chained.runs() == {
        "dump": ("succeeded", "schedule", None),
        "ship": ("succeeded", "chain", "old1"),
        "tidy": ("succeeded", "chain", "old1"),
    }
    assert {e["run_id"] for e in events(logs, "chain.dispatched")} == {"old1"}
