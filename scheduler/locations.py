"""Where the config file is, found without loading the config's models: the health check
runs every 30 s and must stay cheap (importing the settings costs most of a second)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from scheduler import heartbeat

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_CONFIG_PATH = Path("/etc/crontainer/config.toml")
ENV_CONFIG = "CRONTAINER_CONFIG"
ENV_HEARTBEAT = "CRONTAINER_DAEMON__HEARTBEAT_FILE"


def config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``CRONTAINER_CONFIG``, else the default path."""
    if cli_value:
        return Path(cli_value)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH


def is_file_path(value: object) -> TypeGuard[str]:
    """Whether ``value`` is text naming a file by an absolute path (``heartbeat_file``'s
    rule, for the config's check and for ``crontainer health`` alike)."""
    return isinstance(value, str) and value.startswith("/") and not value.endswith("/")


def heartbeat_file(config: Path, environ: Mapping[str, str]) -> Path:
    """``[daemon] heartbeat_file`` as ``run`` takes it — the environment's
    ``CRONTAINER_DAEMON__HEARTBEAT_FILE`` over the file's — read with tomllib alone, the
    rest of the config unchecked. Raises ValueError naming what is wrong when the file
    cannot be read or the value is not an absolute file path (the caller falls back to
    the default)."""
    value: object = environ.get(ENV_HEARTBEAT)
    where = ENV_HEARTBEAT
    if value is None:
        try:
            with config.open("rb") as f:
                daemon = tomllib.load(f).get("daemon", {})
        except OSError as e:
            raise ValueError(f"{config}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{config}: not TOML: {e}") from None
        value = daemon.get("heartbeat_file") if isinstance(daemon, dict) else None
        where = f"{config}: daemon.heartbeat_file"
        if value is None:
            return heartbeat.DEFAULT
    if not is_file_path(value):
        raise ValueError(f"{where}: not the absolute path of a file")
    return Path(value)
