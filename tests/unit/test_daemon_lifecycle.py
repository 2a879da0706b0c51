"""Start-up failing at one point releases everything taken before it: the HTTP port is
taken, settling what an earlier daemon left raises, the admin socket cannot be made.

Each test runs ``crontainer run`` in-process (the engine scripted) until it returns, then
checks what the README documents for that failure (the exit code and the event) and that
nothing the daemon took is still held: its threads have ended, the lock is released, the
state database and the engine are closed, the HTTP port is free again."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli import main
from scheduler.docker_engine import DockerEngine
from scheduler.errors import EngineUnavailableError

from .fakes import FakeClock, FakeEngine

HEAD = (
    '[daemon]\nname = "d"\nlog_format = "json"\nconfig_poll = "0"\nshutdown_grace = "1s"\n'
    'state_dir = "{state}"\nheartbeat_file = "{state}/beat"\nhttp = "{http}"\n{extra}'
)


@dataclass
class Ended:
    """A daemon that has returned: its exit code, its events, the threads it left."""

    code: int
    events: list[dict[str, Any]]
    state: Path
    before: set[threading.Thread]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def left_threads(self) -> list[str]:
        return sorted(t.name for t in set(threading.enumerate()) - self.before if t.is_alive())


def run_daemon(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: FakeEngine,
    http: str,
    jobs: str = "",
    extra: str = "",
) -> Ended:
    """``crontainer run`` with ``engine`` as the Docker engine, until it returns."""
    state = tmp_path / "state"
    path = tmp_path / "c.toml"
    path.write_text(HEAD.format(state=state, http=http, extra=extra) + jobs)
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(DockerEngine, "connect", classmethod(lambda cls, timeout: engine))
    before = set(threading.enumerate())
    code = main(["run", "--config", str(path)])
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return Ended(code, events, state, before)


def open_under(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = fd.readlink()
            if target.is_relative_to(directory):
                found.append(str(target))
    return found


def assert_released(ended: Ended, engine: FakeEngine) -> None:
    """Every thread the daemon started has ended (waited for, bounded); the lock is
    released; no file of the state directory is open; the engine was closed last."""
    deadline = time.monotonic() + 10
    while ended.left_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended.left_threads() == []
    assert len(engine.locks) == 1
    assert engine.locks[0].released
    assert open_under(ended.state) == []
    assert engine.names()[-1] == "close"


def assert_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def job(name: str, schedule: str, **keys: object) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[jobs.{name}]\nkind = "run"\nimage = "i"\nschedule = "{schedule}"\n{extra}'


def test_a_taken_http_port_releases_the_lock_the_database_and_the_notifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The HTTP listener cannot bind (a socket of the test holds its port): daemon.failed
    (reason http) and exit 1, before anything is settled or scheduled; the notifier's thread
    has ended, the lock is released, the database and the engine are closed."""
    engine = FakeEngine(FakeClock())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ended = run_daemon(tmp_path, monkeypatch, capsys, engine, f"127.0.0.1:{port}")
    assert ended.code == 1
    (failed,) = ended.named("daemon.failed")
    assert failed["reason"] == "http"
    assert failed["http"] == f"127.0.0.1:{port}"
    assert "Address already in use" in failed["error"]
    assert "list_containers" not in engine.names()  # settling never began
    assert not ended.named("daemon.started")
    assert_released(ended, engine)


def test_settling_that_raises_releases_the_listener_and_everything_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Settling what an earlier daemon left raises (the engine fails listing containers):
    daemon.crashed and exit 1; the HTTP listener is closed (its port free, its thread
    ended), and so are the notifier, the lock, the database and the engine."""
    engine = FakeEngine(FakeClock())
    engine.fail["list_containers"] = EngineUnavailableError("the engine went away")
    ended = run_daemon(tmp_path, monkeypatch, capsys, engine, "127.0.0.1:0")
    assert ended.code == 1
    (crashed,) = ended.named("daemon.crashed")
    assert "the engine went away" in crashed["exception"]
    assert not ended.named("daemon.started")
    (listening,) = ended.named("http.listening")
    assert_released(ended, engine)
    assert_port_free(listening["port"])


def test_an_admin_socket_that_cannot_be_made_stops_the_loop_and_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin socket's path is a directory: daemon.crashed and exit 1. The scheduling
    loop had started and a run_on_start run was in flight: the loop has ended, the run was
    stopped as at SIGTERM (cancelled, daemon_stopping, after shutdown_grace), and the
    listener, the notifier, the lock, the database and the engine are released."""
    (tmp_path / "state" / "admin.sock").mkdir(parents=True)
    engine = FakeEngine(FakeClock(), exit_status=None, blocking=True)
    jobs = job("hangs", "@yearly", run_on_start="true", stop_grace='"1s"')
    ended = run_daemon(tmp_path, monkeypatch, capsys, engine, "127.0.0.1:0", jobs)
    assert ended.code == 1
    (crashed,) = ended.named("daemon.crashed")
    assert "IsADirectoryError" in crashed["exception"]
    assert f"{tmp_path}/state/admin.sock" in crashed["exception"]
    assert not ended.named("daemon.started")
    assert [e["reason"] for e in ended.named("run.cancelled")] == ["daemon_stopping"]
    assert "stop" in engine.names()
    (listening,) = ended.named("http.listening")
    assert_released(ended, engine)
    assert_port_free(listening["port"])
    assert (tmp_path / "state" / "admin.sock").is_dir()  # not ours to remove


def test_an_engine_that_never_answers_leaves_no_client_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """engine_wait passes without an answer: daemon.failed (engine_unavailable) and exit 1;
    each client that was connected but whose ping failed was closed before the next try."""
    engine = FakeEngine(FakeClock())
    engine.fail["ping"] = EngineUnavailableError("no answer")
    ended = run_daemon(tmp_path, monkeypatch, capsys, engine, "", extra='engine_wait = "1s"\n')
    assert ended.code == 1
    (failed,) = ended.named("daemon.failed")
    assert failed["reason"] == "engine_unavailable"
    assert engine.names().count("ping") >= 1
    assert engine.names() == ["ping", "close"] * engine.names().count("ping")
