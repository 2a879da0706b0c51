"""docker-py's and the transport's errors, translated into the daemon's own: the engine
answered no (``EngineError``, ``EngineNotFoundError`` 404, ``EngineConflictError`` 409), or
it did not answer (``EngineUnavailableError``, which names the address tried: DOCKER_HOST
with its user part masked, or the default socket)."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING

import docker.errors

from scheduler.errors import (
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
"""Where docker-py connects without DOCKER_HOST (on Linux)."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _userinfo(address: str) -> str | None:
    """The user part of an address (all before its last ``@``: a password may hold ``@``
    or ``/``), or None when it has none."""
    rest = address[m.end() :] if (m := _SCHEME.match(address)) else address
    user, at, _ = rest.rpartition("@")
    return user if at else None


def engine_address(environ: Mapping[str, str]) -> str:
    """The engine's address as the client reads it (DOCKER_HOST, else the default socket),
    its user part masked: ``tcp://user:secret@host:2376`` is shown as ``tcp://***@host:2376``."""
    address = environ.get("DOCKER_HOST") or DEFAULT_ADDRESS
    user = _userinfo(address)
    return address.replace(f"{user}@", "***@", 1) if user is not None else address


def _without_credentials(text: str, environ: Mapping[str, str]) -> str:
    """``text`` (an error) with DOCKER_HOST's user part masked wherever it is quoted."""
    user = _userinfo(environ.get("DOCKER_HOST") or "")
    return text.replace(f"{user}@", "***@") if user else text


def explain(error: docker.errors.APIError) -> str:
    text = error.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text or error).strip()
    if error.status_code == 403 and text.lstrip().startswith("<"):  # noqa: PLR2004
        # An HTML page is not the engine's answer: a socket proxy denied the section.
        return f"403 Forbidden: refused by a proxy in front of the engine ({error.response.url})"
    return text


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn docker-py and transport errors into our own, with ``what`` in front."""
    try:
        yield
    except docker.errors.NotFound as e:
        raise EngineNotFoundError(f"{what}: {explain(e)}") from e
    except docker.errors.APIError as e:
        conflict = e.status_code == HTTPStatus.CONFLICT
        raise (EngineConflictError if conflict else EngineError)(f"{what}: {explain(e)}") from e
    except (docker.errors.DockerException, OSError) as e:
        # requests' ConnectionError and Timeout are OSErrors.
        address = engine_address(os.environ)
        error = _without_credentials(str(e), os.environ)
        raise EngineUnavailableError(
            f"{what}: the Docker engine at {address} did not answer: {error}"
        ) from e
