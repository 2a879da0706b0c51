"""Hardening keys: per job and from [defaults], for run containers and ops containers alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.plan import RunContainer, WithStopped
from scheduler.errors import ConfigError
from scheduler.settings import load_config

HARDENED = (
    'read_only = true\ncap_drop = ["all"]\ncap_add = ["CAP_CHOWN"]\n'
    'no_new_privileges = true\npids_limit = 64\nmemory = "256MiB"\ncpus = 0.5\n'
)


def load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "c.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/s"\n' + text)
    return dict(load_config(path, {}).jobs)


def test_a_run_job_passes_its_hardening_to_the_container(tmp_path: Path) -> None:
    jobs = load(tmp_path, '[jobs.a]\nkind = "run"\nschedule = "@daily"\nimage = "x"\n' + HARDENED)
    (step,) = jobs["a"].job.plan(PlanContext("a", "ops")).steps  # type: ignore[attr-defined]
    assert isinstance(step, RunContainer)
    spec = step.spec
    assert (spec.read_only, spec.cap_drop, spec.cap_add) == (True, ("ALL",), ("CHOWN",))
    assert (spec.no_new_privileges, spec.pids_limit) == (True, 64)
    assert (spec.memory, spec.cpus) == (256 * 1024 * 1024, 0.5)


def test_defaults_harden_ops_containers_too(tmp_path: Path) -> None:
    jobs = load(
        tmp_path,
        "[defaults]\n" + HARDENED + '[jobs.b]\nkind = "backup"\nschedule = "@daily"\n'
        'volumes_from = "db"\ntarget = "t"\nstop = ["app"]\ncap_drop = []\n',
    )
    (step,) = jobs["b"].job.plan(PlanContext("b", "ops")).steps  # type: ignore[attr-defined]
    assert isinstance(step, WithStopped)
    archive = step.body[0]
    assert isinstance(archive, RunContainer)
    spec = archive.spec
    assert (spec.read_only, spec.no_new_privileges, spec.pids_limit) == (True, True, 64)
    assert spec.cap_drop == ()  # the job's own value wins over [defaults]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ('cap_drop = ["net admin"]', "jobs.a.cap_drop: 'net admin' is not a capability name"),
        ("pids_limit = 0", "jobs.a.pids_limit: must be at least 1"),
        ('memory = "1MiB"', "jobs.a.memory: memory must be at least 6MiB"),
        ('read_only = "maybe"', "jobs.a.read_only: expected true or false"),
    ],
)
def test_bad_hardening_names_the_key(tmp_path: Path, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f'[jobs.a]\nkind = "run"\nschedule = "@daily"\nimage = "x"\n{key}\n')
    assert any(message in e for e in caught.value.errors), caught.value.errors
