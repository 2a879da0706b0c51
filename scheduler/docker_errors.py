"""docker-py's and the transport's errors, translated into the daemon's own: the engine
answered no (``EngineError``, ``EngineNotFoundError`` 404, ``EngineConflictError`` 409), or
it did not answer (``EngineUnavailableError``)."""

from __future__ import annotations

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
    from collections.abc import Iterator


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
        raise EngineUnavailableError(f"{what}: the Docker engine did not answer: {e}") from e
