"""The jobs in force (scheduler/jobset.py): the config's and the labels' together, the
config's winning a name; what a change schedules and logs."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from scheduler.engine import ContainerInfo
from scheduler.jobset import JobSet
from scheduler.labels.parse import PREFIX
from scheduler.labels.rules import LABEL_KINDS
from scheduler.labels.scan import LabelJobs, Rules, scan
from scheduler.settings import load_config

from .helpers import events

if TYPE_CHECKING:
    from pathlib import Path

    from scheduler.settings import JobEntry


def config_jobs(tmp_path: Path, *names: str) -> Mapping[str, JobEntry]:
    """Run jobs ``names`` of a config file."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\n'
        + "".join(f'[jobs."{n}"]\nkind = "run"\nimage = "i"\nschedule = "@daily"\n' for n in names)
    )
    return load_config(path, {}).jobs


def box(name: str, *jobs: str, schedule: str = "@hourly") -> ContainerInfo:
    labels = {}
    for job in jobs:
        labels[f"{PREFIX}{job}.schedule"] = schedule
        labels[f"{PREFIX}{job}.command"] = '"true"'
    return ContainerInfo((name * 64)[:64], name, "running", labels)


def labelled(*containers: ContainerInfo) -> LabelJobs:
    """The label jobs of ``containers`` (no name taken: the job set itself must keep the
    config's)."""
    found = scan(containers, Rules(LABEL_KINDS, (), {}))
    assert found.refusals == ()
    return found


class Scheduled:
    """The schedule: each set of jobs it was handed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, jobs: Mapping[str, JobEntry]) -> None:
        self.calls.append(sorted(jobs))


@pytest.fixture
def captured() -> Any:
    """The log events of the test."""
    with structlog.testing.capture_logs() as logs:
        yield logs


def removed(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str]]:
    return [(e["job"], e["reason"]) for e in events(logs, "job.removed")]


def test_the_union_of_the_config_and_the_labels(tmp_path: Path) -> None:
    """all(): the config's jobs and the labels' jobs; schedule() hands them over."""
    schedule = Scheduled()
    jobs = JobSet(schedule, config_jobs(tmp_path, "nightly"), labelled(box("app", "ping")))
    assert sorted(jobs.all()) == ["app.ping", "nightly"]
    assert schedule.calls == []  # nothing before schedule()
    jobs.schedule()
    assert schedule.calls == [["app.ping", "nightly"]]


def test_a_config_job_wins_its_name(tmp_path: Path) -> None:
    """A label job named like a config job: the config's is in force (no container); a
    later scan does not count it as a label change."""
    config = config_jobs(tmp_path, "app.ping", "nightly")
    jobs = JobSet(Scheduled(), config, labelled(box("app", "ping")))
    assert jobs.all()["app.ping"] is config["app.ping"]
    assert jobs.all()["app.ping"].container is None
    changes = jobs.set_labels(labelled(box("app", "ping", "other")))
    assert (changes.added, changes.removed, changes.changed) == (["app.other"], [], [])
    assert jobs.all()["app.ping"] is config["app.ping"]


def test_set_labels_returns_the_label_changes(tmp_path: Path, captured: Any) -> None:
    """A scan's jobs replace the labels' jobs: added, removed and changed ones returned, the
    removed logged job.removed reason labels, the config's untouched."""
    schedule = Scheduled()
    jobs = JobSet(schedule, config_jobs(tmp_path, "nightly"))
    first = jobs.set_labels(labelled(box("app", "ping", "gone")))
    assert (first.added, first.removed, first.changed) == (["app.gone", "app.ping"], [], [])
    second = jobs.set_labels(labelled(box("app", "ping", schedule="@daily"), box("db", "vacuum")))
    assert (second.added, second.removed, second.changed) == (
        ["db.vacuum"],
        ["app.gone"],
        ["app.ping"],
    )
    assert sorted(jobs.all()) == ["app.ping", "db.vacuum", "nightly"]
    assert removed(captured) == [("app.gone", "labels")]
    assert schedule.calls[-1] == ["app.ping", "db.vacuum", "nightly"]


