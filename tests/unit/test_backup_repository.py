"""Job kind backup with ``repository``: validation errors name the key (never a secret's
value); the plan snapshots with the restic tool in the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.base import PlanContext
from jobs.plan import ExecCommand, ResticBackup, SecretRef, WithStopped

from .configs import BACKUP_BASE, backup_errors, load_backup

BASE = BACKUP_BASE
REPO = 'repository = "rest:http://backup-host:8000/app"\npassword = "hunter2-secret"\n'


load, errors_of = load_backup, backup_errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "",
            (
                "jobs.b: a backup needs a target (archives in a volume or host directory), "
                "copy_to (archives streamed to remotes) or a repository (restic snapshots)"
            ),
        ),
        (
            REPO + 'target = "backups"',
            "jobs.b: a backup needs exactly one of target (archives) and repository",
        ),
        ('repository = "s3:s3.amazonaws.com/b"', "jobs.b: password is required with repository"),
        ('repository = ""\npassword = "x"', "jobs.b.repository: must not be empty"),
        (REPO + 'compression = "gzip"', "jobs.b: compression is not a key of a backup into a"),
        (REPO + 'check = "daily"', "jobs.b.check: expected 'never', 'always', 'weekly'"),
        (REPO + "keep_hourly = 0", "jobs.b.keep_hourly: must be at least"),
        (REPO + "init = 1", "jobs.b.init: expected true or false"),
        (REPO + 'env = { "1BAD" = "x" }', "jobs.b.env: env '1BAD': not an environment variable"),
        (REPO + 'env = { "A-B" = "x" }', "jobs.b.env: env 'A-B': not an environment variable"),
        (
            REPO + 'env = { RESTIC_PASSWORD_FILE = "/x" }',
            "jobs.b.env: env 'RESTIC_PASSWORD_FILE': the repository and its password have their",
        ),
        (
            REPO + 'env = { RESTIC_REPOSITORY = "/x" }',
            "jobs.b.env: env 'RESTIC_REPOSITORY': the repository and its password have their",
        ),
        (REPO + 'check_read_data = "0/5"', "jobs.b.check_read_data: check_read_data '0/5':"),
        (REPO + 'check_read_data = "6/5"', "jobs.b.check_read_data: check_read_data '6/5':"),
        (REPO + 'check_read_data = "150%"', "jobs.b.check_read_data: check_read_data '150%':"),
        (REPO + 'check_read_data = "some"', "jobs.b.check_read_data: check_read_data 'some':"),
        (
            'repository = "/r"\npassword = { env = "" }\nvolumes = ["r:/r"]',
            "jobs.b.password",
        ),
        (REPO + 'concurrency = "allow"', "jobs.b: concurrency 'allow' would let"),
    ],
)
def test_bad_repository_config_names_the_key(tmp_path: Path, extra: str, message: str) -> None:
    """Every mistake is reported naming its key."""
    errors = errors_of(tmp_path, extra)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    "key",
    [
        'password = "hunter2-secret"',
        'env = { AWS_ACCESS_KEY_ID = "x" }',
        "init = false",
        'check = "weekly"',
        'check_read_data = "5%"',
        'network = "backup-net"',
        "keep_hourly = 24",
        "keep_yearly = 3",
    ],
)
def test_repository_keys_are_refused_without_repository(tmp_path: Path, key: str) -> None:
    """A tar backup (target) refuses each key of a backup into a repository, by its name,
    never showing the value."""
    errors = errors_of(tmp_path, 'target = "backups"\n' + key)
    name = key.split(" ", maxsplit=1)[0]
    assert errors == [f"jobs.b: {name} is a key of a backup into a repository (repository)"]
    assert "hunter2" not in " ".join(errors)


def test_errors_never_show_the_password(tmp_path: Path) -> None:
    """A bad job with a plain-text password: no error line holds it (the bad key and the
    rule the job breaks are both reported, at once)."""
    errors = errors_of(tmp_path, REPO + 'compression = "zstd"\nenv = { "1X" = "hunter2-secret" }')
    assert errors == [
        "jobs.b.env: env '1X': not an environment variable name",
        "jobs.b: compression is not a key of a backup into a repository: restic compresses",
    ]
    assert "hunter2" not in " ".join(errors)


@pytest.mark.parametrize(
    ("volumes", "repository", "message"),
    [
        ("", "/repo", "jobs.b: repository '/repo': a local repository must lie inside one of"),
        ('["r:/repos"]', "/repo", "repository '/repo': a local repository must lie inside"),
        ('["r:/repo:ro"]', "/repo/app", "repository '/repo/app': its volume 'r' is read-only"),
    ],
)
def test_a_local_repository_lies_in_a_writable_volume(
    tmp_path: Path, volumes: str, repository: str, message: str
) -> None:
    """Else restic would write it into the throwaway ops container (or could not write)."""
    extra = f'repository = "{repository}"\npassword = "p"\n'
    if volumes:
        extra += f"volumes = {volumes}\n"
    errors = errors_of(tmp_path, extra)
    assert any(message in e for e in errors), errors


def test_plan_pre_stop_snapshot_start_post(tmp_path: Path) -> None:
    """pre_exec, then the restic tool inside stop/start, post_exec as cleanup; the request
    holds no secret given by reference, the container's spec holds none at all."""
    job = load(
        tmp_path,
        'repository = "rest:http://backup-host:8000/app"\n'
        'password = { file = "/run/secrets/restic" }\n'
        'env = { AWS_ACCESS_KEY_ID = { env = "S3_KEY" }, AWS_REGION = "eu-west-1" }\n'
        'volumes = ["logs:/var/log/app"]\nstop = ["app"]\nlabels = { team = "ops" }\n'
        'pre_exec = [{ container = "db", command = "sync" }]\n'
        'post_exec = [{ container = "db", command = ["echo", "done"] }]\n'
        'paths = ["/var/lib/mysql"]\ninit = true\ncheck = "weekly"\ncheck_read_data = "1/12"\n'
        "keep_last = 3\nkeep_hourly = 24\nkeep_daily = 7\nkeep_yearly = 2\n",
    )
    plan = job.plan(PlanContext(job="b", ops_image="ops:1"))
    pre, middle = plan.steps
    assert isinstance(pre, ExecCommand)
    assert isinstance(middle, WithStopped)
    assert middle.containers == ("app",)
    (step,) = middle.body
    assert isinstance(step, ResticBackup)
    spec = step.spec
    assert (spec.image, spec.command) == ("ops:1", ("python3", "-m", "jobs.tools.restic"))
    assert spec.stdin
    assert spec.healthcheck is False
    assert (spec.volumes_from, spec.volumes_from_read_only) == (("db",), True)
    assert [(m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("logs", "/var/log/app", True)
    ]
    assert spec.network is None  # the engine's default: the repository is on the network
    assert dict(spec.labels) == {"team": "ops"}
    assert dict(spec.env) == {}
    assert (spec.secret_env, spec.env_files) == ((), ())
    request = step.request
    assert (request.job, request.repository, request.paths) == (
        "b",
        "rest:http://backup-host:8000/app",
        ("/var/lib/mysql",),
    )
    assert (request.init, request.check, request.check_read_data) == (True, "weekly", "1/12")
    assert dict(request.keep) == {"last": 3, "hourly": 24, "daily": 7, "yearly": 2}
    assert request.password is None
    assert dict(request.env) == {"AWS_REGION": "eu-west-1"}  # given as text
    assert step.password == SecretRef("password", file="/run/secrets/restic")
    assert step.env == (SecretRef("AWS_ACCESS_KEY_ID", env="S3_KEY"),)
    (post,) = plan.cleanup
    assert isinstance(post, ExecCommand)
    assert post.command == ("echo", "done")


def test_plan_of_a_local_repository(tmp_path: Path) -> None:
    """No stop: the step itself; the repository's volume writable, the others read-only;
    no network; a plain-text password in the request; no paths: every mounted volume."""
    job = load(
        tmp_path,
        'repository = "/repos/app"\npassword = "hunter2-secret"\n'
        'volumes = ["data:/data", "repos:/repos"]\n',
    )
    (step,) = job.plan(PlanContext(job="b", ops_image="ops:1")).steps
    assert isinstance(step, ResticBackup)
    assert [(m.source, m.target, m.read_only) for m in step.spec.mounts] == [
        ("data", "/data", True),
        ("repos", "/repos", False),
    ]
    assert step.spec.network == "none"
    assert step.request.paths == ()
    assert step.request.password == "hunter2-secret"  # noqa: S105 - a made-up one
    assert step.password is None
    assert dict(step.request.keep) == {}


def test_a_network_given_is_the_ops_containers(tmp_path: Path) -> None:
    job = load(tmp_path, REPO + 'network = "backup-net"\n')
    (step,) = job.plan(PlanContext(job="b", ops_image="ops:1")).steps
    assert isinstance(step, ResticBackup)
    assert step.spec.network == "backup-net"


def test_defaults_of_one_sort_of_backup_do_not_break_the_other(tmp_path: Path) -> None:
    """[defaults] shared by run jobs (env, network), tar backups (target, compression) and
    repository backups (password, check): each backup takes only the keys of its sort."""
    defaults = (
        '[defaults]\nenv = { TZ = "UTC" }\nnetwork = "backup-net"\ntarget = "backups"\n'
        'compression = "gzip"\npassword = { env = "RESTIC_PW" }\ncheck = "monthly"\n'
    )
    tar = load(tmp_path, "", defaults + BASE)
    assert (tar.target, tar.compression, tar.repository, tar.password) == (
        "backups",
        "gzip",
        None,
        None,
    )
    repository = load(tmp_path, 'repository = "s3:s3.amazonaws.com/b"\n', defaults + BASE)
    assert (repository.target, repository.check, repository.network) == (
        None,
        "monthly",
        "backup-net",
    )
    assert repository.env == {"TZ": "UTC"}
    assert "compression" not in repository.model_fields_set


SFTP = 'repository = "sftp:backup@backup-host:/srv/restic/app"\npassword = "p"\n'
KNOWN = "backup-host ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMadeUpKeyMadeUpKeyMadeUpKeyMadeUp"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (SFTP, "jobs.b: an sftp: repository needs ssh = { key = …, known_hosts = … }"),
        (
            REPO + f'ssh = {{ key = {{ env = "K" }}, known_hosts = "{KNOWN}" }}',
            "jobs.b: ssh is a key of an sftp: repository",
        ),
        (SFTP + f'ssh = {{ known_hosts = "{KNOWN}" }}', "jobs.b.ssh.key: required key is missing"),
        (SFTP + 'ssh = { key = { env = "K" } }', "jobs.b.ssh.known_hosts: required key is missing"),
        (
            SFTP + 'ssh = { key = { env = "K" }, known_hosts = "# none" }',
            "jobs.b.ssh.known_hosts: known_hosts: no 'host keytype key' line",
        ),
        (
            SFTP + 'ssh = { key = { env = "K" }, known_hosts = { file = "kh" } }',
            "jobs.b.ssh.known_hosts.file: file 'kh' must be an absolute path",
        ),
        (
            SFTP + f'ssh = {{ key = {{ env = "K" }}, known_hosts = "{KNOWN}", port = 22 }}',
            "jobs.b.ssh.port: unknown key",
        ),
        (
            'repository = "sftp:-oProxyCommand=x@h:/r"\npassword = "p"\n',
            "jobs.b: repository 'sftp:-oProxyCommand=x@h:/r': user '-oProxyCommand=x' is not",
        ),
        (
            'repository = "sftp://u@h:70000//r"\npassword = "p"\n',
            "jobs.b: repository 'sftp://u@h:70000//r': port '70000' is not a port number",
        ),
        ('repository = "sftp:u@h:"\npassword = "p"\n', "repository 'sftp:u@h:': no directory"),
    ],
)
def test_ssh_goes_with_an_sftp_repository_only(tmp_path: Path, extra: str, message: str) -> None:
    """An sftp: repository needs ssh (the key has no other way in), and ssh needs one."""
    errors = errors_of(tmp_path, extra)
    assert any(message in e for e in errors), errors


