"""Real-engine fixtures: the engine (fail, never skip, when absent), daemons as subprocesses,
and a leak check that removes and reports anything the tests left behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = os.environ.get("CRONTAINER_BUSYBOX_IMAGE", "busybox:latest")
PROJECT_IMAGE = os.environ.get("CRONTAINER_IMAGE", "crontainer:latest")
TEST_LABEL = "crontainer-test"
"""Every container, volume and network the tests make (directly or through a daemon) has it."""
TEST_SESSION = f"session-{os.getpid()}"
"""The label's value: this test session's. Sessions that run at the same time on one engine
(two worktrees, say) leave each other's objects alone; a dead session's are debris."""
TEST_LABELS: dict[str, str] = {TEST_LABEL: TEST_SESSION}
TEST_HELPER = "crontainer-test.helper"
"""On the containers a test runs itself (``output_of``, ``Helpers``): the Inspector does not
judge them (a daemon never sets it)."""
HELPER_LABELS: dict[str, str] = {**TEST_LABELS, TEST_HELPER: "1"}

Event = dict[str, Any]


def cli_environ() -> dict[str, str]:
    """This process's environment without CRONTAINER_* variables (the tests' own, like
    CRONTAINER_IMAGE, which crontainer refuses as unknown settings): for its processes."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("CRONTAINER_")}


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """The real engine. Its absence fails the tests: scripts/test.sh starts one."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:
        pytest.fail(
            f"no Docker engine answers ({e}); run scripts/engine.sh or scripts/test.sh",
            pytrace=False,
        )
    for image in (BUSYBOX, PROJECT_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {image} is missing; run scripts/engine.sh", pytrace=False)
    yield client
    client.close()


def _leftovers(client: docker.DockerClient) -> list[str]:
    label = {"label": f"{TEST_LABEL}={TEST_SESSION}"}
    listed = client.containers.list(all=True, filters=label, ignore_removed=True)
    found = [f"container {c.name}" for c in listed]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    return found


def _debris(value: str | None) -> bool:
    """Whether a label value belongs to no live test session (this one is live)."""
    pid = (value or "").removeprefix("session-")
    if not pid.isdigit() or pid == (value or ""):
        return True  # not a session's value: an older version's, always debris
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_labelled(client: docker.DockerClient, *, mine: bool) -> None:
    """Remove the containers, volumes and networks with the test label: this session's
    (``mine``) or those of sessions no longer running (debris of an interrupted one). What
    goes away meanwhile is passed over: another live session's containers come and go (a
    daemon's runs), and a session starting at the same time removes the same debris."""
    label = {"label": f"{TEST_LABEL}={TEST_SESSION}" if mine else TEST_LABEL}

    def wanted(labels: dict[str, str] | None) -> bool:
        return mine or _debris((labels or {}).get(TEST_LABEL))

    for container in client.containers.list(all=True, filters=label, ignore_removed=True):
        if wanted(container.labels):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=label):
        if wanted(volume.attrs.get("Labels")):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
    for made in client.networks.list(filters=label):
        if wanted(made.attrs.get("Labels")):
            with contextlib.suppress(docker.errors.NotFound):
                made.remove()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(engine: docker.DockerClient) -> Iterator[None]:
    """After the suite no test container, volume or network remains (checked, then removed)."""
    remove_labelled(engine, mine=False)  # debris of an earlier, interrupted session
    for image in engine.images.list(filters={"label": TEST_LABEL}):
        if _debris(image.labels.get(TEST_LABEL)):  # a dead session's server images
            engine.images.remove(image.id, force=True)
    yield
    left = _leftovers(engine)
    remove_labelled(engine, mine=True)
    if left:
        pytest.fail(f"the tests left behind: {', '.join(left)}", pytrace=False)


