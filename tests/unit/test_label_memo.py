"""A scan reuses what an unchanged container declared (its name, labels and the rules the
same) instead of parsing and validating its jobs again, and finds exactly what a scan
without the memo finds: changed labels, a rename, new rules, replicas and refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.selectors import COMPOSE_PROJECT, COMPOSE_SERVICE
from scheduler.engine import ContainerInfo
from scheduler.labels import scan as scan_module
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Memo, Rules, scan
from scheduler.labels.watch import LabelWatch

from .fakes import FakeClock, FakeEngine

if TYPE_CHECKING:
    import pytest

RULES = Rules(kinds=LABEL_KINDS, allow=(), defaults={})
TICK = {"crontainer.jobs.tick.schedule": "0 3 * * *", "crontainer.jobs.tick.command": "date"}


def box(name: str, cid: str = "", **labels: str) -> ContainerInfo:
    return ContainerInfo(id=cid or f"id-{name}", name=name, state="running", labels=labels)


def replica(name: str, **labels: str) -> ContainerInfo:
    return box(name, **{COMPOSE_PROJECT: "app", COMPOSE_SERVICE: "web"}, **labels)


def defined(found: LabelJobs) -> dict[str, object]:
    """Each job's validated definition and schedule (a parsed schedule compares by identity)."""
    return {n: (e.job, e.schedule.expression) for n, e in found.jobs.items()}


def same(found: LabelJobs, containers: list[ContainerInfo], rules: Rules = RULES) -> None:
    """``found`` is what a scan without a memo finds."""
    fresh = scan(containers, rules)
    assert defined(found) == defined(fresh)
    assert found.containers == fresh.containers
    assert found.refusals == fresh.refusals


def test_an_unchanged_container_is_not_parsed_again() -> None:
    """The second scan of the same containers parses none of them and finds the same jobs."""
    memo = Memo()
    containers = [box("a", **TICK), box("b", **TICK)]
    first = scan(containers, RULES, memo)
    second = scan(containers, RULES, memo)
    assert memo.checked == 2
    assert sorted(second.jobs) == ["a.tick", "b.tick"]
    assert second.jobs == first.jobs  # the very same entries
    same(second, containers)


def test_a_new_container_alone_is_parsed() -> None:
    """A container that appears is parsed; the others are taken from the memo."""
    memo = Memo()
    scan([box("a", **TICK)], RULES, memo)
    containers = [box("a", **TICK), box("b", **TICK)]
    found = scan(containers, RULES, memo)
    assert memo.checked == 2
    assert sorted(found.jobs) == ["a.tick", "b.tick"]


def test_changed_labels_under_the_same_id_are_parsed_again() -> None:
    """Labels that differ (same id and name) give the new job, not the remembered one."""
    memo = Memo()
    scan([box("a", "c1", **TICK)], RULES, memo)
    changed = [box("a", "c1", **{**TICK, "crontainer.jobs.tick.schedule": "0 5 * * *"})]
    found = scan(changed, RULES, memo)
    assert memo.checked == 2
    assert found.jobs["a.tick"].schedule.expression == "0 5 * * *"
    same(found, changed)


def test_a_renamed_container_gives_jobs_under_its_new_name() -> None:
    """A rename (same id and labels) is parsed again: the job takes the new name."""
    memo = Memo()
    scan([box("old", "c1", **TICK)], RULES, memo)
    found = scan([box("new", "c1", **TICK)], RULES, memo)
    assert sorted(found.jobs) == ["new.tick"]
    assert found.containers["new.tick"].name == "new"


def test_new_rules_parse_every_container_again() -> None:
    """Other [defaults] (a reload) reach every label job at the next scan."""
    memo = Memo()
    containers = [box("a", **TICK)]
    scan(containers, RULES, memo)
    berlin = Rules(kinds=LABEL_KINDS, allow=(), defaults={"timezone": "Europe/Berlin"})
    found = scan(containers, berlin, memo)
    assert memo.checked == 2
    assert found.jobs["a.tick"].job.timezone == "Europe/Berlin"
    same(found, containers, berlin)


