"""A backup job's restic repository keys (``repository`` and the keys that go with it):
their checks, and the ``ResticBackup`` step they plan.

The request the plan builds holds no secret given by reference (``{ env = … }``,
``{ file = … }``): those are ``SecretRef``s the daemon reads at run time and writes, with
the request, on the tool's stdin — never into the ops container's environment, command
or labels.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, overload

from pydantic import Field, field_validator

from jobs.base import EnvSecret, FileSecret, Model, SecretValue
from jobs.plan import ContainerSpec, ResticBackup, SecretRef
from jobs.protocol.restic import KEEP_RULES, ResticRequest, sftp_location

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.plan import Mount

REPOSITORY_ONLY = (
    "password",
    "env",
    "init",
    "check",
    "check_read_data",
    "network",
    "keep_hourly",
    "keep_yearly",
    "ssh",
)
"""Keys only a job with ``repository`` takes (a tar backup refuses them)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_READ_DATA = re.compile(r"(?P<n>\d+)/(?P<t>\d+)|(?P<pct>\d+(\.\d+)?)%|\d+[KMGT]")


def _env_names(value: dict[str, SecretValue]) -> dict[str, SecretValue]:
    for name in value:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"env {name!r}: not an environment variable name")
        if name.upper().startswith(("RESTIC_PASSWORD", "RESTIC_REPOSITORY")):
            raise ValueError(
                f"env {name!r}: the repository and its password have their own keys "
                "(repository, password)"
            )
    return value


def _read_data(value: str | None) -> str | None:
    found = _READ_DATA.fullmatch(value) if value is not None else None
    if value is not None and (
        found is None
        or (found["n"] and not 1 <= int(found["n"]) <= int(found["t"]))
        or (found["pct"] and not 0 < float(found["pct"]) <= 100)  # noqa: PLR2004 - percent
    ):
        raise ValueError(
            f"check_read_data {value!r}: expected 'n/t' (1 ≤ n ≤ t), a percentage such as "
            "'5%', or a size such as '500M'"
        )
    return value


@overload
def secret_ref(name: str, value: EnvSecret | FileSecret) -> SecretRef: ...
@overload
def secret_ref(name: str, value: SecretValue) -> SecretRef | None: ...
def secret_ref(name: str, value: SecretValue) -> SecretRef | None:
    """The reference the daemon reads ``value`` by; None for a value given as text."""
    if isinstance(value, EnvSecret):
        return SecretRef(name, env=value.env)
    if isinstance(value, FileSecret):
        return SecretRef(name, file=value.file)
    return None


class SshKeys(Model):
    """How the ops container's ssh reaches an ``sftp:`` repository: the job's key, and the
    host keys it trusts (nothing else: no agent, no config, no other known_hosts)."""

    key: SecretValue = Field(
        description="the private key (OpenSSH or PEM, no passphrase): text, { env = 'NAME' } "
        "or { file = '/run/secrets/x' }, read at each run",
        examples=[{"file": "/run/secrets/backup_key"}],
    )
    known_hosts: str | FileSecret = Field(
        description="the host keys ssh accepts, as known_hosts lines ('host ssh-ed25519 "
        "AAAA…'), or { file = '/path/known_hosts' } read at each run",
        examples=[{"file": "/etc/crontainer/known_hosts"}],
    )

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, value: str | FileSecret) -> str | FileSecret:
        if isinstance(value, str) and not any(
            len(line.split()) >= 3 and not line.startswith("#")  # noqa: PLR2004 - host type key
            for line in value.splitlines()
        ):
            raise ValueError("known_hosts: no 'host keytype key' line")
        return value


