"""Selectors resolved on the engine when a run needs them: exactly one container where one
is needed (exec, pre_exec/post_exec, each volumes_from entry), every match where several are
fine (stop, signal, logship); zero or several where one is needed fail the run naming what
was found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import structlog

from jobs.selectors import COMPOSE_ONEOFF, COMPOSE_PROJECT, COMPOSE_SERVICE, parse_selector
from scheduler.docker_engine import _is_named as is_named
from scheduler.docker_specs import host_config_args
from scheduler.engine import ContainerInfo
from scheduler.plans import Plans
from scheduler.runs import Attempt, Cancellation, Outcome, Status
from scheduler.selection import SelectionError, every, exactly_one
from scheduler.settings import load_config
from scheduler.steps import StepExecutor

from .configs import load_errors
from .fakes import FakeClock, FakeEngine
from .test_logship_kind import Store

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from pathlib import Path


def container(name: str, state: str = "running", **labels: str) -> ContainerInfo:
    return ContainerInfo(id=f"id-{name}", name=name, state=state, labels=labels)


def service(
    name: str, project: str, svc: str, state: str = "running", *, oneoff: bool = False
) -> ContainerInfo:
    """A container as Docker Compose labels it (``oneoff``: made by ``compose run``)."""
    labels = {COMPOSE_PROJECT: project, COMPOSE_SERVICE: svc, COMPOSE_ONEOFF: str(oneoff)}
    return container(name, state, **labels)


def engine_with(*containers: ContainerInfo) -> FakeEngine:
    engine = FakeEngine(FakeClock(), missing={"nothing-here"})
    engine.selectable = list(containers)
    return engine


def test_exactly_one_running_is_the_one_running_container_the_selector_matches() -> None:
    """A stopped match does not count where a running container is needed."""
    engine = engine_with(
        service("shop-db-1", "shop", "db", state="exited"),
        service("shop-db-2", "shop", "db"),
        service("other-db-1", "other", "db"),
    )
    found = exactly_one(engine, "compose=shop/db", "exec container", running=True)
    assert found.name == "shop-db-2"


def test_several_running_matches_fail_naming_them_in_order() -> None:
    engine = engine_with(service("shop-db-2", "shop", "db"), service("shop-db-1", "shop", "db"))
    with pytest.raises(SelectionError) as caught:
        exactly_one(engine, "compose=shop/db", "exec container", running=True)
    assert str(caught.value) == (
        "exec container 'compose=shop/db' matched 2 running containers: shop-db-1, shop-db-2; "
        "it must match exactly one"
    )


def test_no_running_match_names_the_stopped_ones() -> None:
    engine = engine_with(container("db-old", "exited", role="db"))
    with pytest.raises(SelectionError) as caught:
        exactly_one(engine, "label=role=db", "pre_exec container", running=True)
    assert str(caught.value) == (
        "pre_exec container 'label=role=db' matched no running container: db-old is not "
        "running; it must match exactly one running container"
    )


def test_no_match_at_all_fails_saying_so() -> None:
    engine = engine_with(container("web", role="web"))
    for selector in ("label=role=db", "nothing-here"):
        with pytest.raises(SelectionError) as caught:
            exactly_one(engine, selector, "volumes_from", running=False)
        assert str(caught.value) == (
            f"volumes_from {selector!r} matched no container; it must match exactly one"
        )


def test_a_stopped_container_is_one_where_any_state_will_do() -> None:
    """volumes_from takes a data container that does not run."""
    engine = engine_with(container("data", "created", backup="data"))
    assert exactly_one(engine, "label=backup", "volumes_from", running=False).name == "data"


def test_a_label_without_a_value_matches_any_value_and_with_one_only_that() -> None:
    engine = engine_with(container("a", role="db"), container("b", role="web"), container("c"))
    assert [c.name for c in every(engine, ["label=role"], "stop")] == ["a", "b"]
    assert [c.name for c in every(engine, ["label=role=web"], "stop")] == ["b"]


def test_every_keeps_the_selectors_order_and_each_container_once() -> None:
    engine = engine_with(container("b", role="app"), container("a", role="app"), container("w"))
    found = every(engine, ["w", "label=role=app", "a"], "stop")
    assert [c.name for c in found] == ["w", "a", "b"]


def test_every_fails_on_a_selector_that_matches_nothing() -> None:
    engine = engine_with(container("a", role="app"))
    with pytest.raises(SelectionError, match=r"^stop 'label=role=db' matched no container$"):
        every(engine, ["label=role=app", "label=role=db"], "stop")


# --- the steps, through a job's plan ------------------------------------------------------

Logs = list["MutableMapping[str, Any]"]


def execute(tmp_path: Path, engine: FakeEngine, job: str) -> tuple[Outcome, Logs]:
    """Run job ``j`` (the TOML of its table's keys) once, as the runner does."""
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n[jobs.j]\nschedule = "@daily"\n')
    path.write_text(path.read_text() + job)
    config = load_config(path, {})
    steps = StepExecutor(engine, config.daemon, engine.clock, Store({}, job="j"))
    attempt = Attempt("r1", "j", config.jobs["j"].job, Cancellation())
    with structlog.testing.capture_logs() as logs:
        outcome = Plans(steps, "ops:1").execute(attempt)
    return outcome, logs


def calls(engine: FakeEngine, *names: str) -> list[tuple[str, object]]:
    return [(n, a) for n, a in engine.calls if n in names]


def test_exec_runs_in_the_one_running_container_of_a_compose_service(tmp_path: Path) -> None:
    engine = engine_with(service("shop-db-1", "shop", "db"), service("web-1", "shop", "web"))
    outcome, _ = execute(
        tmp_path, engine, 'kind = "exec"\ncontainer = "compose=shop/db"\ncommand = "true"\n'
    )
    assert outcome.status is Status.SUCCEEDED
    (created,) = calls(engine, "exec_create")
    assert created[1][0] == "shop-db-1"  # type: ignore[index]


def test_exec_with_two_matches_fails_before_any_exec(tmp_path: Path) -> None:
    engine = engine_with(service("shop-db-1", "shop", "db"), service("shop-db-2", "shop", "db"))
    outcome, _ = execute(
        tmp_path, engine, 'kind = "exec"\ncontainer = "compose=shop/db"\ncommand = "true"\n'
    )
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "exec container 'compose=shop/db' matched 2 running containers: shop-db-1, shop-db-2; "
        "it must match exactly one"
    )
    assert not calls(engine, "exec_create")