def test_equal_rules_built_again_keep_the_memo() -> None:
    """Rules equal to the last ones (the daemon builds them at each scan) keep the memo."""
    memo = Memo()
    containers = [box("a", **TICK)]
    scan(containers, Rules(kinds=list(LABEL_KINDS), allow=[], defaults={}), memo)
    scan(containers, Rules(kinds=list(LABEL_KINDS), allow=[], defaults={}), memo)
    assert memo.checked == 1


def test_a_container_that_left_is_forgotten() -> None:
    """The memo keeps the last scan's containers only: one that comes back is parsed again."""
    memo = Memo()
    scan([box("a", **TICK)], RULES, memo)
    scan([], RULES, memo)
    found = scan([box("a", **TICK)], RULES, memo)
    assert memo.checked == 2
    assert sorted(found.jobs) == ["a.tick"]


def test_replicas_share_a_job_scan_after_scan() -> None:
    """A scaled service's job (named after the service) runs in its first replica by name;
    when that one goes, the next replica takes it at the next scan, from the memo."""
    memo = Memo()
    both = [replica("app-web-2", **TICK), replica("app-web-1", **TICK)]
    found = scan(both, RULES, memo)
    assert sorted(found.jobs) == ["app-web.tick"]
    assert found.containers["app-web.tick"].name == "app-web-1"
    same(scan(both, RULES, memo), both)
    alone = [replica("app-web-2", **TICK)]
    found = scan(alone, RULES, memo)
    assert sorted(found.jobs) == ["app-web.tick"]
    assert found.containers["app-web.tick"].name == "app-web-2"
    assert memo.checked == 2


def test_refusals_are_found_at_every_scan() -> None:
    """A refused job is refused again by a scan that takes it from the memo (the watch
    logs a refusal when it first appears, and again only after it was gone)."""
    memo = Memo()
    bad = [box("a", **TICK, **{"crontainer.jobs.tick.image": "alpine"}), box("b", **TICK)]
    first = scan(bad, RULES, memo)
    second = scan(bad, RULES, memo)
    assert [(r.container, r.job, r.key) for r in second.refusals] == [("a", "tick", "image")]
    assert second.refusals == first.refusals
    assert sorted(second.jobs) == ["b.tick"]
    assert memo.checked == 2


def test_a_refused_replica_job_is_told_once_per_service() -> None:
    """As without the memo: the first replica claims the service's job even when it is
    refused, and the others' copies are neither run nor refused again."""
    memo = Memo()
    labels = {**TICK, "crontainer.jobs.tick.image": "alpine"}
    both = [replica("app-web-1", **labels), replica("app-web-2", **labels)]
    scan(both, RULES, memo)
    found = scan(both, RULES, memo)
    assert [(r.container, r.key) for r in found.refusals] == [("app-web-1", "image")]
    assert found.jobs == {}
    same(found, both)


def test_the_watch_keeps_its_memo_between_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    """LabelWatch's scans (start, events, resync) parse a container once while it is the
    same, and again when its labels change."""
    parsed: list[str] = []
    declared = scan_module._declared

    def counted(container: ContainerInfo, rules: Rules) -> object:
        parsed.append(container.name)
        return declared(container, rules)

    monkeypatch.setattr(scan_module, "_declared", counted)
    engine = FakeEngine(FakeClock())
    engine.selectable = [box("a", "c1", **TICK), box("b", "c2", **TICK)]
    watch = LabelWatch(engine, [], 60, lambda: RULES, lambda *_: None)
    for _ in range(3):
        assert sorted(watch.scan().jobs) == ["a.tick", "b.tick"]
    engine.selectable[1] = box("b", "c2", **{**TICK, "crontainer.jobs.tick.command": "id"})
    found = watch.scan()
    assert parsed == ["a", "b", "b"]
    assert found.jobs["b.tick"].job.model_dump()["command"] == "id"