def toml_value(value: object) -> str:
    """A Python value as TOML (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"no TOML for {value!r}")


def run_job(name: str, command: object = None, schedule: str = "@every 1s", **keys: object) -> str:
    """A [jobs.<name>] table of kind run (busybox unless ``image`` is given)."""
    table: dict[str, object] = {"kind": "run", "schedule": schedule, "image": BUSYBOX}
    if command is not None:
        table["command"] = command
    table.update(keys)
    return f"[jobs.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()) + "\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


class EventStream:
    """Collects JSON log lines from a stream in a thread; tests wait on them with deadlines."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.events: list[Event] = []
        self.closed = False
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(lines,), daemon=True)
        self._thread.start()

    def _pump(self, lines: Iterator[str]) -> None:
        for line in lines:
            with self._cond:
                self.raw.append(line)
                with contextlib.suppress(json.JSONDecodeError):
                    self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 30, count: int = 1
    ) -> list[Event]:
        """Block until ``count`` events match; fail the test with the log if not in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if predicate(e)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    why = "the stream ended" if self.closed else f"timed out after {timeout}s"
                    tail = "\n".join(self.raw[-40:])
                    pytest.fail(f"{why} waiting for {count} event(s); log tail:\n{tail}")
                self._cond.wait(remaining)

    def matching(self, predicate: Callable[[Event], bool]) -> list[Event]:
        with self._cond:
            return [e for e in self.events if predicate(e)]


def event(name: str, **keys: object) -> Callable[[Event], bool]:
    """Predicate: event ``name`` with these key values."""
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in keys.items())


class Daemon:
    """`crontainer run` as a subprocess, with its config written to a temp dir."""

    def __init__(
        self,
        tmp_path: Path,
        jobs: str,
        daemon: str = "",
        env: dict[str, str] | None = None,
        name: str | None = None,
        prefix: list[str] | None = None,
        top: str = "",
    ) -> None:
        self.name = name or unique("t")
        self.heartbeat = tmp_path / f"{self.name}.beat"
        self.state_dir = tmp_path / f"{self.name}-state"
        self.config = tmp_path / f"{self.name}.toml"
        own_state = "" if "state_dir" in daemon else f'state_dir = "{self.state_dir}"\n'
        if "http" not in daemon:  # daemons of concurrent tests must not share a port
            own_state += 'http = "127.0.0.1:0"\n'
        self.config.write_text(  # ``top``: keys above every table (include)
            f'{top}[daemon]\nname = "{self.name}"\nlog_format = "json"\n'
            f'heartbeat_file = "{self.heartbeat}"\n{own_state}{daemon}\n'
            f'[defaults]\nlabels = {{ "{TEST_LABEL}" = "{TEST_SESSION}" }}\n{jobs}'
        )
        environ = cli_environ()
        environ.update(env or {})
        self.proc = subprocess.Popen(
            [
                *(prefix or []),
                sys.executable,
                "-m",
                "scheduler",
                "run",
                "--config",
                str(self.config),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environ,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.log = EventStream(iter(self.proc.stdout))

    def signal(self, signo: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signo)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the daemon did not exit within {timeout}s")

    def history(self, job: str | None = None) -> list[Event]:
        """The recorded runs, oldest first, through `crontainer history --json`."""
        args = [sys.executable, "-m", "scheduler", "history", "--json", "--limit", "100000"]
        args += ["--state-dir", str(self.state_dir)] + ([job] if job else [])
        done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
        rows: list[Event] = json.loads(done.stdout)
        return rows[::-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class PrivateEngine:
    """A dockerd of the test's own (data-root, exec-root, pidfile, socket and network
    namespace), for tests that stop or restart an engine: never the engine other tests or a
    user rely on. The namespace matters: a dockerd without a bridge deletes any interface
    named docker0 it sees, which in the host's namespace is the shared engine's."""

    def __init__(
        self,
        source: docker.DockerClient,
        extra_args: tuple[str, ...] = (),
        *,
        beside: PrivateEngine | None = None,
        hostname: str | None = None,
    ) -> None:
        # A short path: unix socket paths are limited to about 100 characters.
        self.root = Path(tempfile.mkdtemp(prefix="crt-", dir="/tmp"))
        self.extra_args = extra_args
        self.beside = beside  # run in that engine's network namespace, not a new one
        self.hostname = hostname  # a host name of its own (a UTS namespace): a Swarm node's name
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()
        image = source.images.get(BUSYBOX)
        self.client = docker.DockerClient(base_url=self.host, timeout=60)
        self.client.images.load(b"".join(image.save(named=True)))

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        # A network namespace of its own (mounts stay shared: cgroups), its loopback up for a
        # TCP listener on 127.0.0.1 (a new namespace starts with lo down).
        lo_up = ["sh", "-c", 'ip link set lo up && exec "$@"', "sh"] if self.extra_args else []
        netns = (
            ["unshare", "--net", *lo_up] if self.beside is None else self.beside.in_its_network()
        )
        named = ["unshare", "--uts", "sh", "-c", f'hostname {self.hostname} && exec "$@"', "sh"]
        self.proc = subprocess.Popen(
            [
                *netns,
                *(named if self.hostname else []),
                "dockerd",
                f"--host={self.host}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                docker.DockerClient(base_url=self.host, timeout=5).ping()
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    pytest.fail(
                        f"the private dockerd did not start; see {self.root / 'dockerd.log'}"
                    )
                time.sleep(0.2)
            else:
                return

    def in_its_network(self) -> list[str]:
        """A command prefix that runs a program in this dockerd's network namespace (where
        its TCP listener on 127.0.0.1 is)."""
        assert self.proc is not None
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        # A stopped dockerd leaves the host network's sandbox (exec/netns/default, a
        # namespace file bind-mounted there once a container used network host) mounted:
        # unmounted first, or the directory would stay behind.
        inside = f"{self.root}/"
        with Path("/proc/self/mounts").open() as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(inside)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_engine(engine: docker.DockerClient) -> Iterator[PrivateEngine]:
    """A private dockerd with busybox loaded; stopped and removed after the test."""
    private = PrivateEngine(engine)
    yield private
    private.close()


class PrivateSwarm(PrivateEngine):
    """A private dockerd turned into a single-node Swarm manager (on 127.0.0.1 in its own
    network namespace), for tests of Swarm jobs and of ``ha = "swarm"``. The shared engine is
    never put in swarm mode; ``close`` leaves the swarm before the dockerd stops.

    With ``workers``, that many more dockerds (busybox loaded) join it as workers: each in
    the manager's network namespace with a host name of its own (``crt-worker-N``), the
    nodes on addresses 10.99.0.1, .2, … given to that namespace's loopback (up)."""

    def __init__(self, source: docker.DockerClient, workers: int = 0) -> None:
        super().__init__(source)
        self.workers: list[PrivateEngine] = []
        if not workers:
            self.client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
            return
        addresses = [f"10.99.0.{n}" for n in range(1, workers + 2)]
        given = " && ".join(f"ip addr add {a}/32 dev lo" for a in addresses)
        subprocess.run(
            [*self.in_its_network(), "sh", "-c", f"ip link set lo up && {given}"], check=True
        )
        self.client.swarm.init(advertise_addr=addresses[0], listen_addr=f"{addresses[0]}:2377")
        token = self.client.swarm.attrs["JoinTokens"]["Worker"]
        for n, address in enumerate(addresses[1:], start=1):
            worker = PrivateEngine(source, beside=self, hostname=f"crt-worker-{n}")
            self.workers.append(worker)
            worker.client.swarm.join(
                remote_addrs=[f"{addresses[0]}:2377"],
                join_token=token,
                advertise_addr=address,
                listen_addr=f"{address}:2377",
            )
        deadline = time.monotonic() + 60
        while [n.attrs["Status"]["State"] for n in self.client.nodes.list()] != ["ready"] * (
            workers + 1
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"the swarm's {workers + 1} nodes were not ready within 60 s")
            time.sleep(0.2)

    def load(self, source: docker.DockerClient, image: str) -> None:
        """Copy ``image`` from the shared engine (e.g. the project's image, for a stack)."""
        self.client.images.load(b"".join(source.images.get(image).save(named=True)))

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(docker.errors.APIError):
                worker.client.swarm.leave(force=True)
            worker.close()
        with contextlib.suppress(docker.errors.APIError):
            self.client.swarm.leave(force=True)
        super().close()


