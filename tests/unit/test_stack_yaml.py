"""stack.yaml agrees with the image and the daemon's defaults (config path, state directory,
health check, grace periods), and each of its variables is in the table of
docs/deploying.md with the default the file gives it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from jobs.base import BaseJob
from jobs.units import parse_duration
from scheduler.locations import DEFAULT_CONFIG_PATH
from scheduler.settings.daemon import DaemonSettings

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "stack.yaml").read_text()
STACK: dict[str, Any] = yaml.safe_load(TEXT)
CRON: dict[str, Any] = STACK["services"]["cron"]
VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def mounts() -> dict[str, str]:
    """Each volume of the service: its target → its source, as written."""
    return dict(reversed(entry.rsplit(":", 1)) for entry in CRON["volumes"])


def test_the_config_is_a_swarm_config_where_the_image_reads_it() -> None:
    """The config is mounted at the path `crontainer run` reads by default."""
    (config,) = CRON["configs"]
    assert config["target"] == str(DEFAULT_CONFIG_PATH)
    assert set(STACK["configs"]) == {config["source"]}


def test_the_state_directory_is_the_named_volume_and_the_socket_a_variable() -> None:
    """state_dir's default is on the stack's named volume; the socket's host path is the
    DOCKER_SOCKET variable, the usual socket by default."""
    state_dir = str(DaemonSettings.model_fields["state_dir"].default)
    assert mounts()[state_dir] in STACK["volumes"]
    assert mounts()["/var/run/docker.sock"] == "${DOCKER_SOCKET:-/var/run/docker.sock}"


def test_the_health_check_is_the_images() -> None:
    """The stack states the Dockerfile's HEALTHCHECK, options and command alike."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK (.*?) \\\n\s*CMD (\[[^]]*\])$", dockerfile, re.MULTILINE)
    assert found, "the Dockerfile has no HEALTHCHECK"
    options = dict(o.removeprefix("--").split("=") for o in found.group(1).split())
    check = CRON["healthcheck"]
    assert check["test"] == ["CMD", *yaml.safe_load(found.group(2))]
    assert {k.replace("-", "_"): v for k, v in options.items()} == {
        k: str(check[k]) for k in ("interval", "timeout", "start_period", "retries")
    }


def test_the_stop_grace_period_outlasts_the_daemons_drain() -> None:
    """SIGKILL comes after shutdown_grace and a job's stop_grace (their defaults)."""
    drain = DaemonSettings.model_fields["shutdown_grace"].default
    drain += BaseJob.model_fields["stop_grace"].default
    assert parse_duration(CRON["stop_grace_period"]) > drain


def test_one_replica_on_a_manager_replaced_stop_first() -> None:
    """One replica on managers, at most one per node; updates and rollbacks stop the old
    daemon before starting the new one (the single-instance lock would refuse it)."""
    deploy = CRON["deploy"]
    assert (deploy["mode"], deploy["replicas"]) == ("replicated", 1)
    assert deploy["placement"] == {
        "constraints": ["node.role == manager"],
        "max_replicas_per_node": 1,
    }
    assert deploy["update_config"]["order"] == deploy["rollback_config"]["order"] == "stop-first"


def test_each_variable_is_documented_with_its_default() -> None:
    """docs/deploying.md's table names every ${VAR:-default} of stack.yaml, with that default."""
    variables = dict(VARIABLE.findall(TEXT))
    assert set(variables) == {"DOCKER_SOCKET", "CRON_CONFIG", "CRON_CONFIG_VERSION", "CRON_IMAGE"}
    rows = {
        cells[0].strip("` "): cells[1].strip("` ")
        for line in (ROOT / "docs" / "deploying.md").read_text().splitlines()
        if line.startswith("| `") and len(cells := line.strip("|").split("|")) >= 3
    }
    assert {name: rows.get(name) for name in variables} == variables