def test_exec_in_a_named_container_that_is_stopped_fails_saying_it_is_not_running(
    tmp_path: Path,
) -> None:
    engine = engine_with()
    engine.not_running = {"app"}
    outcome, _ = execute(tmp_path, engine, 'kind = "exec"\ncontainer = "app"\ncommand = "true"\n')
    assert outcome.status is Status.FAILED
    assert outcome.error is not None
    assert "'app' matched no running container: app is not running" in outcome.error


BACKUP = 'kind = "backup"\ntarget = "backups"\n'


def test_backup_resolves_volumes_from_stop_and_pre_exec_selectors(tmp_path: Path) -> None:
    """The archive mounts the one data container (stopped is fine) read-only; every running
    app container is stopped in order and started again in reverse; pre_exec runs in the
    one running database; post_exec too, after the archive."""
    engine = engine_with(
        container("data", "exited", backup="data"),
        service("shop-app-2", "shop", "app"),
        service("shop-app-1", "shop", "app"),
        service("shop-app-3", "shop", "app", state="exited"),
        container("db", role="db"),
    )
    outcome, logs = execute(
        tmp_path,
        engine,
        BACKUP + 'volumes_from = "label=backup=data"\nstop = ["compose=shop/app"]\n'
        'pre_exec = [{ container = "label=role=db", command = "sync" }]\n'
        'post_exec = [{ container = "label=role=db", command = "sync" }]\n',
    )
    assert outcome.status is Status.SUCCEEDED, outcome.error
    (spec,) = engine.created_specs
    assert (spec.volumes_from, spec.volumes_from_read_only) == (("data",), True)
    assert [a[0] for _, a in calls(engine, "exec_create")] == ["db", "db"]  # type: ignore[index]
    moves = [(e["event"], e["container"]) for e in logs if "container" in e]
    assert moves == [
        ("run.container_stopped", "shop-app-1"),
        ("run.container_stopped", "shop-app-2"),
        ("run.container_not_running", "shop-app-3"),
        ("run.container_started", "shop-app-2"),
        ("run.container_started", "shop-app-1"),
    ]


