"""The ``Engine`` over docker-py's API client (``DockerEngine``) and how it connects.

Every call has a deadline: the client's ``engine_timeout`` for plain calls, an explicit
timeout for waits. Foreign errors leave as the daemon's own (``scheduler.docker_errors``).
A spec's create arguments are ``docker_specs``'s, the lock is ``docker_lock``'s; these
``docker_*`` modules are the only ones that import ``docker``.
"""

from __future__ import annotations

import math
import re
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from docker.transport.unixconn import UnixHTTPAdapter

from jobs.plan import ContainerSpec, PullPolicy
from scheduler import docker_configs
from scheduler.docker_errors import explain, translated
from scheduler.docker_lock import take_lock
from scheduler.docker_services import DockerServiceLogs, service_body, service_info, task_info
from scheduler.docker_specs import container_args, host_config_args
from scheduler.docker_streams import DockerOutput, DockerStdin, frames, log_lines
from scheduler.engine import (
    ContainerEvent,
    ContainerInfo,
    ExitStatus,
    Lock,
    OutputStream,
    ServiceInfo,
    StdinStream,
    TaskInfo,
)
from scheduler.errors import (
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineUnavailableError,
    PullDeniedError,
)
from scheduler.registries import registry_host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from jobs.plan import ServiceSpec
    from jobs.selectors import Selector
    from scheduler.engine import ConfigInfo, PullAuth

PING_TIMEOUT_S = 5.0
"""The health check's deadline: a hung engine must not stall the daemon's main loop."""

_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")


def tls_problem(environ: Mapping[str, str]) -> str | None:
    """Why the TLS settings of the environment cannot work (a missing or unreadable
    certificate), or None. Read as docker-py reads them: ``DOCKER_CERT_PATH`` set, or
    ``DOCKER_TLS_VERIFY`` set to anything but ``""``, turns TLS on; the files are
    ``ca.pem`` (when verifying), ``cert.pem`` and ``key.pem``. The daemon refuses to
    start rather than talk to the engine without the TLS it was told to use."""
    cert_path = environ.get("DOCKER_CERT_PATH") or None
    verify = environ.get("DOCKER_TLS_VERIFY") not in (None, "")
    if not cert_path and not verify:
        return None
    where = Path(cert_path) if cert_path else Path.home() / ".docker"
    names = ["ca.pem", "cert.pem", "key.pem"] if verify else ["cert.pem", "key.pem"]
    settings = ", ".join(
        f"{k}={environ[k]}" for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH") if k in environ
    )
    for name in names:
        path = where / name
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as e:
            why = (
                "is missing"
                if isinstance(e, FileNotFoundError)
                else f"cannot be read ({e.strerror})"
            )
            return f"TLS is configured ({settings}) but {path} {why}: not connecting without it"
    return None


SOCKET_POOL_SIZE = 32
"""Connections to the engine's Unix socket kept open for reuse (runs at once, the ticker,
the watch): beyond it a connection is closed after its request instead of kept."""


class _OneSocketPool(UnixHTTPAdapter):  # type: ignore[misc]  # docker-py has no type hints
    """docker-py's Unix-socket adapter keys its connection pools by the whole request URL,
    and keeps the last 25: every container id in a path gets a pool (and a new connection)
    of its own, and with many runs at once a pool another thread still reads from is
    evicted and closed under it (urllib3 then fails to give its connection back,
    ``'NoneType' object has no attribute 'qsize'``). There is one socket: one pool."""

    def get_connection(self, url: str, proxies: object = None) -> object:  # noqa: ARG002
        return super().get_connection("http+docker://localhost", proxies)