def test_ssh_is_refused_without_repository(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path, f'target = "backups"\nssh = {{ key = "k", known_hosts = "{KNOWN}" }}'
    )
    assert errors == ["jobs.b: ssh is a key of a backup into a repository (repository)"]


def test_plan_of_an_sftp_repository(tmp_path: Path) -> None:
    """Key and known_hosts by reference are SecretRefs read at run time; as text, in the
    request; neither in the container's spec."""
    job = load(
        tmp_path,
        SFTP + 'ssh = { key = { file = "/run/secrets/key" }, known_hosts = { file = "/kh" } }',
    )
    (step,) = job.plan(PlanContext(job="b", ops_image="ops:1")).steps
    assert isinstance(step, ResticBackup)
    assert step.ssh_key == SecretRef("ssh.key", file="/run/secrets/key")
    assert step.known_hosts == SecretRef("ssh.known_hosts", file="/kh")
    assert (step.request.ssh_key, step.request.known_hosts) == (None, None)
    assert step.spec.network is None
    job = load(tmp_path, SFTP + f'ssh = {{ key = {{ env = "K" }}, known_hosts = "{KNOWN}" }}')
    (step,) = job.plan(PlanContext(job="b", ops_image="ops:1")).steps
    assert isinstance(step, ResticBackup)
    assert step.ssh_key == SecretRef("ssh.key", env="K")
    assert (step.known_hosts, step.request.known_hosts) == (None, KNOWN)


def test_ssh_defaults_apply_to_sftp_repositories_only(tmp_path: Path) -> None:
    defaults = f'[defaults]\npassword = "p"\nssh = {{ key = "k", known_hosts = "{KNOWN}" }}\n'
    sftp = load(tmp_path, 'repository = "sftp:u@h:/r"\n', defaults + BASE)
    assert sftp.ssh is not None
    rest = load(tmp_path, 'repository = "rest:http://h:8000/r"\n', defaults + BASE)
    assert rest.ssh is None
