"""The ``[daemon.remotes.<name>]`` tables: where ``copy_to`` copies a backup's archives (S3,
SFTP, WebDAV, each mapped onto rclone's backend of that type), validated one table at a time
so that every error names ``daemon.remotes.<name>.<key>``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, ValidationError, field_validator

from jobs.base import NAME_PATTERN, FileSecret, Model, SecretValue
from jobs.repository import SshKeys
from scheduler.settings.messages import did_you_mean, error_lines

if TYPE_CHECKING:
    from collections.abc import Mapping

_PATH = Field(
    "", description="the folder the archives go into ('' : the top)", examples=["backups/app"]
)
_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]+")


def _folder(value: str) -> str:
    """A remote folder: no '..' part, no control character; trailing slashes trimmed."""
    if any(ord(c) < 0x20 for c in value) or ".." in value.split("/"):  # noqa: PLR2004
        raise ValueError("expected a folder without '..' parts or control characters")
    return value.rstrip("/") or value


class S3Remote(Model):
    """An S3 bucket (AWS or any S3 server: MinIO, Garage, Ceph…): rclone's ``s3`` backend."""

    type: Literal["s3"] = Field(description="an S3 bucket")
    bucket: str = Field(
        min_length=1,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$",
        description="the bucket's name",
        examples=["backups"],
    )
    path: str = _PATH
    endpoint: str | None = Field(
        None,
        description="the S3 server's URL (default: AWS's for the region)",
        examples=["https://minio.example.org:9000"],
    )
    region: str | None = Field(None, description="the bucket's region", examples=["eu-central-1"])
    provider: str = Field("Other", description="rclone's s3 provider: AWS, Minio, Ceph, Other…")
    access_key_id: SecretValue = Field(
        description="the access key's id", examples=[{"env": "S3_KEY_ID"}]
    )
    secret_access_key: SecretValue = Field(
        description="the secret access key", examples=[{"file": "/run/secrets/s3_secret"}]
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _folder(value)

    def location(self) -> str:
        """The folder under rclone's remote: ``bucket/path``."""
        return "/".join(p for p in (self.bucket, self.path.strip("/")) if p)


class SftpRemote(Model):
    """A directory on an SSH server (key authentication, host key checked): rclone's
    ``sftp`` backend."""

    type: Literal["sftp"] = Field(description="a directory over SSH (key authentication)")
    host: str = Field(
        min_length=1,
        description="the SSH server's host name or address",
        examples=["backup.example.org"],
    )
    port: int = Field(22, ge=1, le=65535, description="the SSH server's port")
    user: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="the login", examples=["crontainer"]
    )
    path: str = _PATH
    key: SecretValue = Field(
        description="the private key (OpenSSH or PEM, no passphrase): text, { env = 'NAME' } "
        "or { file = '/run/secrets/x' }, read at each run",
        examples=[{"file": "/run/secrets/offsite_key"}],
    )
    known_hosts: str | FileSecret = Field(
        description="the host keys accepted ('host ssh-ed25519 AAAA…' lines, or "
        "{ file = … }); an unknown or changed host key fails the copy",
        examples=[{"file": "/etc/crontainer/offsite_known_hosts"}],
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.fullmatch(value):
            raise ValueError("expected a host name or address")
        return value

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, value: str | FileSecret) -> str | FileSecret:
        try:
            SshKeys.model_validate({"key": "-", "known_hosts": value})
        except ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _folder(value)

    def location(self) -> str:
        """The folder under rclone's remote (relative to the login's home unless absolute)."""
        return self.path


class WebdavRemote(Model):
    """A WebDAV folder (Nextcloud, ownCloud, SharePoint, any server): rclone's ``webdav``
    backend."""

    type: Literal["webdav"] = Field(description="a WebDAV folder")
    url: str = Field(
        pattern=r"^https?://[^\s]+$",
        description="the folder's http(s) URL",
        examples=["https://cloud.example.org/remote.php/dav/files/backup"],
    )
    user: str | None = Field(
        None, description="the login (none: no authentication)", examples=["backup"]
    )
    password: SecretValue | None = Field(
        None, description="the login's password", examples=[{"env": "DAV_PASSWORD"}]
    )
    vendor: Literal["other", "nextcloud", "owncloud", "sharepoint", "sharepoint-ntlm"] = Field(
        "other", description="the server's kind, for rclone's quirks"
    )
    path: str = _PATH

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _folder(value)

    def location(self) -> str:
        """The folder under rclone's remote (below ``url``)."""
        return self.path.strip("/")


Remote = Annotated[S3Remote | SftpRemote | WebdavRemote, Field(discriminator="type")]
"""One destination of ``copy_to``."""
TYPES: dict[str, type[S3Remote | SftpRemote | WebdavRemote]] = {
    "s3": S3Remote,
    "sftp": SftpRemote,
    "webdav": WebdavRemote,
}


def load_remotes(raw: object, errors: list[str]) -> dict[str, S3Remote | SftpRemote | WebdavRemote]:
    """The remotes of ``[daemon.remotes]`` (``raw``); each problem appended to ``errors`` as
    ``daemon.remotes.<name>.<key>: …``."""
    where = "daemon.remotes"
    if not isinstance(raw, dict):
        errors.append(f"{where}: expected a table of [daemon.remotes.<name>] tables")
        return {}
    remotes: dict[str, S3Remote | SftpRemote | WebdavRemote] = {}
    for name, table in raw.items():
        if not re.fullmatch(NAME_PATTERN, name):
            errors.append(f"{where}.{name}: a remote's name must match {NAME_PATTERN}")
            continue
        if not isinstance(table, dict):
            errors.append(f"{where}.{name}: expected a table")
            continue
        kind = table.get("type")
        if kind is None:
            errors.append(
                f"{where}.{name}.type: required key is missing (one of: {', '.join(TYPES)})"
            )
            continue
        if kind not in TYPES:
            got = "" if kind is None else f" (got {kind!r})" if isinstance(kind, str) else ""
            near = did_you_mean(kind, TYPES) if isinstance(kind, str) else ""
            errors.append(f"{where}.{name}.type: expected one of {', '.join(TYPES)}{got}{near}")
            continue
        try:
            remotes[name] = TYPES[kind].model_validate(table)
        except ValidationError as e:
            errors.extend(error_lines(e, f"{where}.{name}", TYPES[kind]))
    return remotes


def copy_to_problems(job: str, copy_to: list[str], remotes: Mapping[str, object]) -> list[str]:
    """``jobs.<job>.copy_to`` lines for each name no ``[daemon.remotes.<name>]`` defines."""
    defined = ", ".join(sorted(remotes)) or "none: add a [daemon.remotes.<name>] table"
    return [
        f"jobs.{job}.copy_to: no remote {name!r} is defined (remotes: {defined})"
        for name in copy_to
        if name not in remotes
    ]
