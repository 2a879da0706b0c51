"""Every container's label jobs (scheduler/labels/scan.py): named <container>.<job>,
fenced, validated with [defaults]; refusals as (container, job, key, reason); Compose
replicas and one-off containers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from jobs.exec import ExecJob
from jobs.selectors import COMPOSE_ONEOFF, COMPOSE_PROJECT, COMPOSE_SERVICE
from scheduler.engine import ContainerInfo
from scheduler.labels.parse import PREFIX
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Refusal, Rules, one_off, scan


def job_labels(jobs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The labels declaring ``jobs`` (by job, its keys' label values)."""
    return {
        f"{PREFIX}{job}.{key}": value for job, keys in jobs.items() for key, value in keys.items()
    }


def container(name: str, cid: str | None = None, **jobs: dict[str, str]) -> ContainerInfo:
    """Container ``name`` declaring ``jobs``; its id is ``cid`` or its name repeated."""
    return ContainerInfo(cid or (name * 64)[:64], name, "running", job_labels(jobs))


def replica(name: str, **jobs: dict[str, str]) -> ContainerInfo:
    """A container Compose made for service ``web`` of project ``shop``."""
    labels = {**job_labels(jobs), COMPOSE_PROJECT: "shop", COMPOSE_SERVICE: "web"}
    return ContainerInfo((name * 64)[:64], name, "running", labels)


PING = {"schedule": "@hourly", "command": '"true"'}
"""An exec job's labels (the command quoted: bare ``true`` is the boolean)."""


def scanned(*containers: ContainerInfo, **rules: Any) -> LabelJobs:
    """The scan of ``containers`` under the default fence and ``rules``' changes."""
    settings: dict[str, Any] = {"kinds": LABEL_KINDS, "allow": (), "defaults": {}, **rules}
    return scan(containers, Rules(**settings))


def test_a_label_job_is_named_after_its_container() -> None:
    """crontainer.jobs.ping.* on container app: job app.ping, an exec in app (its id), its
    container known, its source label:app."""
    app = container("app", "c0ffee" * 10 + "abcd", ping=PING)
    found = scanned(app)
    assert found.refusals == ()
    entry = found.jobs["app.ping"]
    assert entry.name == "app.ping"
    assert isinstance(entry.job, ExecJob)
    assert (entry.job.container, entry.job.command) == (app.id, "true")
    assert entry.schedule.expression == "@hourly"
    assert found.containers == {"app.ping": app}
    assert found.sources() == {"app.ping": "label:app"}


def test_jobs_of_several_containers() -> None:
    """Each container's jobs, each under its own name, known by its own container."""
    app, db = container("app", ping=PING), container("db", ping=PING, vacuum=PING)
    found = scanned(db, app)
    assert sorted(found.jobs) == ["app.ping", "db.ping", "db.vacuum"]
    assert found.containers["db.vacuum"] is db
    assert found.sources() == {
        "app.ping": "label:app",
        "db.ping": "label:db",
        "db.vacuum": "label:db",
    }


def test_defaults_apply_to_label_jobs() -> None:
    """[defaults] fill what the labels leave out; a label's own value wins."""
    found = scanned(
        container("app", ping=PING, slow={**PING, "timeout": "1h"}),
        defaults={"timeout": "5m", "retries": 2},
    )
    assert (found.jobs["app.ping"].job.timeout, found.jobs["app.ping"].job.retries) == (300.0, 2)
    assert found.jobs["app.slow"].job.timeout == 3600.0


def test_defaults_that_reach_beyond_the_container_do_not_apply_to_label_jobs() -> None:
    """[defaults] written for the config's jobs — containers to stop or exec in, volumes,
    a repository's password and environment — are not given to a label job (it would use
    them on its own schedule, or send the operator's credentials to its own repository);
    policies, notifications and limits are."""
    defaults = {
        "stop": ["db"],
        "pre_exec": [{"container": "db", "command": "dump"}],
        "volumes": ["/srv:/srv"],
        "password": {"file": "/run/secrets/restic"},
        "env": {"RESTIC_REST_PASSWORD": {"env": "REST_PASSWORD"}},
        "timeout": "5m",
        "memory": "64MiB",
        "notify": {"webhook": "https://hooks.example.com/x"},
    }
    found = scanned(
        container(
            "app",
            save={
                "kind": "backup",
                "schedule": "@daily",
                "repository": "rest:http://attacker.example:8000/r",
                "password": '"label-password"',
            },
        ),
        defaults=defaults,
    )
    job = found.jobs["app.save"].job
    assert (job.stop, job.pre_exec, job.volumes, job.env) == ([], [], [], {})  # type: ignore[union-attr]
    assert job.password == "label-password"  # type: ignore[union-attr]  # noqa: S105
    assert (job.timeout, job.memory) == (300.0, 64 * 1024 * 1024)  # type: ignore[union-attr]
    assert job.notify is not None
    assert job.notify.webhook == "https://hooks.example.com/x"