class RepositoryKeys(Model):
    """The keys of a backup into a restic repository (mixed into ``BackupJob``)."""

    repository: str | None = Field(
        None,
        min_length=1,
        description="a restic repository instead of target: 'rest:http://host:8000/x', "
        "'sftp:…', 's3:…', or a path inside one of the job's volumes",
        examples=["rest:http://backup-host:8000/app"],
    )
    password: SecretValue | None = Field(
        None,
        description="the repository's password (required with repository): text, "
        "{ env = 'NAME' } or { file = '/run/secrets/x' }, read at each run",
        examples=[{"file": "/run/secrets/restic"}],
    )
    env: dict[str, SecretValue] = Field(
        default_factory=dict,
        description="more environment for restic (e.g. AWS_ACCESS_KEY_ID): text or secret "
        "references; given to restic on the tool's stdin, never to the container",
        examples=[{"AWS_ACCESS_KEY_ID": {"env": "S3_KEY"}}],
    )
    network: str | None = Field(
        None,
        description="network of the ops container, to reach the repository (default: 'none' "
        "for a local path, else the engine's default)",
        examples=["backup-net"],
    )
    init: bool = Field(default=False, description="create the repository when it does not exist")
    check: Literal["never", "always", "weekly", "monthly"] = Field(
        "never", description="restic check: never, at every run, or when the last is 7/30 days old"
    )
    check_read_data: str | None = Field(
        None, description="restic check --read-data-subset: 'n/t', '5%' or '500M'", examples=["5%"]
    )
    keep_hourly: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="restic forget --keep-hourly (repository only)",
        examples=[24],
    )
    keep_yearly: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="restic forget --keep-yearly (repository only)",
        examples=[3],
    )
    ssh: SshKeys | None = Field(
        None,
        description="an sftp: repository's SSH key and known_hosts (required with sftp:)",
        examples=[
            {
                "key": {"file": "/run/secrets/backup_key"},
                "known_hosts": {"file": "/etc/crontainer/known_hosts"},
            }
        ],
    )

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, SecretValue]) -> dict[str, SecretValue]:
        return _env_names(value)

    @field_validator("check_read_data")
    @classmethod
    def _check_read_data(cls, value: str | None) -> str | None:
        return _read_data(value)

    def repository_problem(self, given: set[str], volumes: tuple[Mount, ...]) -> str | None:
        """Why the repository keys (``given``: those set) do not fit together, or None."""
        if self.repository is None:
            refused = [key for key in REPOSITORY_ONLY if key in given]
            if refused:
                return f"{refused[0]} is a key of a backup into a repository (repository)"
            return None
        if self.password is None:
            return "password is required with repository"
        if "compression" in given:
            return "compression is not a key of a backup into a repository: restic compresses"
        if self.repository.startswith("/"):
            return self._local_problem(volumes)
        return self._sftp_problem()

    def _sftp_problem(self) -> str | None:
        """Why ``ssh`` and an ``sftp:`` repository do not go together, or None."""
        try:
            sftp = sftp_location(str(self.repository)) is not None
        except ValueError as e:
            return str(e)
        if sftp and self.ssh is None:
            return (
                "an sftp: repository needs ssh = { key = …, known_hosts = … }: the key "
                "reaches the ops container no other way"
            )
        if self.ssh is not None and not sftp:
            return "ssh is a key of an sftp: repository"
        return None

    def _local_problem(self, volumes: tuple[Mount, ...]) -> str | None:
        """Why a local repository cannot be written where it is, or None."""
        holder = self.repository_volume(volumes)
        if holder is None:
            return (
                f"repository {self.repository!r}: a local repository must lie inside one of "
                "the job's volumes (else it is written into the throwaway ops container)"
            )
        if holder.read_only:
            return f"repository {self.repository!r}: its volume {holder.source!r} is read-only"
        return None

    def repository_volume(self, volumes: tuple[Mount, ...]) -> Mount | None:
        """The volume (of ``volumes``) a local repository lies in, the deepest; else None."""
        path = str(self.repository)
        holders = [
            v for v in volumes if path == v.target or path.startswith(v.target.rstrip("/") + "/")
        ]
        return max(holders, key=lambda v: len(v.target), default=None)

    def restic_request(
        self, job: str, paths: tuple[str, ...], keep: Mapping[str, int | None]
    ) -> ResticRequest:
        """The tool's request, without what the daemon completes at run time (the daemon's
        name, secrets given by reference, the last check). ``keep``: every rule's count."""
        ssh = self.ssh
        return ResticRequest(
            job,
            "",
            str(self.repository),
            paths=paths,
            init=self.init,
            keep={rule: n for rule in KEEP_RULES if (n := keep.get(rule)) is not None},
            check=self.check,
            check_read_data=self.check_read_data,
            password=self.password if isinstance(self.password, str) else None,
            env={k: v for k, v in self.env.items() if isinstance(v, str)},
            ssh_key=ssh.key if ssh is not None and isinstance(ssh.key, str) else None,
            known_hosts=(
                ssh.known_hosts if ssh is not None and isinstance(ssh.known_hosts, str) else None
            ),
        )

    def restic_step(self, spec: ContainerSpec, request: ResticRequest) -> ResticBackup:
        """The step: ``spec`` (the ops container, stdin open) fed ``request``."""
        password = secret_ref("password", self.password) if self.password is not None else None
        refs = (secret_ref(name, value) for name, value in self.env.items())
        ssh = self.ssh
        return ResticBackup(
            spec,
            request,
            password,
            tuple(r for r in refs if r is not None),
            ssh_key=secret_ref("ssh.key", ssh.key) if ssh is not None else None,
            known_hosts=secret_ref("ssh.known_hosts", ssh.known_hosts) if ssh else None,
        )

    def repository_network(self) -> str | None:
        """The ops container's network: the one given, else none for a local repository
        (nothing to reach), else the engine's default."""
        if self.network is not None:
            return self.network
        return "none" if str(self.repository).startswith("/") else None
