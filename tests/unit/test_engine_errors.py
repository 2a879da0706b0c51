"""The Docker gateway's errors by type: the engine's 404 and 409 are their own classes
(EngineNotFoundError, EngineConflictError), so callers catch what they mean — a container
already gone, a removal already under way — and everything else still fails."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from jobs.plan import PullPolicy
from scheduler.docker_engine import DockerEngine
from scheduler.errors import (
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineUnavailableError,
)


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    """docker-py's error for an HTTP answer ``status`` (NotFound for 404, as docker-py does)."""
    response = requests.Response()
    response.status_code = status
    kind = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return kind(f"{status} answer", response=response, explanation=explanation)


class FailingApi:
    """An API client whose every call raises ``error`` and records its name."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*_args: object, **_kwargs: object) -> object:
            self.calls.append(name)
            raise self.error

        return call


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, EngineNotFoundError), (409, EngineConflictError), (500, EngineError)],
)
def test_an_api_answer_becomes_the_error_of_its_status(status: int, kind: type) -> None:
    """404 → EngineNotFoundError, 409 → EngineConflictError, any other → EngineError (and
    neither of the two): the message says what was asked and the engine's explanation."""
    engine = DockerEngine(FailingApi(api_error(status, "the engine's words")))
    with pytest.raises(EngineError) as raised:
        engine.kill("app", "SIGHUP")
    assert type(raised.value) is kind
    assert str(raised.value) == "sending SIGHUP to container 'app': the engine's words"


def test_a_silent_engine_is_unavailable_not_an_answer() -> None:
    engine = DockerEngine(FailingApi(requests.ConnectionError("refused")))
    with pytest.raises(EngineUnavailableError, match="did not answer: refused"):
        engine.kill("app", "SIGHUP")


def test_stopping_a_container_that_is_gone_is_done() -> None:
    """The container ended and was removed meanwhile: nothing to stop, no error."""
    api = FailingApi(api_error(404, "No such container: c1"))
    DockerEngine(api).stop("c1", 10)
    assert api.calls == ["stop"]


@pytest.mark.parametrize("status", [404, 409])
def test_removing_a_container_gone_or_being_removed_is_done(status: int) -> None:
    """404 (gone) and 409 (a removal already in progress: auto_remove) end the removal."""
    api = FailingApi(api_error(status, "gone or going"))
    DockerEngine(api).remove("c1")
    assert api.calls == ["remove_container"]


@pytest.mark.parametrize("status", [409, 500])
def test_any_other_failure_to_stop_is_an_error(status: int) -> None:
    with pytest.raises(EngineError, match="stopping the container: busy"):
        DockerEngine(FailingApi(api_error(status, "busy"))).stop("c1", 10)


def test_removal_refused_otherwise_is_an_error() -> None:
    with pytest.raises(EngineError, match="removing the container: driver failed"):
        DockerEngine(FailingApi(api_error(500, "driver failed"))).remove("c1")


def test_a_missing_image_with_pull_never_is_an_error_naming_it() -> None:
    api = FailingApi(api_error(404, "No such image: ops:1"))
    with pytest.raises(EngineError) as raised:
        DockerEngine(api).ensure_image("ops:1", PullPolicy.NEVER)
    assert str(raised.value) == "image 'ops:1' is not present on the engine and pull = 'never'"
    assert api.calls == ["inspect_image"]


def test_a_missing_image_is_pulled_and_a_failed_inspection_is_not() -> None:
    """Only "no such image" leads to a pull; an inspection that fails otherwise is the error."""
    missing = FailingApi(api_error(404, "No such image: ops:1"))
    with pytest.raises(EngineNotFoundError, match="could not be pulled"):
        DockerEngine(missing).ensure_image("ops:1", PullPolicy.MISSING)
    assert missing.calls == ["inspect_image", "pull"]
    broken = FailingApi(api_error(500, "storage driver error"))
    with pytest.raises(EngineError, match="storage driver error"):
        DockerEngine(broken).ensure_image("ops:1", PullPolicy.MISSING)
    assert broken.calls == ["inspect_image"]
