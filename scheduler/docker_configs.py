"""Swarm configs over docker-py (``ha = "swarm"``: the claims and the replicas' leases).

docker-py's ``create_config`` takes no deadline of its own and it has no update at all: the
engine's endpoints are called here directly, each with a deadline.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any

from scheduler.docker_errors import translated
from scheduler.engine import ConfigInfo
from scheduler.errors import EngineConflictError, EngineNotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import docker


def create_config(
    api: docker.APIClient, name: str, data: bytes, labels: Mapping[str, str], timeout: float
) -> str:
    """See SwarmStore.create_config."""
    body = {"Name": name, "Labels": dict(labels), "Data": base64.b64encode(data).decode("ascii")}
    with translated(f"creating the Swarm config {name}"):
        response = api._post_json(  # noqa: SLF001 - docker-py's create has no deadline
            api._url("/configs/create"),  # noqa: SLF001
            data=body,
            timeout=max(1, math.ceil(timeout)),
        )
        created: dict[str, Any] = api._result(response, json=True)  # noqa: SLF001
    return str(created["ID"])


def config(api: docker.APIClient, name: str) -> ConfigInfo:
    """See SwarmStore.config."""
    with translated(f"reading the Swarm config {name}"):
        item: dict[str, Any] = api.inspect_config(name)
    return _info(item)


def configs(api: docker.APIClient, labels: Mapping[str, str]) -> list[ConfigInfo]:
    """See SwarmStore.configs."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    with translated("listing Swarm configs"):
        found: list[dict[str, Any]] = api.configs(filters={"label": wanted})
    return [_info(item) for item in found]


def update_config_labels(
    api: docker.APIClient, current: ConfigInfo, labels: Mapping[str, str]
) -> None:
    """See SwarmStore.update_config_labels (only Name and Labels are sent: the engine
    refuses an update that carries Data)."""
    with translated(f"updating the Swarm config {current.name}"):
        response = api._post_json(  # noqa: SLF001 - docker-py has no config update
            api._url("/configs/{0}/update", current.id),  # noqa: SLF001
            data={"Name": current.name, "Labels": dict(labels)},
            params={"version": current.version},
        )
        api._raise_for_status(response)  # noqa: SLF001


def remove_config(api: docker.APIClient, config_id: str) -> None:
    """See SwarmStore.remove_config."""
    try:
        with translated("removing a Swarm config"):
            api.remove_config(config_id)
    except (EngineNotFoundError, EngineConflictError):
        pass  # gone already (another replica's sweep)


def manager_problem(api: docker.APIClient) -> str | None:
    """See SwarmStore.manager_problem."""
    with translated("reading the engine's Swarm state"):
        swarm: dict[str, Any] = api.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive")
    if state != "active":
        return f"the engine is not in a Swarm (its state: {state}); ha = 'swarm' needs a manager"
    if not swarm.get("ControlAvailable"):
        return "the engine is a Swarm worker; ha = 'swarm' needs a manager's engine"
    return None


def _info(item: Mapping[str, Any]) -> ConfigInfo:
    spec = item.get("Spec") or {}
    return ConfigInfo(
        id=str(item["ID"]),
        name=str(spec.get("Name", "")),
        version=int((item.get("Version") or {}).get("Index", 0)),
        labels=dict(spec.get("Labels") or {}),
    )