def test_the_daemons_own_containers_declare_no_jobs() -> None:
    """A container carrying crontainer.daemon (a run's container: its image's labels are
    its labels too) is left out, whatever its labels declare."""
    made = container("crontainer-x-run", ping=PING)
    made = replace(made, labels={**made.labels, "crontainer.daemon": "crontainer"})
    assert scanned(made).jobs == {}


def test_a_label_job_carries_the_container_that_declared_it() -> None:
    """The entry holds its container (the runner checks that one: a recreated container is
    another's); a stopped one's job is the same job (not rescheduled: the schedule compares
    jobs), a recreated one's is not (the implied container's id differs)."""
    app = container("app", ping=PING)
    first = scanned(app).jobs["app.ping"]
    assert first.container == app
    stopped = scanned(replace(app, state="exited")).jobs["app.ping"]
    assert (stopped.job, stopped.container) == (first.job, replace(app, state="exited"))
    recreated = scanned(replace(app, id="f" * 64)).jobs["app.ping"]
    assert recreated.job != first.job


def test_a_name_the_config_takes_is_refused() -> None:
    """A label job whose name the config's jobs take: refused, saying the config's is kept;
    the container's other jobs are taken."""
    found = scanned(container("app", ping=PING, other=PING), taken=frozenset({"app.ping"}))
    assert found.refusals == (
        Refusal("app", "ping", "", "the config defines a job named 'app.ping': it is kept"),
    )
    assert list(found.jobs) == ["app.other"]


def test_a_fence_refusal_names_the_key() -> None:
    """The fence refuses: a Refusal per key, the job left out."""
    found = scanned(container("app", x={**PING, "container": "db", "user": "root"}))
    assert [(r.container, r.job, r.key) for r in found.refusals] == [("app", "x", "container")]
    assert found.jobs == {}


def test_validation_errors_become_refusals_with_the_key_as_written() -> None:
    """The kind's model refuses values: each error a Refusal with the key as the labels
    write it (nested: notify.on[0]), the reason without the job's prefix."""
    found = scanned(
        container(
            "app",
            x={"schedule": "bogus", "command": '"true"', "timeout": "true"},
            y={**PING, "notify.on": '["nope"]', "nope": "1"},
        ),
        allow=("notify",),
    )
    assert set(found.refusals) == {
        Refusal(
            "app",
            "x",
            "schedule",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 1",
        ),
        Refusal(
            "app",
            "x",
            "timeout",
            "expected a duration such as '90s', '1h30m', '2d' or a number of seconds, got true",
        ),
        Refusal(
            "app",
            "y",
            "notify.on[0]",
            "expected 'failure', 'success', 'recovery' or 'missed' (got 'nope')",
        ),
        Refusal("app", "y", "nope", "unknown key"),
    }
    assert found.jobs == {}


def test_an_error_of_the_whole_job_has_no_key() -> None:
    """A backup without a target: the model's error of the job as a whole has key ''."""
    found = scanned(container("app", b={"kind": "backup", "schedule": "@daily"}))
    ((refusal,),) = [found.refusals]
    assert (refusal.job, refusal.key) == ("b", "")
    assert refusal.reason.startswith("a backup needs a target")


def test_labels_that_cannot_be_read_are_refusals() -> None:
    """parse's problems (a bad key) are refusals too; the container's good jobs stay."""
    found = scanned(container("app", ping=PING, bad={"sched ule": "x"}))
    assert [(r.job, r.key) for r in found.refusals] == [("bad", "sched ule")]
    assert list(found.jobs) == ["app.ping"]


def test_a_replica_job_runs_in_the_first_replica_by_name() -> None:
    """Replicas of one Compose service declare the same job: one job, named after the
    service (<project>-<service>.<job>: the name stays when the replica running it changes),
    in the first replica by name (whatever order the engine lists them in)."""
    found = scanned(
        replica("shop-web-3", ping=PING),
        replica("shop-web-1", ping=PING),
        replica("shop-web-2", ping=PING),
    )
    assert list(found.jobs) == ["shop-web.ping"]
    assert found.containers["shop-web.ping"].name == "shop-web-1"
    assert found.jobs["shop-web.ping"].container == found.containers["shop-web.ping"]
    assert found.refusals == ()


def test_replicas_declaring_a_job_differently_run_it_in_none() -> None:
    """A container carrying a service's Compose labels (anyone can set them) declares the
    service's job differently: neither runs it, each refused naming both — a spoof cannot
    take the job over silently, whether its own version is valid, refused or disabled."""
    for spoof in (
        {"schedule": "0 0 31 2 *", "command": '"true"'},
        {"schedule": "@daily", "image": "evil"},
        {**PING, "enabled": "false"},
    ):
        found = scanned(replica("aaa", ping=spoof), replica("shop-web-1", ping=PING))
        assert found.jobs == {}
        why = (
            "the replicas of shop/web declare job 'ping' differently (aaa, shop-web-1): none "
            "of them runs it"
        )
        assert set(found.refusals) == {
            Refusal("aaa", "ping", "", why),
            Refusal("shop-web-1", "ping", "", why),
        }