class _ApiClient(docker.APIClient):  # type: ignore[misc]  # docker-py has no type hints
    """docker-py's API client, deaf to the environment's CA bundles: requests lets
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override the session's CA at every request
    (many images set them), which would replace DOCKER_CERT_PATH's ``ca.pem`` and fail
    every TLS connection to the engine. Proxies and .netrc are not used for the engine
    either. Over a Unix socket, one connection pool (``_OneSocketPool``)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        adapter: Any = getattr(self, "_custom_adapter", None)
        if type(adapter) is UnixHTTPAdapter:
            self._custom_adapter = _OneSocketPool(
                f"http+unix://{adapter.socket_path}",
                adapter.timeout,
                max_pool_size=SOCKET_POOL_SIZE,
            )
            self.mount("http+docker://", self._custom_adapter)
            adapter.close()

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, _value: bool) -> None:
        return


class DockerEngine:
    """``Engine`` over docker-py's API client (DOCKER_HOST, TLS variables and socket as usual)."""

    def __init__(self, api: docker.APIClient) -> None:
        self._api = api

    @classmethod
    def connect(cls, timeout: float) -> DockerEngine:
        """A client from the environment; raise EngineUnavailableError if the engine is silent."""
        with translated("connecting to the Docker engine"):
            api = _ApiClient(timeout=max(1, math.ceil(timeout)), **docker.utils.kwargs_from_env())
        return cls(api)

    def ping(self) -> None:
        """See Engine (with its own short deadline)."""
        with translated("ping"):
            response = self._api.get(f"{self._api.base_url}/_ping", timeout=PING_TIMEOUT_S)
            response.raise_for_status()

    def ensure_image(
        self, image: str, policy: PullPolicy, auth: Callable[[], PullAuth] | None = None
    ) -> None:
        """See Engine."""
        if policy is not PullPolicy.ALWAYS:
            try:
                with translated(f"image {image!r}"):
                    self._api.inspect_image(image)
            except EngineNotFoundError:
                if policy is PullPolicy.NEVER:
                    raise EngineError(
                        f"image {image!r} is not present on the engine and pull = 'never'"
                    ) from None
            else:
                return
        self._pull(image, auth() if auth is not None else None)

    def _pull(self, image: str, auth: PullAuth | None) -> None:
        """Pull ``image`` presenting ``auth`` (always explicit: docker-py would otherwise use
        the config file it read when it started). An error in the pull's progress stream is
        the pull's error; a refusal by the registry is PullDeniedError naming it."""
        repository, tag = _split_image(image)
        what = f"image {image!r} could not be pulled"
        try:
            with translated(what):
                progress = self._api.pull(
                    repository, tag=tag, stream=True, decode=True, auth_config=_auth_config(auth)
                )
                error = _progress_error(progress)
            if error is not None:
                raise EngineError(f"{what}: {error}")  # noqa: TRY301 - classified below
        except EngineUnavailableError:
            raise
        except EngineError as e:
            message = _without(str(e), auth.secrets() if auth is not None else ())
            if not denied(message):
                if message == str(e):
                    raise
                raise type(e)(message) from None
            registry = auth.registry if auth is not None else registry_host(image)
            source = auth.source if auth is not None else "anonymous"
            raise PullDeniedError(
                f"registry {registry} denied the pull of image {image!r} (credentials: "
                f"{source}): {message.removeprefix(what + ': ')}",
                registry,
            ) from None

    def create(self, spec: ContainerSpec, *, name: str, labels: Mapping[str, str]) -> str:
        """See Engine (``scheduler.docker_specs`` translates ``spec``)."""
        arguments = container_args(spec, name=name, labels=labels)
        host_config = host_config_args(spec)
        with translated(f"creating container {name}"):
            created = self._api.create_container(
                **arguments, host_config=self._api.create_host_config(**host_config)
            )
        return str(created["Id"])

    def attach_stdin(self, container_id: str) -> StdinStream:
        """See Engine."""
        with translated("attaching to the container's stdin"):
            sock = self._api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        return DockerStdin(sock)

    def logs(
        self, container: str, stream: str, since_ns: int, until_ns: int
    ) -> Iterator[tuple[int, str, bytes]]:
        """See Engine. Docker's ``since``/``until`` take seconds: the request is widened to
        whole seconds and the lines are filtered here to the nanosecond."""
        with translated(f"reading the logs of {container!r}"):
            chunks = self._api.logs(
                container,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                stream=True,
                timestamps=True,
                follow=False,
                since=since_ns // 1_000_000_000 or None,
                until=until_ns // 1_000_000_000 + 1,
            )
        return log_lines(chunks, since_ns, until_ns, f"reading the logs of {container!r}")

    def host_name(self) -> str:
        """See Engine."""
        with translated("asking the engine for its host name"):
            return str(self._api.info().get("Name") or "unknown")

    def volume_path(self, name: str) -> str:
        """See Engine."""
        with translated(f"volume {name!r}"):
            return str(self._api.inspect_volume(name)["Mountpoint"])

    def output(self, container_id: str) -> OutputStream:
        """See Engine."""
        with translated("attaching to the container's output"):
            sock = self._api.attach_socket(
                container_id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
            )
        return DockerOutput(sock)

    def start(self, container_id: str) -> None:
        """See Engine."""
        with translated("starting the container"):
            self._api.start(container_id)

    def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        """See Engine."""
        try:
            result = self._api.wait(container_id, timeout=max(1, math.ceil(timeout)))
        except docker.errors.APIError as e:
            raise EngineError(f"waiting for the container: {explain(e)}") from e
        except (docker.errors.DockerException, OSError):
            # A read time-out and a lost engine look alike here: ask the engine.
            if self._state(container_id).get("Running"):
                return None
            with translated("waiting for the container"):
                result = self._api.wait(container_id, timeout=10)
        state = self._state(container_id)
        error = (result.get("Error") or {}).get("Message") or state.get("Error") or None
        return ExitStatus(
            exit_code=int(result.get("StatusCode", state.get("ExitCode", -1))),
            oom_killed=bool(state.get("OOMKilled")),
            error=error,
        )

    def _state(self, container_id: str) -> dict[str, Any]:
        with translated("inspecting the container"):
            state: dict[str, Any] = self._api.inspect_container(container_id)["State"]
        return state

    def stop(self, container_id: str, grace: float) -> None:
        """See Engine."""
        with suppress(EngineNotFoundError), translated("stopping the container"):
            self._api.stop(container_id, timeout=max(0, math.ceil(grace)))

    def remove(self, container_id: str) -> None:
        """See Engine."""
        # Gone already, or its removal is in progress (auto_remove, another remover).
        gone = (EngineNotFoundError, EngineConflictError)
        with suppress(*gone), translated("removing the container"):
            self._api.remove_container(container_id, v=True, force=True)

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """See Engine."""
        with translated("listing containers"):
            found = self._api.containers(
                all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]}
            )
        return [_info(item) for item in found]

    def own_image(self) -> str | None:
        """See Engine."""
        container_id = _own_container_id()
        if container_id is None:
            return None
        try:
            with translated("inspecting the daemon's own container"):
                image = self._api.inspect_container(container_id)["Image"]
        except EngineError:
            return None
        return str(image)

    def select(self, selector: Selector) -> list[ContainerInfo]:
        """See Engine: a name is inspected, and taken only if it is the container's exact
        name, its id, or at least 12 hex digits of its id (the engine also takes any unique
        id prefix: ``db`` would find a container whose id starts with db); labels are one
        filtered list (``GET /containers/json``)."""
        if selector.name is None:
            wanted = [key if value is None else f"{key}={value}" for key, value in selector.labels]
            with translated(f"listing containers with {selector.text}"):
                found = self._api.containers(all=True, filters={"label": wanted})
            return [_info(item) for item in found]
        try:
            with translated(f"container {selector.name!r}"):
                item = self._api.inspect_container(selector.name)
        except EngineNotFoundError:
            return []
        if not _is_named(item, selector.name):
            return []
        return [
            ContainerInfo(
                id=item["Id"],
                name=item["Name"].lstrip("/"),
                state=item["State"]["Status"],
                labels=item["Config"].get("Labels") or {},
            )
        ]

    def container_events(self, actions: tuple[str, ...], labels: Sequence[str]) -> DockerEvents:
        """See Engine: one long ``GET /events`` (no read deadline: it waits for events)."""
        wanted: dict[str, Any] = {"type": "container", "event": list(actions)}
        if labels:
            wanted["label"] = list(labels)
        with translated("following the engine's events"):
            stream = self._api.events(decode=True, filters=wanted)
        return DockerEvents(stream)

    def exec_create(
        self,
        container: str,
        command: list[str],
        *,
        user: str | None,
        workdir: str | None,
        env: Mapping[str, str],
    ) -> str:
        """See Engine."""
        with translated(f"exec in container {container!r}"):
            created = self._api.exec_create(
                container, command, user=user or "", workdir=workdir, environment=dict(env) or None
            )
        return str(created["Id"])

    def exec_output(self, exec_id: str) -> Iterator[tuple[str, bytes]]:
        """See Engine."""
        with translated("starting the exec"):
            sock = self._api.exec_start(exec_id, socket=True)
        return frames(sock)

    def exec_exit_code(self, exec_id: str) -> int | None:
        """See Engine."""
        with translated("inspecting the exec"):
            state = self._api.exec_inspect(exec_id)
        if state.get("Running"):
            return None
        code = state.get("ExitCode")
        return None if code is None else int(code)

    def is_running(self, container: str) -> bool:
        """See Engine."""
        with translated(f"container {container!r}"):
            state = self._api.inspect_container(container)["State"]
        return bool(state.get("Running"))

    def kill(self, container: str, signal: str) -> None:
        """See Engine."""
        with translated(f"sending {signal} to container {container!r}"):
            self._api.kill(container, signal=signal)

    def restart(self, container: str, grace: float) -> None:
        """See Engine."""
        with translated(f"restarting container {container!r}"):
            self._api.restart(container, timeout=max(0, math.ceil(grace)))

    # --- Swarm job services (kind "service"): scheduler.docker_services ---

    def swarm_manager(self) -> bool:
        """See Engine."""
        return docker_configs.manager_problem(self._api) is None

    def swarm_object_ids(self, kind: str, names: Sequence[str]) -> dict[str, str]:
        """See Engine."""
        if not names:
            return {}
        with translated(f"listing Swarm {kind}s"):
            listed = self._api.secrets() if kind == "secret" else self._api.configs()
        found = {str(item["Spec"]["Name"]): str(item["ID"]) for item in listed}
        return {name: found[name] for name in names if name in found}

    def service_create(
        self,
        spec: ServiceSpec,
        *,
        name: str,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        configs: Mapping[str, str],
        auth: PullAuth | None,
    ) -> str:
        """See Engine. ``auth`` goes to the nodes with the service (X-Registry-Auth)."""
        body = service_body(spec, name=name, labels=labels, secrets=secrets, configs=configs)
        headers = {}
        if config := _auth_config(auth):
            headers["X-Registry-Auth"] = docker.auth.encode_header(config)
        try:
            with translated(f"creating service {name}"):
                response = self._api._post_json(  # noqa: SLF001 - create_service reads its own auth
                    self._api._url("/services/create"),  # noqa: SLF001
                    data=body,
                    headers=headers,
                )
                created = self._api._result(response, json=True)  # noqa: SLF001
        except EngineError as e:
            secrets_ = auth.secrets() if auth is not None else ()
            raise type(e)(_without(str(e), secrets_)) from None
        return str(created["ID"])

    def service_tasks(self, service_id: str) -> list[TaskInfo]:
        """See Engine."""
        with translated("listing the service's tasks"):
            tasks = self._api.tasks(filters={"service": service_id})
        return [task_info(t) for t in tasks]

    def service_logs(self, service_id: str, *, follow: bool = True) -> DockerServiceLogs:
        """See Engine."""
        params = {"follow": int(follow), "stdout": 1, "stderr": 1, "details": 1, "timestamps": 0}
        with translated("following the service's logs"):
            response = self._api._get(  # noqa: SLF001 - docker-py's helper drops the stream's name
                self._api._url("/services/{0}/logs", service_id),  # noqa: SLF001
                params=params,
                stream=True,
            )
            self._api._raise_for_status(response)  # noqa: SLF001
            sock = self._api._get_raw_response_socket(response)  # noqa: SLF001
        _socket_timeout_off(sock)
        return DockerServiceLogs(response, sock)

    def service_remove(self, service_id: str) -> None:
        """See Engine."""
        with suppress(EngineNotFoundError), translated("removing the service"):
            self._api.remove_service(service_id)

    def list_services(self, labels: Mapping[str, str]) -> list[ServiceInfo]:
        """See Engine."""
        if not self.swarm_manager():
            return []
        with translated("listing services"):
            found = self._api.services(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        return [service_info(item) for item in found]

    def node_name(self, node_id: str) -> str:
        """See Engine."""
        try:
            with translated("inspecting a Swarm node"):
                node = self._api.inspect_node(node_id)
        except EngineError:
            return node_id
        return str((node.get("Description") or {}).get("Hostname") or node_id)

    def lock(
        self,
        name: str,
        image: str,
        labels: Mapping[str, str],
        auth: Callable[[], PullAuth] | None = None,
    ) -> Lock:
        """See Engine (``scheduler.docker_lock`` says how the lock holds)."""
        self.ensure_image(image, PullPolicy.MISSING, auth)
        return take_lock(self._api, name, image, labels, self.remove)

    # --- SwarmStore (ha = "swarm": scheduler.docker_configs) -----------------------

    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], timeout: float
    ) -> str:
        """See SwarmStore."""
        return docker_configs.create_config(self._api, name, data, labels, timeout)

    def config(self, name: str) -> ConfigInfo:
        """See SwarmStore."""
        return docker_configs.config(self._api, name)

    def configs(self, labels: Mapping[str, str]) -> list[ConfigInfo]:
        """See SwarmStore."""
        return docker_configs.configs(self._api, labels)

    def update_config_labels(self, config: ConfigInfo, labels: Mapping[str, str]) -> None:
        """See SwarmStore."""
        docker_configs.update_config_labels(self._api, config, labels)

    def remove_config(self, config_id: str) -> None:
        """See SwarmStore."""
        docker_configs.remove_config(self._api, config_id)

    def manager_problem(self) -> str | None:
        """See SwarmStore."""
        return docker_configs.manager_problem(self._api)

    def close(self) -> None:
        """See Engine."""
        self._api.close()


