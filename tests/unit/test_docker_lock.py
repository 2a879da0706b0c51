"""The lock container over a scripted docker-py client: a dead lock left by an earlier
daemon is removed and the lock taken; a live one held past the settling time is refused."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from scheduler import docker_lock
from scheduler.docker_lock import take_lock
from scheduler.engine import LockHeldError

from .test_engine_errors import api_error


class Stream:
    """The attached stdin's socket: open until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def read(self, _size: int) -> bytes:
        self.closed.wait(10)
        return b""

    def close(self) -> None:
        self.closed.set()


class LockApi:
    """Creating ``d.lock`` conflicts ``conflicts`` times; the existing one is ``running``."""

    def __init__(self, conflicts: int, *, running: bool) -> None:
        self.conflicts, self.running = conflicts, running
        self.calls: list[str] = []
        self.stream = Stream()

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, image: str, command: list[str], **kwargs: Any) -> dict[str, str]:
        self.calls.append("create_container")
        if self.conflicts:
            self.conflicts -= 1
            raise api_error(409, "name in use")
        assert (image, command) == ("ops:1", ["cat"])
        assert kwargs["labels"] == {"crontainer.daemon": "d", "crontainer.role": "lock"}
        assert kwargs["host_config"] == {"auto_remove": True, "network_mode": "none"}
        assert kwargs["healthcheck"] == {"Test": ["NONE"]}  # not the image's daemon check
        return {"Id": "c1"}

    def inspect_container(self, name: str) -> dict[str, Any]:
        self.calls.append(f"inspect {name}")
        return {"State": {"Running": self.running, "Restarting": False}}

    def attach_socket(self, container_id: str, params: dict[str, int]) -> Stream:
        self.calls.append(f"attach {container_id}")
        assert params == {"stdin": 1, "stream": 1}
        return self.stream

    def start(self, container_id: str) -> None:
        self.calls.append(f"start {container_id}")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # the retry's pause


def test_a_dead_lock_is_removed_and_the_lock_taken() -> None:
    api, removed = LockApi(1, running=False), list[str]()
    lock = take_lock(api, "d.lock", "ops:1", {"crontainer.daemon": "d"}, removed.append)
    assert removed == ["d.lock"]
    assert api.calls == [
        "create_container",
        "inspect d.lock",
        "create_container",
        "attach c1",
        "start c1",
    ]
    assert not lock.lost.is_set()
    lock.release()
    assert api.stream.closed.is_set()
    assert removed == ["d.lock", "c1"]
    assert not lock.lost.wait(0.1)  # a release is not a loss


def test_a_lock_container_that_ends_is_a_lost_lock() -> None:
    api = LockApi(0, running=True)
    lock = take_lock(api, "d.lock", "ops:1", {"crontainer.daemon": "d"}, lambda _c: None)
    api.stream.close()  # the engine ended the container
    assert lock.lost.wait(5)


def test_a_live_lock_past_the_settling_time_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_lock, "LOCK_SETTLE_S", -1.0)
    api, removed = LockApi(1, running=True), list[str]()
    with pytest.raises(LockHeldError, match=r"another daemon holds the lock: container 'd\.lock'"):
        take_lock(api, "d.lock", "ops:1", {"crontainer.daemon": "d"}, removed.append)
    assert removed == []
    assert api.calls == ["create_container", "inspect d.lock"]