def test_a_replica_job_prefers_a_running_replica() -> None:
    """The first replica by name is stopped: the job goes to the first running one (a
    stopped replica's runs would all be skipped while the service runs); none running: the
    first by name."""
    stopped = replace(replica("shop-web-1", ping=PING), state="exited")
    found = scanned(stopped, replica("shop-web-3", ping=PING), replica("shop-web-2", ping=PING))
    assert found.containers["shop-web.ping"].name == "shop-web-2"
    also = replace(replica("shop-web-2", ping=PING), state="exited")
    assert scanned(also, stopped).containers["shop-web.ping"].name == "shop-web-1"


def test_per_replica_runs_in_each() -> None:
    """per_replica = true: each replica takes the job; a job without it still runs once."""
    each = {**PING, "per_replica": "true"}
    found = scanned(
        replica("shop-web-1", each=each, once=PING), replica("shop-web-2", each=each, once=PING)
    )
    assert sorted(found.jobs) == ["shop-web-1.each", "shop-web-2.each", "shop-web.once"]


def test_containers_of_other_services_are_not_replicas() -> None:
    """Same job name, no Compose labels or another service: each container takes it."""
    other = ContainerInfo(
        "b" * 64, "shop-db-1", "running", {**replica("x", ping=PING).labels, COMPOSE_SERVICE: "db"}
    )
    found = scanned(replica("shop-web-1", ping=PING), other, container("solo", ping=PING))
    assert sorted(found.jobs) == ["shop-db.ping", "shop-web.ping", "solo.ping"]


@pytest.mark.parametrize("value", ["yes", "1", '"true"'])
def test_per_replica_must_be_a_boolean(value: str) -> None:
    """per_replica = yes / 1 / "true": refused, the job left out."""
    found = scanned(container("app", ping={**PING, "per_replica": value}))
    assert found.refusals == (Refusal("app", "ping", "per_replica", "expected true or false"),)
    assert found.jobs == {}


@pytest.mark.parametrize("flag", ["True", "true"])
def test_one_off_containers_are_ignored(flag: str) -> None:
    """A `docker compose run` container (com.docker.compose.oneoff=True) gives no job and
    no refusal — and does not take its service's job from the real replica."""
    run = replica("shop-web-run-0a1b", ping=PING, bad={"x y": "1"})
    run = ContainerInfo(run.id, run.name, run.state, {**run.labels, COMPOSE_ONEOFF: flag})
    assert one_off(run)
    found = scanned(run, replica("shop-web-x", ping=PING))
    assert (list(found.jobs), found.refusals) == (["shop-web.ping"], ())
    assert found.containers["shop-web.ping"].name == "shop-web-x"


def test_a_oneoff_label_of_false_is_a_container_like_others() -> None:
    """com.docker.compose.oneoff=False: the container's jobs are taken."""
    app = container("app", ping=PING)
    app = ContainerInfo(app.id, app.name, app.state, {**app.labels, COMPOSE_ONEOFF: "False"})
    assert not one_off(app)
    assert list(scanned(app).jobs) == ["app.ping"]


def test_nothing_declared_nothing_found() -> None:
    """Containers without job labels: no jobs, no refusals, no sources."""
    found = scanned(container("app"), container("db"))
    assert (found.jobs, found.refusals, found.sources()) == ({}, (), {})


def test_a_name_over_63_characters_is_refused() -> None:
    """<container>.<job> longer than a job name may be: refused with the job name's rule
    (key ''), the container's shorter jobs taken."""
    name = "c" * 59
    found = scanned(container(name, ping=PING, ok=PING, longer=PING))
    assert sorted(found.jobs) == [f"{name}.ok"]
    assert [(r.job, r.key) for r in found.refusals] == [("longer", ""), ("ping", "")]
    assert found.refusals[0].reason.startswith("a job name must start with a letter or digit")


def test_a_value_read_as_toml_where_text_is_expected_says_how_to_quote_it() -> None:
    """command=true is the boolean: the refusal says so and shows the quoted form; a value
    that is wrong as text too (a duration) gets no such hint."""
    found = scanned(container("app", x={"schedule": "@daily", "command": "true"}))
    ((refusal,),) = [found.refusals]
    assert refusal.key == "command"
    assert refusal.reason.endswith(
        "(the label's value true reads as TOML, not text; for text, quote it: '\"true\"')"
    )
    found = scanned(container("app", x={**PING, "timeout": "true"}))
    ((refusal,),) = [found.refusals]
    assert "quote" not in refusal.reason