class DockerEvents:
    """The engine's event stream, read as ContainerEvents (see Engine.container_events)."""

    def __init__(self, stream: Any) -> None:  # noqa: ANN401 - docker-py's CancellableStream
        self._stream = stream

    def __iter__(self) -> Iterator[ContainerEvent]:
        with translated("reading the engine's events"):
            for item in self._stream:
                if not isinstance(item, dict):
                    continue
                actor = item.get("Actor") or {}
                attributes = actor.get("Attributes") or {}
                yield ContainerEvent(
                    action=str(item.get("Action") or item.get("status") or ""),
                    container_id=str(actor.get("ID") or item.get("id") or ""),
                    name=str(attributes.get("name", "")),
                    labels={str(k): str(v) for k, v in attributes.items()},
                )

    def close(self) -> None:
        with suppress(Exception):  # closing a stream the engine already ended
            self._stream.close()


_DENIED = re.compile(
    r"unauthorized|pull access denied|access to the resource is denied|\bdenied:|"
    r"authentication required|no basic auth credentials|"
    r"\b401 Unauthorized\b|\b403 Forbidden\b(?!: refused by a proxy)",
    re.IGNORECASE,
)
"""How the engine reports a registry's refusal (its status codes are not kept: a refusal
reaches the client as a 500, or in the pull's progress stream). A socket proxy's own 403
(``explain``) is not the registry's."""


