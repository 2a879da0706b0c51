"""Loaded jobs are held compact: only the values that differ from their kind's defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobs.base import BaseJob
from jobs.compact import compact, hold_defaults
from jobs.exec import ExecJob
from jobs.kinds import KINDS
from jobs.run import RunJob
from scheduler.settings import entries, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
KIND_JOBS = """
[jobs.exec]
kind = "exec"
schedule = "*/10 * * * *"
container = "app"
command = ["sh", "-c", "rm -rf /var/cache/app/tmp/*"]
user = "www-data"
timeout = "24h"

[jobs.signal]
kind = "signal"
schedule = "0 0 * * *"
containers = ["app", "label=com.example.role=worker"]
signal = "HUP"
notify = { on = ["failure"], webhook = "https://hooks.example.com/x" }
retries = 2

[jobs.archive]
kind = "backup"
schedule = "0 3 * * *"
volumes_from = ["app-data"]
target = "app-backups"
keep_last = 7
stop = ["app"]

[jobs.restic]
kind = "backup"
schedule = "30 3 * * *"
volumes = ["app-data:/data"]
repository = "rest:http://backup-host:8000/app"
password = { file = "/run/secrets/restic" }

[jobs.ship]
kind = "logship"
schedule = "*/5 * * * *"
volumes_from = ["app-logs"]
paths = ["/var/log/app/*.log"]
sink = { type = "stdout" }

[jobs.rotate]
kind = "rotate"
schedule = "0 * * * *"
volumes_from = ["app-logs"]
paths = ["/var/log/app/*.log"]
max_size = "100MiB"
retries = 0

[jobs.prune]
kind = "service"
schedule = "0 4 * * *"
image = "busybox:latest"
command = ["sh", "-c", "echo prune"]
mode = "global-job"
constraints = ["node.role == worker"]
"""


def _jobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, held: bool) -> dict[str, BaseJob]:
    """The example config's jobs and one of each other kind, held compact or (``compact``
    made a no-op) whole."""
    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE.read_text() + KIND_JOBS)
    with monkeypatch.context() as patch:
        if not held:
            patch.setattr(entries, "compact", lambda job: None)
        return {name: entry.job for name, entry in load_config(path, {}).jobs.items()}


def _table_bytes(keys: int) -> int:
    """The size of a dict of ``keys`` string keys built key by key, as a model's is: the
    smallest table CPython gives that many keys (8 slots hold 5, 16 hold 10, 32 hold 21,
    64 hold 42, 128 hold 85)."""
    return sys.getsizeof({f"key{n}": None for n in range(keys)})


def test_a_held_job_reads_every_key_as_the_whole_job_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each job of the example and of every kind ([defaults] merged) reads, key by key, the
    value and type the job validated and kept whole reads; both compare equal either way,
    and iterate and print alike; it holds no key the file did not give."""
    held = _jobs(monkeypatch, tmp_path, held=True)
    whole = _jobs(monkeypatch, tmp_path, held=False)
    assert {type(job) for job in held.values()} == set(KINDS.values())
    assert held.keys() == whole.keys()
    for name, job in held.items():
        full = whole[name]
        assert set(full.__dict__) == set(type(full).model_fields)  # the no-op took effect
        for key in type(job).model_fields:
            assert getattr(job, key) == getattr(full, key), (name, key)
            assert type(getattr(job, key)) is type(getattr(full, key)), (name, key)
        assert job == full
        assert full == job
        assert dict(job) == dict(full)
        assert repr(job) == repr(full)
        assert set(job.__dict__) <= job.model_fields_set, name
        assert len(job.__dict__) < len(full.__dict__), name


def test_a_run_job_holds_only_its_keys_in_the_smallest_table() -> None:
    """A run job and an exec job as a config of thousands has them (kind, schedule, image
    or container, command, a zone) hold those five keys and no other: the dict of five
    keys (8 slots), whatever keys the kinds gain, instead of one of every field (a run
    job's 45 fields take 128 slots, 1,584 bytes; 42 fit in 64)."""
    run = RunJob.model_validate(
        {
            "kind": "run",
            "schedule": "5 4 * * *",
            "timezone": "Europe/Berlin",
            "image": "busybox:latest",
            "command": "true",
        }
    )
    exec_job = ExecJob.model_validate(
        {
            "kind": "exec",
            "schedule": "5 4 * * *",
            "timezone": "Europe/Berlin",
            "container": "app",
            "command": "true",
        }
    )
    assert len(RunJob.model_fields) > 42  # the case this guards: a whole one takes 128 slots
    assert sys.getsizeof(run.__dict__) > _table_bytes(42)
    for job in (run, exec_job):
        compact(job)
        assert set(job.__dict__) == set(job.model_fields_set)
        assert len(job.__dict__) == 5
        assert sys.getsizeof(job.__dict__) <= _table_bytes(5)


def test_a_key_given_with_its_default_value_is_not_held_and_still_reads() -> None:
    """A key the file sets to its default (retries = 0, volumes = []) reads as given and is
    not held."""
    job = RunJob.model_validate(
        {
            "kind": "run",
            "schedule": "@daily",
            "image": "busybox",
            "retries": 0,
            "volumes": [],
            "stop_signal": "TERM",
        }
    )
    compact(job)
    assert set(job.__dict__) == {"kind", "schedule", "image"}
    assert job.retries == 0
    assert job.volumes == []
    assert job.stop_signal == "SIGTERM"
    assert "retries" in job.model_fields_set


class _Mixed(BaseJob):
    """A kind whose key takes an int or a float (none of ours does yet)."""

    level: int | float = 0.0


def test_a_value_equal_to_its_default_but_of_another_type_is_held() -> None:
    """A 0 given for a default of 0.0 stays held, and reads as given (an int), not as the
    class's 0.0; the default itself is not held."""
    hold_defaults(_Mixed)
    given = _Mixed.model_validate({"kind": "x", "schedule": "@daily", "level": 0})
    unset = _Mixed.model_validate({"kind": "x", "schedule": "@daily"})
    compact(given)
    compact(unset)
    assert given.__dict__["level"] == 0
    assert type(given.level) is int
    assert "level" not in unset.__dict__
    assert type(unset.level) is float


def test_held_jobs_differ_only_by_their_values() -> None:
    """A copy that changes a key is another job; a copy that sets a key to its default
    (held in its dict, not in the original's) is the same job; so is a whole one."""
    table = {"kind": "run", "schedule": "@daily", "image": "busybox"}
    job, whole = RunJob.model_validate(table), RunJob.model_validate(table)
    compact(job)
    assert job.model_copy(update={"retries": 2}) != job
    assert job.model_copy(update={"retries": 0}) == job
    assert job == whole
    assert job != RunJob.model_validate({**table, "image": "alpine"})
    assert job != ExecJob.model_validate(
        {"kind": "exec", "schedule": "@daily", "container": "a", "command": "id"}
    )
    assert job != "busybox"


def test_a_job_stays_unhashable_held_or_whole() -> None:
    """A job holds lists (volumes, cap_add, ...), held as its class's defaults or not: it
    cannot be a set member or a dict key either way, as before it was held compact."""
    job = RunJob.model_validate({"kind": "run", "schedule": "@daily", "image": "busybox"})
    compact(job)
    assert "volumes" not in job.__dict__
    with pytest.raises(TypeError):
        hash(job)
