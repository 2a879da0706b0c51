"""Secret values of the config (``{ env = "NAME" }``, ``{ file = "/run/secrets/x" }``),
read when they are used — never at load time, never logged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.base import EnvSecret, FileSecret, header_problem
from scheduler.errors import CrontainerError

if TYPE_CHECKING:
    from jobs.plan import SecretRef


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
        data = Path(str(file)).read_bytes()
    except OSError as e:
        raise SecretError(f"{what}: cannot read {file}: {e.strerror}") from None
    return _text(data, what, str(file)).strip()


def ref_value(secret: SecretRef | str) -> str:
    """A plan's secret: the value itself, or read now from where the reference says."""
    if isinstance(secret, str):
        return secret
    return read_secret(env=secret.env, file=secret.file, what=secret.name)


def _text(data: bytes, what: str, where: str) -> str:
    """``data`` as text, or SecretError naming ``where`` (never a byte of it)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what}: {where} is not UTF-8 text") from None
    if "\x00" in text:
        raise SecretError(f"{what}: {where} holds a NUL byte")
    return text


def header_value(value: str, what: str) -> str:
    """``value`` if it can be sent as an HTTP header's value, else SecretError (CR or LF
    would split the request); the error never shows the value."""
    problem = header_problem(value)
    if problem is not None:
        raise SecretError(f"{what} {problem}")
    return value


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
        text = _text(Path(path).read_bytes(), "env_files", path)
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