def _progress_error(progress: Iterator[object]) -> str | None:
    """The error a pull's progress stream ends with (read to its end), or None."""
    error = None
    for item in progress:
        if isinstance(item, dict) and item.get("error"):
            error = str(item["error"])
    return error


def denied(message: str) -> bool:
    """Whether a pull's error says the registry refused it (credentials or access)."""
    return _DENIED.search(message) is not None


def _auth_config(auth: PullAuth | None) -> dict[str, str]:
    """docker-py's ``auth_config`` for ``auth``; empty (anonymous) when there is none."""
    if auth is None:
        return {}
    config = {"serveraddress": auth.server}
    if auth.identity_token:
        config["identitytoken"] = auth.identity_token
    elif auth.password:
        config["username"] = auth.username or ""
        config["password"] = auth.password
    else:
        return {}
    return config


def _without(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret in it masked (should an error ever quote one)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _info(item: dict[str, Any]) -> ContainerInfo:
    """A container from the engine's list call."""
    return ContainerInfo(
        id=item["Id"],
        name=(item.get("Names") or ["?"])[0].lstrip("/"),
        state=item.get("State", ""),
        labels=item.get("Labels") or {},
        created=float(item["Created"]) if isinstance(item.get("Created"), int | float) else None,
    )


def _split_image(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` into what the pull call takes (tag ``latest`` when none)."""
    if "@" in image:
        return image, None
    repository, _, tag = image.rpartition(":")
    if repository and "/" not in tag:
        return repository, tag
    return image, "latest"


def _own_container_id(mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The id of the container we run in, read from the engine's bind mounts (hostname etc.)."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return None
    match = _CONTAINER_ID.search(text)
    return match.group(1) if match else None


_ID_PREFIX = re.compile(r"[0-9a-f]{12,64}")


def _is_named(item: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` names the inspected container exactly: its name, its id, or at
    least 12 hex digits of it (what ``docker ps`` shows)."""
    found = str(item.get("Name", "")).lstrip("/")
    ident = str(item.get("Id", ""))
    return name in (found, ident) or (
        _ID_PREFIX.fullmatch(name) is not None and ident.startswith(name)
    )


def _socket_timeout_off(sock: Any) -> None:  # noqa: ANN401 - docker-py's socket
    """A followed stream may pause for longer than an API call lasts."""
    raw = getattr(sock, "_sock", sock)
    with suppress(OSError, AttributeError):
        raw.settimeout(None)
