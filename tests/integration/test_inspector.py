"""The tests' Inspector on the real engine: for a daemon it judges the containers carrying
its name and the containers of the project's image carrying no daemon's name (a container
the daemon made without its labels would escape the orphan clean-up: what the Inspector
is there to catch); another daemon's, the tests' own helpers' and other images' unlabelled
containers are not judged — whether inspected, or removed before they could be."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import pytest

from scheduler.engine import LABEL_DAEMON

from .conftest import BUSYBOX, HELPER_LABELS, PROJECT_IMAGE, TEST_LABELS, unique
from .helpers import Inspector

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Named:
    name: str


def wait_until(check: Callable[[], bool], timeout: float = 60) -> None:
    """Wait (bounded) for ``check`` to hold."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


class LateInspector(Inspector):
    """Inspects each container only after ``removed`` is set: every one is seen gone."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self.removed = threading.Event()
        super().__init__(engine)

    def _inspect(self, item: dict[str, Any]) -> dict[str, Any]:
        self.removed.wait(60)
        return super()._inspect(item)


@pytest.fixture
def created(engine: docker.DockerClient) -> Iterator[Callable[..., str]]:
    """Create (not start) a container of ``image`` with ``labels``; removed after the test."""
    made: list[str] = []

    def create(image: str, labels: dict[str, str]) -> str:
        container = engine.api.create_container(
            image, ["true"], name=unique("t-inspect"), labels=labels
        )
        made.append(container["Id"])
        return str(container["Id"])

    yield create
    for container_id in made:
        with contextlib.suppress(docker.errors.NotFound):
            engine.api.remove_container(container_id, force=True, v=True)


def scene(created: Callable[..., str]) -> dict[str, str]:
    """One container of each sort, by sort."""
    mine = Named(unique("t-mine"))
    return {
        "own": created(PROJECT_IMAGE, {**TEST_LABELS, LABEL_DAEMON: mine.name}),
        "own_other_image": created(BUSYBOX, {**TEST_LABELS, LABEL_DAEMON: mine.name}),
        "foreign": created(PROJECT_IMAGE, {**TEST_LABELS, LABEL_DAEMON: unique("t-other")}),
        "unlabelled": created(PROJECT_IMAGE, {}),
        "helper": created(PROJECT_IMAGE, HELPER_LABELS),
        "unlabelled_other_image": created(BUSYBOX, {}),
        "name": mine.name,
    }


def test_the_inspector_judges_its_daemons_and_unlabelled_project_containers(
    engine: docker.DockerClient, created: Callable[..., str]
) -> None:
    """Inspected: the daemon's own containers and the unlabelled one of the project's image
    are judged (``ops``: those of the project's image); another daemon's, a test helper's
    and an unlabelled busybox container are not."""
    watching = Inspector(engine)
    try:
        ids = scene(created)
        wait_until(lambda: {c["Id"] for c in watching.seen} >= set(ids.values()) - {ids["name"]})
    finally:
        watching.close()
    daemon = Named(ids["name"])
    judged = {c["Id"] for c in watching.judged(daemon)}
    assert judged == {ids["own"], ids["own_other_image"], ids["unlabelled"]}
    assert {c["Id"] for c in watching.ops(daemon)} == {ids["own"], ids["unlabelled"]}
    assert watching.gone(daemon) == []


def test_the_inspector_judges_the_same_containers_removed_before_inspection(
    engine: docker.DockerClient, created: Callable[..., str]
) -> None:
    """Removed before they could be inspected (judged by their create events): the
    daemon's own and the unlabelled one of the project's image are reported gone; another
    daemon's, a helper's and an unlabelled busybox container are not."""
    watching = LateInspector(engine)
    try:
        ids = scene(created)
        for key, container_id in ids.items():
            if key != "name":
                engine.api.remove_container(container_id, force=True, v=True)
        watching.removed.set()
        wait_until(lambda: {c["Id"] for c in watching.seen} >= set(ids.values()) - {ids["name"]})
    finally:
        watching.close()
    daemon = Named(ids["name"])
    assert all(c.get("gone") for c in watching.seen if c["Id"] in ids.values())
    assert set(watching.gone(daemon)) == {ids["own"], ids["own_other_image"], ids["unlabelled"]}
    assert watching.ops(daemon) == []