def test_a_reload_that_drops_a_job_logs_it(tmp_path: Path, captured: Any) -> None:
    """set_config without a job: job.removed reason config; the label jobs stay."""
    schedule = Scheduled()
    jobs = JobSet(schedule, config_jobs(tmp_path, "a", "b"), labelled(box("app", "ping")))
    jobs.set_config(config_jobs(tmp_path, "a"))
    assert sorted(jobs.all()) == ["a", "app.ping"]
    assert removed(captured) == [("b", "config")]
    assert schedule.calls == [["a", "app.ping"]]


def test_a_reload_that_takes_a_label_jobs_name(tmp_path: Path, captured: Any) -> None:
    """The config now defines a label job's name: the config's is in force, nothing is
    removed; the config later dropping it hands the name back to the labels."""
    jobs = JobSet(Scheduled(), config_jobs(tmp_path, "a"), labelled(box("app", "ping")))
    taken = config_jobs(tmp_path, "a", "app.ping")
    jobs.set_config(taken)
    assert jobs.all()["app.ping"] is taken["app.ping"]
    jobs.set_config(config_jobs(tmp_path, "a"))
    handed_back = jobs.all()["app.ping"].container
    assert handed_back is not None
    assert handed_back.name == "app"
    assert removed(captured) == []


def test_schedule_is_called_only_when_something_changed(tmp_path: Path) -> None:
    """The same label jobs, or the same config again: the schedule is not handed them."""
    schedule = Scheduled()
    config = config_jobs(tmp_path, "a")
    jobs = JobSet(schedule, config)
    jobs.set_labels(labelled(box("app", "ping")))
    assert len(schedule.calls) == 1
    unchanged = jobs.set_labels(labelled(box("app", "ping")))
    assert (unchanged.added, unchanged.removed, unchanged.changed) == ([], [], [])
    jobs.set_config(config_jobs(tmp_path, "a"))
    assert len(schedule.calls) == 1
    jobs.set_labels(LabelJobs())
    assert schedule.calls[-1] == ["a"]


def test_all_is_replaced_not_changed(tmp_path: Path) -> None:
    """A mapping all() gave keeps what it held when the jobs change (a run reads it)."""
    jobs = JobSet(Scheduled(), config_jobs(tmp_path, "a"), labelled(box("app", "ping")))
    before = jobs.all()
    jobs.set_labels(LabelJobs())
    assert sorted(before) == ["a", "app.ping"]
    assert sorted(jobs.all()) == ["a"]


def test_a_schedule_that_fails_leaves_everything_as_it_was(tmp_path: Path) -> None:
    """A reload or a scan whose jobs the schedule cannot take: the error goes to the caller
    (config.invalid, labels.scan_failed) and the jobs in force stay the old ones."""
    calls: list[list[str]] = []

    def schedule(jobs: Mapping[str, JobEntry]) -> None:
        if any(name.startswith("broken") for name in jobs):
            raise RuntimeError("cannot plan")
        calls.append(sorted(jobs))

    jobs = JobSet(schedule, config_jobs(tmp_path, "nightly"), labelled(box("app", "ping")))
    jobs.schedule()
    with pytest.raises(RuntimeError):
        jobs.set_config(config_jobs(tmp_path, "broken"))
    assert sorted(jobs.all()) == ["app.ping", "nightly"]
    with pytest.raises(RuntimeError):
        jobs.set_labels(labelled(box("broken", "x"), box("app", "ping")))
    assert sorted(jobs.all()) == ["app.ping", "nightly"]
    assert "broken.x" not in jobs.all()
    jobs.set_labels(labelled(box("web", "ping")))
    assert calls[-1] == ["nightly", "web.ping"]