@pytest.fixture
def two_node_swarm(engine: docker.DockerClient) -> Iterator[PrivateSwarm]:
    """A private Swarm of a manager and a worker (two dockerds, busybox on both); left and
    removed after the test."""
    swarm = PrivateSwarm(engine, workers=1)
    yield swarm
    swarm.close()


@pytest.fixture
def private_swarm(engine: docker.DockerClient) -> Iterator[PrivateSwarm]:
    """A private single-node Swarm (its own dockerd, busybox loaded); left and removed after
    the test."""
    swarm = PrivateSwarm(engine)
    yield swarm
    swarm.close()


@pytest.fixture
def make_volume(engine: docker.DockerClient) -> Iterator[Callable[[str], str]]:
    """Create labelled named volumes; removed after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = unique(prefix)
        engine.volumes.create(name, labels=TEST_LABELS)
        made.append(name)
        return name

    yield make
    for name in made:
        engine.volumes.get(name).remove(force=True)


def output_of(engine: docker.DockerClient, image: str, command: list[str], **kwargs: Any) -> str:
    """The stdout of a helper container run to its end (labelled, removed). Read after the
    container ended: docker-py's ``containers.run`` follows the log while the container runs,
    and the last part of a quick, large output can be missing from it."""
    container = engine.containers.run(image, command, detach=True, labels=HELPER_LABELS, **kwargs)
    try:
        status = container.wait(timeout=120)
        out: bytes = container.logs(stdout=True, stderr=False)
        assert status["StatusCode"] == 0, container.logs(stdout=False, stderr=True)
        return out.decode()
    finally:
        container.remove(force=True, v=True)


class Helpers:
    """Runs helper containers, detached and labelled; ``close`` removes them with their
    volumes (the ``make`` fixture's, and a module's own where a test's scenario outlives it)."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self._engine = engine
        self._made: list[Any] = []

    def __call__(self, image: str, command: list[str], **kwargs: Any) -> Any:
        container = self._engine.containers.run(
            image, command, detach=True, labels=HELPER_LABELS, **kwargs
        )
        self._made.append(container)
        return container

    def close(self) -> None:
        for container in reversed(self._made):
            container.remove(force=True, v=True)


class Daemons:
    """Starts daemons (their files under ``directory``); ``close`` kills any still running."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._started: list[Daemon] = []

    def __call__(
        self,
        jobs: str,
        daemon: str = "",
        env: dict[str, str] | None = None,
        name: str | None = None,
        prefix: list[str] | None = None,
        top: str = "",
    ) -> Daemon:
        proc = Daemon(self._directory, jobs, daemon, env, name, prefix, top)
        self._started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._started:
            proc.kill()


@pytest.fixture
def make(engine: docker.DockerClient) -> Iterator[Callable[..., Any]]:
    """Run helper containers, detached (labelled, removed with their volumes after the test)."""
    helpers = Helpers(engine)
    yield helpers
    helpers.close()


@pytest.fixture
def start_daemon(tmp_path: Path, engine: docker.DockerClient) -> Iterator[Callable[..., Daemon]]:
    """Start daemons; any still running at the end of the test is killed."""
    daemons = Daemons(tmp_path)
    yield daemons
    daemons.close()


# The servers' fixtures, for every test here (last: servers.py imports this module's names).
from .servers import dav_server, network, s3_image, s3_server, sftp_server, sshd_image  # noqa: E402, F401