def test_a_volumes_from_selector_matching_two_fails_before_any_container(tmp_path: Path) -> None:
    """One selector is one container: two data containers fail the run, naming both,
    before the app is stopped — no outage for a backup that cannot run — and no ops
    container is created."""
    engine = engine_with(container("data-1", backup="data"), container("data-2", backup="data"))
    outcome, _ = execute(
        tmp_path, engine, BACKUP + 'volumes_from = ["label=backup"]\nstop = ["app"]\n'
    )
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "volumes_from 'label=backup' matched 2 containers: data-1, data-2; it must match "
        "exactly one"
    )
    assert not calls(engine, "create", "stop", "start")


def test_a_stop_selector_matching_nothing_fails_before_anything_is_stopped(
    tmp_path: Path,
) -> None:
    engine = engine_with(container("data"))
    outcome, _ = execute(
        tmp_path, engine, BACKUP + 'volumes_from = "data"\nstop = ["app", "label=role=gone"]\n'
    )
    assert outcome.status is Status.FAILED
    assert outcome.error == "stop 'label=role=gone' matched no container"
    assert not calls(engine, "create", "stop", "start")


def test_signal_selects_running_containers_by_label_and_named_ones_in_any_state(
    tmp_path: Path,
) -> None:
    """A label or compose selector signals its running matches; a name is signalled
    whatever its state (the engine refuses a stopped one); each miss is a failure, the
    others are still signalled."""
    engine = engine_with(
        container("web-1", role="web"),
        container("web-2", "exited", role="web"),
        container("idle", "exited"),
        service("shop-db-1", "shop", "db"),
    )
    outcome, _ = execute(
        tmp_path,
        engine,
        'kind = "signal"\ncontainers = ["label=role=web", "idle", "compose=shop/db", '
        '"nothing-here", "label=role=gone"]\n',
    )
    assert [a for _, a in calls(engine, "kill")] == [
        ("web-1", "SIGHUP"),
        ("idle", "SIGHUP"),
        ("shop-db-1", "SIGHUP"),
    ]
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "no container is named 'nothing-here'; no running container matches 'label=role=gone'"
    )


LOGSHIP = 'kind = "logship"\nsink = { type = "stdout" }\n'


def test_logship_reads_every_container_a_selector_matches_in_any_state(tmp_path: Path) -> None:
    engine = engine_with(
        service("shop-web-1", "shop", "web"), service("shop-web-2", "shop", "web", "exited")
    )
    outcome, _ = execute(
        tmp_path, engine, LOGSHIP + 'containers = ["compose=shop/web", "label=role=none"]\n'
    )
    assert outcome.status is Status.SUCCEEDED, outcome.error
    read = {a[0] for _, a in calls(engine, "logs")}  # type: ignore[index]
    assert read == {"shop-web-1", "shop-web-2"}


def test_logship_fails_on_a_name_that_matches_no_container(tmp_path: Path) -> None:
    engine = engine_with()
    outcome, _ = execute(tmp_path, engine, LOGSHIP + 'containers = ["nothing-here"]\n')
    assert outcome.status is Status.FAILED
    assert outcome.error == "logship containers 'nothing-here' matched no container"
    assert not calls(engine, "create")


def test_a_run_jobs_volumes_from_keeps_dockers_mode_on_the_resolved_name(
    tmp_path: Path,
) -> None:
    """``volumes_from = ["data:ro", "label=role=cache:rw"]`` (Docker's --volumes-from
    modes, accepted before selectors existed) still works: each selector resolved, its mode
    kept on the name the engine gets."""
    engine = engine_with(container("data", "exited"), container("cache-1", role="cache"))
    outcome, _ = execute(
        tmp_path,
        engine,
        'kind = "run"\nimage = "busybox"\nvolumes_from = ["data:ro", "label=role=cache:rw"]\n',
    )
    assert outcome.status is Status.SUCCEEDED, outcome.error
    (spec,) = engine.created_specs
    assert spec.volumes_from == ("data:ro", "cache-1:rw")
    assert host_config_args(spec)["volumes_from"] == ["data:ro", "cache-1:rw"]


