"""Secret values of the config (``{ env = "NAME" }``, ``{ file = "/run/secrets/x" }``),
read when they are used — never at load time, never logged."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.base import EnvSecret, FileSecret
from scheduler.errors import CrontainerError


class SecretError(CrontainerError):
    """A secret cannot be read; the message names it, never its value."""


def read_secret(*, env: str | None, file: str | None, what: str) -> str:
    """The value of the environment variable ``env`` or the content of ``file`` (stripped)."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"{what}: environment variable {env} is not set")
        return value
    try:
        return Path(str(file)).read_text().strip()
    except OSError as e:
        raise SecretError(f"{what}: cannot read {file}: {e.strerror}") from None


def resolve(value: object, what: str) -> str:
    """A config value that is text or a secret reference, as text."""
    if isinstance(value, EnvSecret):
        return read_secret(env=value.env, file=None, what=what)
    if isinstance(value, FileSecret):
        return read_secret(env=None, file=value.file, what=what)
    return str(value)


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as ``docker run --env-file`` reads them: no quoting, ``#``
    comments and blank lines skipped."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SecretError(f"env_files: cannot read {path}: {e.strerror}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise SecretError(f"env_files: {path} line {number}: expected KEY=VALUE")
        values[key.strip()] = value
    return values
