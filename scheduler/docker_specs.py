"""A ``ContainerSpec`` in docker-py's terms: the arguments of ``create_container`` and of its
host config. Pure (no engine is asked), so each translation is tested without an engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docker.types import LogConfig

from jobs.selectors import split_mode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobs.plan import ContainerSpec


def container_args(spec: ContainerSpec, *, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """``create_container``'s arguments but ``host_config``; ``labels`` (the daemon's) win
    over the spec's own."""
    return {
        "image": spec.image,
        "command": list(spec.command) if spec.command is not None else None,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "environment": dict(spec.env),
        "volumes": [m.target for m in spec.mounts] or None,
        "user": spec.user,
        "working_dir": spec.workdir,
        "labels": {**spec.labels, **labels},
        "stop_signal": spec.stop_signal,
        "hostname": spec.hostname,
        "name": name,
        # docker-py sets StdinOnce with stdin_open (not detached): stdin ends when the
        # daemon's attachment closes, EOF for the tool whether the daemon closes it or dies.
        "stdin_open": spec.stdin,
        "healthcheck": None if spec.healthcheck else {"Test": ["NONE"]},
    }


def host_config_args(spec: ContainerSpec) -> dict[str, Any]:
    """``create_host_config``'s arguments: mounts, network, limits, privileges, logging."""
    host_config: dict[str, Any] = {
        "binds": [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts],
        "volumes_from": [
            f"{source}:ro" if spec.volumes_from_read_only and not split_mode(source)[1] else source
            for source in spec.volumes_from
        ]
        or None,
        "network_mode": spec.network,
    }
    if spec.memory is not None:
        host_config["mem_limit"] = spec.memory
        host_config["memswap_limit"] = spec.memory  # no swap beyond the limit
    if spec.cpus is not None:
        host_config["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.pids_limit is not None:
        host_config["pids_limit"] = spec.pids_limit
    if spec.read_only:
        host_config["read_only"] = True
    if spec.cap_drop:
        host_config["cap_drop"] = list(spec.cap_drop)
    if spec.cap_add:
        host_config["cap_add"] = list(spec.cap_add)
    if spec.no_new_privileges:
        host_config["security_opt"] = ["no-new-privileges:true"]
    if spec.log_driver is not None:
        host_config["log_config"] = LogConfig(type=spec.log_driver, config=dict(spec.log_options))
    return host_config