OPS_KEYS = {
    "backup": 'target = "/srv/b"\n',
    "logship": 'paths = ["/l/*.log"]\n[jobs.j.sink]\ntype = "stdout"\n',
    "rotate": 'paths = ["/l/*.log"]\nmax_size = "1MB"\n',
}


@pytest.mark.parametrize(
    ("kind", "own", "other", "how"),
    [
        ("backup", ":ro", ":rw", "read-only"),
        ("logship", ":ro", ":rw", "read-only"),
        ("rotate", ":rw", ":ro", "writable"),
    ],
)
def test_an_ops_kind_takes_its_own_mode_on_volumes_from_and_refuses_the_other(
    tmp_path: Path, kind: str, own: str, other: str, how: str
) -> None:
    """Backup and logship mount the sources read-only, rotate writable: an entry with that
    same mode loads (it did before selectors) and is taken without it; the other mode
    contradicts the kind and is refused, naming the entry."""
    table = f'[jobs.j]\nkind = "{kind}"\nschedule = "@daily"\n'
    keys = OPS_KEYS[kind]
    job = load_config(write(tmp_path, table + f'volumes_from = ["app{own}"]\n' + keys), {})
    assert job.jobs["j"].job.volumes_from == ["app"]  # type: ignore[union-attr]
    errors = load_errors(tmp_path, table + f'volumes_from = ["app{other}"]\n' + keys)
    expected = f"'app{other}': a {kind} job mounts these volumes {how} ({own}); write 'app'"
    assert any(line.startswith("jobs.j.volumes_from") and expected in line for line in errors), (
        errors
    )


def test_a_mode_in_defaults_serves_run_jobs_and_is_checked_in_each_job_that_takes_it(
    tmp_path: Path,
) -> None:
    """``[defaults] volumes_from = ["app:ro"]`` loads with run jobs only (it did before);
    a rotate job that takes it is told, under its own name, where the mode may come from."""
    defaults = '[defaults]\nvolumes_from = ["app:ro"]\n'
    run = '[jobs.r]\nkind = "run"\nschedule = "@daily"\nimage = "busybox"\n'
    config = load_config(write(tmp_path, defaults + run), {})
    assert config.jobs["r"].job.volumes_from == ["app:ro"]  # type: ignore[union-attr]
    rotate = '[jobs.z]\nkind = "rotate"\nschedule = "@daily"\n' + OPS_KEYS["rotate"]
    errors = load_errors(tmp_path, defaults + run + rotate)
    said = (
        "jobs.z.volumes_from: 'app:ro': a rotate job mounts these volumes writable (:rw); "
        "write 'app' (in the job, or in [defaults] if it comes from there)"
    )
    assert errors == [said]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n' + text)
    return path


def test_a_compose_run_container_is_not_the_service() -> None:
    """``docker compose run db …`` leaves a container with the service's labels (and
    ``com.docker.compose.oneoff=True``): compose=shop/db is still the one service container."""
    engine = engine_with(
        service("shop-db-1", "shop", "db"),
        service("shop_db_run_1f2e", "shop", "db", oneoff=True),
    )
    found = exactly_one(engine, "compose=shop/db", "exec container", running=True)
    assert found.name == "shop-db-1"


@pytest.mark.parametrize(
    ("selector", "taken"),
    [
        ("db", True),
        ("/db", True),
        ("dbc0ffee0123", True),  # 12 hex digits of the id
        ("dbc0ffee0123456789abcdef", True),
        ("dbc0ffee", False),  # a short id prefix: the engine would take it, we do not
        ("dbc", False),
        ("other", False),
    ],
)
def test_a_name_selector_takes_only_the_exact_name_or_the_id(selector: str, taken: bool) -> None:
    """The engine resolves a name by full id, exact name, then any unique id prefix: `db`
    missing, it would find a container whose id starts with db. Only the exact name, the id
    or 12+ of its hex digits are taken."""
    item = {"Name": "/db", "Id": "dbc0ffee0123456789abcdef" + "0" * 40}
    name = parse_selector(selector).name
    assert name is not None
    assert is_named(item, name) is taken
