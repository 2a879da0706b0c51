"""Job kind service: its keys checked in the file's words, and its plan (one job service as
configured, secrets by reference, the daemon's variables over the job's)."""

from __future__ import annotations

from pathlib import Path

from jobs.base import PlanContext
from jobs.plan import Mount, RunService, SecretRef
from jobs.rotate import RotateJob
from jobs.service import ServiceJob

from .configs import file_errors, load_job

HEAD = '[jobs.s]\nkind = "service"\nschedule = "@daily"\nimage = "busybox"\n'


def plan_of(tmp_path: Path, keys: str) -> RunService:
    job = load_job(tmp_path, HEAD + keys, "s", ServiceJob)
    (step,) = job.plan(PlanContext("s", "ops:1", env={"CRONTAINER_PARENT_JOB": "p"})).steps
    assert isinstance(step, RunService)
    return step


def test_the_plan_is_one_job_service_as_configured(tmp_path: Path) -> None:
    """Keys reach the spec; env secrets stay references; the daemon's variables win."""
    step = plan_of(
        tmp_path,
        "command = \"sh -c 'echo hi'\"\nreplicas = 3\nmax_concurrent = 2\n"
        'env = { A = "1", CRONTAINER_PARENT_JOB = "mine", PW = { env = "PW" } }\n'
        'volumes = ["data:/data:ro", "/srv:/srv"]\nnetworks = ["backend"]\n'
        'constraints = ["node.role == worker"]\npreferences = ["node.labels.zone"]\n'
        'cpus = 0.5\nmemory = "64MiB"\nreserve_cpus = 0.25\nreserve_memory = "32MiB"\n'
        'secrets = ["db_pw"]\nconfigs = ["app.conf"]\nstop_grace = "3s"\n',
    )
    spec = step.spec
    assert spec.command == ("sh", "-c", "echo hi")
    assert (spec.global_job, spec.replicas, spec.max_concurrent) == (False, 3, 2)
    assert dict(spec.env) == {"A": "1", "CRONTAINER_PARENT_JOB": "p"}
    assert spec.secret_env == (SecretRef("PW", env="PW"),)
    assert spec.mounts == (Mount("data", "/data", read_only=True), Mount("/srv", "/srv"))
    assert (spec.networks, spec.constraints, spec.preferences) == (
        ("backend",),
        ("node.role == worker",),
        ("node.labels.zone",),
    )
    assert (spec.cpus, spec.memory, spec.reserve_cpus, spec.reserve_memory) == (
        0.5,
        64 * 2**20,
        0.25,
        32 * 2**20,
    )
    assert (spec.secrets, spec.configs, spec.stop_grace) == (("db_pw",), ("app.conf",), 3.0)


def test_a_replicated_job_has_one_replica_by_default_and_a_global_job_none(
    tmp_path: Path,
) -> None:
    """replicas defaults to 1; mode = "global-job" plans a global job."""
    assert plan_of(tmp_path, "").spec.replicas == 1
    assert plan_of(tmp_path, 'mode = "global-job"\n').spec.global_job


def test_bad_keys_are_refused_in_the_files_words(tmp_path: Path) -> None:
    """A bad constraint, preference, object name or mode, and replicas on a global job."""
    errors = file_errors(
        tmp_path,
        HEAD + 'constraints = ["node.role = worker"]\npreferences = ["spread=zone"]\n'
        'secrets = ["a b"]\nmode = "replicated"\n',
    )
    text = "\n".join(errors)
    assert "jobs.s.constraints: 'node.role = worker' is not a placement constraint" in text
    assert "jobs.s.preferences: 'spread=zone' is not a spread descriptor" in text
    assert "jobs.s.secrets: 'a b' is not a Swarm object name" in text
    assert "jobs.s.mode:" in text
    errors = file_errors(tmp_path, HEAD + 'mode = "global-job"\nmax_concurrent = 2\n')
    assert errors == [
        (
            "jobs.s: max_concurrent applies to mode = 'replicated-job' only; a global-job "
            "runs one task on each node"
        )
    ]


def test_defaults_of_a_replicated_job_break_no_global_job(tmp_path: Path) -> None:
    """[defaults] replicas and max_concurrent go to the replicated jobs only (a global job
    has neither): a shared [defaults] breaks no job, as with a backup job's exclusive keys."""
    text = (
        "[defaults]\nreplicas = 3\nmax_concurrent = 2\n"
        '[jobs.r]\nkind = "service"\nschedule = "@daily"\nimage = "busybox"\n'
        '[jobs.g]\nkind = "service"\nschedule = "@daily"\nimage = "busybox"\n'
        'mode = "global-job"\n'
    )
    replicated = load_job(tmp_path, text, "r", ServiceJob)
    assert (replicated.replicas, replicated.max_concurrent) == (3, 2)
    whole = load_job(tmp_path, text, "g", ServiceJob)
    assert (whole.mode, whole.replicas, whole.max_concurrent) == ("global-job", None, None)


ROTATE = (
    '[jobs.rot]\nkind = "rotate"\nschedule = "@daily"\npaths = ["/logs/*.log"]\n'
    'max_size = "1MiB"\nvolumes = ["logs:/logs"]\n'
)


def test_a_default_mode_is_a_default_of_the_kind_whose_choice_it_is(tmp_path: Path) -> None:
    """rotate and service jobs both have a mode, each with its own choices: a [defaults]
    mode is a default of the kind it names (a default mode = "copytruncate" loaded before
    the service kind came, and loads still); a global-job default mode leaves a job that
    sets replicas replicated; a mode of neither kind is [defaults]' error."""
    service = '[jobs.s]\nkind = "service"\nschedule = "@daily"\nimage = "busybox"\n'
    text = f'[defaults]\nmode = "copytruncate"\n{ROTATE}{service}'
    assert load_job(tmp_path, text, "rot", RotateJob).mode == "copytruncate"
    assert load_job(tmp_path, text, "s", ServiceJob).mode == "replicated-job"
    text = f'[defaults]\nmode = "global-job"\nreplicas = 2\n{ROTATE}{service}'
    text += '[jobs.r]\nkind = "service"\nschedule = "@daily"\nimage = "i"\nreplicas = 3\n'
    assert load_job(tmp_path, text, "rot", RotateJob).mode == "rename"
    whole = load_job(tmp_path, text, "s", ServiceJob)
    assert (whole.mode, whole.replicas) == ("global-job", None)
    replicated = load_job(tmp_path, text, "r", ServiceJob)
    assert (replicated.mode, replicated.replicas) == ("replicated-job", 3)
    errors = file_errors(tmp_path, f'[defaults]\nmode = "sideways"\n{ROTATE}{service}')
    assert len(errors) == 1
    assert errors[0].startswith("defaults.mode: expected ")
