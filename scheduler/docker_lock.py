"""The single-instance lock over docker-py: a container named after the daemon, running
``cat`` with its stdin attached to this process — the connection is the lock."""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from scheduler.docker_errors import translated
from scheduler.engine import LABEL_ROLE, LockHeldError
from scheduler.errors import EngineConflictError, EngineError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import docker

LOCK_SETTLE_S = 5.0
"""How long a lock container that is going away may take before it counts as held."""


class DockerLock:
    """The attached lock container; a thread notices when its stream closes."""

    def __init__(self, remove: Callable[[str], None], container_id: str, sock: Any) -> None:  # noqa: ANN401 - docker-py's socket
        self._remove = remove
        self._container_id = container_id
        self._sock = sock
        self.lost = threading.Event()
        self._released = False
        threading.Thread(target=self._watch, name="lock", daemon=True).start()

    def _watch(self) -> None:
        try:
            while self._sock.read(4096):
                pass
        except OSError:
            pass
        if not self._released:
            self.lost.set()

    def release(self) -> None:
        self._released = True
        with suppress(OSError):
            self._sock.close()
        with suppress(EngineError):  # auto-remove does it when the stream closes anyway
            self._remove(self._container_id)


def take_lock(
    api: docker.APIClient,
    name: str,
    image: str,
    labels: Mapping[str, str],
    remove: Callable[[str], None],
) -> DockerLock:
    """Create, attach and start the lock container ``name`` of ``image`` (present already).
    When the process dies, even by SIGKILL, the connection closes, ``cat`` ends and the
    engine removes the container (auto-remove), freeing the name. Container names are unique
    per engine, so two daemons cannot both hold it; ``remove`` removes a container."""
    deadline = time.monotonic() + LOCK_SETTLE_S
    while True:
        try:
            with translated(f"taking the lock {name!r}"):
                created = api.create_container(
                    image,
                    ["cat"],
                    name=name,
                    stdin_open=True,
                    stop_signal="SIGKILL",  # cat as PID 1 ignores SIGTERM
                    # the image's HEALTHCHECK asks a daemon, and cat is none: without this the
                    # lock would turn "unhealthy" in `docker ps` and to monitors
                    healthcheck={"Test": ["NONE"]},
                    labels={**labels, LABEL_ROLE: "lock"},
                    host_config=api.create_host_config(auto_remove=True, network_mode="none"),
                )
            break
        except EngineConflictError:  # the name is taken: by a live lock, or a dead one
            if _is_live(api, name, remove) and time.monotonic() > deadline:
                raise LockHeldError(
                    f"another daemon holds the lock: container {name!r} is running "
                    "(a daemon with the same [daemon] name on this engine)"
                ) from None
            time.sleep(0.5)
    container_id = str(created["Id"])
    with translated(f"taking the lock {name!r}"):
        sock = api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        api.start(container_id)
    return DockerLock(remove, container_id, sock)


def _is_live(api: docker.APIClient, name: str, remove: Callable[[str], None]) -> bool:
    """A running lock container is live; a stopped or dying one is removed and is not."""
    try:
        with translated("inspecting the container"):
            state = api.inspect_container(name)["State"]
    except EngineError:
        return False  # gone meanwhile
    if state.get("Running") and not state.get("Restarting"):
        return True
    remove(name)
    return False
